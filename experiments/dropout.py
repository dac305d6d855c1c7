"""Dropout: does zeroing random units during training make a small CNN generalize better?

Claim (the lesson, after Srivastava et al., 2014): dropout — during training each input of the
layer is kept with probability 1 − p and scaled by 1/(1 − p), else set to 0; at evaluation the
layer is the identity — keeps units from relying on particular others, so the network overfits
less: its validation loss keeps falling where the same network without dropout starts to rise,
and a moderate rate (p = 0.2 to 0.5) ends with the best validation accuracy, while too high a
rate (p = 0.8) removes so much that the network learns slowly.

How: ``gn.models.dropout_cnn(p)`` (Conv2d(1, 32, 3), ReLU, MaxPool2d(2), Conv2d(32, 64, 3), ReLU,
MaxPool2d(2), Flatten, Dropout(p), Linear(1600, 10)) for p ∈ {0, 0.2, 0.5, 0.8}, each from the
same initial weights per seed, trained on the full MNIST for 5 epochs with Adam (η = 10⁻³) at
batch 64; after every epoch the loss and accuracy on the 10,000 test images, which serve as the
validation set as in the classic experiment. Two seeds (an epoch and its evaluation take about
13 s on 2 cores).

    python experiments/dropout.py [--quick] [--seeds 0 1] [--out DIR]
"""
from __future__ import annotations

import time

import numpy as np

import gpunet as gn
from common import curves, metadata, mnist, parser, paths, pyplot, save_figure, write_json

NAME = "dropout"  # docs/results/dropout.json, docs/figures/dropout.png, docs/dropout.md
RATES, EPOCHS, BATCH, LR = (0.0, 0.2, 0.5, 0.8), 5, 64, 1e-3


def run(p: float, data, seed: int, epochs: int) -> dict:
    train, test = data
    gn.seed(seed)
    model = gn.models.dropout_cnn(p)
    model.need_input_grad = False  # the images are not trained
    t0 = time.perf_counter()
    history = gn.Trainer(model, "cross_entropy", gn.optim.Adam(model, lr=LR)).fit(
        train, val=test, epochs=epochs, batch_size=BATCH, verbose=0)
    return {**curves(history), "test_accuracy": history["val_accuracy"][-1], "test_loss": history["val_loss"][-1],
            "seconds": round(time.perf_counter() - t0, 1)}


def figure(runs, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for p in RATES:
        sel = [r for r in runs if r["p"] == p]
        mean = {k: np.mean(np.array([r[k] for r in sel], dtype=np.float64), axis=0)
                for k in ("val_accuracy", "loss", "val_loss")}
        epochs = np.arange(1, len(mean["loss"]) + 1)
        axes[0].plot(epochs, mean["val_accuracy"], marker="o", label=f"p = {p:g}")
        line, = axes[1].plot(epochs, mean["loss"], marker="o", label=f"p = {p:g}")
        axes[1].plot(epochs, mean["val_loss"], marker="x", ls="--", color=line.get_color())
    axes[0].set(xlabel="epoch", ylabel="test accuracy", title="test-set accuracy (mean over seeds)")
    axes[1].set(xlabel="epoch", ylabel="cross-entropy", yscale="log",
                title="loss (solid: training, dashed: test)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xticks(epochs)
        ax.legend(fontsize=8)
    save_figure(fig, path)


def main(argv=None):
    args = parser(__doc__, seeds=(0, 1)).parse_args(argv)
    data = train, test = mnist(args.quick, flatten=False)
    epochs = 1 if args.quick else EPOCHS
    runs = []
    t0 = time.perf_counter()
    for seed in args.seeds:
        for p in RATES:
            r = run(p, data, seed, epochs)
            runs.append({"p": p, "seed": seed, **r})
            print(f"p = {p:<4} seed {seed}: test accuracy per epoch {', '.join(f'{a:.4f}' for a in r['val_accuracy'])}"
                  f" ({r['seconds']} s)", flush=True)
    summary = []
    for p in RATES:
        sel = [r for r in runs if r["p"] == p]
        summary.append({"p": p, **{k: np.mean(np.array([r[k] for r in sel], dtype=np.float64), axis=0).tolist()
                                   for k in ("val_accuracy", "loss", "val_loss")},
                        "min": float(min(r["test_accuracy"] for r in sel)),
                        "max": float(max(r["test_accuracy"] for r in sel))})
    json_path, fig_path = paths(NAME, args)
    record = {"name": NAME, "meta": metadata(args, epochs=epochs, batch_size=BATCH, lr=LR, rates=list(RATES),
                                             train_size=len(train), test_size=len(test),
                                             seconds=round(time.perf_counter() - t0, 1)),
              "summary": summary, "runs": runs}
    write_json(json_path, record)
    figure(runs, fig_path)


def tables(record: dict) -> dict:
    """The page's tables from the JSON record (rendered into docs/dropout.md by render.py)."""
    s = record["summary"]
    best = max(range(len(s)), key=lambda i: s[i]["val_accuracy"][-1])
    acc = ["| epoch | " + " | ".join(f"p = {r['p']:g}" for r in s) + " |", "| ---: |" + " ---: |" * len(s)]
    for e in range(len(s[0]["val_accuracy"])):
        cells = [f"{r['val_accuracy'][e]:.4f}" for r in s]
        if e == len(s[0]["val_accuracy"]) - 1:
            cells[best] = f"**{cells[best]}**"
        acc.append(f"| {e + 1} | " + " | ".join(cells) + " |")
    acc.append("| range over seeds, last epoch | " + " | ".join(f"{r['min']:.4f}–{r['max']:.4f}" for r in s) + " |")
    loss = ["| p | training loss, epoch 1 → last | test loss, epoch 1 → last |", "| ---: | --- | --- |"]
    for r in s:
        loss.append(f"| {r['p']:g} | {', '.join(f'{v:.4f}' for v in r['loss'])} | "
                    f"{', '.join(f'{v:.4f}' for v in r['val_loss'])} |")
    return {"accuracy": "\n".join(acc), "loss": "\n".join(loss)}


if __name__ == "__main__":
    main()
