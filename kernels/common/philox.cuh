// Philox4x32-10 counter-based random numbers for gpunet's CUDA C kernels (twin of philox.py).
//
// Ten rounds of  (hi0, lo0) = M0*c0, (hi1, lo1) = M1*c2,
//                (c0, c1, c2, c3) = (hi1^c1^k0, lo1, hi0^c3^k1, lo0),  k += (W0, W1),
// M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85 (Salmon et al., SC'11).
//
// Dropout stream, identical in every tier: key = (seed mod 2^32, layer_id mod 2^32),
// counter = (b mod 2^32, b div 2^32, step mod 2^32, step div 2^32) with b = i / 4, and element i
// takes word i % 4; it is kept iff word >= threshold = min(round(p * 2^32), 2^32 - 1).
//
// Compiles as CUDA (nvcc, NVRTC) and as plain C++ (for a host-side known-answer test).
#ifndef GPUNET_PHILOX_CUH
#define GPUNET_PHILOX_CUH

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define GPUNET_HD __host__ __device__ __forceinline__
#else
#define GPUNET_HD static inline
#endif

struct gpunet_u4 {
    unsigned int x, y, z, w;
};

GPUNET_HD unsigned int gpunet_mulhi32(unsigned int a, unsigned int b) {
#if defined(__CUDA_ARCH__)
    return __umulhi(a, b);
#else
    return (unsigned int)(((unsigned long long)a * (unsigned long long)b) >> 32);
#endif
}

// Philox4x32-10 of counter (c0, c1, c2, c3) under key (k0, k1).
GPUNET_HD gpunet_u4 gpunet_philox4x32_10(unsigned int c0, unsigned int c1, unsigned int c2,
                                          unsigned int c3, unsigned int k0, unsigned int k1) {
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int r = 0; r < 10; ++r) {
        const unsigned int hi0 = gpunet_mulhi32(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        const unsigned int hi1 = gpunet_mulhi32(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    gpunet_u4 out = {c0, c1, c2, c3};
    return out;
}

// The four words of dropout block b (elements 4b .. 4b+3) at counter words (c2, c3) = step.
GPUNET_HD gpunet_u4 gpunet_dropout_block(unsigned long long b, unsigned int c2, unsigned int c3,
                                         unsigned int k0, unsigned int k1) {
    return gpunet_philox4x32_10((unsigned int)(b & 0xFFFFFFFFull), (unsigned int)(b >> 32), c2, c3, k0, k1);
}

#endif  // GPUNET_PHILOX_CUH
