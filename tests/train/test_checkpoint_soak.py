"""Soak test: a training process that checkpoints every epoch is SIGKILLed at random moments,
again and again; after each kill the newest complete checkpoint loads and the next process
resumes from it, and the temporaries that killed saves leave are cleaned by the next run."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gpunet.train import checkpoint as ck

CHILD = r"""
import os, re, sys
import numpy as np
import gpunet as gn

folder = sys.argv[1]
names = sorted(f for f in os.listdir(folder) if re.fullmatch(r"e\d{6}\.gnck", f))
resume = os.path.join(folder, names[-1]) if names else None

class Ready(gn.callbacks.Callback):
    def on_train_begin(self, logs=None):
        print(f"ready {logs['initial_epoch']}", flush=True)

gn.seed(0)
model = gn.Sequential(gn.Linear(64, 4096), gn.ReLU(), gn.Linear(4096, 10))  # 311k parameters: 3.7 MB files
opt = gn.optim.Adam(model, lr=1e-3)
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 64)).astype(np.float32)
y = rng.integers(0, 10, 64)
cbs = [Ready(), gn.callbacks.ModelCheckpoint(os.path.join(folder, "e{epoch:06d}.gnck"), keep=2)]
gn.Trainer(model, gn.losses.CrossEntropy(), opt, callbacks=cbs).fit(
    (x, y), epochs=10**6, batch_size=64, verbose=0, resume=resume)
"""

KILLS = 24
ROOT = Path(__file__).resolve().parents[2]


def checkpoints(folder):
    return sorted(f for f in os.listdir(folder) if re.fullmatch(r"e\d{6}\.gnck", f))


def temporaries(folder):
    return [f for f in os.listdir(folder) if f.endswith(".tmp")]


@pytest.mark.slow
def test_sigkill_soak_every_newest_checkpoint_loads_and_resumes(tmp_path, capsys):
    rng = np.random.default_rng(2026)
    env = dict(os.environ, GPUNET_BACKEND="cpu", PYTHONPATH=str(ROOT))  # this checkout's gpunet
    newest_epoch, mid_save, resumed, t0 = 0, 0, 0, time.monotonic()
    for kill in range(KILLS):
        before = set(temporaries(tmp_path))
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
        line = child.stdout.readline()
        assert line.startswith("ready "), (line, child.stderr.read() if child.poll() is not None else "")
        start = int(line.split()[1])
        assert start == newest_epoch  # it resumed from the newest complete checkpoint
        resumed += start > 0
        if kill == 0:  # the first run writes a checkpoint before it is killed, so that every later run resumes
            deadline = time.monotonic() + 60
            while not checkpoints(tmp_path) and time.monotonic() < deadline:
                time.sleep(0.01)
        time.sleep(float(rng.uniform(0.02, 0.5)))
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        err = child.stderr.read()
        if before:  # the killed run started by removing what the previous kill left
            assert f"removed {len(before)} stale temporary file" in err, err
        assert not before & set(temporaries(tmp_path))
        mid_save += bool(temporaries(tmp_path))
        names = checkpoints(tmp_path)
        for name in names:  # every file with a checkpoint's name is whole and loads
            ck.load(tmp_path / name)
        if names:
            state = ck.load(tmp_path / names[-1])
            assert state["epoch"] == int(names[-1][1:7]) >= newest_epoch
            newest_epoch = state["epoch"]
            for name in names[:-1]:  # the user's clean-up, so the folder does not grow
                os.remove(tmp_path / name)
    report = (f"{KILLS} SIGKILLs in {time.monotonic() - t0:.1f} s: {mid_save} inside a save (left a "
              f"temporary), {resumed} runs resumed, last complete checkpoint: epoch {newest_epoch}")
    with capsys.disabled():  # the count, in the test log even when output is captured
        print(f"\nsoak: {report}")
    assert resumed == KILLS - 1, report  # each run after the first, from the newest checkpoint
    assert mid_save >= 1, report  # the kills did land inside saves
