// Batch normalization, CUDA C tier (loaded by cupy_tier.py through cupy.RawModule). Formulas as
// in reference.py; inputs viewed as (N, C, S), S = 1 for (N, C), S = H*W for (N, C, H, W).
//
// Every op is reduction -> per-channel finalize -> element-wise pass:
//   1. partial reductions, race-free: block (tile or channel, chunk) writes its own slot
//      [chunk * C + c] of the partial arrays (no atomics, no host synchronization):
//        (N, C):    block = 32 column groups x 8 row groups; a thread owns V adjacent channels
//                   (V = 4 floats / 2 doubles in one 16-byte load when C % V == 0 and the rows
//                   are aligned, else V = 1) and keeps several rows in flight;
//        (N, C, S): block = one channel x a chunk of planes; each warp reads one contiguous
//                   plane x[n, c, :] (16-byte loads when S allows);
//      statistics are float64 (count, mean, M2) merged with Chan's formula (batches of up to
//      four values: two-pass mean/M2 of the batch, then one merge), never E[x^2] - E[x]^2;
//   2. finalize (one thread per channel) merges the chunk partials in a fixed order;
//   3. element-wise y = (x - mean)*a + beta, dx = a*dy - k*(x - mean) - m with x - mean in
//      double: (N, C) rows with per-thread channel coefficients in registers, (N, C, S) planes
//      with one channel per block, both in 16-byte vectors; a flat grid-stride kernel (any
//      shape, unaligned pointers, scalar tail) otherwise. A fused ReLU (``relu`` / ``masked``):
//      max(y, 0) in the forward's pass; dy * [mask > 0] in both backward passes, mask = the
//      forward's output (the ReLU layer's formulas and bits; mask = dy and masked = 0 otherwise).
// Shapes and launch geometry come from the host (cupy_tier.py); every loop is bounds-checked.
#include "../common/vec.cuh"

#define GPUNET_NC_TX 32
#define GPUNET_NC_TY 8
#define GPUNET_NCS_THREADS 256

__device__ __forceinline__ long long gpunet_min(long long a, long long b) { return a < b ? a : b; }

// A fused ReLU, as the ReLU layer computes it: forward max(v, 0) after rounding (NaN kept, -0 -> 0);
// backward dy * [y > 0] in T (inf * 0 -> NaN kept), y being the forward's output.
template <typename T>
__device__ __forceinline__ T relu_out(T v) { return v <= T(0) ? T(0) : v; }
template <typename T>
__device__ __forceinline__ T relu_grad(T g, T y) { return g * (y > T(0) ? T(1) : T(0)); }

struct Welford {
    double n, mean, m2;
};

__device__ __forceinline__ void welford_merge(Welford& acc, double nb, double mb, double m2b) {
    if (nb <= 0.0) return;
    const double tot = acc.n + nb;
    const double delta = mb - acc.mean;
    acc.mean += delta * (nb / tot);
    acc.m2 += m2b + delta * delta * (acc.n * nb / tot);
    acc.n = tot;
}

// Merge k (1..4) values: their mean and M2 by two passes, then one Chan merge.
// (Loops are unrolled with constant indices so that v stays in registers.)
template <typename T>
__device__ __forceinline__ void welford_push(Welford& acc, const T v[4], int k) {
    double s = 0.0;
#pragma unroll
    for (int u = 0; u < 4; ++u)
        if (u < k) s += (double)v[u];
    const double mb = s / k;
    double q = 0.0;
#pragma unroll
    for (int u = 0; u < 4; ++u) {
        if (u < k) {
            const double d = (double)v[u] - mb;
            q += d * d;
        }
    }
    welford_merge(acc, (double)k, mb, q);
}

// ------------------------------------------------------------------------------ statistics
template <typename T>
__device__ void stats_ncs(const T* __restrict__ x, long long N, int C, long long S, long long planes_per_chunk,
                          int vec, double* __restrict__ pn, double* __restrict__ pmean, double* __restrict__ pm2) {
    __shared__ double s_n[GPUNET_NCS_THREADS];
    __shared__ double s_mean[GPUNET_NCS_THREADS];
    __shared__ double s_m2[GPUNET_NCS_THREADS];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int nwarps = GPUNET_NCS_THREADS / 32;
    const int c = blockIdx.x;
    const long long n0 = (long long)blockIdx.y * planes_per_chunk;
    const long long n1 = gpunet_min(N, n0 + planes_per_chunk);
    Welford acc = {0.0, 0.0, 0.0};
    for (long long n = n0 + warp; n < n1; n += nwarps) {
        const T* p = x + (n * C + c) * S;
        if (vec) {
            const int V = Vec<T>::n;
            for (long long q = lane; q < S / V; q += 32) {
                T v[4];
                Vec<T>::load(p + q * V, v);
                welford_push(acc, v, V);
            }
        } else {
            for (long long q = lane; q < S; q += 4 * 32) {
                T v[4];
                int k = 0;
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    const long long qq = q + 32 * u;
                    const bool ok = qq < S;
                    v[u] = ok ? p[qq] : T(0);
                    k += ok;
                }
                welford_push(acc, v, k);
            }
        }
    }
    s_n[tid] = acc.n;
    s_mean[tid] = acc.mean;
    s_m2[tid] = acc.m2;
    __syncthreads();
    for (int half = GPUNET_NCS_THREADS / 2; half > 0; half /= 2) {
        if (tid < half) {
            Welford a = {s_n[tid], s_mean[tid], s_m2[tid]};
            welford_merge(a, s_n[tid + half], s_mean[tid + half], s_m2[tid + half]);
            s_n[tid] = a.n;
            s_mean[tid] = a.mean;
            s_m2[tid] = a.m2;
        }
        __syncthreads();
    }
    if (tid == 0) {
        const long long slot = (long long)blockIdx.y * C + c;
        pn[slot] = s_n[0];
        pmean[slot] = s_mean[0];
        pm2[slot] = s_m2[0];
    }
}

template <typename T>
__device__ void finalize_stats(const double* __restrict__ pn, const double* __restrict__ pmean,
                               const double* __restrict__ pm2, int chunks, int C, const T* __restrict__ weight,
                               T* __restrict__ running_mean, T* __restrict__ running_var,
                               double* __restrict__ save_mean, double* __restrict__ save_invstd,
                               double* __restrict__ a, double eps, double momentum, double unbias, int update) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x) {
        Welford acc = {0.0, 0.0, 0.0};
        for (int t = 0; t < chunks; ++t) {
            const long long slot = (long long)t * C + c;
            welford_merge(acc, pn[slot], pmean[slot], pm2[slot]);
        }
        const double var = acc.m2 / acc.n;
        const double inv = 1.0 / sqrt(var + eps);
        save_mean[c] = acc.mean;
        save_invstd[c] = inv;
        a[c] = (double)weight[c] * inv;
        if (update) {
            running_mean[c] = (T)((1.0 - momentum) * (double)running_mean[c] + momentum * acc.mean);
            running_var[c] = (T)((1.0 - momentum) * (double)running_var[c] + momentum * (var * unbias));
        }
    }
}

template <typename T>
__device__ void eval_coef(const T* __restrict__ weight, const T* __restrict__ running_mean,
                          const T* __restrict__ running_var, double eps, int C, double* __restrict__ mean,
                          double* __restrict__ a) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x) {
        mean[c] = (double)running_mean[c];
        a[c] = (double)weight[c] / sqrt((double)running_var[c] + eps);
    }
}

// ------------------------------------------------------------------------------ backward sums
template <typename T>
__device__ void bwd_sums_ncs(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ mask,
                             const double* __restrict__ mean, int masked, long long N, int C, long long S,
                             long long planes_per_chunk, int vec, double* __restrict__ psdy,
                             double* __restrict__ psdx) {
    __shared__ double s_dy[GPUNET_NCS_THREADS];
    __shared__ double s_dx[GPUNET_NCS_THREADS];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int nwarps = GPUNET_NCS_THREADS / 32;
    const int c = blockIdx.x;
    const double mu = mean[c];
    const long long n0 = (long long)blockIdx.y * planes_per_chunk;
    const long long n1 = gpunet_min(N, n0 + planes_per_chunk);
    double sdy = 0.0, sdx = 0.0;
    for (long long n = n0 + warp; n < n1; n += nwarps) {
        const long long off = (n * C + c) * S;
        if (vec) {
            const int V = Vec<T>::n;
            for (long long q = lane; q < S / V; q += 32) {
                T g[4], v[4];
                Vec<T>::load(dy + off + q * V, g);
                Vec<T>::load(x + off + q * V, v);
                if (masked) {
                    T y[4];
                    Vec<T>::load(mask + off + q * V, y);
#pragma unroll
                    for (int u = 0; u < V; ++u) g[u] = relu_grad(g[u], y[u]);
                }
#pragma unroll
                for (int u = 0; u < V; ++u) {
                    sdy += (double)g[u];
                    sdx += (double)g[u] * ((double)v[u] - mu);
                }
            }
        } else {
            for (long long q = lane; q < S; q += 32) {
                const double g = (double)(masked ? relu_grad(dy[off + q], mask[off + q]) : dy[off + q]);
                sdy += g;
                sdx += g * ((double)x[off + q] - mu);
            }
        }
    }
    s_dy[tid] = sdy;
    s_dx[tid] = sdx;
    __syncthreads();
    for (int half = GPUNET_NCS_THREADS / 2; half > 0; half /= 2) {
        if (tid < half) {
            s_dy[tid] += s_dy[tid + half];
            s_dx[tid] += s_dx[tid + half];
        }
        __syncthreads();
    }
    if (tid == 0) {
        const long long slot = (long long)blockIdx.y * C + c;
        psdy[slot] = s_dy[0];
        psdx[slot] = s_dx[0];
    }
}

template <typename T>
__device__ void finalize_bwd(const double* __restrict__ psdy, const double* __restrict__ psdx, int chunks, int C,
                             const T* __restrict__ weight, const double* __restrict__ save_invstd,
                             T* __restrict__ dweight, T* __restrict__ dbias, double* __restrict__ a,
                             double* __restrict__ k, double* __restrict__ m, double cnt, int batch_stats) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x) {
        double sdy = 0.0, sdx = 0.0;
        for (int t = 0; t < chunks; ++t) {
            sdy += psdy[(long long)t * C + c];
            sdx += psdx[(long long)t * C + c];
        }
        const double inv = save_invstd[c];
        const double dgamma = sdx * inv;
        dbias[c] = (T)sdy;
        dweight[c] = (T)dgamma;
        const double ac = (double)weight[c] * inv;
        a[c] = ac;
        k[c] = batch_stats ? ac * dgamma * inv / cnt : 0.0;
        m[c] = batch_stats ? ac * sdy / cnt : 0.0;
    }
}

// ------------------------------------------------------------------------------ element-wise
// Element i of the flat (N, C, S) buffer is in channel (i / S) % C. With vec, thread k handles
// elements kV .. kV+V-1 (one 16-byte load), walking the channel forward as it crosses planes.
template <typename T, typename I>
__device__ void normalize(const T* __restrict__ x, T* __restrict__ y, const double* __restrict__ mean,
                          const double* __restrict__ a, const T* __restrict__ bias, int relu, I total, I C, I S,
                          int vec) {
    const I stride = (I)gridDim.x * blockDim.x;
    const I tid = (I)blockIdx.x * blockDim.x + threadIdx.x;
    I done = 0;
    if (vec) {
        const int V = Vec<T>::n;
        const I nv = total / V;
        for (I kk = tid; kk < nv; kk += stride) {
            const I i0 = kk * V;
            const I q = i0 / S;
            I pos = i0 - q * S, c = q % C;
            T v[4];
            Vec<T>::load(x + i0, v);
#pragma unroll
            for (int l = 0; l < V; ++l) {
                v[l] = (T)((double)v[l] - mean[c]) * (T)a[c] + bias[c];
                if (relu) v[l] = relu_out(v[l]);
                if (++pos == S) {
                    pos = 0;
                    c = (c + 1 == C) ? 0 : c + 1;
                }
            }
            Vec<T>::store(y + i0, v);
        }
        done = nv * V;
    }
    for (I i = done + tid; i < total; i += stride) {
        const I c = (i / S) % C;
        const T v = (T)((double)x[i] - mean[c]) * (T)a[c] + bias[c];
        y[i] = relu ? relu_out(v) : v;
    }
}

template <typename T, typename I>
__device__ void grad_input(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ mask,
                           T* __restrict__ dx, const double* __restrict__ mean, const double* __restrict__ a,
                           const double* __restrict__ k, const double* __restrict__ m, int masked, I total, I C,
                           I S, int vec) {
    const I stride = (I)gridDim.x * blockDim.x;
    const I tid = (I)blockIdx.x * blockDim.x + threadIdx.x;
    I done = 0;
    if (vec) {
        const int V = Vec<T>::n;
        const I nv = total / V;
        for (I kk = tid; kk < nv; kk += stride) {
            const I i0 = kk * V;
            const I q = i0 / S;
            I pos = i0 - q * S, c = q % C;
            T g[4], v[4];
            Vec<T>::load(dy + i0, g);
            Vec<T>::load(x + i0, v);
            if (masked) {
                T y[4];
                Vec<T>::load(mask + i0, y);
#pragma unroll
                for (int l = 0; l < V; ++l) g[l] = relu_grad(g[l], y[l]);
            }
#pragma unroll
            for (int l = 0; l < V; ++l) {
                const T d = (T)((double)v[l] - mean[c]);
                g[l] = (T)a[c] * g[l] - ((T)k[c] * d + (T)m[c]);
                if (++pos == S) {
                    pos = 0;
                    c = (c + 1 == C) ? 0 : c + 1;
                }
            }
            Vec<T>::store(dx + i0, g);
        }
        done = nv * V;
    }
    for (I i = done + tid; i < total; i += stride) {
        const I c = (i / S) % C;
        const T d = (T)((double)x[i] - mean[c]);
        const T g = masked ? relu_grad(dy[i], mask[i]) : dy[i];
        dx[i] = (T)a[c] * g - ((T)k[c] * d + (T)m[c]);
    }
}

// ------------------------------------------------------------------------------ (N, C) reductions, row and plane kernels
// (N, C) reductions: each thread owns V adjacent channels (V = 1: one value, a warp reads 128
// contiguous bytes of a row; V = Vec<T>::n when C % V == 0 and the rows are 16-byte aligned: one
// 16-byte load, a warp reads 512 bytes) and walks rows r0 + ty, r0 + ty + TY, ..., several rows in
// flight. The V channels of a thread see the same rows, so one division per batch serves them all.
template <typename T, int V>
__device__ __forceinline__ void load_v(const T* p, T v[4]) {
    if (V == 1)
        v[0] = *p;
    else
        Vec<T>::load(p, v);
}

template <typename T, int V>
__device__ void stats_nc(const T* __restrict__ x, long long N, int C, long long rows_per_chunk,
                             double* __restrict__ pn, double* __restrict__ pmean, double* __restrict__ pm2) {
    __shared__ double s_n[GPUNET_NC_TY][GPUNET_NC_TX];
    __shared__ double s_mean[GPUNET_NC_TY][GPUNET_NC_TX * 4];
    __shared__ double s_m2[GPUNET_NC_TY][GPUNET_NC_TX * 4];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const long long c0 = ((long long)blockIdx.x * GPUNET_NC_TX + tx) * V;
    const long long r0 = (long long)blockIdx.y * rows_per_chunk;
    const long long r1 = gpunet_min(N, r0 + rows_per_chunk);
    double n = 0.0, mean[4] = {0.0, 0.0, 0.0, 0.0}, m2[4] = {0.0, 0.0, 0.0, 0.0};
    if (c0 < C) {
        for (long long r = r0 + ty; r < r1; r += 4 * GPUNET_NC_TY) {
            T v[4][4];
            int k = 0;  // rows r, r + TY, ... below r1: a prefix of the four
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const long long rr = r + (long long)u * GPUNET_NC_TY;
                if (rr < r1) {
                    load_v<T, V>(x + rr * C + c0, v[u]);
                    ++k;
                } else {
#pragma unroll
                    for (int l = 0; l < 4; ++l) v[u][l] = T(0);
                }
            }
            const double tot = n + k, f = k / tot, g = n * f, rk = 1.0 / k;
#pragma unroll
            for (int l = 0; l < V; ++l) {
                double sum = 0.0;
#pragma unroll
                for (int u = 0; u < 4; ++u)
                    if (u < k) sum += (double)v[u][l];
                const double mb = sum * rk;
                double q = 0.0;
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    if (u < k) {
                        const double d = (double)v[u][l] - mb;
                        q += d * d;
                    }
                }
                const double delta = mb - mean[l];
                mean[l] += delta * f;
                m2[l] += q + delta * delta * g;
            }
            n = tot;
        }
    }
    s_n[ty][tx] = n;
#pragma unroll
    for (int l = 0; l < V; ++l) {
        s_mean[ty][tx * V + l] = mean[l];
        s_m2[ty][tx * V + l] = m2[l];
    }
    __syncthreads();
    if (ty == 0 && c0 < C) {
        for (int l = 0; l < V; ++l) {
            Welford acc = {n, mean[l], m2[l]};
            for (int u = 1; u < GPUNET_NC_TY; ++u)
                welford_merge(acc, s_n[u][tx], s_mean[u][tx * V + l], s_m2[u][tx * V + l]);
            const long long slot = (long long)blockIdx.y * C + c0 + l;
            pn[slot] = acc.n;
            pmean[slot] = acc.mean;
            pm2[slot] = acc.m2;
        }
    }
}

template <typename T, int V>
__device__ void bwd_sums_nc(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ mask,
                            const double* __restrict__ mean, int masked, long long N, int C,
                            long long rows_per_chunk, double* __restrict__ psdy, double* __restrict__ psdx) {
    __shared__ double s_dy[GPUNET_NC_TY][GPUNET_NC_TX * 4];
    __shared__ double s_dx[GPUNET_NC_TY][GPUNET_NC_TX * 4];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const long long c0 = ((long long)blockIdx.x * GPUNET_NC_TX + tx) * V;
    const long long r0 = (long long)blockIdx.y * rows_per_chunk;
    const long long r1 = gpunet_min(N, r0 + rows_per_chunk);
    double sdy[4] = {0.0, 0.0, 0.0, 0.0}, sdx[4] = {0.0, 0.0, 0.0, 0.0}, mu[4] = {0.0, 0.0, 0.0, 0.0};
    if (c0 < C) {
#pragma unroll
        for (int l = 0; l < V; ++l) mu[l] = mean[c0 + l];
        for (long long r = r0 + ty; r < r1; r += 2 * GPUNET_NC_TY) {
            T g[2][4], v[2][4];
#pragma unroll
            for (int u = 0; u < 2; ++u) {
                const long long rr = r + (long long)u * GPUNET_NC_TY;
                if (rr < r1) {
                    load_v<T, V>(dy + rr * C + c0, g[u]);
                    load_v<T, V>(x + rr * C + c0, v[u]);
                    if (masked) {
                        T y[4];
                        load_v<T, V>(mask + rr * C + c0, y);
#pragma unroll
                        for (int l = 0; l < V; ++l) g[u][l] = relu_grad(g[u][l], y[l]);
                    }
                } else {  // a missing row has g = 0 and adds nothing
#pragma unroll
                    for (int l = 0; l < 4; ++l) g[u][l] = v[u][l] = T(0);
                }
            }
#pragma unroll
            for (int u = 0; u < 2; ++u) {
#pragma unroll
                for (int l = 0; l < V; ++l) {
                    sdy[l] += (double)g[u][l];
                    sdx[l] += (double)g[u][l] * ((double)v[u][l] - mu[l]);
                }
            }
        }
    }
#pragma unroll
    for (int l = 0; l < V; ++l) {
        s_dy[ty][tx * V + l] = sdy[l];
        s_dx[ty][tx * V + l] = sdx[l];
    }
    __syncthreads();
    if (ty == 0 && c0 < C) {
        for (int l = 0; l < V; ++l) {
            double a = sdy[l], b = sdx[l];
            for (int u = 1; u < GPUNET_NC_TY; ++u) {
                a += s_dy[u][tx * V + l];
                b += s_dx[u][tx * V + l];
            }
            const long long slot = (long long)blockIdx.y * C + c0 + l;
            psdy[slot] = a;
            psdx[slot] = b;
        }
    }
}

// Element-wise (N, C), C % V == 0, aligned: thread (column group, row group) keeps its V channels'
// coefficients in registers and walks rows r = blockIdx.y*blockDim.y + threadIdx.y, step gridDim.y*blockDim.y.
template <typename T>
__device__ void normalize_nc_vec(const T* __restrict__ x, T* __restrict__ y, const double* __restrict__ mean,
                                 const double* __restrict__ a, const T* __restrict__ bias, int relu, long long N,
                                 int C) {
    const int V = Vec<T>::n;
    const long long c0 = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (c0 >= C) return;
    double mu[4];
    T sc[4], b[4];
#pragma unroll
    for (int l = 0; l < V; ++l) {
        mu[l] = mean[c0 + l];
        sc[l] = (T)a[c0 + l];
        b[l] = bias[c0 + l];
    }
    for (long long r = (long long)blockIdx.y * blockDim.y + threadIdx.y; r < N; r += (long long)gridDim.y * blockDim.y) {
        T v[4];
        Vec<T>::load(x + r * C + c0, v);
#pragma unroll
        for (int l = 0; l < V; ++l) {
            v[l] = (T)((double)v[l] - mu[l]) * sc[l] + b[l];
            if (relu) v[l] = relu_out(v[l]);
        }
        Vec<T>::store(y + r * C + c0, v);
    }
}

template <typename T>
__device__ void dx_nc_vec(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ mask,
                          T* __restrict__ dx, const double* __restrict__ mean, const double* __restrict__ a,
                          const double* __restrict__ k, const double* __restrict__ m, int masked, long long N,
                          int C) {
    const int V = Vec<T>::n;
    const long long c0 = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (c0 >= C) return;
    double mu[4];
    T ac[4], kc[4], mc[4];
#pragma unroll
    for (int l = 0; l < V; ++l) {
        mu[l] = mean[c0 + l];
        ac[l] = (T)a[c0 + l];
        kc[l] = (T)k[c0 + l];
        mc[l] = (T)m[c0 + l];
    }
    for (long long r = (long long)blockIdx.y * blockDim.y + threadIdx.y; r < N; r += (long long)gridDim.y * blockDim.y) {
        T g[4], v[4];
        Vec<T>::load(dy + r * C + c0, g);
        Vec<T>::load(x + r * C + c0, v);
        if (masked) {
            T y[4];
            Vec<T>::load(mask + r * C + c0, y);
#pragma unroll
            for (int l = 0; l < V; ++l) g[l] = relu_grad(g[l], y[l]);
        }
#pragma unroll
        for (int l = 0; l < V; ++l) g[l] = ac[l] * g[l] - (kc[l] * (T)((double)v[l] - mu[l]) + mc[l]);
        Vec<T>::store(dx + r * C + c0, g);
    }
}

// Element-wise (N, C, S), S % V == 0, aligned: block per plane p = (n, c) (grid-stride), the
// channel's coefficients read once, threads walk the plane in 16-byte vectors.
template <typename T>
__device__ void normalize_planes(const T* __restrict__ x, T* __restrict__ y, const double* __restrict__ mean,
                                 const double* __restrict__ a, const T* __restrict__ bias, int relu, long long P,
                                 int C, long long S) {
    const int V = Vec<T>::n;
    const long long nv = S / V;
    for (long long p = blockIdx.x; p < P; p += gridDim.x) {
        const int c = (int)(p % C);
        const double mu = mean[c];
        const T sc = (T)a[c], b = bias[c];
        const T* xp = x + p * S;
        T* yp = y + p * S;
        for (long long q = threadIdx.x; q < nv; q += blockDim.x) {
            T v[4];
            Vec<T>::load(xp + q * V, v);
#pragma unroll
            for (int l = 0; l < V; ++l) {
                v[l] = (T)((double)v[l] - mu) * sc + b;
                if (relu) v[l] = relu_out(v[l]);
            }
            Vec<T>::store(yp + q * V, v);
        }
    }
}

template <typename T>
__device__ void dx_planes(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ mask,
                          T* __restrict__ dx, const double* __restrict__ mean, const double* __restrict__ a,
                          const double* __restrict__ k, const double* __restrict__ m, int masked, long long P, int C,
                          long long S) {
    const int V = Vec<T>::n;
    const long long nv = S / V;
    for (long long p = blockIdx.x; p < P; p += gridDim.x) {
        const int c = (int)(p % C);
        const double mu = mean[c];
        const T ac = (T)a[c], kc = (T)k[c], mc = (T)m[c];
        const long long off = p * S;
        for (long long q = threadIdx.x; q < nv; q += blockDim.x) {
            T g[4], v[4];
            Vec<T>::load(dy + off + q * V, g);
            Vec<T>::load(x + off + q * V, v);
            if (masked) {
                T y[4];
                Vec<T>::load(mask + off + q * V, y);
#pragma unroll
                for (int l = 0; l < V; ++l) g[l] = relu_grad(g[l], y[l]);
            }
#pragma unroll
            for (int l = 0; l < V; ++l) g[l] = ac * g[l] - (kc * (T)((double)v[l] - mu) + mc);
            Vec<T>::store(dx + off + q * V, g);
        }
    }
}

// ------------------------------------------------------------------------------ entry points
#define GPUNET_BN_ENTRIES(T, SUF)                                                                                      \
    extern "C" __global__ void bn_stats_nc_vec_##SUF(const T* x, long long N, int C, long long rows_per_chunk,         \
                                                     double* pn, double* pmean, double* pm2) {                         \
        stats_nc<T, Vec<T>::n>(x, N, C, rows_per_chunk, pn, pmean, pm2);                                               \
    }                                                                                                                  \
    extern "C" __global__ void bn_bwd_sums_nc_vec_##SUF(const T* dy, const T* x, const T* mask, const double* mean,    \
                                                        int masked, long long N, int C, long long rows_per_chunk,      \
                                                        double* psdy, double* psdx) {                                  \
        bwd_sums_nc<T, Vec<T>::n>(dy, x, mask, mean, masked, N, C, rows_per_chunk, psdy, psdx);                        \
    }                                                                                                                  \
    extern "C" __global__ void bn_normalize_nc_vec_##SUF(const T* x, T* y, const double* mean, const double* a,        \
                                                         const T* bias, int relu, long long N, int C) {                \
        normalize_nc_vec<T>(x, y, mean, a, bias, relu, N, C);                                                          \
    }                                                                                                                  \
    extern "C" __global__ void bn_dx_nc_vec_##SUF(const T* dy, const T* x, const T* mask, T* dx, const double* mean,   \
                                                  const double* a, const double* k, const double* m, int masked,       \
                                                  long long N, int C) {                                                \
        dx_nc_vec<T>(dy, x, mask, dx, mean, a, k, m, masked, N, C);                                                    \
    }                                                                                                                  \
    extern "C" __global__ void bn_normalize_planes_##SUF(const T* x, T* y, const double* mean, const double* a,        \
                                                         const T* bias, int relu, long long P, int C, long long S) {   \
        normalize_planes<T>(x, y, mean, a, bias, relu, P, C, S);                                                       \
    }                                                                                                                  \
    extern "C" __global__ void bn_dx_planes_##SUF(const T* dy, const T* x, const T* mask, T* dx, const double* mean,   \
                                                  const double* a, const double* k, const double* m, int masked,       \
                                                  long long P, int C, long long S) {                                   \
        dx_planes<T>(dy, x, mask, dx, mean, a, k, m, masked, P, C, S);                                                 \
    }                                                                                                                  \
    extern "C" __global__ void bn_stats_nc_##SUF(const T* x, long long N, int C, long long rows_per_chunk,             \
                                                 double* pn, double* pmean, double* pm2) {                             \
        stats_nc<T, 1>(x, N, C, rows_per_chunk, pn, pmean, pm2);                                                       \
    }                                                                                                                  \
    extern "C" __global__ void bn_stats_ncs_##SUF(const T* x, long long N, int C, long long S,                         \
                                                  long long planes_per_chunk, int vec, double* pn,                     \
                                                  double* pmean, double* pm2) {                                        \
        stats_ncs<T>(x, N, C, S, planes_per_chunk, vec, pn, pmean, pm2);                                               \
    }                                                                                                                  \
    extern "C" __global__ void bn_finalize_stats_##SUF(const double* pn, const double* pmean, const double* pm2,       \
                                                       int chunks, int C, const T* weight, T* running_mean,            \
                                                       T* running_var, double* save_mean, double* save_invstd,         \
                                                       double* a, double eps, double momentum, double unbias,          \
                                                       int update) {                                                   \
        finalize_stats<T>(pn, pmean, pm2, chunks, C, weight, running_mean, running_var, save_mean, save_invstd,        \
                          a, eps, momentum, unbias, update);                                                           \
    }                                                                                                                  \
    extern "C" __global__ void bn_eval_coef_##SUF(const T* weight, const T* running_mean, const T* running_var,        \
                                                  double eps, int C, double* mean, double* a) {                        \
        eval_coef<T>(weight, running_mean, running_var, eps, C, mean, a);                                              \
    }                                                                                                                  \
    extern "C" __global__ void bn_bwd_sums_nc_##SUF(const T* dy, const T* x, const T* mask, const double* mean,        \
                                                    int masked, long long N, int C, long long rows_per_chunk,          \
                                                    double* psdy, double* psdx) {                                      \
        bwd_sums_nc<T, 1>(dy, x, mask, mean, masked, N, C, rows_per_chunk, psdy, psdx);                                \
    }                                                                                                                  \
    extern "C" __global__ void bn_bwd_sums_ncs_##SUF(const T* dy, const T* x, const T* mask, const double* mean,       \
                                                     int masked, long long N, int C, long long S,                      \
                                                     long long planes_per_chunk, int vec, double* psdy,                \
                                                     double* psdx) {                                                   \
        bwd_sums_ncs<T>(dy, x, mask, mean, masked, N, C, S, planes_per_chunk, vec, psdy, psdx);                        \
    }                                                                                                                  \
    extern "C" __global__ void bn_finalize_bwd_##SUF(const double* psdy, const double* psdx, int chunks, int C,        \
                                                     const T* weight, const double* save_invstd, T* dweight,           \
                                                     T* dbias, double* a, double* k, double* m, double cnt,            \
                                                     int batch_stats) {                                                \
        finalize_bwd<T>(psdy, psdx, chunks, C, weight, save_invstd, dweight, dbias, a, k, m, cnt, batch_stats);        \
    }                                                                                                                  \
    extern "C" __global__ void bn_normalize_##SUF##_i32(const T* x, T* y, const double* mean, const double* a,         \
                                                        const T* bias, int relu, unsigned int total,                   \
                                                        unsigned int C, unsigned int S, int vec) {                     \
        normalize<T, unsigned int>(x, y, mean, a, bias, relu, total, C, S, vec);                                       \
    }                                                                                                                  \
    extern "C" __global__ void bn_normalize_##SUF##_i64(const T* x, T* y, const double* mean, const double* a,         \
                                                        const T* bias, int relu, unsigned long long total,             \
                                                        unsigned long long C, unsigned long long S, int vec) {         \
        normalize<T, unsigned long long>(x, y, mean, a, bias, relu, total, C, S, vec);                                 \
    }                                                                                                                  \
    extern "C" __global__ void bn_dx_##SUF##_i32(const T* dy, const T* x, const T* mask, T* dx, const double* mean,    \
                                                 const double* a, const double* k, const double* m, int masked,        \
                                                 unsigned int total, unsigned int C, unsigned int S, int vec) {        \
        grad_input<T, unsigned int>(dy, x, mask, dx, mean, a, k, m, masked, total, C, S, vec);                         \
    }                                                                                                                  \
    extern "C" __global__ void bn_dx_##SUF##_i64(const T* dy, const T* x, const T* mask, T* dx, const double* mean,    \
                                                 const double* a, const double* k, const double* m, int masked,        \
                                                 unsigned long long total, unsigned long long C,                       \
                                                 unsigned long long S, int vec) {                                      \
        grad_input<T, unsigned long long>(dy, x, mask, dx, mean, a, k, m, masked, total, C, S, vec);                   \
    }

GPUNET_BN_ENTRIES(float, f32)
GPUNET_BN_ENTRIES(double, f64)
