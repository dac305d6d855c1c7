// EMA of the weights over a flat buffer: ema <- ema + (1 - d) * (w - ema), i.e. d*ema + (1-d)*w.
// Grid-stride loop, 16-byte loads and stores (float4, or two double2) when `vec` = 1 (both buffers
// 16-byte aligned), then a scalar tail. omd = 1 - d is computed on the host in double and rounded
// once to T; the arithmetic is in T (fp32 for a float32 arena).

__device__ __forceinline__ void load4(const float* p, long long i, float v[4]) {
    const float4 q = *reinterpret_cast<const float4*>(p + i);
    v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
}
__device__ __forceinline__ void load4(const double* p, long long i, double v[4]) {
    const double2 a = *reinterpret_cast<const double2*>(p + i);
    const double2 b = *reinterpret_cast<const double2*>(p + i + 2);
    v[0] = a.x; v[1] = a.y; v[2] = b.x; v[3] = b.y;
}
__device__ __forceinline__ void store4(float* p, long long i, const float v[4]) {
    *reinterpret_cast<float4*>(p + i) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void store4(double* p, long long i, const double v[4]) {
    *reinterpret_cast<double2*>(p + i) = make_double2(v[0], v[1]);
    *reinterpret_cast<double2*>(p + i + 2) = make_double2(v[2], v[3]);
}

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
