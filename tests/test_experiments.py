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
