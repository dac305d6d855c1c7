// EMA of the weights over a flat buffer: ema <- ema + (1 - d) * (w - ema), i.e. d*ema + (1-d)*w.
// Grid-stride loop, 16-byte loads and stores (float4, or two double2) when `vec` = 1 (both buffers
// 16-byte aligned), then a scalar tail. omd = 1 - d is computed on the host in double and rounded
// once to T; the arithmetic is in T (fp32 for a float32 arena).

#include "../common/vec.cuh"

template <typename T>
__device__ void ema_impl(T* __restrict__ ema, const T* __restrict__ w, long long n, int vec, double omd_d) {
    const T omd = (T)omd_d;
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long n4 = vec ? n / 4 : 0;
    for (long long k = tid; k < n4; k += stride) {
        T e[4], x[4];
        load4(ema, 4 * k, e);
        load4(w, 4 * k, x);
#pragma unroll
        for (int j = 0; j < 4; ++j) e[j] += omd * (x[j] - e[j]);
        store4(ema, 4 * k, e);
    }
    for (long long i = 4 * n4 + tid; i < n; i += stride) ema[i] += omd * (w[i] - ema[i]);
}

extern "C" {
__global__ void ema_update_f32(float* ema, const float* w, long long n, int vec, double omd) {
    ema_impl<float>(ema, w, n, vec, omd);
}
__global__ void ema_update_f64(double* ema, const double* w, long long n, int vec, double omd) {
    ema_impl<double>(ema, w, n, vec, omd);
}
}
