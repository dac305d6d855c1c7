// im2col / col2im and the (C, N*P) <-> NCHW layout moves of a convolution, CUDA C.
// Same formulas as reference.py. One thread per output element in grid-stride loops; col2im
// gathers (each dx element sums the columns that read it) so it needs no atomics and is
// deterministic. These are gathers with rows of OH*OW elements that are not 16-byte aligned in
// general, so they use coalesced scalar loads rather than float4.
// Entry points: <name>_f32 and <name>_f64, extern "C" so that CuPy can cache the module on disk.

template <typename T>
__device__ __forceinline__ void im2col_impl(const T* __restrict__ x, T* __restrict__ cols,
                                            int n, int c, int h, int w, int kh, int kw, int sh, int sw,
                                            int ph, int pw, int oh, int ow) {
    const long long p = (long long)oh * ow, m = n * p, total = (long long)c * kh * kw * m;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const long long col = idx % m, row = idx / m;
        const int j = (int)(row % kw), i = (int)((row / kw) % kh), ch = (int)(row / ((long long)kw * kh));
        const int q = (int)(col % ow), r = (int)((col / ow) % oh), b = (int)(col / p);
        const int ih = r * sh + i - ph, iw = q * sw + j - pw;
        cols[idx] = (ih >= 0 && ih < h && iw >= 0 && iw < w)
                        ? x[(((long long)b * c + ch) * h + ih) * w + iw] : T(0);
    }
}

template <typename T>
__device__ __forceinline__ void col2im_impl(const T* __restrict__ cols, T* __restrict__ dx,
                                            int n, int c, int h, int w, int kh, int kw, int sh, int sw,
                                            int ph, int pw, int oh, int ow) {
    const long long p = (long long)oh * ow, m = n * p, total = (long long)n * c * h * w;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const int z = (int)(idx % w), y = (int)((idx / w) % h);
        const int ch = (int)((idx / ((long long)w * h)) % c), b = (int)(idx / ((long long)w * h * c));
        T acc = T(0);
        for (int i = 0; i < kh; ++i) {
            const int yy = y + ph - i;
            if (yy < 0 || yy % sh != 0) continue;
            const int r = yy / sh;
            if (r >= oh) continue;
            for (int j = 0; j < kw; ++j) {
                const int zz = z + pw - j;
                if (zz < 0 || zz % sw != 0) continue;
                const int q = zz / sw;
                if (q >= ow) continue;
                acc += cols[((long long)(ch * kh + i) * kw + j) * m + b * p + (long long)r * ow + q];
            }
        }
        dx[idx] = acc;
    }
}

// y[b, ch, k] = yc[ch, b*p + k] + bias[ch]; with relu, max(that, 0) (NaN kept, as numpy.maximum)
template <typename T>
__device__ __forceinline__ void cnhw_to_nchw_impl(const T* __restrict__ yc, const T* __restrict__ bias,
                                                  T* __restrict__ y, int n, int c, int p, int relu) {
    const long long total = (long long)n * c * p, m = (long long)n * p;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const int k = (int)(idx % p), ch = (int)((idx / p) % c), b = (int)(idx / ((long long)p * c));
        const T v = yc[ch * m + (long long)b * p + k] + bias[ch];
        y[idx] = (relu && v <= T(0)) ? T(0) : v;
    }
}

// dyc[ch, b*p + k] = dy[b, ch, k]; with MASKED, times [mask[b, ch, k] > 0] (a fused ReLU's backward)
template <typename T, bool MASKED>
__device__ __forceinline__ void nchw_to_cnhw_impl(const T* __restrict__ dy, const T* __restrict__ mask,
                                                  T* __restrict__ dyc, int n, int c, int p) {
    const long long m = (long long)n * p, total = (long long)c * m;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const long long col = idx % m;
        const int ch = (int)(idx / m), b = (int)(col / p), k = (int)(col % p);
        const long long src = ((long long)b * c + ch) * p + k;
        dyc[idx] = MASKED ? dy[src] * (mask[src] > T(0) ? T(1) : T(0)) : dy[src];
    }
}

// dbias[ch] = sum of the row dyc[ch, :] (n*p values); one block (blockDim.x = 256) per channel,
// summed in double for either dtype (the terms have both signs; float partial sums lose digits).
template <typename T>
__device__ __forceinline__ void channel_sum_impl(const T* __restrict__ dyc, T* __restrict__ dbias,
                                                 int n, int c, int p) {
    __shared__ double part[256];
    const int ch = blockIdx.x;
    const long long m = (long long)n * p;
    double acc = 0.0;
    for (long long t = threadIdx.x; t < m; t += blockDim.x) acc += dyc[ch * m + t];
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) dbias[ch] = (T)part[0];
}

#define GEOM int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int oh, int ow
#define GEOM_ARGS n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow

extern "C" {
__global__ void im2col_f32(const float* x, float* cols, GEOM) { im2col_impl<float>(x, cols, GEOM_ARGS); }
__global__ void im2col_f64(const double* x, double* cols, GEOM) { im2col_impl<double>(x, cols, GEOM_ARGS); }
__global__ void col2im_f32(const float* cols, float* dx, GEOM) { col2im_impl<float>(cols, dx, GEOM_ARGS); }
__global__ void col2im_f64(const double* cols, double* dx, GEOM) { col2im_impl<double>(cols, dx, GEOM_ARGS); }
__global__ void cnhw_to_nchw_f32(const float* yc, const float* bias, float* y, int n, int c, int p, int relu) {
    cnhw_to_nchw_impl<float>(yc, bias, y, n, c, p, relu);
}
__global__ void cnhw_to_nchw_f64(const double* yc, const double* bias, double* y, int n, int c, int p, int relu) {
    cnhw_to_nchw_impl<double>(yc, bias, y, n, c, p, relu);
}
__global__ void nchw_to_cnhw_f32(const float* dy, float* dyc, int n, int c, int p) {
    nchw_to_cnhw_impl<float, false>(dy, dy, dyc, n, c, p);
}
__global__ void nchw_to_cnhw_f64(const double* dy, double* dyc, int n, int c, int p) {
    nchw_to_cnhw_impl<double, false>(dy, dy, dyc, n, c, p);
}
__global__ void nchw_to_cnhw_relu_f32(const float* dy, const float* mask, float* dyc, int n, int c, int p) {
    nchw_to_cnhw_impl<float, true>(dy, mask, dyc, n, c, p);
}
__global__ void nchw_to_cnhw_relu_f64(const double* dy, const double* mask, double* dyc, int n, int c, int p) {
    nchw_to_cnhw_impl<double, true>(dy, mask, dyc, n, c, p);
}
__global__ void channel_sum_f32(const float* dyc, float* dbias, int n, int c, int p) {
    channel_sum_impl<float>(dyc, dbias, n, c, p);
}
__global__ void channel_sum_f64(const double* dyc, double* dbias, int n, int c, int p) {
    channel_sum_impl<double>(dyc, dbias, n, c, p);
}
}
