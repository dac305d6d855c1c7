"""Device code of gpunet: one folder per op with its four tiers (reference, numba_cpu, numba_cuda, CUDA C)."""
