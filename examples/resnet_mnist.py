"""Train ``gpunet.models.resnet_small()`` on MNIST and report its test accuracy.

A ResNet of basic blocks (conv-BN-ReLU-conv-BN plus an identity or strided 1×1 projection
shortcut) with widths 16-32-64 at 28², 14² and 7², global average pooling and a linear
classifier (77,754 parameters); Adam (lr 1e-3) at batch 64. Runs on the GPU when one is usable,
else on the CPU; reads the full MNIST from $GPUNET_DATA/mnist or the cache, else the bundled sample.

    python examples/resnet_mnist.py [--epochs 2] [--train-size N] [--batch-size 64]

The last line printed is the test accuracy, e.g. ``test_accuracy: 0.9901``.
"""
from __future__ import annotations

import argparse
import time

import gpunet as gn


def evaluate(model, data, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    for xb, yb in gn.data.batches(data.x, data.y, batch_size, shuffle=False):
        correct += int((model(xb).argmax(axis=1) == yb).sum())
    return correct / len(data)


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--train-size", type=int, default=None, help="train on the first N images only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="auto", choices=["auto", "cpu", "gpu"])
    args = ap.parse_args(argv)

    device = gn.use(args.backend)
    gn.seed(args.seed)
    train = gn.data.mnist("train", flatten=False, fallback_to_sample=True)
    test = gn.data.mnist("test", flatten=False, fallback_to_sample=True)
    if args.train_size:
        train = train[: args.train_size]
    train, test = train.to(device), test.to(device)
    model = gn.models.resnet_small()
    print(model)
    print(f"on the {device}: {len(train)} training images, {len(test)} test images, batch {args.batch_size}",
          flush=True)
    model.need_input_grad = False
    opt = gn.optim.Adam(model, lr=args.lr)
    loss_fn = gn.losses.CrossEntropy()
    acc = 0.0
    for epoch in range(args.epochs):
        t0, losses = time.perf_counter(), []
        for xb, yb in gn.data.batches(train.x, train.y, args.batch_size, shuffle=True):
            model.train()
            losses.append(loss_fn(model(xb), yb))
            model.backward(loss_fn.backward())
            opt.step()
        loss = float(gn.to_numpy(gn.xp.stack(losses)).mean())
        acc = evaluate(model, test)
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {loss:.4f}, test accuracy {acc:.4f} "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"test_accuracy: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()
