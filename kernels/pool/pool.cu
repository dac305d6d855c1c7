// 2-D max and average pooling, CUDA C. Same formulas as reference.py.
// Forward: one thread per output. Backward: one thread per input element, gathering from the
// windows that contain it (max: those whose recorded argmax is this element), so no atomics and
// a deterministic sum. Window gathers have no 16-byte-aligned runs, hence scalar loads.
// Entry points: <name>_f32 and <name>_f64, extern "C".

#define GRID_LOOP(i, total) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (total); \
         i += (long long)blockDim.x * gridDim.x)

template <typename T>
__device__ __forceinline__ void max_fwd(const T* __restrict__ x, T* __restrict__ y, int* __restrict__ idx,
                                        int nc, int h, int w, int oh, int ow,
                                        int kh, int kw, int sh, int sw, int ph, int pw) {
    GRID_LOOP(i, (long long)nc * oh * ow) {
        const int q = (int)(i % ow), r = (int)((i / ow) % oh);
        const long long t = i / ((long long)ow * oh);
        const int r0 = max(r * sh - ph, 0), r1 = min(r * sh - ph + kh, h);
        const int c0 = max(q * sw - pw, 0), c1 = min(q * sw - pw + kw, w);
        const T* plane = x + t * h * w;
        T best = plane[r0 * w + c0];
        int arg = r0 * w + c0;
        for (int a = r0; a < r1; ++a)
            for (int b = c0; b < c1; ++b) {
                const T v = plane[a * w + b];
                if (v > best || v != v) { best = v; arg = a * w + b; }
            }
        y[i] = best;
        idx[i] = arg;
    }
}

template <typename T>
__device__ __forceinline__ void avg_fwd(const T* __restrict__ x, T* __restrict__ y,
                                        int nc, int h, int w, int oh, int ow,
                                        int kh, int kw, int sh, int sw, int ph, int pw, double scale) {
    GRID_LOOP(i, (long long)nc * oh * ow) {
        const int q = (int)(i % ow), r = (int)((i / ow) % oh);
        const long long t = i / ((long long)ow * oh);
        const int r0 = max(r * sh - ph, 0), r1 = min(r * sh - ph + kh, h);
        const int c0 = max(q * sw - pw, 0), c1 = min(q * sw - pw + kw, w);
        const T* plane = x + t * h * w;
        T s = T(0);
        for (int a = r0; a < r1; ++a)
            for (int b = c0; b < c1; ++b) s += plane[a * w + b];
        y[i] = s * (T)scale;
    }
}

// dx[t, y, z] = sum over windows (r, q) holding (y, z) of dy[t, r, q] (max: only where idx == y*w + z)
template <typename T, bool IS_MAX>
__device__ __forceinline__ void pool_bwd(const T* __restrict__ dy, const int* __restrict__ idx, T* __restrict__ dx,
                                         int nc, int h, int w, int oh, int ow,
                                         int kh, int kw, int sh, int sw, int ph, int pw, double scale) {
    GRID_LOOP(i, (long long)nc * h * w) {
        const int z = (int)(i % w), y = (int)((i / w) % h);
        const long long t = i / ((long long)w * h);
        const long long base = t * oh * ow;
        T acc = T(0);
        for (int a = 0; a < kh; ++a) {
            const int yy = y + ph - a;
            if (yy < 0 || yy % sh != 0 || yy / sh >= oh) continue;
            for (int b = 0; b < kw; ++b) {
                const int zz = z + pw - b;
                if (zz < 0 || zz % sw != 0 || zz / sw >= ow) continue;
                const long long o = base + (long long)(yy / sh) * ow + zz / sw;
                if (!IS_MAX || idx[o] == y * w + z) acc += dy[o];
            }
        }
        dx[i] = IS_MAX ? acc : acc * (T)scale;
    }
}

#define GEOM int nc, int h, int w, int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw
#define GEOM_ARGS nc, h, w, oh, ow, kh, kw, sh, sw, ph, pw

extern "C" {
__global__ void maxpool2d_forward_f32(const float* x, float* y, int* idx, GEOM) { max_fwd<float>(x, y, idx, GEOM_ARGS); }
__global__ void maxpool2d_forward_f64(const double* x, double* y, int* idx, GEOM) { max_fwd<double>(x, y, idx, GEOM_ARGS); }
__global__ void maxpool2d_backward_f32(const float* dy, const int* idx, float* dx, GEOM) {
    pool_bwd<float, true>(dy, idx, dx, GEOM_ARGS, 1.0);
}
__global__ void maxpool2d_backward_f64(const double* dy, const int* idx, double* dx, GEOM) {
    pool_bwd<double, true>(dy, idx, dx, GEOM_ARGS, 1.0);
}
__global__ void avgpool2d_forward_f32(const float* x, float* y, GEOM, double scale) { avg_fwd<float>(x, y, GEOM_ARGS, scale); }
__global__ void avgpool2d_forward_f64(const double* x, double* y, GEOM, double scale) { avg_fwd<double>(x, y, GEOM_ARGS, scale); }
__global__ void avgpool2d_backward_f32(const float* dy, float* dx, GEOM, double scale) {
    pool_bwd<float, false>(dy, nullptr, dx, GEOM_ARGS, scale);
}
__global__ void avgpool2d_backward_f64(const double* dy, double* dx, GEOM, double scale) {
    pool_bwd<double, false>(dy, nullptr, dx, GEOM_ARGS, scale);
}
}
