// Fused optimizer updates over a flat parameter arena: one grid-stride pass per step.
//
// Every entry point <rule>_<f32|f64> reads stats (double[4]: sum g^2, non-finite flag, step count t,
// skipped steps; written by grad_stats in global_norm.cu on the same stream) from device memory:
// if guard != 0 and the flag is set, it returns at once and writes nothing. Otherwise each thread
// derives in double the gradient scale (clipping by global norm, normalization) and the
// step-dependent constants (bias corrections 1 - beta^t, Adagrad's decayed rate), rounds them once
// to T, and updates its elements in T arithmetic (fp32 for a float32 arena): 16-byte loads and
// stores (float4, or two double2) over the flat buffers when `vec` = 1 (every buffer 16-byte
// aligned), then a scalar tail. Elements i < n_decay get the decay terms. Formulas: reference.py.
//
// Scalar arguments: lr, weight_decay, l1, dfac = 1 - lr*decoupled_wd, clip_norm (<= 0: off),
// clip_value (<= 0: off), norm_eps (<= 0: off), guard, then the rule's own (1 - beta etc. are
// computed on the host in double).

#include "../common/vec.cuh"

// The gradient transform shared by every rule.
template <typename T>
struct Prep {
    T scale, clip_value, wd, l1, dfac;
    int clip;
    __device__ __forceinline__ T grad(T g, T w, bool decay) const {
        g *= scale;
        if (clip) g = g > clip_value ? clip_value : (g < -clip_value ? -clip_value : g);  // NaN passes
        if (decay) g += wd * w + l1 * (T)((w > T(0)) - (w < T(0)));
        return g;
    }
};

// Reads the flag and the norm; false when the step is skipped.
template <typename T>
__device__ __forceinline__ bool prologue(const double* __restrict__ stats, int guard, double clip_norm,
                                         double norm_eps, double clip_value, double wd, double l1, double dfac,
                                         Prep<T>& p) {
    if (guard && stats[1] != 0.0) return false;
    double s = 1.0;
    if (clip_norm > 0.0 || norm_eps > 0.0) {
        const double norm = sqrt(stats[0]);
        if (clip_norm > 0.0 && norm > clip_norm) s = clip_norm / norm;
        if (norm_eps > 0.0) s = s / (s * norm + norm_eps);
    }
    p.scale = (T)s;
    p.clip = clip_value > 0.0;
    p.clip_value = (T)clip_value;
    p.wd = (T)wd;
    p.l1 = (T)l1;
    p.dfac = (T)dfac;
    return true;
}

// The update rules: `has(k)` says whether state buffer k is read and written.
template <typename T>
struct Sgd {
    T lr;
    __device__ __forceinline__ bool has(int) const { return false; }
    __device__ __forceinline__ void update(T& w, T g, T&, T&, T&) const { w -= lr * g; }
};

template <typename T>
struct Momentum {
    T lr, mu;
    int nesterov;
    __device__ __forceinline__ bool has(int k) const { return k == 0; }
    __device__ __forceinline__ void update(T& w, T g, T& v, T&, T&) const {
        v = mu * v - lr * g;
        w += nesterov ? mu * v - lr * g : v;
    }
};

template <typename T>
struct Adagrad {
    T clr, eps;
    __device__ __forceinline__ bool has(int k) const { return k == 0; }
    __device__ __forceinline__ void update(T& w, T g, T& a, T&, T&) const {
        a += g * g;
        w -= clr * g / (sqrt(a) + eps);
    }
};

template <typename T>
struct Rmsprop {
    T lr, alpha, oma, eps, mu;
    int centered, use_mom;
    __device__ __forceinline__ bool has(int k) const { return k == 0 || (k == 1 && centered) || (k == 2 && use_mom); }
    __device__ __forceinline__ void update(T& w, T g, T& q, T& gbar, T& b) const {
        q = alpha * q + oma * g * g;
        T d;
        if (centered) {
            gbar = gbar + oma * (g - gbar);
            d = sqrt(q - gbar * gbar) + eps;
        } else {
            d = sqrt(q) + eps;
        }
        if (use_mom) {
            b = mu * b - lr * g / d;
            w += b;
        } else {
            w -= lr * g / d;
        }
    }
};

template <typename T>
struct Adam {
    T b1, omb1, b2, omb2, step_size, sqrt_bc2, eps;
    __device__ __forceinline__ bool has(int k) const { return k < 2; }
    __device__ __forceinline__ void update(T& w, T g, T& m, T& v, T&) const {
        m = b1 * m + omb1 * g;
        v = b2 * v + omb2 * g * g;
        w -= step_size * m / (sqrt(v) / sqrt_bc2 + eps);
    }
};

// One element: gradient transform, decoupled decay, rule.
template <typename T, typename Rule>
__device__ __forceinline__ void element(const Prep<T>& p, const Rule& r, bool decay, T& w, T g, T& a, T& b, T& c) {
    const T gg = p.grad(g, w, decay);
    if (decay) w *= p.dfac;
    r.update(w, gg, a, b, c);
}

template <typename T, typename Rule>
__device__ __forceinline__ void drive(const Prep<T>& p, const Rule& r, T* __restrict__ w, const T* __restrict__ g,
                                      T* __restrict__ s0, T* __restrict__ s1, T* __restrict__ s2, long long n,
                                      long long n_decay, int vec) {
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long n4 = vec ? n / 4 : 0;
    for (long long k = tid; k < n4; k += stride) {
        const long long i = 4 * k;
        T wv[4], gv[4], a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0}, c[4] = {0, 0, 0, 0};
        load4(w, i, wv);
        load4(g, i, gv);
        if (r.has(0)) load4(s0, i, a);
        if (r.has(1)) load4(s1, i, b);
        if (r.has(2)) load4(s2, i, c);
#pragma unroll
        for (int j = 0; j < 4; ++j) element(p, r, i + j < n_decay, wv[j], gv[j], a[j], b[j], c[j]);
        store4(w, i, wv);
        if (r.has(0)) store4(s0, i, a);
        if (r.has(1)) store4(s1, i, b);
        if (r.has(2)) store4(s2, i, c);
    }
    for (long long i = 4 * n4 + tid; i < n; i += stride) {
        T wi = w[i], a = r.has(0) ? s0[i] : T(0), b = r.has(1) ? s1[i] : T(0), c = r.has(2) ? s2[i] : T(0);
        element(p, r, i < n_decay, wi, g[i], a, b, c);
        w[i] = wi;
        if (r.has(0)) s0[i] = a;
        if (r.has(1)) s1[i] = b;
        if (r.has(2)) s2[i] = c;
    }
}

#define COMMON_ARGS                                                                                  \
    const double *stats, long long n, long long n_decay, int vec, double lr, double wd,               \
        double l1, double dfac, double clip_norm, double clip_value, double norm_eps, int guard
#define PROLOGUE(T)                                                                                  \
    Prep<T> p;                                                                                       \
    if (!prologue<T>(stats, guard, clip_norm, norm_eps, clip_value, wd, l1, dfac, p)) return;

template <typename T>
__device__ void sgd_impl(T* w, const T* g, COMMON_ARGS) {
    PROLOGUE(T)
    Sgd<T> r{(T)lr};
    drive(p, r, w, g, (T*)nullptr, (T*)nullptr, (T*)nullptr, n, n_decay, vec);
}

template <typename T>
__device__ void momentum_impl(T* w, const T* g, T* buf, COMMON_ARGS, double mu, int nesterov) {
    PROLOGUE(T)
    Momentum<T> r{(T)lr, (T)mu, nesterov};
    drive(p, r, w, g, buf, (T*)nullptr, (T*)nullptr, n, n_decay, vec);
}

template <typename T>
__device__ void adagrad_impl(T* w, const T* g, T* acc, COMMON_ARGS, double lr_decay, double eps) {
    PROLOGUE(T)
    Adagrad<T> r{(T)(lr / (1.0 + (stats[2] - 1.0) * lr_decay)), (T)eps};
    drive(p, r, w, g, acc, (T*)nullptr, (T*)nullptr, n, n_decay, vec);
}

template <typename T>
__device__ void rmsprop_impl(T* w, const T* g, T* sq, T* ga, T* buf, COMMON_ARGS, double alpha, double oma,
                             double eps, double mu, int centered) {
    PROLOGUE(T)
    Rmsprop<T> r{(T)lr, (T)alpha, (T)oma, (T)eps, (T)mu, centered, mu > 0.0};
    drive(p, r, w, g, sq, ga, buf, n, n_decay, vec);
}

template <typename T>
__device__ void adam_impl(T* w, const T* g, T* m, T* v, COMMON_ARGS, double b1, double omb1, double b2,
                          double omb2, double eps) {
    PROLOGUE(T)
    const double t = stats[2];
    Adam<T> r{(T)b1, (T)omb1, (T)b2, (T)omb2, (T)(lr / (1.0 - pow(b1, t))), (T)sqrt(1.0 - pow(b2, t)), (T)eps};
    drive(p, r, w, g, m, v, (T*)nullptr, n, n_decay, vec);
}

#define ENTRIES(T, SUF)                                                                                      \
    __global__ void sgd_##SUF(T* w, const T* g, COMMON_ARGS) {                                               \
        sgd_impl<T>(w, g, stats, n, n_decay, vec, lr, wd, l1, dfac, clip_norm, clip_value, norm_eps, guard); \
    }                                                                                                        \
    __global__ void momentum_##SUF(T* w, const T* g, T* buf, COMMON_ARGS, double mu, int nesterov) {         \
        momentum_impl<T>(w, g, buf, stats, n, n_decay, vec, lr, wd, l1, dfac, clip_norm, clip_value,         \
                         norm_eps, guard, mu, nesterov);                                                     \
    }                                                                                                        \
    __global__ void adagrad_##SUF(T* w, const T* g, T* acc, COMMON_ARGS, double lr_decay, double eps) {      \
        adagrad_impl<T>(w, g, acc, stats, n, n_decay, vec, lr, wd, l1, dfac, clip_norm, clip_value,          \
                        norm_eps, guard, lr_decay, eps);                                                     \
    }                                                                                                        \
    __global__ void rmsprop_##SUF(T* w, const T* g, T* sq, T* ga, T* buf, COMMON_ARGS, double alpha,         \
                                  double oma, double eps, double mu, int centered) {                         \
        rmsprop_impl<T>(w, g, sq, ga, buf, stats, n, n_decay, vec, lr, wd, l1, dfac, clip_norm, clip_value,  \
                        norm_eps, guard, alpha, oma, eps, mu, centered);                                     \
    }                                                                                                        \
    __global__ void adam_##SUF(T* w, const T* g, T* m, T* v, COMMON_ARGS, double b1, double omb1, double b2, \
                               double omb2, double eps) {                                                    \
        adam_impl<T>(w, g, m, v, stats, n, n_decay, vec, lr, wd, l1, dfac, clip_norm, clip_value, norm_eps,  \
                     guard, b1, omb1, b2, omb2, eps);                                                        \
    }

extern "C" {
ENTRIES(float, f32)
ENTRIES(double, f64)
}
