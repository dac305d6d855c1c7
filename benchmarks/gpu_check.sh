#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, run every GPU test with GPUNET_REQUIRE_GPU=1
# (a missing GPU fails instead of skipping), then the GPU benchmarks against PyTorch in the same
# run, and print a short summary last. Installs nothing: it expects CuPy, numba-cuda, PyTorch and
# pytest in the machine's python3, and runs gpunet from this checkout. Finishes in under 8 minutes.
#
#   bash benchmarks/gpu_check.sh [OUTDIR]     (logs and JSON records go to OUTDIR, default ./gpu-check-out)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check-out}}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" GPUNET_REQUIRE_GPU=1 PYTHONUNBUFFERED=1
[ -d .gpudata/mnist ] && export GPUNET_DATA="$PWD/.gpudata"
py=${PYTHON:-python3}
start=$(date +%s)
status=0

{
  date -u +"date: %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu: /'
  $py -c "import sys, cupy, numba, torch; print('python', sys.version.split()[0], '| cupy', cupy.__version__, '| numba', numba.__version__, '| torch', torch.__version__)"
  $py -c "import numba_cuda; print('numba-cuda', numba_cuda.__version__)" 2>/dev/null || true
  git rev-parse --short HEAD 2>/dev/null | sed 's/^/commit: /'
} 2>&1 | tee "$out/env.txt"

echo "== GPU tests (pytest -m gpu, GPUNET_REQUIRE_GPU=1)"
timeout "${GPU_CHECK_TEST_TIMEOUT:-220}" $py -m pytest -m gpu -q -p no:cacheprovider --maxfail=30 tests 2>&1 | tee "$out/gpu_tests.log"
tests_rc=${PIPESTATUS[0]}
[ "$tests_rc" -eq 0 ] || status=1

bench() {  # name, timeout, command...
  local name=$1 limit=$2; shift 2
  echo "== benchmark $name"
  timeout "$limit" "$@" --device gpu --json "$out/$name.json" 2>&1 | tee "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "benchmark $name failed (exit $rc)"; status=1; }
}
bench kernels "${GPU_CHECK_BENCH_TIMEOUT:-90}" $py benchmarks/kernels.py
bench mlp_epoch "${GPU_CHECK_BENCH_TIMEOUT:-60}" $py benchmarks/mlp_epoch.py --epochs 3
bench cnn_epoch "${GPU_CHECK_BENCH_TIMEOUT:-60}" $py benchmarks/cnn_epoch.py
bench trainer_overhead "${GPU_CHECK_BENCH_TIMEOUT:-30}" $py benchmarks/trainer_overhead.py --epochs 3
if $py -c "import mpi4py" 2>/dev/null; then  # the distributed tests and benchmark need mpi4py and an MPI
  bench data_parallel "${GPU_CHECK_BENCH_TIMEOUT:-60}" $py benchmarks/data_parallel.py
else
  echo "== benchmark data_parallel skipped: no mpi4py (pip install mpi4py mpich); its GPU tests skipped too"
fi

echo
echo "================ summary ================"
cat "$out/env.txt"
echo "tests: $(grep -E '(passed|failed|error)' "$out/gpu_tests.log" | tail -1) (exit $tests_rc)"
$py - "$out" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    for r in json.loads(f.read_text()):
        a, b = next((a, b) for a, b in (("gpunet_s", "torch_s"), ("gpunet_s", "baseline_s"), ("trainer_s", "hand_s"))
                    if b in r)
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                         if k not in ("name", "device", a, b, "ratio"))
        print(f"{r['name']:<40} {r['device']} {a[:-2]} {r[a]*1e3:9.3f} ms  {b[:-2]} {r[b]*1e3:9.3f} ms  "
              f"ratio {r['ratio']:.2f}  {extra}")
PY
echo "elapsed: $(( $(date +%s) - start )) s, status: $status"
exit $status
