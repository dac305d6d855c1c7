"""The benchmark scripts run end to end on tiny inputs and write well-formed records (a smoke
test: timings themselves are a benchmark, never asserted). Needs PyTorch, the baseline."""
import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.oracle, pytest.mark.slow]


def _compare():
    """benchmarks/compare.py as a module."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import compare
    finally:
        sys.path.pop(0)
    return compare


def _run(tmp_path, script, *args):
    out = tmp_path / "records.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--device", "cpu",
                           "--json", str(out), *args], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = json.loads(out.read_text())
    assert records
    for r in records:
        assert r["device"] == "cpu"
        if "phase_s" in r or "step_s" in r:  # a piece of gpunet's convolution or step, gpunet only
            assert r.get("phase_s", r.get("step_s")) >= 0
            continue
        if "region_s" in r:  # a parallel region after an idle gap, gpunet only
            assert r["region_s"] > 0 and r["gap_s"] >= 0
            continue
        if "overhead_us" in r:  # a layer call against its bare kernel calls, gpunet only
            assert r["layer_s"] > 0 and r["kernel_s"] > 0
            assert r["overhead_us"] == pytest.approx((r["layer_s"] - r["kernel_s"]) * 1e6)
            continue
        a, b = ("gpunet_s", "torch_s") if "torch_s" in r else ("trainer_s", "hand_s")
        assert r[a] > 0 and r[b] > 0
        assert r["ratio"] == pytest.approx(r[a] / r[b])
    return records, proc.stdout


def test_mlp_epoch(tmp_path):
    records, out = _run(tmp_path, "mlp_epoch.py", "--subset", "512", "--epochs", "1")
    assert [r["name"] for r in records] == ["mlp_epoch", "mlp_epoch_torch_first", "mlp_bn_dropout_epoch",
                                            "mlp_bn_dropout_epoch_trainer", "mlp_bn_dropout_epoch_torch_first"]
    assert records[0]["batches"] == 4
    # each library timed in its own process: gpunet's Numba pool is OpenMP's unless something
    # in the environment chose another layer
    if "NUMBA_THREADING_LAYER" not in os.environ and ctypes.util.find_library("gomp"):
        assert records[0]["numba_layer"] == "omp"
    assert "mlp_bn_dropout_epoch_trainer" in out


def test_cnn_epoch(tmp_path):
    records, _ = _run(tmp_path, "cnn_epoch.py", "--batches", "2", "--rounds", "1", "--pause", "0")
    assert [r["name"] for r in records] == ["cnn_epoch", "resnet_small_epoch"]
    assert records[0]["batches_per_epoch"] >= 1


def test_conv_layers(tmp_path):
    records, out = _run(tmp_path, "conv_layers.py", "--repeat", "2", "--phases", "--step", "--steps", "2")
    names = [r["name"] for r in records]
    assert names[:2] == ["layer_conv1_fwd", "layer_conv1_bwd"] and "layer_conv2+relu_bwd" in names
    assert "phase_conv2_im2col" in names and "phase_conv2_fused_backward" in names
    assert "piece by piece" in out and "step_whole_step" in names and "step_3_Conv2d_bwd" in names
    records, out = _run(tmp_path, "conv_layers.py", "--repeat", "1", "--step", "--steps", "2",
                        "--step-model", "resnet_small")
    steps = {r["name"]: r["step_s"] for r in records if "step_s" in r}
    assert "step_3.block.0_Conv2d_fwd" in steps and "step_5.shortcut.1_BatchNorm2d_bwd" in steps
    assert steps["step_2_ReLU_fwd"] == 0.0 and steps["step_rest"] < steps["step_whole_step"]  # fused into 1
    records, out = _run(tmp_path, "conv_layers.py", "--repeat", "1", "--layers", "resnet_small")
    layers = [r for r in records if r["name"].startswith("layer_")]
    assert len(layers) == 20 and "layer_conv_64to64_7_bwd" in {r["name"] for r in layers}
    assert all(r["gpunet_s"] > 0 and r["torch_s"] > 0 and r["blas_core"] for r in layers)
    assert "resnet_small's layers" in out


def test_trainer_overhead(tmp_path):
    records, _ = _run(tmp_path, "trainer_overhead.py", "--subset", "512", "--epochs", "1")
    assert {r["name"] for r in records} >= {"trainer_vs_hand_loop"}


def test_pool_wakeup(tmp_path):
    records, out = _run(tmp_path, "pool_wakeup.py", "--repeat", "3")
    assert [r["gap_s"] for r in records] == sorted(r["gap_s"] for r in records) and len(records) >= 3
    assert "idle" in out


def test_kernels(tmp_path):
    records, _ = _run(tmp_path, "kernels.py")
    assert {r["name"] for r in records} == {"adam_clip_10M_vs_torch_fused", "adam_clip_10M_vs_torch_default",
                                            "adam_clip_10M_vs_torch_forloop", "batchnorm1d_fwd_bwd",
                                            "dropout_fwd_bwd", "layernorm_fwd_bwd", "layernorm_fwd"}


def test_step_overhead_and_the_before_after_table(tmp_path):
    records, out = _run(tmp_path, "step_overhead.py", "--blocks", "1", "--steps", "5")
    assert [r["name"] for r in records] == ["tiny_step", "tiny_step_torch_first", "tiny_bn_dropout_clip_step",
                                            "tiny_bn_dropout_clip_step_torch_first", "layer_overhead_batchnorm1d",
                                            "layer_overhead_dropout", "layer_overhead_linear"]
    assert "layer call over its bare kernel calls" in out
    compare = _compare()
    rows = compare.table(compare._load([tmp_path / "records.json"]), {}).splitlines()
    assert rows[2].startswith("| tiny_step | ") and rows[2].endswith("| — | — |") and len(rows) == 9


def test_compare_runs_table_gives_each_run_and_the_median_ratio():
    compare = _compare()

    def run(g, t):
        return {"cnn_epoch": {"name": "cnn_epoch", "gpunet_s": g, "torch_s": t, "ratio": g / t},
                "phase_conv2_im2col": {"name": "phase_conv2_im2col", "phase_s": 1e-3}}
    rows = compare.runs_table([run(20.0, 10.0), run(30.0, 10.0), run(24.0, 12.0)],
                              [run(9.0, 10.0), run(8.0, 10.0), run(12.0, 10.0)]).splitlines()
    assert len(rows) == 3  # header, rule, and only the record with a PyTorch time
    assert rows[2] == "| cnn_epoch | 20 s / 30 s / 24 s | 2.00 / 3.00 / 2.00 | 9 s / 8 s / 12 s | 0.90 / 0.80 / 1.20 | 2.00 → 0.90 |"


def test_compare_runs_table_gives_a_layers_overhead_run_by_run():
    compare = _compare()

    def run(layer_us, kernel_us):
        return {"layer_overhead_dropout": {"name": "layer_overhead_dropout", "layer_s": layer_us * 1e-6,
                                           "kernel_s": kernel_us * 1e-6, "overhead_us": layer_us - kernel_us}}
    rows = compare.runs_table([run(23.0, 11.0), run(25.0, 11.0)], [run(20.0, 11.0), run(19.0, 11.0)]).splitlines()
    assert rows[2] == ("| layer_overhead_dropout | 23.0 µs / 25.0 µs | +12.0 µs / +14.0 µs | 20.0 µs / 19.0 µs | "
                       "+9.0 µs / +8.0 µs | +13.0 µs → +8.5 µs |")


def test_compare_repeats_table_gives_both_libraries_each_run_and_the_median_ratio(tmp_path, capsys):
    compare = _compare()
    paths = []
    for i, (g, t) in enumerate([(2e-3, 1e-3), (3e-3, 2e-3), (1e-3, 4e-3)]):
        paths.append(tmp_path / f"run{i}.json")
        paths[-1].write_text(json.dumps([{"name": "layernorm_fwd", "shape": "4x8", "gpunet_s": g, "torch_s": t,
                                          "ratio": g / t}]))
    compare.main(["--repeats", *map(str, paths)])
    rows = capsys.readouterr().out.splitlines()
    assert rows[2] == "| layernorm_fwd | 4x8 | 2 ms / 3 ms / 1 ms | 1 ms / 2 ms / 4 ms | 2.00 / 1.50 / 0.25 | 1.50 |"
    with pytest.raises(SystemExit):
        compare.main(["--repeats", str(paths[0]), "--after", str(paths[1])])


def test_compare_repeats_table_gives_the_layer_overheads_run_by_run_and_their_median():
    compare = _compare()

    def run(layer_us, kernel_us):
        return {"tiny_step": {"gpunet_s": 1e-4, "torch_s": 4e-4, "ratio": 0.25},
                "layer_overhead_dropout": {"layer_s": layer_us * 1e-6, "kernel_s": kernel_us * 1e-6,
                                           "overhead_us": layer_us - kernel_us}}
    rows = compare.repeats_table([run(23.0, 11.0), run(25.0, 11.0), run(19.0, 10.0)]).splitlines()
    assert rows[2].startswith("| tiny_step |") and rows[3] == ""
    assert rows[4] == "| record | layer call | its bare kernels | overhead | median overhead |"
    assert rows[6] == ("| layer_overhead_dropout | 23.0 µs / 25.0 µs / 19.0 µs | 11.0 µs / 11.0 µs / 10.0 µs | "
                       "+12.0 µs / +14.0 µs / +9.0 µs | +12.0 µs |")


def test_compare_run_table_joins_the_files_of_one_run(tmp_path):
    compare = _compare()
    (tmp_path / "kernels.json").write_text(json.dumps([{"name": "ema", "gpunet_s": 2e-3, "torch_s": 4e-3,
                                                         "ratio": 0.5}]))
    (tmp_path / "epochs.json").write_text(json.dumps([{"name": "cnn_epoch", "gpunet_s": 1.5, "torch_s": 1.0,
                                                        "ratio": 1.5}, {"name": "phase_x", "phase_s": 1e-3}]))
    rows = compare.render(["--run", str(tmp_path / "kernels.json"), str(tmp_path / "epochs.json")]).splitlines()
    assert rows[2:] == ["| ema | 2 ms | 4 ms | 0.50 |", "| cnn_epoch | 1.5 s | 1 s | 1.50 |"]
    with pytest.raises(SystemExit):
        compare.render(["--run", str(tmp_path / "kernels.json"), "--repeats", str(tmp_path / "epochs.json")])
    (tmp_path / "profile.json").write_text(json.dumps([{"name": "phase_gemm", "phase_s": 3e-3}]))
    assert compare.render(["--run", str(tmp_path / "profile.json")]).splitlines()[2] == "| phase_gemm | 3 ms |"
