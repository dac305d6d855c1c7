"""Run gpunet's CUDA C kernels on the CPU, to test them (and the host code that launches them)
on machines without a GPU.

The .cu source is compiled with g++ against a small shim: every CUDA thread of a block is an OS
thread, ``__syncthreads()`` is a ``std::barrier``, ``__shared__`` arrays are statics (blocks run
one after another), and the vector types are plain structs. ``Emulator`` stands in for the
``CupyDevice`` of a ``cupy_tier`` module: ``kernel(name)(grid, block, args)`` launches with
CuPy's calling convention on NumPy arrays and checks every argument against the kernel's C
signature (a NumPy scalar of exactly the C type, an array of the pointed-to dtype), as CuPy
would silently pass a mismatched scalar. Each array argument is copied into a buffer with guard
bytes on both sides (same address modulo 16, so alignment decisions are unchanged); a write
outside the array fails the launch, and a read outside it returns NaN bytes.

This checks the logic of the kernels, not their speed, memory model or compiler.
"""
from __future__ import annotations

import ctypes
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

SHIM = r"""
#include <algorithm>
#include <barrier>
#include <cmath>
#include <thread>
#include <vector>
using std::max;
using std::min;
struct gpunet_dim3 { unsigned int x, y, z; };
static thread_local gpunet_dim3 threadIdx, blockIdx;
static gpunet_dim3 blockDim, gridDim;
static thread_local std::barrier<>* gpunet_barrier = nullptr;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
inline void __syncthreads() { gpunet_barrier->arrive_and_wait(); }
struct float4 { float x, y, z, w; };
struct double2 { double x, y; };
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline double2 make_double2(double a, double b) { return {a, b}; }
template <class F>
void gpunet_launch(unsigned gx, unsigned gy, unsigned bx, unsigned by, F body) {
    gridDim = {gx, gy, 1};
    blockDim = {bx, by, 1};
    for (unsigned iy = 0; iy < gy; ++iy)
        for (unsigned ix = 0; ix < gx; ++ix) {
            std::barrier<> bar((std::ptrdiff_t)(bx * by));
            std::vector<std::thread> threads;
            for (unsigned ty = 0; ty < by; ++ty)
                for (unsigned tx = 0; tx < bx; ++tx)
                    threads.emplace_back([&, tx, ty] {
                        threadIdx = {tx, ty, 0};
                        blockIdx = {ix, iy, 0};
                        gpunet_barrier = &bar;
                        body();
                    });
            for (auto& t : threads) t.join();
        }
}
"""

SCALARS = {
    "int": (ctypes.c_int, np.int32), "unsigned int": (ctypes.c_uint, np.uint32),
    "long long": (ctypes.c_longlong, np.int64), "unsigned long long": (ctypes.c_ulonglong, np.uint64),
    "float": (ctypes.c_float, np.float32), "double": (ctypes.c_double, np.float64),
}
POINTEES = {"float": np.float32, "double": np.float64, "unsigned char": np.uint8, "unsigned int": np.uint32,
            "long long": np.int64}
GUARD = 64


def available() -> bool:
    return shutil.which("g++") is not None


def _signatures(source: str) -> dict:
    """{kernel name: [C parameter types]} of every __global__ function, after preprocessing."""
    pre = subprocess.run(["g++", "-E", "-P", "-x", "c++", "-"], input=source, capture_output=True,
                         text=True, check=True).stdout
    sigs = {}
    for name, params in re.findall(r"__global__\s+void\s+(\w+)\s*\(([^)]*)\)", pre):
        types = []
        for p in params.split(","):
            p = " ".join(p.replace("*", " * ").split())
            types.append(re.sub(r"\s*\w+$", "", p).replace(" *", "*"))
        sigs[name] = types
    return sigs


def _build(source: str):
    sigs = _signatures(source)
    wrappers = []
    for name, types in sigs.items():
        args = ", ".join(f"*({t}*)a[{i}]" for i, t in enumerate(types))
        wrappers.append(f'extern "C" void emu_{name}(unsigned gx, unsigned gy, unsigned bx, unsigned by, void** a) '
                        f"{{ gpunet_launch(gx, gy, bx, by, [&] {{ {name}({args}); }}); }}")
    text = SHIM + "\n" + source + "\n" + "\n".join(wrappers) + "\n"
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    lib = Path(tempfile.gettempdir()) / f"gpunet-cuda-emu-{key}.so"
    if not lib.exists():
        src = lib.with_suffix(".cpp")
        src.write_text(text)
        tmp = lib.with_suffix(".tmp.so")
        subprocess.run(["g++", "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-w", str(src), "-o", str(tmp)],
                       check=True, capture_output=True, text=True)
        tmp.replace(lib)
    return ctypes.CDLL(str(lib)), sigs


class Emulator:
    """A stand-in for a cupy_tier ``CupyDevice`` that runs the kernels on the CPU."""

    xp = np

    def __init__(self, source: str, sm_count: int = 1):
        self._lib, self.signatures = _build(source)
        self.sm_count = sm_count
        self.launches = []  # (name, grid, block) of every launch, for tests of the launch geometry

    @staticmethod
    def ptr(a) -> int:
        return a.ctypes.data

    def kernel(self, name: str):
        if name not in self.signatures:
            raise KeyError(f"no __global__ function {name!r} in the source")
        types = self.signatures[name]
        fn = getattr(self._lib, f"emu_{name}")

        def launch(grid, block, args):
            grid, block = tuple(grid) + (1,) * (3 - len(grid)), tuple(block) + (1,) * (3 - len(block))
            assert grid[2] == 1 and block[2] == 1, "the emulator runs 2-D grids and blocks"
            assert 1 <= block[0] * block[1] <= 1024 and grid[1] <= 65535 and min(grid) >= 1, (grid, block)
            assert len(args) == len(types), f"{name}: {len(args)} arguments for {len(types)} parameters"
            holders, guarded = [], []
            ptrs = (ctypes.c_void_p * len(args))()
            for i, (arg, ctype) in enumerate(zip(args, types)):
                if ctype.endswith("*"):
                    want = POINTEES[ctype.replace("const", "").replace("*", "").strip()]
                    assert isinstance(arg, np.ndarray) and arg.dtype == want and arg.flags.c_contiguous, \
                        f"{name}: argument {i} must be a contiguous {np.dtype(want)} array for {ctype}"
                    buf, view = self._guarded_copy(arg)
                    guarded.append((arg, buf, view))
                    h = ctypes.c_void_p(view.ctypes.data)
                else:
                    ct, dt = SCALARS[ctype]
                    assert isinstance(arg, np.generic) and arg.dtype == dt, \
                        f"{name}: argument {i} must be a NumPy {np.dtype(dt)} scalar for {ctype}, got {arg!r}"
                    h = ct(arg.item())
                holders.append(h)
                ptrs[i] = ctypes.addressof(h)
            self.launches.append((name, grid[:2], block[:2]))
            fn(ctypes.c_uint(grid[0]), ctypes.c_uint(grid[1]), ctypes.c_uint(block[0]), ctypes.c_uint(block[1]), ptrs)
            for arg, buf, view in guarded:
                n = view.nbytes
                start = view.ctypes.data - buf.ctypes.data
                assert (buf[:start] == 0xFF).all() and (buf[start + n:] == 0xFF).all(), \
                    f"{name}: a kernel wrote outside an array argument"
                arg[...] = view

        return launch

    @staticmethod
    def _guarded_copy(a):
        n = a.nbytes
        buf = np.full(n + 2 * GUARD + 16, 0xFF, dtype=np.uint8)
        shift = (a.ctypes.data - (buf.ctypes.data + GUARD)) % 16
        start = GUARD + shift
        view = buf[start:start + n].view(a.dtype).reshape(a.shape)
        view[...] = a
        return buf, view


def require_compiler():
    """Skip without g++ (fail instead when the CI variable is set)."""
    import os

    import pytest

    if not available():
        if os.environ.get("CI"):
            pytest.fail("g++ not found: CI must run the CUDA C kernels on the CPU emulator")
        pytest.skip("g++ not installed (needed to emulate the CUDA C kernels)")


class emulated:
    """``with emulated(cupy_tier_module) as emu:`` runs that module's kernels on an Emulator."""

    _cache: dict = {}

    def __init__(self, module, sm_count: int = 1):
        self.module = module
        self.sm_count = sm_count

    def __enter__(self) -> Emulator:
        src = self.module.source()
        if src not in self._cache:
            self._cache[src] = Emulator(src)
        emu = self._cache[src]
        emu.sm_count = self.sm_count
        emu.launches.clear()
        self._saved = self.module.device
        self.module.device = emu
        return emu

    def __exit__(self, *exc):
        self.module.device = self._saved
        return False
