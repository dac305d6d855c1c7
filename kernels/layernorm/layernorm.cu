// Layer normalization, CUDA C tier (loaded by cupy_tier.py through cupy.RawModule). Formulas as in
// reference.py; inputs viewed as (M, D) rows, statistics per row, the affine per column.
//
//   row kernels (forward, dx): blockDim.x threads share one row, blockDim.y rows per block
//     (32 x 8 for short rows, 256 x 1 for long ones: chosen by the host); each thread walks its
//     row's columns j = tx, tx + blockDim.x, ... in double, and the row's threads add their
//     partials by a tree in shared memory. Forward: the mean, then sum (x - mean)^2 (two passes,
//     stable for any mean), then y = w * ((x - mean) * invstd) + b. Backward: sum g and sum g*xhat
//     (g = dy * w), then dx = (invstd / D) * (D * g - sum g - xhat * sum g*xhat);
//   column reduction (dw = sum dy*xhat, db = sum dy over the rows): block (256 columns, chunk of
//     rows) writes its own slot [chunk * D + j] of the partials (no atomics); a finalize kernel
//     adds the chunks of each column in a fixed order.
// Every loop is bounds-checked; a block's threads run the same number of row iterations, so the
// barriers are reached by all of them. No host synchronization.

#define GPUNET_LN_THREADS 256  // threads per block of every kernel (blockDim.x * blockDim.y)

// The sum over the blockDim.x threads of one row (tx, ty) of every such thread's v.
__device__ __forceinline__ double row_sum(double* sh, double v) {
    const int tx = threadIdx.x, base = threadIdx.y * blockDim.x;
    sh[base + tx] = v;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (tx < half) sh[base + tx] += sh[base + tx + half];
        __syncthreads();
    }
    const double total = sh[base];
    __syncthreads();
    return total;
}

template <typename T>
__device__ void ln_forward(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                           T* __restrict__ y, double* __restrict__ save_mean, double* __restrict__ save_invstd,
                           long long M, long long D, double eps) {
    __shared__ double sh[GPUNET_LN_THREADS];
    const int tx = threadIdx.x;
    for (long long r0 = (long long)blockIdx.x * blockDim.y; r0 < M; r0 += (long long)gridDim.x * blockDim.y) {
        const long long r = r0 + threadIdx.y;
        const bool live = r < M;
        const T* xr = x + (live ? r : 0) * D;
        double s = 0.0;
        if (live)
            for (long long j = tx; j < D; j += blockDim.x) s += (double)xr[j];
        const double mean = row_sum(sh, s) / (double)D;
        s = 0.0;
        if (live)
            for (long long j = tx; j < D; j += blockDim.x) {
                const double d = (double)xr[j] - mean;
                s += d * d;
            }
        const double inv = 1.0 / sqrt(row_sum(sh, s) / (double)D + eps);
        if (!live) continue;
        T* yr = y + r * D;
        for (long long j = tx; j < D; j += blockDim.x)
            yr[j] = (T)((double)w[j] * (((double)xr[j] - mean) * inv) + (double)b[j]);
        if (tx == 0) {
            save_mean[r] = mean;
            save_invstd[r] = inv;
        }
    }
}

template <typename T>
__device__ void ln_dx(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ w,
                      const double* __restrict__ save_mean, const double* __restrict__ save_invstd,
                      T* __restrict__ dx, long long M, long long D) {
    __shared__ double sh[GPUNET_LN_THREADS];
    const int tx = threadIdx.x;
    for (long long r0 = (long long)blockIdx.x * blockDim.y; r0 < M; r0 += (long long)gridDim.x * blockDim.y) {
        const long long r = r0 + threadIdx.y;
        const bool live = r < M;
        const long long off = (live ? r : 0) * D;
        const double mean = live ? save_mean[r] : 0.0, inv = live ? save_invstd[r] : 0.0;
        double sg = 0.0, sgx = 0.0;
        if (live)
            for (long long j = tx; j < D; j += blockDim.x) {
                const double g = (double)dy[off + j] * (double)w[j];
                sg += g;
                sgx += g * (((double)x[off + j] - mean) * inv);
            }
        sg = row_sum(sh, sg);
        sgx = row_sum(sh, sgx);
        if (!live) continue;
        const double c = inv / (double)D;
        for (long long j = tx; j < D; j += blockDim.x) {
            const double g = (double)dy[off + j] * (double)w[j];
            dx[off + j] = (T)(c * ((double)D * g - sg - (((double)x[off + j] - mean) * inv) * sgx));
        }
    }
}

template <typename T>
__device__ void ln_dwdb_partial(const T* __restrict__ dy, const T* __restrict__ x,
                                const double* __restrict__ save_mean, const double* __restrict__ save_invstd,
                                long long M, long long D, long long rows_per_chunk, double* __restrict__ pdw,
                                double* __restrict__ pdb) {
    const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= D) return;
    const long long r0 = (long long)blockIdx.y * rows_per_chunk;
    const long long r1 = r0 + rows_per_chunk < M ? r0 + rows_per_chunk : M;
    double sw = 0.0, sb = 0.0;
    for (long long r = r0; r < r1; ++r) {
        const double g = (double)dy[r * D + j];
        sw += g * (((double)x[r * D + j] - save_mean[r]) * save_invstd[r]);
        sb += g;
    }
    pdw[blockIdx.y * D + j] = sw;
    pdb[blockIdx.y * D + j] = sb;
}

template <typename T>
__device__ void ln_dwdb_finalize(const double* __restrict__ pdw, const double* __restrict__ pdb, int chunks,
                                 long long D, T* __restrict__ dweight, T* __restrict__ dbias) {
    for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < D; j += (long long)gridDim.x * blockDim.x) {
        double sw = 0.0, sb = 0.0;
        for (int c = 0; c < chunks; ++c) {
            sw += pdw[c * D + j];
            sb += pdb[c * D + j];
        }
        dweight[j] = (T)sw;
        dbias[j] = (T)sb;
    }
}

#define GPUNET_LN_ENTRIES(T, SUF)                                                                                  \
    extern "C" __global__ void ln_forward_##SUF(const T* x, const T* w, const T* b, T* y, double* save_mean,       \
                                                double* save_invstd, long long M, long long D, double eps) {       \
        ln_forward<T>(x, w, b, y, save_mean, save_invstd, M, D, eps);                                              \
    }                                                                                                              \
    extern "C" __global__ void ln_dx_##SUF(const T* dy, const T* x, const T* w, const double* save_mean,           \
                                           const double* save_invstd, T* dx, long long M, long long D) {           \
        ln_dx<T>(dy, x, w, save_mean, save_invstd, dx, M, D);                                                      \
    }                                                                                                              \
    extern "C" __global__ void ln_dwdb_partial_##SUF(const T* dy, const T* x, const double* save_mean,             \
                                                     const double* save_invstd, long long M, long long D,          \
                                                     long long rows_per_chunk, double* pdw, double* pdb) {         \
        ln_dwdb_partial<T>(dy, x, save_mean, save_invstd, M, D, rows_per_chunk, pdw, pdb);                         \
    }                                                                                                              \
    extern "C" __global__ void ln_dwdb_finalize_##SUF(const double* pdw, const double* pdb, int chunks,            \
                                                      long long D, T* dweight, T* dbias) {                         \
        ln_dwdb_finalize<T>(pdw, pdb, chunks, D, dweight, dbias);                                                  \
    }

GPUNET_LN_ENTRIES(float, f32)
GPUNET_LN_ENTRIES(double, f64)
