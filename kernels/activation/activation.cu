// Element-wise activations (the formulas of reference.py): one thread per element in a
// grid-stride loop, arithmetic in T. max(x, 0) keeps a NaN and maps -0 to +0, as numpy.maximum.

template <typename T>
__device__ __forceinline__ T relu_of(T v) { return v <= T(0) ? T(0) : v; }
__device__ __forceinline__ float tanh_of(float v) { return tanhf(v); }
__device__ __forceinline__ double tanh_of(double v) { return tanh(v); }
__device__ __forceinline__ float exp_of(float v) { return expf(v); }
__device__ __forceinline__ double exp_of(double v) { return exp(v); }

template <typename T>
__device__ void relu_impl(const T* __restrict__ x, T* __restrict__ y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        y[i] = relu_of(x[i]);
}

template <typename T>
__device__ void add_relu_impl(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        y[i] = relu_of(a[i] + b[i]);
}

template <typename T>
__device__ void relu_backward_impl(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        dx[i] = dy[i] * (y[i] > T(0) ? T(1) : T(0));
}

template <typename T>
__device__ void leaky_impl(const T* __restrict__ x, T* __restrict__ y, long long n, T a) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        const T v = x[i];
        const T hi = v <= T(0) ? T(0) : v, lo = v >= T(0) ? T(0) : v;
        y[i] = hi + a * lo;
    }
}

template <typename T>
__device__ void leaky_backward_impl(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx, long long n,
                                    T pos, T a) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        dx[i] = dy[i] * (y[i] > T(0) ? pos : a);
}

template <typename T>
__device__ void tanh_impl(const T* __restrict__ x, T* __restrict__ y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        y[i] = tanh_of(x[i]);
}

template <typename T>
__device__ void tanh_backward_impl(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        const T v = y[i];
        dx[i] = dy[i] * (T(1) - v * v);
    }
}

template <typename T>
__device__ void sigmoid_impl(const T* __restrict__ x, T* __restrict__ y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        const T v = x[i];
        const T e = exp_of(v < T(0) ? v : -v);  // exp(-|v|)
        y[i] = v >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
    }
}

template <typename T>
__device__ void sigmoid_backward_impl(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        const T v = y[i];
        dx[i] = dy[i] * v * (T(1) - v);
    }
}

#define FORWARD(name, T, sfx) \
    __global__ void name##_##sfx(const T* x, T* y, long long n) { name##_impl<T>(x, y, n); }
#define BACKWARD(name, T, sfx) \
    __global__ void name##_##sfx(const T* dy, const T* y, T* dx, long long n) { name##_impl<T>(dy, y, dx, n); }

extern "C" {
FORWARD(relu, float, f32)
FORWARD(relu, double, f64)
BACKWARD(relu_backward, float, f32)
BACKWARD(relu_backward, double, f64)
__global__ void add_relu_f32(const float* a, const float* b, float* y, long long n) { add_relu_impl<float>(a, b, y, n); }
__global__ void add_relu_f64(const double* a, const double* b, double* y, long long n) {
    add_relu_impl<double>(a, b, y, n);
}
FORWARD(tanh, float, f32)
FORWARD(tanh, double, f64)
BACKWARD(tanh_backward, float, f32)
BACKWARD(tanh_backward, double, f64)
FORWARD(sigmoid, float, f32)
FORWARD(sigmoid, double, f64)
BACKWARD(sigmoid_backward, float, f32)
BACKWARD(sigmoid_backward, double, f64)
__global__ void leaky_f32(const float* x, float* y, long long n, float a) { leaky_impl<float>(x, y, n, a); }
__global__ void leaky_f64(const double* x, double* y, long long n, double a) { leaky_impl<double>(x, y, n, a); }
__global__ void leaky_backward_f32(const float* dy, const float* y, float* dx, long long n, float pos, float a) {
    leaky_backward_impl<float>(dy, y, dx, n, pos, a);
}
__global__ void leaky_backward_f64(const double* dy, const double* y, double* dx, long long n, double pos, double a) {
    leaky_backward_impl<double>(dy, y, dx, n, pos, a);
}
}
