"""The dropout experiment: ``gpunet.models.dropout_cnn(p)`` on MNIST for p in {0, 0.2, 0.5, 0.8}.

Each rate trains the same network (Conv2d(1, 32, 3), ReLU, MaxPool2d(2), Conv2d(32, 64, 3), ReLU,
MaxPool2d(2), Flatten, Dropout(p), Linear(1600, 10)) from the same seed with Adam (lr 1e-3) at
batch 64, and is evaluated on the 10,000 test images after every epoch (the test set serves as
the validation set, as in the classic experiment). Prints a table of validation accuracy per
epoch and rate, and saves a plot of the curves. Runs on the GPU when one is usable, else on the
CPU; reads the full MNIST from $GPUNET_DATA/mnist or the cache, else the bundled sample.

    python examples/dropout_mnist.py [--epochs 5] [--rates 0 0.2 0.5 0.8] [--train-size N]
                                     [--plot dropout_mnist.png] [--json results.json]

``--train-size N`` trains on the first N training images (a shorter run); the test set is
always whole.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import gpunet as gn


def accuracy(model, data, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` in evaluation mode over ``data``."""
    model.eval()
    loss_fn = gn.losses.CrossEntropy()
    total_loss, correct = 0.0, 0
    for xb, yb in gn.data.batches(data.x, data.y, batch_size, shuffle=False):
        logits = model(xb)
        total_loss += float(loss_fn(logits, yb)) * len(yb)
        correct += int((logits.argmax(axis=1) == yb).sum())
    return total_loss / len(data), correct / len(data)


def train_rate(p: float, train, test, args) -> dict:
    gn.seed(args.seed)
    model = gn.models.dropout_cnn(p)
    model.need_input_grad = False  # the images are not trained
    opt = gn.optim.Adam(model, lr=args.lr)
    loss_fn = gn.losses.CrossEntropy()
    hist = {"p": p, "train_loss": [], "val_loss": [], "val_accuracy": [], "seconds": []}
    for epoch in range(args.epochs):
        t0, losses = time.perf_counter(), []
        for xb, yb in gn.data.batches(train.x, train.y, args.batch_size, shuffle=True):
            model.train()
            losses.append(loss_fn(model(xb), yb))
            model.backward(loss_fn.backward())
            opt.step()
        train_loss = float(gn.to_numpy(gn.xp.stack(losses)).mean())
        val_loss, val_acc = accuracy(model, test)
        hist["train_loss"].append(train_loss)
        hist["val_loss"].append(val_loss)
        hist["val_accuracy"].append(val_acc)
        hist["seconds"].append(time.perf_counter() - t0)
        print(f"p={p:<4} epoch {epoch + 1}/{args.epochs}: train loss {train_loss:.4f}, "
              f"val loss {val_loss:.4f}, val accuracy {val_acc:.4f} ({hist['seconds'][-1]:.1f} s)", flush=True)
    return hist


def table(results) -> str:
    head = "| epoch | " + " | ".join(f"p = {r['p']:g}" for r in results) + " |"
    rule = "| --- |" + " --- |" * len(results)
    rows = [f"| {e + 1} | " + " | ".join(f"{r['val_accuracy'][e]:.4f}" for r in results) + " |"
            for e in range(len(results[0]["val_accuracy"]))]
    return "\n".join([head, rule, *rows])


def plot(results, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for r in results:
        epochs = np.arange(1, len(r["val_accuracy"]) + 1)
        axes[0].plot(epochs, 100 * np.asarray(r["val_accuracy"]), marker="o", label=f"p = {r['p']:g}")
        axes[1].plot(epochs, r["train_loss"], marker="o", label=f"p = {r['p']:g} (train)")
        axes[1].plot(epochs, r["val_loss"], marker="x", linestyle="--", color=axes[1].lines[-1].get_color())
    axes[0].set(xlabel="epoch", ylabel="validation accuracy (%)", title="test-set accuracy")
    axes[1].set(xlabel="epoch", ylabel="cross-entropy", title="loss (solid: train, dashed: validation)",
                yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xticks(np.arange(1, len(results[0]["val_accuracy"]) + 1))
    axes[0].legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.2, 0.5, 0.8])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--train-size", type=int, default=None, help="train on the first N images only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="auto", choices=["auto", "cpu", "gpu"])
    ap.add_argument("--plot", default="dropout_mnist.png", help="PNG of the curves ('' for none)")
    ap.add_argument("--json", default="", help="write the per-epoch results here")
    args = ap.parse_args(argv)

    device = gn.use(args.backend)
    train = gn.data.mnist("train", flatten=False, fallback_to_sample=True)
    test = gn.data.mnist("test", flatten=False, fallback_to_sample=True)
    if args.train_size:
        train = train[: args.train_size]
    train, test = train.to(device), test.to(device)
    print(f"gpunet {gn.__version__} on the {device}: dropout_cnn on {len(train)} training images, "
          f"{len(test)} test images, {args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr}", flush=True)

    t0 = time.perf_counter()
    results = [train_rate(p, train, test, args) for p in args.rates]
    print(f"\nvalidation (test-set) accuracy per epoch, {len(train)} training images "
          f"({time.perf_counter() - t0:.0f} s in all):")
    print(table(results))
    if args.plot:
        plot(results, args.plot, f"dropout_cnn(p) on MNIST: {len(train)} training images, batch "
                                  f"{args.batch_size}, Adam lr {args.lr:g}, seed {args.seed}")
        print(f"plot: {args.plot}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"train_images": len(train), "test_images": len(test), "device": device,
                       "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                       "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
