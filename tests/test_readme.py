"""The README's quickstart runs as written on a fresh machine: no MNIST anywhere, a new home
folder, a new working folder."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quickstart() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart -->\s*```python\n(.*?)```", readme, re.S)
    assert block, "README must mark its quickstart with <!-- quickstart -->"
    return block.group(1)


@pytest.mark.slow
def test_the_quickstart_runs_as_written_on_a_fresh_machine(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUNET_")}
    env.update(HOME=str(home), GPUNET_BACKEND="cpu", MPLCONFIGDIR=str(tmp_path / "mpl"),
               PYTHONPATH=str(ROOT))  # this checkout's gpunet, whatever is installed
    proc = subprocess.run([sys.executable, "-c", quickstart()], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # one note about the missing full set (not one per split), then per-epoch lines (not a terminal)
    notes = [line for line in proc.stderr.splitlines() if "full MNIST not found" in line]
    assert len(notes) == 1 and "bundled sample (5000 training and 1000 test images)" in notes[0]
    assert "\r" not in proc.stderr
    epochs = re.findall(r"^epoch (\d+)/20 .* val_loss=", proc.stderr, re.M)
    assert epochs and epochs == [str(i) for i in range(1, len(epochs) + 1)]
    last = proc.stdout.strip().splitlines()[-1]
    result = eval(last, {"__builtins__": {}})  # the printed dict of the test evaluation
    assert set(result) == {"loss", "accuracy"} and result["accuracy"] > 0.85, last
    assert (work / "curves.png").stat().st_size > 10_000
