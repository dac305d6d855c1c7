"""Architectures: do residual shortcuts let a deep CNN train where the same plain stack degrades,
how does a small Inception network compare, and what does a model far too large for its data do?

Claims (the lesson): (1) the degradation problem — stacking more plain layers eventually makes a
network train *worse*, not just generalize worse: its training loss ends higher than a shallower
one's, though the deeper network could copy the shallower one and add identities. A residual
block learns y = F(x) + x instead, so an identity is F = 0, and the deep network trains at least
as well as the shallow one (He et al., 2016). An Inception module runs 1×1, 3×3 and 5×5
convolutions and a pooling side by side and concatenates them (Szegedy et al., 2015). (2) A model
with far more parameters than there are examples fits them perfectly and generalizes poorly.

How, part 1: CNNs of the same width on 28×28 MNIST — a conv-BN-ReLU stem (16 channels), 2×2 max
pooling to 14×14, then a stack of conv-BN-ReLU 3×3 layers (16 channels), global average pooling and
a Linear — with 4 and with 20 layers in the stack ("plain"), and the 20-layer one with a residual
shortcut around every pair of layers (10 ``basic_block``s); and ``gn.models.inception_small``.
Each trained on the first 10,000 MNIST training images for 5 epochs with SGD and momentum
(η = 0.05, γ = 0.9, batch 128), two seeds: training loss per epoch (mean over its batches) and
test accuracy on the 10,000 test images.

How, part 2: the first 500 training images, a small CNN (``dropout_cnn(0)``, 35 k parameters) and
a large MLP (784-2048-2048-10, 5.8 M parameters), each trained with Adam (η = 10⁻³, batch 50)
for 60 epochs: training and test accuracy (the curves per epoch on the first 1,000 test images, the
table on all 10,000), and the number of parameters per training example.

    python experiments/architectures.py [--quick] [--seeds 0 1] [--out DIR]
"""
from __future__ import annotations

import time

import numpy as np

import gpunet as gn
from common import curves, metadata, mlp, mnist, parser, paths, pyplot, save_figure, write_json

NAME = "architectures"  # docs/results/architectures.json, docs/figures/architectures.png, docs/architectures.md
M = gn.models
WIDTH, N_TRAIN, EPOCHS, BATCH, LR, MOMENTUM = 16, 10_000, 5, 128, 0.05, 0.9
SMALL_N, SMALL_EPOCHS, SMALL_BATCH, SMALL_VAL = 500, 60, 50, 1000


def stem():
    return [*M.conv_bn_relu(1, WIDTH, 3), gn.MaxPool2d(2)]


def head():
    return [gn.GlobalAvgPool2d(), gn.Linear(WIDTH, 10)]


def plain(layers: int):
    body = [layer for _ in range(layers) for layer in M.conv_bn_relu(WIDTH, WIDTH, 3)]
    return gn.Sequential(*stem(), *body, *head())


def residual(layers: int):
    body = [layer for _ in range(layers // 2) for layer in (M.basic_block(WIDTH, WIDTH), gn.ReLU())]
    return gn.Sequential(*stem(), *body, *head())


DEEP = {"plain, 4 layers": lambda: plain(4), "plain, 20 layers": lambda: plain(20),
        "residual, 20 layers": lambda: residual(20), "inception_small": lambda: M.inception_small()}
LARGE = {"small CNN (dropout_cnn(0))": lambda: M.dropout_cnn(0.0), "large MLP (784-2048-2048-10)": None}


def train_deep(make, data, seed: int, epochs: int) -> dict:
    train, test = data
    gn.seed(seed)
    model = make()
    model.need_input_grad = False
    opt = gn.optim.SGD(model, lr=LR, momentum=MOMENTUM)
    t0 = time.perf_counter()
    history = gn.Trainer(model, "cross_entropy", opt).fit(train, val=test, epochs=epochs, batch_size=BATCH, verbose=0)
    return {**curves(history), "parameters": model.num_parameters(), "final_loss": history["loss"][-1],
            "test_accuracy": history["val_accuracy"][-1], "skipped_steps": opt.skipped_steps,
            "seconds": round(time.perf_counter() - t0, 1)}


def train_large(name, data, seed: int, epochs: int) -> dict:
    (train, test), (train_flat, test_flat) = data
    gn.seed(seed)
    if LARGE[name] is None:
        model, train, test = mlp((2048, 2048)), train_flat, test_flat
    else:
        model = LARGE[name]()
    model.need_input_grad = False
    trainer = gn.Trainer(model, "cross_entropy", gn.optim.Adam(model, lr=1e-3))
    history = trainer.fit(train, val=test[:SMALL_VAL], epochs=epochs, batch_size=SMALL_BATCH, verbose=0)
    fit, result = trainer.evaluate(train), trainer.evaluate(test)
    return {**curves(history), "parameters": model.num_parameters(), "train_accuracy": fit["accuracy"],
            "train_loss": fit["loss"], "test_accuracy": result["accuracy"], "test_loss": result["loss"]}


def figure(record, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for name in DEEP:
        sel = [r for r in record["deep"] if r["model"] == name]
        for ax, key in zip(axes[:2], ("loss", "val_accuracy")):
            values = np.mean(np.array([r[key] for r in sel], dtype=np.float64), axis=0)
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", label=name)
    axes[0].set(yscale="log", xlabel="epoch", ylabel="training loss", title="training loss (mean over seeds)")
    axes[1].set(xlabel="epoch", ylabel="test accuracy", title="test accuracy (mean over seeds)")
    for ax in axes[:2]:
        ax.set_xticks(np.arange(1, record["meta"]["epochs"] + 1))
    for r in record["large"]:
        if r["seed"] == record["meta"]["seeds"][0]:
            epochs = np.arange(1, len(r["loss"]) + 1)
            line, = axes[2].plot(epochs, r["accuracy"], label=f"{r['model']}: training")
            axes[2].plot(epochs, r["val_accuracy"], ls="--", color=line.get_color(),
                         label=f"{r['model']}: test (first 1,000)")
    seed = record["meta"]["seeds"][0]
    axes[2].set(xlabel="epoch", ylabel="accuracy",
                title=f"{record['meta']['small_train_size']} training images (seed {seed})")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv=None):
    args = parser(__doc__, seeds=(0, 1)).parse_args(argv)
    train, test = mnist(args.quick, flatten=False)
    train_flat, test_flat = mnist(args.quick)
    n_train, small_n = (500, 200) if args.quick else (N_TRAIN, SMALL_N)
    epochs, small_epochs = (1, 3) if args.quick else (EPOCHS, SMALL_EPOCHS)
    t0 = time.perf_counter()
    deep, large = [], []
    for name, make in DEEP.items():
        for seed in args.seeds:
            r = train_deep(make, (train[:n_train], test), seed, epochs)
            deep.append({"model": name, "seed": seed, **r})
            print(f"{name:<20} seed {seed}: training loss per epoch {', '.join(f'{v:.4f}' for v in r['loss'])}; "
                  f"test accuracy {r['test_accuracy']:.4f} ({r['seconds']} s)", flush=True)
    for name in LARGE:
        for seed in args.seeds:
            r = train_large(name, ((train[:small_n], test), (train_flat[:small_n], test_flat)), seed, small_epochs)
            large.append({"model": name, "seed": seed, **r})
            print(f"{name:<28} seed {seed}: {r['parameters']} parameters, training accuracy {r['train_accuracy']:.4f}, "
                  f"test accuracy {r['test_accuracy']:.4f}", flush=True)
    summary = []
    for name in DEEP:
        sel = [r for r in deep if r["model"] == name]
        summary.append({"model": name, "parameters": sel[0]["parameters"],
                        "final_loss": float(np.mean([r["final_loss"] for r in sel])),
                        "mean_test_accuracy": float(np.mean([r["test_accuracy"] for r in sel])),
                        "min": float(min(r["test_accuracy"] for r in sel)),
                        "max": float(max(r["test_accuracy"] for r in sel)),
                        "seconds_per_epoch": float(np.mean([r["seconds"] / len(r["loss"]) for r in sel]))})
    overfit = []
    for name in LARGE:
        sel = [r for r in large if r["model"] == name]
        overfit.append({"model": name, "parameters": sel[0]["parameters"],
                        "parameters_per_example": sel[0]["parameters"] / small_n,
                        **{k: float(np.mean([r[k] for r in sel])) for k in ("train_accuracy", "train_loss",
                                                                           "test_accuracy", "test_loss")}})
    json_path, fig_path = paths(NAME, args)
    record = {"name": NAME, "meta": metadata(args, width=WIDTH, train_size=n_train, epochs=epochs, batch_size=BATCH,
                                             lr=LR, momentum=MOMENTUM, small_train_size=small_n,
                                             small_epochs=small_epochs, small_batch_size=SMALL_BATCH,
                                             test_size=len(test), seconds=round(time.perf_counter() - t0, 1)),
              "summary": summary, "overfit": overfit, "deep": deep, "large": large}
    write_json(json_path, record)
    figure(record, fig_path)


def tables(record: dict) -> dict:
    """The page's tables from the JSON record (rendered into docs/architectures.md by render.py)."""
    rows = ["| model | parameters | final training loss | test accuracy (mean over seeds) | range | "
            "seconds per epoch |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in record["summary"]:
        rows.append(f"| {r['model']} | {r['parameters']:,} | {r['final_loss']:.4f} | {r['mean_test_accuracy']:.4f} | "
                    f"{r['min']:.4f}–{r['max']:.4f} | {r['seconds_per_epoch']:.1f} |")
    big = ["| model | parameters | per training example | training accuracy | test accuracy | training loss | "
           "test loss |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in record["overfit"]:
        big.append(f"| {r['model']} | {r['parameters']:,} | {r['parameters_per_example']:,.0f} | "
                   f"{r['train_accuracy']:.4f} | {r['test_accuracy']:.4f} | {r['train_loss']:.4f} | "
                   f"{r['test_loss']:.4f} |")
    return {"deep": "\n".join(rows), "overfit": "\n".join(big)}


if __name__ == "__main__":
    main()
