"""Run the CUDA C tiers of the global norm, the optimizer updates and the EMA on the CPU emulator
(cuda_host_emulator.py), to test their kernels and launch code without a GPU.

The prelude supplies the few device intrinsics these kernels use beyond the emulator's shim:
``__launch_bounds__``, ``__threadfence``, ``__ldcg``, ``atomicInc`` (blocks run one after
another there, so the last-block reduction sees every partial) and the float overloads of sqrt.
"""
from __future__ import annotations

PRELUDE = r"""
#include <atomic>
#include <mutex>
using std::isfinite;
using std::pow;
using std::sqrt;
#define __launch_bounds__(n)
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
template <class T> inline T __ldcg(const T* p) { return *p; }
inline unsigned int atomicInc(unsigned int* a, unsigned int v) {
    static std::mutex m;
    std::lock_guard<std::mutex> lock(m);
    const unsigned int old = *a;
    *a = old >= v ? 0u : old + 1u;
    return old;
}
"""

_cache = {}


class emulated:
    """``with emulated(cupy_tier_module, sm_count) as emu:`` runs that module's kernels on the CPU."""

    def __init__(self, module, sm_count: int = 1, defines: str = ""):
        self.module, self.sm_count, self.defines = module, sm_count, defines

    def __enter__(self):
        from cuda_host_emulator import Emulator

        src = PRELUDE + self.defines + self.module.source()
        if src not in _cache:
            _cache[src] = Emulator(src)
        emu = _cache[src]
        emu.sm_count = self.sm_count
        emu.launches.clear()
        self._saved, self.module.device = self.module.device, emu
        return emu

    def __exit__(self, *exc):
        self.module.device = self._saved
        return False


def emulated_fn(module, fn, sm_count: int = 1):
    """``fn`` (a kernel-style function of ``module``) run on the emulator."""
    def run(*args, **kwargs):
        with emulated(module, sm_count):
            return fn(*args, **kwargs)
    return run
