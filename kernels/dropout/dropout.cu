// Dropout, CUDA C tier (loaded by cupy_tier.py through cupy.RawModule). Same stream, mask
// layout and formulas as reference.py:
//   forward   y = x * m * scale,  m_i = [philox word(offset + i) >= threshold]
//   backward  dx = dy * m * scale
//   mask      bit i%8 of byte i/8 (i local, whatever the offset)
// One thread per mask byte j (local elements 8j .. 8j+7, global g = offset + 8j) in a grid-stride
// loop: Philox blocks g/4 and g/4 + 1, and g/4 + 2 when h = g%4 != 0 (lane l takes word h + l of
// them); 16-byte loads and stores when the caller says the pointers are 16-byte aligned
// (vec != 0), scalar code for the last, partial byte. No atomics: every thread owns its byte.
#include "../common/philox.cuh"
#include "../common/vec.cuh"

// Words s .. s+3 of (lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w), 0 <= s < 4, by selects
// (registers; an indexed array would live in local memory).
__device__ __forceinline__ gpunet_u4 dropout_window(gpunet_u4 lo, gpunet_u4 hi, unsigned int s) {
    gpunet_u4 r;
    r.x = s == 0 ? lo.x : s == 1 ? lo.y : s == 2 ? lo.z : lo.w;
    r.y = s == 0 ? lo.y : s == 1 ? lo.z : s == 2 ? lo.w : hi.x;
    r.z = s == 0 ? lo.z : s == 1 ? lo.w : s == 2 ? hi.x : hi.y;
    r.w = s == 0 ? lo.w : s == 1 ? hi.x : s == 2 ? hi.y : hi.z;
    return r;
}

template <typename T>
__device__ void dropout_forward(const T* __restrict__ x, T* __restrict__ y, unsigned char* __restrict__ mask,
                                long long n, long long nbytes, unsigned int k0, unsigned int k1,
                                unsigned int c2, unsigned int c3, long long offset, unsigned int threshold,
                                T scale, int vec) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < nbytes; j += stride) {
        const long long base = 8 * j;
        const bool full = vec && base + 8 <= n;
        T v[8];
        if (full) load8(x + base, v);  // issued before the Philox rounds, which hide its latency
        const unsigned long long g = (unsigned long long)(offset + base);
        const unsigned int h = (unsigned int)(g & 3ull);
        gpunet_u4 a = gpunet_dropout_block(g >> 2, c2, c3, k0, k1);
        gpunet_u4 b = gpunet_dropout_block((g >> 2) + 1ull, c2, c3, k0, k1);
        if (h) {  // the same h for every thread: no divergence
            const gpunet_u4 c = gpunet_dropout_block((g >> 2) + 2ull, c2, c3, k0, k1);
            a = dropout_window(a, b, h);
            b = dropout_window(b, c, h);
        }
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
                                long long offset, unsigned int threshold, float scale, int vec) {
    dropout_forward<float>(x, y, mask, n, nbytes, k0, k1, c2, c3, offset, threshold, scale, vec);
}

__global__ void dropout_fwd_f64(const double* x, double* y, unsigned char* mask, long long n, long long nbytes,
                                unsigned int k0, unsigned int k1, unsigned int c2, unsigned int c3,
                                long long offset, unsigned int threshold, double scale, int vec) {
    dropout_forward<double>(x, y, mask, n, nbytes, k0, k1, c2, c3, offset, threshold, scale, vec);
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
