"""Batch normalization: does normalizing each layer's pre-activations over the batch train faster,
reach a higher accuracy, and tolerate a larger learning rate?

Claim (the lesson): batch normalization — x̂ = (x − μ_B)/√(σ²_B + ε), y = γx̂ + β, with μ_B and σ²_B
the batch's mean and variance per feature (per channel for a convolution) — keeps every layer's
input at a steady scale while the layers below it change, which gives "higher accuracy and
faster training" and lets a network train at a learning rate that would throw the same network
without it off.

How: two networks, each with and without a BatchNorm after every hidden Linear or Conv2d (before
its ReLU; the layer before a BatchNorm has no bias, which the BatchNorm's β replaces): an MLP
(784-256-256-10) and a small CNN (``dropout_cnn``'s layers without the dropout: Conv2d(1, 32, 3),
ReLU, MaxPool2d(2), Conv2d(32, 64, 3), ReLU, MaxPool2d(2), Flatten, Linear(1600, 10)). Each is
trained on the full MNIST with SGD and momentum (γ = 0.9, batch 128) at the usual η = 0.01, at
10× and at 100× that (η = 0.1 and 1), from the same initial weights (He) per seed: the MLP for 5
epochs with three seeds, the CNN for 3 epochs with two. Test accuracy on the 10,000 test images
after every epoch (in evaluation mode: the BatchNorms use their running statistics); a step whose
gradient is not finite is skipped (the optimizer's default) and counted.

    python experiments/batchnorm.py [--quick] [--seeds 0 1 2] [--out DIR]
"""
from __future__ import annotations

import time

import numpy as np

import gpunet as gn
from common import curves, metadata, mnist, parser, paths, pyplot, save_figure, write_json

NAME = "batchnorm"  # docs/results/batchnorm.json, docs/figures/batchnorm.png, docs/batchnorm.md
LRS, MOMENTUM, BATCH = (0.01, 0.1, 1.0), 0.9, 128
EPOCHS = {"MLP": 5, "CNN": 3}
CNN_SEEDS = 2


def mlp(bn: bool):
    layers, n_in = [], 784
    for w in (256, 256):
        layers += [gn.Linear(n_in, w, bias=not bn), *([gn.BatchNorm1d(w)] if bn else []), gn.ReLU()]
        n_in = w
    return gn.Sequential(*layers, gn.Linear(n_in, 10))


def cnn(bn: bool):
    def block(c_in, c_out):
        return [gn.Conv2d(c_in, c_out, 3, bias=not bn), *([gn.BatchNorm2d(c_out)] if bn else []), gn.ReLU(),
                gn.MaxPool2d(2)]
    return gn.Sequential(*block(1, 32), *block(32, 64), gn.Flatten(), gn.Linear(1600, 10))


def run(kind: str, bn: bool, lr: float, data, seed: int, epochs: int) -> dict:
    train, test = data[kind]
    gn.seed(seed)
    model = (cnn if kind == "CNN" else mlp)(bn)
    model.need_input_grad = False
    opt = gn.optim.SGD(model, lr=lr, momentum=MOMENTUM)
    t0 = time.perf_counter()
    history = gn.Trainer(model, "cross_entropy", opt).fit(train, val=test, epochs=epochs, batch_size=BATCH, verbose=0)
    return {**curves(history), "test_accuracy": history["val_accuracy"][-1], "test_loss": history["val_loss"][-1],
            "final_loss": history["loss"][-1], "skipped_steps": opt.skipped_steps,
            "seconds": round(time.perf_counter() - t0, 1)}


def label(bn: bool, lr: float) -> str:
    return f"{'BatchNorm' if bn else 'no BatchNorm'}, η = {lr:g}"


def figure(runs, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, kind in zip(axes, EPOCHS):
        for bn in (False, True):
            for lr in LRS:
                sel = [r for r in runs if r["model"] == kind and r["batchnorm"] == bn and r["lr"] == lr]
                acc = np.mean(np.array([r["val_accuracy"] for r in sel], dtype=np.float64), axis=0)
                off = " (below the axis)" if acc[-1] < 0.9 else ""
                ax.plot(np.arange(1, len(acc) + 1), acc, marker="o", ls="-" if bn else "--",
                        color=f"C{LRS.index(lr)}", label=label(bn, lr) + off)
        ax.set_xticks(np.arange(1, EPOCHS[kind] + 1))
        ax.set_title(f"{kind} (mean over seeds; solid: with BatchNorm)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0.9, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


def main(argv=None):
    args = parser(__doc__).parse_args(argv)
    data = {"MLP": mnist(args.quick), "CNN": mnist(args.quick, flatten=False)}
    runs = []
    t0 = time.perf_counter()
    for kind, epochs in EPOCHS.items():
        seeds = args.seeds if kind == "MLP" else args.seeds[:CNN_SEEDS]
        for bn in (False, True):
            for lr in LRS:
                for seed in seeds:
                    r = run(kind, bn, lr, data, seed, 1 if args.quick else epochs)
                    runs.append({"model": kind, "batchnorm": bn, "lr": lr, "seed": seed, **r})
                    print(f"{kind} {label(bn, lr):<26} seed {seed}: test accuracy per epoch "
                          f"{', '.join(f'{a:.4f}' for a in r['val_accuracy'])}; skipped steps {r['skipped_steps']} "
                          f"({r['seconds']} s)", flush=True)
    summary = []
    for kind in EPOCHS:
        for bn in (False, True):
            for lr in LRS:
                sel = [r for r in runs if r["model"] == kind and r["batchnorm"] == bn and r["lr"] == lr]
                acc = np.array([r["val_accuracy"] for r in sel], dtype=np.float64)
                summary.append({"model": kind, "batchnorm": bn, "lr": lr, "seeds": [r["seed"] for r in sel],
                                "accuracy_per_epoch": acc.mean(axis=0).tolist(),
                                "min": float(acc[:, -1].min()), "max": float(acc[:, -1].max()),
                                "final_loss": float(np.mean([r["final_loss"] for r in sel])),
                                "skipped_steps": int(sum(r["skipped_steps"] for r in sel)),
                                "seconds_per_epoch": float(np.mean([r["seconds"] / len(r["val_accuracy"])
                                                                    for r in sel]))})
    json_path, fig_path = paths(NAME, args)
    record = {"name": NAME, "meta": metadata(args, epochs=EPOCHS, lrs=list(LRS), momentum=MOMENTUM, batch_size=BATCH,
                                             cnn_seeds=args.seeds[:CNN_SEEDS], train_size=len(data["MLP"][0]),
                                             test_size=len(data["MLP"][1]), seconds=round(time.perf_counter() - t0, 1)),
              "summary": summary, "runs": runs}
    write_json(json_path, record)
    figure(runs, fig_path)


def tables(record: dict) -> dict:
    """The page's table from the JSON record (rendered into docs/batchnorm.md by render.py)."""
    n = max(len(r["accuracy_per_epoch"]) for r in record["summary"])
    rows = ["| model | BatchNorm | η | " + " | ".join(f"epoch {e}" for e in range(1, n + 1)) +
            " | range, last epoch | final training loss | skipped steps | seconds per epoch |",
            "| --- | --- | ---: |" + " ---: |" * n + " ---: | ---: | ---: | ---: |"]
    for r in record["summary"]:
        acc = [f"{a:.4f}" for a in r["accuracy_per_epoch"]] + [""] * (n - len(r["accuracy_per_epoch"]))
        rows.append(f"| {r['model']} | {'yes' if r['batchnorm'] else 'no'} | {r['lr']:g} | " + " | ".join(acc) +
                    f" | {r['min']:.4f}–{r['max']:.4f} | {r['final_loss']:.4g} | {r['skipped_steps']} | "
                    f"{r['seconds_per_epoch']:.1f} |")
    return {"summary": "\n".join(rows)}


if __name__ == "__main__":
    main()
