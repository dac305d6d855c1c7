"""Helpers shared by the kernels (the Philox counter RNG in CUDA C and in Numba-compilable Python)."""
