// 16-byte loads and stores shared by the CUDA C kernels (pasted in place of its #include by
// kernels/common/cupy.py). The caller guarantees 16-byte alignment of every pointer it passes.
//   Vec<T>::load/store   one 16-byte vector: Vec<T>::n = 4 floats or 2 doubles
//   load4/store4         four elements at p + i: one float4, or two double2
//   load8/store8         eight elements at p: two float4, or four double2
#ifndef GPUNET_VEC_CUH
#define GPUNET_VEC_CUH

template <typename T> struct Vec;
template <> struct Vec<float> {
    static const int n = 4;
    __device__ static void load(const float* p, float v[4]) {
        const float4 a = *reinterpret_cast<const float4*>(p);
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    }
    __device__ static void store(float* p, const float v[4]) {
        *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    }
};
template <> struct Vec<double> {
    static const int n = 2;
    __device__ static void load(const double* p, double v[4]) {
        const double2 a = *reinterpret_cast<const double2*>(p);
        v[0] = a.x; v[1] = a.y;
    }
    __device__ static void store(double* p, const double v[4]) {
        *reinterpret_cast<double2*>(p) = make_double2(v[0], v[1]);
    }
};

template <typename T>
__device__ __forceinline__ void load4(const T* p, long long i, T v[4]) {
#pragma unroll
    for (int h = 0; h < 4; h += Vec<T>::n) Vec<T>::load(p + i + h, v + h);
}
template <typename T>
__device__ __forceinline__ void store4(T* p, long long i, const T v[4]) {
#pragma unroll
    for (int h = 0; h < 4; h += Vec<T>::n) Vec<T>::store(p + i + h, v + h);
}
template <typename T>
__device__ __forceinline__ void load8(const T* p, T v[8]) {
    load4(p, 0, v);
    load4(p, 4, v + 4);
}
template <typename T>
__device__ __forceinline__ void store8(T* p, const T v[8]) {
    store4(p, 0, v);
    store4(p, 4, v + 4);
}

#endif  // GPUNET_VEC_CUH
