"""Print the markdown table of the ports' recorded full runs (docs/port-runs/*.json) beside the
originals' runs on the same machine (docs/port-runs/originals/*.json, written by
benchmarks/originals/run.py), as docs/coming-from-pytorch-keras.md shows it between its
<!-- port-runs --> markers.

    python examples/ports/results_table.py
"""
import json
from pathlib import Path

RUNS = Path(__file__).resolve().parents[2] / "docs" / "port-runs"
ORIGINAL = {"pytorch_mnist": "PyTorch examples/mnist", "keras_mnist_convnet": "Keras mnist_convnet",
            "chainer_train_mnist": "Chainer train_mnist"}


def _load(folder: Path) -> dict:
    return {r["port"]: r for r in (json.loads(p.read_text()) for p in sorted(folder.glob("*.json")))}


def table() -> str:
    ports, originals = _load(RUNS), _load(RUNS / "originals")
    rows = ["| port | epochs | training images | gpunet: test accuracy | wall time | the original: test accuracy "
            "| wall time |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in sorted(ports.items()):
        o = originals.get(name)
        theirs = (f"{o['test_accuracy']:.4f} ({o['framework']}) | {o['seconds']:.0f} s" if o else "not run | ")
        rows.append(f"| `{name}.py` ({ORIGINAL[name]}) | {r['epochs']} | {r['train_size']:,} | "
                    f"{r['test_accuracy']:.4f} | {r['seconds']:.0f} s | {theirs} |")
    machines = sorted({r["machine"] for r in [*ports.values(), *originals.values()]})
    dates = sorted({r["date"] for r in [*ports.values(), *originals.values()]})
    devices = sorted({r["device"] for r in [*ports.values(), *originals.values()]})
    rows.append("")
    rows.append(f"Machine: {', '.join(machines)}; device: {', '.join(devices)}; date: {', '.join(dates)}.")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
