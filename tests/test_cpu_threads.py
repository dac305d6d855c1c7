"""gpunet.cpu_threads: Numba's pool starts with the passive wait policy."""
import os
import subprocess
import sys


def test_import_starts_numba_threads_passively_and_restores_the_environment():
    """Importing gpunet starts Numba's pool under OMP_WAIT_POLICY=PASSIVE and then removes the
    variable again (so PyTorch or another OpenMP runtime loaded later sees the user's environment);
    a policy the user set is kept."""
    code = ("import os, gpunet, numba.np.ufunc.parallel as p; "
            "print(os.environ.get('OMP_WAIT_POLICY'), p._is_initialized)")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NUMBA_ENABLE_CUDASIM")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "True"], out.stdout + out.stderr
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "ACTIVE", out.stdout + out.stderr
