"""Run an original MNIST script, unmodified, and record its test accuracy, as the reference for
its port in examples/ports/ (docs/coming-from-pytorch-keras.md):

    python benchmarks/originals/run.py pytorch PATH/TO/pytorch-examples/mnist/main.py [--json PATH] [args]
    python benchmarks/originals/run.py keras PATH/TO/keras-io/examples/vision/mnist_convnet.py [--json PATH]

``pytorch``: PyTorch's examples/mnist/main.py; ``torchvision`` comes from ./torchvision_shim
(MNIST from $GPUNET_DATA, the three transforms the script uses). On a machine without an
accelerator that script does not shuffle its training data (its DataLoader gets shuffle=True only
with one): the original's behaviour, kept. ``keras``: keras-io's mnist_convnet.py on Keras 3 with
its PyTorch backend (``pip install keras``); ``tensorflow`` comes from ./tensorflow_shim (Keras as
tensorflow.keras, MNIST from $GPUNET_DATA).
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "examples" / "ports"))
from _record import machine  # noqa: E402

ORIGINALS = {  # name: (port, original, its shim, the pattern of its test accuracy line)
    "pytorch": ("pytorch_mnist", "pytorch/examples mnist/main.py", "torchvision_shim",
                r"Accuracy: (\d+)/(\d+)"),
    "keras": ("keras_mnist_convnet", "keras-io examples/vision/mnist_convnet.py", "tensorflow_shim",
              r"Test accuracy: ([0-9.]+)()"),
}


def framework(name: str) -> str:
    if name == "keras":
        os.environ["KERAS_BACKEND"] = "torch"
        import keras

        return f"keras {keras.__version__} (torch backend)"
    import torch

    return f"torch {torch.__version__}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("original", choices=sorted(ORIGINALS))
    ap.add_argument("script")
    ap.add_argument("--json", default=None)
    args, extra = ap.parse_known_args()  # the rest goes to the original script
    port, original, shim, pattern = ORIGINALS[args.original]
    extra = [a for a in extra if a != "--"]
    env = {**os.environ, "KERAS_BACKEND": "torch",
           "PYTHONPATH": os.pathsep.join([str(HERE / shim), str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, args.script, *extra], env=env, capture_output=True, text=True,
                          cwd=Path(args.script).resolve().parent)
    seconds = time.perf_counter() - t0
    sys.stdout.write(proc.stdout[-3000:])
    if proc.returncode != 0:
        sys.exit(proc.stderr[-4000:])
    hit, total = re.findall(pattern, proc.stdout)[-1]
    accuracy = int(hit) / int(total) if total else float(hit)
    epochs = re.findall(r"--epochs[= ](\d+)", " ".join(extra))
    rec = {"port": port, "original": original, "framework": framework(args.original),
           "date": datetime.date.today().isoformat(), "machine": machine(), "device": "cpu",
           "epochs": int(epochs[0]) if epochs else (14 if args.original == "pytorch" else 15),
           "train_size": 60000,
           "test_accuracy": round(accuracy, 4), "seconds": round(seconds, 1)}
    print("record:", json.dumps(rec))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rec, indent=2))


if __name__ == "__main__":
    main()
