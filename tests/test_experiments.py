"""The experiments (experiments/): each --quick mode runs and writes its JSON record and figure, and
every documentation page's tables are what experiments/render.py makes from the committed records."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args, timeout=600):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_pages_match_their_records():
    proc = _run("experiments/render.py", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_render_check_fails_on_a_hand_edited_table(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        import render
    finally:
        sys.path.pop(0)
    page = (ROOT / "docs" / "input-scaling.md").read_text()
    edited = page.replace("| SGD (lr 0.05) | [0, 1] | 0.", "| SGD (lr 0.05) | [0, 1] | 1.", 1)
    assert edited != page and render.render(edited) == page


@pytest.mark.slow
def test_input_scaling_quick(tmp_path):
    proc = _run("experiments/input_scaling.py", "--quick", "--seeds", "0", "--out", str(tmp_path))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    record = json.loads((tmp_path / "input_scaling.json").read_text())
    assert record["meta"]["quick"] and record["meta"]["seeds"] == [0]
    assert {r["scaling"] for r in record["summary"]} == {"raw 0..255", "[0, 1]", "[-1, 1]", "standardized"}
    assert len(record["runs"]) == 8 and all(0 <= r["test_accuracy"] <= 1 for r in record["runs"])
    assert (tmp_path / "input_scaling.png").stat().st_size > 10_000


@pytest.mark.slow
def test_weight_init_quick(tmp_path):
    proc = _run("experiments/weight_init.py", "--quick", "--seeds", "0", "--out", str(tmp_path))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    record = json.loads((tmp_path / "weight_init.json").read_text())
    assert len(record["signal"]) == 12 and all(len(r["act_std"]) == record["meta"]["depth"] for r in record["signal"])
    assert {r["init"] for r in record["summary"]} == {"N(0, 1)", "U(±1/√n)", "N(0, 1/n)", "LeCun", "Glorot", "He"}
    he_relu = next(r for r in record["signal"] if r["init"] == "He" and r["activation"] == "relu")
    assert 0.1 < he_relu["act_std"][-1] < 10  # He keeps a ReLU stack's signal: a check that can fail
    assert (tmp_path / "weight_init.png").stat().st_size > 10_000


def _quick(name, tmp_path, *seeds):
    proc = _run(f"experiments/{name}.py", "--quick", "--seeds", *map(str, seeds or (0,)), "--out", str(tmp_path))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    record = json.loads((tmp_path / f"{name}.json").read_text())
    assert record["meta"]["quick"] and record["name"] == name
    return record


@pytest.mark.slow
def test_early_stopping_quick(tmp_path):
    record = _quick("early_stopping", tmp_path)
    modes = {r["mode"]: r for r in record["runs"]}
    assert len(modes) == 3
    full, restored = modes["no early stopping"], modes["early stopping, best weights restored"]
    assert full["epochs_run"] == record["meta"]["epochs"] and full["restored_epoch"] is None
    # the restored epoch is the one with the lowest validation loss, and the run stopped patience epochs after it
    assert restored["restored_epoch"] == restored["best_epoch"]
    if restored["epochs_run"] < record["meta"]["epochs"]:
        assert restored["epochs_run"] == restored["best_epoch"] + record["meta"]["patience"]


@pytest.mark.slow
def test_weight_decay_quick(tmp_path):
    record = _quick("weight_decay", tmp_path)
    norms = {r["penalty"]: r["weight_norm"] for r in record["summary"]}
    assert len(norms) == 7
    assert norms["L2 λ = 0.03"] < norms["none"]  # decay shrinks the weights: a check that can fail


@pytest.mark.slow
def test_optimizers_quick(tmp_path):
    record = _quick("optimizers", tmp_path)
    assert len(record["summary"]) == 8 and all(0 <= r["mean_test_accuracy"] <= 1 for r in record["summary"])
    adam = next(r for r in record["summary"] if r["optimizer"].startswith("Adam"))
    assert adam["mean_test_accuracy"] > 0.5


@pytest.mark.slow
def test_lr_decay_quick(tmp_path):
    record = _quick("lr_decay", tmp_path)
    lrs = {r["schedule"]: r["lr"] for r in record["runs"] if r["batch_size"] == 32}
    assert len(set(map(tuple, lrs.values()))) == 4  # four different schedules were applied
    assert lrs["constant"] == [0.05] * record["meta"]["epochs"]
    assert lrs["cosine to 0"][0] == 0.05 and lrs["cosine to 0"][-1] < 0.05


@pytest.mark.slow
def test_model_averaging_quick(tmp_path):
    record = _quick("model_averaging", tmp_path, 0, 1)
    assert [r["ensembles"] for r in record["by_size"]] == [2, 1]
    assert {r["variant"] for r in record["runs"]} == {"plain", "EMA (β = 0.999)", "SWA (last half of the epochs)"}
    assert 0.5 < record["ensemble"]["test_accuracy"] <= 1


@pytest.mark.slow
def test_batchnorm_quick(tmp_path):
    record = _quick("batchnorm", tmp_path)
    assert {(r["model"], r["batchnorm"], r["lr"]) for r in record["summary"]} == {
        (m, bn, lr) for m in ("MLP", "CNN") for bn in (False, True) for lr in (0.01, 0.1, 1.0)}


@pytest.mark.slow
def test_dropout_quick(tmp_path):
    record = _quick("dropout", tmp_path)
    assert [r["p"] for r in record["summary"]] == [0.0, 0.2, 0.5, 0.8]
    assert all(0.5 < r["val_accuracy"][-1] <= 1 for r in record["summary"])  # 2,000 images, one epoch


@pytest.mark.slow
def test_clipping_quick(tmp_path):
    record = _quick("clipping", tmp_path)
    grad = {r["gain"]: r["grad_norm"] for r in record["signal"]}
    assert len(grad[1.0]) == record["meta"]["depth"]
    assert grad[0.5][0] < 1e-3 * grad[0.5][-1]  # too small: the first layer's gradient vanishes
    assert grad[2.0][0] > 1e3 * grad[1.0][0]    # too large: it explodes
    assert len(record["summary"]) == 11


@pytest.mark.slow
def test_main_job_quick(tmp_path):
    proc = _run("experiments/main_job.py", "--quick", "--out", str(tmp_path))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    record = json.loads((tmp_path / "main_job.json").read_text())
    (run,) = record["runs"]
    assert run["epochs"] == 1 and 0.8 < run["test_accuracy"] <= 1  # one epoch of the README's MLP
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        import main_job
    finally:
        sys.path.pop(0)
    assert run["last_line"] in main_job.tables(record)["headline"]


def test_a_bench_marker_renders_what_compare_py_prints():
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        import render
    finally:
        sys.path.pop(0)
    args = "--only layernorm_ --repeats docs/cpu-runs/2026-12-02-normalization-run1.json"
    printed = _run("benchmarks/compare.py", *args.split())
    assert printed.returncode == 0, printed.stderr
    table = printed.stdout.rstrip("\n")
    assert [row.split(" | ")[0] for row in table.splitlines()[2:]] == ["| layernorm_fwd_bwd", "| layernorm_fwd"]
    page = f"Before.\n\n<!-- bench: {args} -->\n{table}\n<!-- /bench -->\n\nAfter.\n"
    assert render.render(page) == page
    row = table.splitlines()[2]
    edited = page.replace(row, row.replace(" | 4096x1024 | ", " | 4096x1024 | 9", 1))
    assert edited != page and render.render(edited) == page
    assert render.render(page.replace(table, "")) == page  # an empty marker is filled


@pytest.mark.slow
def test_architectures_quick(tmp_path):
    record = _quick("architectures", tmp_path)
    params = {r["model"]: r["parameters"] for r in record["summary"]}
    assert set(params) == {"plain, 4 layers", "plain, 20 layers", "residual, 20 layers", "inception_small"}
    # the residual stack has the plain stack's layers and parameters: only the shortcuts differ
    assert params["residual, 20 layers"] == params["plain, 20 layers"] > params["plain, 4 layers"]
    big = {r["model"]: r for r in record["overfit"]}
    assert big["large MLP (784-2048-2048-10)"]["parameters"] > 100 * big["small CNN (dropout_cnn(0))"]["parameters"]
