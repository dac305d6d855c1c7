"""The Trainer's epoch against a hand-written loop over the same model and optimizer.

MLP 784-512-256-10 (He init; with BatchNorm1d and Dropout(0.2) after each hidden layer when
gpunet has them), Adam with clip_norm=1.0, batch 128, on MNIST's training set (GPUNET_DATA, else
the bundled sample). Each variant runs a warm-up epoch, then the trainer's and the hand loop's
epochs alternate (same model, same optimizer, same data on the device), so both see the same
machine load; medians are reported. Target: the Trainer within 5% of the hand loop.

    python benchmarks/trainer_overhead.py [--device cpu|gpu] [--epochs 5] [--subset N] [--json out.json]

Rows: ``trainer`` (metrics=["accuracy"], the default) and ``trainer_no_metrics`` against the
hand loop, ``trainer_progress_bar`` (verbose=1) likewise; ratio = trainer / hand loop, of the
medians and of the minima (on a busy machine the minimum is the steadier estimate).
"""
from __future__ import annotations

import io
import json
import os
import statistics
import sys
import time
from contextlib import redirect_stderr

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import parser, set_threads  # noqa: E402

import gpunet as gn  # noqa: E402

BATCH = 128


def build_model():
    def block(n_in, n_out):
        layers = [gn.Linear(n_in, n_out, init="he_normal")]
        if hasattr(gn, "BatchNorm1d"):
            layers.append(gn.BatchNorm1d(n_out))
        layers.append(gn.ReLU())
        if hasattr(gn, "Dropout"):
            layers.append(gn.Dropout(0.2))
        return layers

    return gn.Sequential(*block(784, 512), *block(512, 256), gn.Linear(256, 10, init="glorot_normal"))


def hand_epoch(model, opt, loss_fn, x, y, sync):
    """The hand-written loop: the four-line step over shuffled batches; the last loss read once."""
    model.need_input_grad = False  # as the Trainer does: no gradient for the input images
    value = None
    for xb, yb in gn.data.batches(x, y, BATCH, shuffle=True):
        model.train()
        logits = model(xb)
        value = loss_fn(logits, yb)
        model.backward(loss_fn.backward())
        opt.step()
    sync()
    return float(value)


class _Terminal(io.StringIO):
    """Swallows output but claims to be a terminal, so that verbose=1 draws the bar it times (into
    a file the Trainer prints one line per epoch instead)."""

    def isatty(self):
        return True


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5, help="timed epochs per variant (median)")
    p.add_argument("--subset", type=int, default=0, help="use the first N training images (0: all)")
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    device = "gpu" if args.device == "gpu" else "cpu"
    gn.use(device)
    sync = (lambda: __import__("cupy").cuda.Device().synchronize()) if device == "gpu" else (lambda: None)
    train = gn.data.mnist("train", fallback_to_sample=True)
    if args.subset:
        train = train.subset(args.subset)
    x, y = gn.to_device(train.x), gn.to_device(train.y)
    gn.seed(0)
    model = build_model()
    opt = gn.optim.Adam(model, lr=1e-3, clip_norm=1.0)
    loss_fn = gn.losses.CrossEntropy(check_labels=False)

    def trainer_run(metrics, verbose):
        t = gn.Trainer(model, gn.losses.CrossEntropy(), opt, metrics=metrics)

        def run():
            with redirect_stderr(_Terminal()):  # keep the bar's output out of the table
                t.fit((x, y), epochs=1, batch_size=BATCH, verbose=verbose)
            sync()
        return run

    variants = [("trainer", trainer_run(["accuracy"], 0)),
                ("trainer_no_metrics", trainer_run([], 0)),
                ("trainer_progress_bar", trainer_run(["accuracy"], 1))]
    hand = lambda: hand_epoch(model, opt, loss_fn, x, y, sync)  # noqa: E731
    hand()
    for _, run in variants:  # warm-up: compilation, caches, the data check
        run()
    times = {"hand_loop": []} | {name: [] for name, _ in variants}
    cpu = {name: [] for name in times}
    for _ in range(args.epochs):
        for name, run in [("hand_loop", hand)] + variants:
            t0, c0 = time.perf_counter(), time.process_time()
            run()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    hand_s, hand_min = statistics.median(times["hand_loop"]), min(times["hand_loop"])
    records = []
    print(f"Trainer vs hand-written loop: {type(model).__name__} {model.num_parameters():,} parameters "
          f"({'BN+dropout' if hasattr(gn, 'BatchNorm1d') else 'plain'}), Adam clip_norm=1.0, batch {BATCH}, "
          f"{len(x)} images ({train.source}), {device}, {threads} threads, {args.epochs} alternating epochs each")
    print(f"{'variant':<22} {'median':>8} {'hand':>8} {'ratio':>6} {'min':>8} {'hand':>8} {'ratio':>6}  all epochs (s)")
    for name, _ in variants:
        s, m = statistics.median(times[name]), min(times[name])
        records.append({"name": f"{name}_vs_hand_loop", "device": device, "trainer_s": s, "hand_s": hand_s,
                        "ratio": s / hand_s, "trainer_min_s": m, "hand_min_s": hand_min,
                        "ratio_min": m / hand_min, "images": len(x)})
        print(f"{name:<22} {s:>7.3f}s {hand_s:>7.3f}s {s / hand_s:>6.3f} {m:>7.3f}s {hand_min:>7.3f}s "
              f"{m / hand_min:>6.3f}  {' '.join(f'{v:.3f}' for v in times[name])}")
    print(f"{'hand_loop':<22} {hand_s:>7.3f}s {'':>8} {'':>6} {hand_min:>7.3f}s {'':>8} {'':>6}  "
          f"{' '.join(f'{v:.3f}' for v in times['hand_loop'])}")
    # the process's CPU time (all its threads): steadier than wall time on a shared machine, and the
    # Trainer's overhead is host work; on the GPU it includes time spent waiting for the device
    hand_cpu = statistics.median(cpu["hand_loop"])
    print("process CPU time, medians: hand loop {:.3f}s; ".format(hand_cpu) + "; ".join(
        f"{name} {statistics.median(cpu[name]):.3f}s (ratio {statistics.median(cpu[name]) / hand_cpu:.3f})"
        for name, _ in variants))
    for r, (name, _) in zip(records, variants):
        r["trainer_cpu_s"], r["hand_cpu_s"] = statistics.median(cpu[name]), hand_cpu
        r["ratio_cpu"] = r["trainer_cpu_s"] / hand_cpu
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)
    return records


if __name__ == "__main__":
    main()
