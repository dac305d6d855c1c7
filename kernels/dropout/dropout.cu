// Dropout, CUDA C tier (loaded by cupy_tier.py through cupy.RawModule). Same stream, mask
// layout and formulas as reference.py:
//   forward   y = x * m * scale,  m_i = [philox word(i) >= threshold],  mask bit i%8 of byte i/8
//   backward  dx = dy * m * scale
// One thread per mask byte (eight elements, two Philox blocks) in a grid-stride loop; 16-byte
// loads and stores when the caller says the pointers are 16-byte aligned (vec != 0), scalar
// code for the last, partial byte. No atomics: every thread owns its byte.
#include "../common/philox.cuh"
#include "../common/vec.cuh"

template <typename T>
__device__ void dropout_forward(const T* __restrict__ x, T* __restrict__ y, unsigned char* __restrict__ mask,
                                long long n, long long nbytes, unsigned int k0, unsigned int k1,
                                unsigned int c2, unsigned int c3, unsigned int threshold, T scale, int vec) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < nbytes; j += stride) {
        const long long base = 8 * j;
        const bool full = vec && base + 8 <= n;
        T v[8];
        if (full) load8(x + base, v);  // issued before the Philox rounds, which hide its latency
        const gpunet_u4 a = gpunet_dropout_block(2ull * j, c2, c3, k0, k1);
        const gpunet_u4 b = gpunet_dropout_block(2ull * j + 1ull, c2, c3, k0, k1);
        const unsigned int w[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
        unsigned int bits = 0;
        if (full) {
#pragma unroll
            for (int l = 0; l < 8; ++l) {
                const bool keep = w[l] >= threshold;
                bits |= (unsigned int)keep << l;
                v[l] = v[l] * (keep ? scale : T(0));
            }
            store8(y + base, v);
        } else {
            for (int l = 0; l < 8; ++l) {
                const long long i = base + l;
                if (i < n) {
                    const bool keep = w[l] >= threshold;
                    bits |= (unsigned int)keep << l;
                    y[i] = x[i] * (keep ? scale : T(0));
                }
            }
        }
        mask[j] = (unsigned char)bits;
    }
}

template <typename T>
__device__ void dropout_backward(const T* __restrict__ dy, const unsigned char* __restrict__ mask,
                                 T* __restrict__ dx, long long n, long long nbytes, T scale, int vec) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < nbytes; j += stride) {
        const unsigned int bits = mask[j];
        const long long base = 8 * j;
        if (vec && base + 8 <= n) {
            T v[8];
            load8(dy + base, v);
#pragma unroll
            for (int l = 0; l < 8; ++l) v[l] = v[l] * (((bits >> l) & 1u) ? scale : T(0));
            store8(dx + base, v);
        } else {
            for (int l = 0; l < 8; ++l) {
                const long long i = base + l;
                if (i < n) dx[i] = dy[i] * (((bits >> l) & 1u) ? scale : T(0));
            }
        }
    }
}

extern "C" {

__global__ void dropout_fwd_f32(const float* x, float* y, unsigned char* mask, long long n, long long nbytes,
                                unsigned int k0, unsigned int k1, unsigned int c2, unsigned int c3,
                                unsigned int threshold, float scale, int vec) {
    dropout_forward<float>(x, y, mask, n, nbytes, k0, k1, c2, c3, threshold, scale, vec);
}

__global__ void dropout_fwd_f64(const double* x, double* y, unsigned char* mask, long long n, long long nbytes,
                                unsigned int k0, unsigned int k1, unsigned int c2, unsigned int c3,
                                unsigned int threshold, double scale, int vec) {
    dropout_forward<double>(x, y, mask, n, nbytes, k0, k1, c2, c3, threshold, scale, vec);
}

__global__ void dropout_bwd_f32(const float* dy, const unsigned char* mask, float* dx, long long n,
                                long long nbytes, float scale, int vec) {
    dropout_backward<float>(dy, mask, dx, n, nbytes, scale, vec);
}

__global__ void dropout_bwd_f64(const double* dy, const unsigned char* mask, double* dx, long long n,
                                long long nbytes, double scale, int vec) {
    dropout_backward<double>(dy, mask, dx, n, nbytes, scale, vec);
}

// Philox4x32-10 of `count` (counter, key) rows: in[6i .. 6i+5] = c0 c1 c2 c3 k0 k1, out[4i .. 4i+3].
// For known-answer tests of the device code.
__global__ void philox4x32_10_kernel(const unsigned int* in, unsigned int* out, int count) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x) {
        const unsigned int* p = in + 6 * i;
        const gpunet_u4 r = gpunet_philox4x32_10(p[0], p[1], p[2], p[3], p[4], p[5]);
        out[4 * i] = r.x;
        out[4 * i + 1] = r.y;
        out[4 * i + 2] = r.z;
        out[4 * i + 3] = r.w;
    }
}

}  // extern "C"
