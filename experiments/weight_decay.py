"""Weight decay: does a penalty on the weights' size make a model that overfits generalize better?

Claim (the lesson): adding ½λ‖w‖² to the loss (L2; its gradient λw, so each step shrinks every
weight by the factor 1 − ηλ: "weight decay") keeps the weights small, and a smaller-weight model
of the same size overfits less; λ too large underfits instead. An L1 penalty λ‖w‖₁ (gradient
λ·sign(w)) drives many weights to (near) zero.

How: the small-data setting of the early-stopping experiment — the first 1,000 MNIST training
images, the 10,000 test images — and the same large MLP (784-1024-1024-10, ReLU, He
initialization), trained with SGD and momentum (η = 0.01, γ = 0.9, batch 32) for 60 epochs, no
early stopping, with coupled L2 weight decay λ ∈ {0, 10⁻⁴, 10⁻³, 3·10⁻³, 10⁻², 3·10⁻²} and once
with L1 (λ = 10⁻⁴) instead. Biases and normalization parameters take no decay (gpunet's default).
Three seeds; the table gives the test accuracy and loss, the final training loss (the data term
alone), the L2 norm of the decayed weights and the share of them with |w| < 10⁻³; the figure the
loss and accuracy per epoch on the validation set of the early-stopping experiment (the last
1,000 training images).

    python experiments/weight_decay.py [--quick] [--seeds 0 1 2] [--out DIR]
"""
from __future__ import annotations

import time

import numpy as np

import gpunet as gn
from common import metadata, mlp, parser, paths, pyplot, save_figure, small_mnist, summarize, write_json

NAME = "weight_decay"  # docs/results/weight_decay.json, docs/figures/weight_decay.png, docs/weight-decay.md
WIDTHS, LR, MOMENTUM, BATCH, EPOCHS = (1024, 1024), 0.01, 0.9, 32, 60
PENALTIES = [("none", 0.0), *(("L2", lam) for lam in (1e-4, 1e-3, 3e-3, 1e-2, 3e-2)), ("L1", 1e-4)]


def label(kind: str, lam: float) -> str:
    return "none" if kind == "none" else f"{kind} λ = {lam:g}"


def run(data, kind: str, lam: float, seed: int, epochs: int) -> dict:
    train, val, test = data
    gn.seed(seed)
    model = mlp(WIDTHS)
    model.need_input_grad = False
    opt = gn.optim.SGD(model, lr=LR, momentum=MOMENTUM, weight_decay=lam if kind == "L2" else 0.0,
                       l1=lam if kind == "L1" else 0.0)
    trainer = gn.Trainer(model, "cross_entropy", opt)
    history = trainer.fit(train, val=val, epochs=epochs, batch_size=BATCH, verbose=0)
    result = trainer.evaluate(test)
    w = gn.to_numpy(model.arena.params[: model.arena.n_decay]).astype(np.float64)
    return {"loss": list(history["loss"]), "val_loss": list(history["val_loss"]),
            "val_accuracy": list(history["val_accuracy"]), "final_loss": history["loss"][-1],
            "test_loss": result["loss"], "test_accuracy": result["accuracy"],
            "weight_norm": float(np.sqrt(w @ w)), "near_zero": float((np.abs(w) < 1e-3).mean()),
            "skipped_steps": opt.skipped_steps}


def figure(runs, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for kind, lam in PENALTIES:
        name = label(kind, lam)
        sel = [r for r in runs if r["penalty"] == name]
        val = np.mean(np.array([r["val_loss"] for r in sel], dtype=np.float64), axis=0)
        acc = np.mean(np.array([r["val_accuracy"] for r in sel], dtype=np.float64), axis=0)
        epochs = np.arange(1, len(val) + 1)
        axes[0].plot(epochs, val, label=name, ls=":" if kind == "L1" else "-")
        axes[1].plot(epochs, acc, label=name, ls=":" if kind == "L1" else "-")
    axes[0].set_ylabel("validation loss (mean over seeds)")
    axes[1].set_ylabel("validation accuracy (mean over seeds)")
    axes[1].set_ylim(0.8, None)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def main(argv=None):
    args = parser(__doc__).parse_args(argv)
    data = small_mnist(args.quick)
    epochs = 3 if args.quick else EPOCHS
    runs = []
    t0 = time.perf_counter()
    for kind, lam in PENALTIES:
        for seed in args.seeds:
            r = run(data, kind, lam, seed, epochs)
            runs.append({"penalty": label(kind, lam), "kind": kind, "lambda": lam, "seed": seed, **r})
            print(f"{label(kind, lam):<16} seed {seed}: test accuracy {r['test_accuracy']:.4f}, test loss "
                  f"{r['test_loss']:.4f}, train loss {r['final_loss']:.4g}, ‖w‖ {r['weight_norm']:.1f}, "
                  f"|w| < 1e-3: {r['near_zero']:.1%}", flush=True)
    summary = summarize(runs, [{"penalty": label(kind, lam), "kind": kind, "lambda": lam} for kind, lam in PENALTIES],
                        means=("test_loss", "final_loss", "weight_norm", "near_zero"))
    json_path, fig_path = paths(NAME, args)
    train, _, test = data
    record = {"name": NAME, "meta": metadata(args, widths=list(WIDTHS), lr=LR, momentum=MOMENTUM, batch_size=BATCH,
                                             epochs=epochs, train_size=len(train), test_size=len(test),
                                             seconds=round(time.perf_counter() - t0, 1)),
              "summary": summary, "runs": runs}
    write_json(json_path, record)
    figure(runs, fig_path)


def tables(record: dict) -> dict:
    """The page's table from the JSON record (rendered into docs/weight-decay.md by render.py)."""
    rows = ["| penalty | test accuracy (mean over seeds) | range | test loss | final training loss | "
            "‖w‖₂ | share with \\|w\\| < 10⁻³ |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in record["summary"]:
        rows.append(f"| {r['penalty']} | {r['mean_test_accuracy']:.4f} | {r['min']:.4f}–{r['max']:.4f} | "
                    f"{r['test_loss']:.4f} | {r['final_loss']:.4g} | {r['weight_norm']:.1f} | {r['near_zero']:.1%} |")
    return {"summary": "\n".join(rows)}


if __name__ == "__main__":
    main()
