"""Layer-normalization kernels: reference (NumPy), numba_cpu, numba_cuda and CUDA C (layernorm.cu)."""
