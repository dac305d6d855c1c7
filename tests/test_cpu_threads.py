"""gpunet.cpu_threads: Numba's pool starts with workers that spin briefly and then sleep (OpenMP), or
that never spin (workqueue, when the OpenMP runtime Numba would use was loaded first)."""
import ctypes.util
import os
import subprocess
import sys

import pytest

REPORT = ("import os, numba, numba.np.ufunc.parallel as p; "
          "print(os.environ.get('OMP_WAIT_POLICY'), p._is_initialized, p._is_initialized and numba.threading_layer())")


def _run(prelude, **env_changes):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NUMBA_ENABLE_CUDASIM", "NUMBA_THREADING_LAYER")}
    env.update(env_changes)
    out = subprocess.run([sys.executable, "-c", prelude + "; " + REPORT], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


HAVE_GOMP = sys.platform.startswith("linux") and ctypes.util.find_library("gomp") is not None


@pytest.mark.skipif(not HAVE_GOMP, reason="Numba's OpenMP layer needs libgomp (Linux)")
def test_import_starts_the_openmp_pool_passively_and_restores_the_environment():
    assert _run("import gpunet") == ["None", "True", "omp"]


# what libgomp finds in the environment when the pool starts (and loads it), then what is left
SPY = ("import os, numba; seen = []; start = numba.get_num_threads\n"
       "def spy():\n"
       "    seen.extend(os.environ.get(k) for k in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT'))\n"
       "    return start()\n"
       "numba.get_num_threads = spy\n"
       "import gpunet\n"
       "print(*seen, os.environ.get('GOMP_SPINCOUNT'))")


@pytest.mark.skipif(not HAVE_GOMP, reason="Numba's OpenMP layer needs libgomp (Linux)")
def test_libgomp_reads_the_passive_policy_and_a_short_spin_count_then_both_are_removed():
    from gpunet.cpu_threads import SPIN_COUNT
    assert _run(SPY) == ["PASSIVE", str(SPIN_COUNT), "None", "None", "True", "omp"]


@pytest.mark.skipif(not HAVE_GOMP, reason="Numba's OpenMP layer needs libgomp (Linux)")
def test_a_spin_count_the_user_set_is_kept():
    assert _run(SPY, GOMP_SPINCOUNT="5") == ["PASSIVE", "5", "5", "None", "True", "omp"]


def test_a_policy_or_layer_the_user_set_is_kept():
    assert _run("import gpunet", OMP_WAIT_POLICY="ACTIVE") == ["ACTIVE", "False", "False"]
    assert _run("import gpunet; import numba; numba.get_num_threads()",
                NUMBA_THREADING_LAYER="workqueue")[2] == "workqueue"


@pytest.mark.skipif(not HAVE_GOMP, reason="needs Linux and libgomp")
def test_the_openmp_runtime_numba_uses_loaded_first_moves_numba_to_the_workqueue_layer():
    """The system's libgomp loaded first: Numba's layer would share it, its policy already fixed."""
    prelude = f"import ctypes; ctypes.CDLL({ctypes.util.find_library('gomp')!r}); import gpunet"
    assert _run(prelude) == ["None", "True", "workqueue"]


RUNTIMES = "; from gpunet.cpu_threads import openmp_runtimes; print(len(openmp_runtimes()))"


@pytest.mark.skipif(not HAVE_GOMP, reason="needs Linux and libgomp")
def test_a_private_copy_of_libgomp_loaded_first_leaves_numba_its_own_openmp_pool(tmp_path):
    """As pip's torch does (torch/lib/libgomp.so.1, another file than the system's): Numba's layer
    loads a runtime of its own beside that copy, which reads the passive policy and short spin."""
    import shutil

    import numba.np.ufunc.omppool  # noqa: F401  (maps a libgomp here, whichever Numba's layer uses)

    from gpunet.cpu_threads import SPIN_COUNT
    mapped = next(line.split()[-1] for line in open("/proc/self/maps") if "libgomp" in line)
    copy = tmp_path / "libgomp.so.1"
    shutil.copyfile(mapped, copy)
    prelude = f"import ctypes; ctypes.CDLL({str(copy)!r})\n" + SPY
    assert _run(prelude + RUNTIMES) == ["PASSIVE", str(SPIN_COUNT), "None", "2", "None", "True", "omp"]


def test_torch_imported_first_leaves_numba_its_own_openmp_pool():
    torch_lib = pytest.importorskip("torch").__file__.rsplit("/", 1)[0] + "/lib/libgomp.so.1"
    if not (HAVE_GOMP and os.path.exists(torch_lib)):
        pytest.skip("no private libgomp in this torch build")
    assert _run("import torch, gpunet" + RUNTIMES) == ["2", "None", "True", "omp"]
