// Global L2 norm and non-finite flag of a flat array, and scaling by a norm read from memory.
//
// grad_stats_<t>: one launch. Each thread sums x^2 in double over a grid-stride loop with 16-byte
// loads (float4, or two double2) and a scalar tail, and ORs a non-finite flag; each block reduces
// in shared memory and writes one partial; the last block to finish (threadfence + atomic ticket,
// as in the CUDA threadFenceReduction sample) adds the partials in block order and writes
// stats[0] = sum x^2, stats[1] = flag, and with count != 0 advances stats[2] (applied steps) or
// stats[3] (skipped steps). Deterministic for a given grid. The ticket counter starts at 0 and the
// last block's atomicInc wraps it back to 0, so the workspace is reusable without a memset.
// Launch with NORM_THREADS threads per block and at most MAX_BLOCKS blocks; `vec` = 1 only when
// x is 16-byte aligned.
//
// scale_by_norm_<t>: x <- x * max_norm / sqrt(stats[0]) when that norm exceeds max_norm.

#ifndef NORM_THREADS
#define NORM_THREADS 256  // a power of two; the launch must use exactly this many threads per block
#endif
#define MAX_BLOCKS 2048

#include "../common/vec.cuh"

// Tree reduction over NORM_THREADS threads; the result lands in s_sum[0], s_bad[0].
__device__ __forceinline__ void block_reduce(double* s_sum, unsigned int* s_bad) {
    const int t = threadIdx.x;
    __syncthreads();
    for (int half = NORM_THREADS / 2; half > 0; half >>= 1) {
        if (t < half) {
            s_sum[t] += s_sum[t + half];
            s_bad[t] |= s_bad[t + half];
        }
        __syncthreads();
    }
}

template <typename T>
__device__ void grad_stats_impl(const T* __restrict__ x, long long n, int vec, double* __restrict__ stats,
                                int count, double* __restrict__ part_sum, unsigned int* __restrict__ part_bad,
                                unsigned int* __restrict__ ticket) {
    __shared__ double s_sum[NORM_THREADS];
    __shared__ unsigned int s_bad[NORM_THREADS];
    __shared__ bool s_last;
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long n4 = vec ? n / 4 : 0;
    double acc = 0.0;
    unsigned int bad = 0;
    for (long long k = tid; k < n4; k += stride) {
        T v[4];
        load4(x, 4 * k, v);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const double d = (double)v[j];
            acc += d * d;
            bad |= !isfinite(d);
        }
    }
    for (long long i = 4 * n4 + tid; i < n; i += stride) {
        const double d = (double)x[i];
        acc += d * d;
        bad |= !isfinite(d);
    }
    s_sum[threadIdx.x] = acc;
    s_bad[threadIdx.x] = bad;
    block_reduce(s_sum, s_bad);
    if (threadIdx.x == 0) {
        part_sum[blockIdx.x] = s_sum[0];
        part_bad[blockIdx.x] = s_bad[0];
        __threadfence();  // the partial is visible device-wide before the ticket is taken
        const unsigned int prev = atomicInc(ticket, gridDim.x - 1);  // wraps to 0 after the last
        s_last = (prev == gridDim.x - 1);
    }
    __syncthreads();
    if (!s_last) return;  // block-uniform
    __threadfence();      // order the reads of the partials after the ticket
    acc = 0.0;
    bad = 0;
    for (int k = threadIdx.x; k < (int)gridDim.x; k += NORM_THREADS) {
        acc += __ldcg(part_sum + k);  // L2 read: never a stale L1 line
        bad |= __ldcg(part_bad + k);
    }
    s_sum[threadIdx.x] = acc;
    s_bad[threadIdx.x] = bad;
    block_reduce(s_sum, s_bad);
    if (threadIdx.x == 0) {
        stats[0] = s_sum[0];
        stats[1] = s_bad[0] ? 1.0 : 0.0;
        if (count) {
            if (s_bad[0]) stats[3] += 1.0;
            else stats[2] += 1.0;
        }
    }
}

template <typename T>
__device__ void scale_by_norm_impl(T* __restrict__ x, long long n, int vec, const double* __restrict__ stats,
                                   double max_norm) {
    const double norm = sqrt(stats[0]);
    if (!(norm > max_norm)) return;  // also for a NaN norm
    const T s = (T)(max_norm / norm);
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long n4 = vec ? n / 4 : 0;
    for (long long k = tid; k < n4; k += stride) {
        T v[4];
        load4(x, 4 * k, v);
#pragma unroll
        for (int j = 0; j < 4; ++j) v[j] *= s;
        store4(x, 4 * k, v);
    }
    for (long long i = 4 * n4 + tid; i < n; i += stride) x[i] *= s;
}

extern "C" {

__global__ void __launch_bounds__(NORM_THREADS)
grad_stats_f32(const float* x, long long n, int vec, double* stats, int count, double* part_sum,
               unsigned int* part_bad, unsigned int* ticket) {
    grad_stats_impl<float>(x, n, vec, stats, count, part_sum, part_bad, ticket);
}

__global__ void __launch_bounds__(NORM_THREADS)
grad_stats_f64(const double* x, long long n, int vec, double* stats, int count, double* part_sum,
               unsigned int* part_bad, unsigned int* ticket) {
    grad_stats_impl<double>(x, n, vec, stats, count, part_sum, part_bad, ticket);
}

__global__ void scale_by_norm_f32(float* x, long long n, int vec, const double* stats, double max_norm) {
    scale_by_norm_impl<float>(x, n, vec, stats, max_norm);
}

__global__ void scale_by_norm_f64(double* x, long long n, int vec, const double* stats, double max_norm) {
    scale_by_norm_impl<double>(x, n, vec, stats, max_norm);
}

}  // extern "C"
