"""gpunet.cpu_memory: importing gpunet keeps freed memory for reuse (glibc), unless told not to."""
import os
import platform
import subprocess
import sys

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
# page faults of allocating, touching and freeing a 16 MB array ten times, after one warm-up
FAULTS = ("import resource, numpy as np\n"
          "def churn():\n"
          "    a = np.empty(4 << 20, np.float32); a[:] = 1; del a\n"
          "churn()\n"
          "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
          "for _ in range(10): churn()\n"
          "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)\n")


def _faults(prelude, **env_changes):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env.pop("GPUNET_KEEP_FREED_MEMORY", None)
    env.update(env_changes)
    out = subprocess.run([sys.executable, "-c", prelude + "\n" + FAULTS], env=env, capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's")
def test_import_keeps_freed_blocks_so_reallocations_do_not_fault():
    plain = _faults("import numpy")  # glibc's defaults: its heap top is trimmed and faulted in again
    assert plain >= 100 and _faults("import gpunet") * 10 <= plain


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's")
def test_an_opt_out_or_a_users_malloc_setting_is_left_alone():
    plain = _faults("import numpy")
    for env in ({"GPUNET_KEEP_FREED_MEMORY": "0"}, {"MALLOC_TOP_PAD_": "131072"}):  # 131072: glibc's default
        assert _faults("import gpunet", **env) > plain // 2, env
    from gpunet import cpu_memory

    os.environ["GPUNET_KEEP_FREED_MEMORY"] = "0"
    try:
        assert cpu_memory.keep_freed_memory() is False
    finally:
        del os.environ["GPUNET_KEEP_FREED_MEMORY"]
