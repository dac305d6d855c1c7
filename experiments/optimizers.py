"""Optimizers: how do SGD, momentum, normalized gradient descent, Adagrad, RMSProp and Adam compare
on the same model and budget?

Claim (the lesson): plain gradient descent w ← w − η∇L is slow; momentum (v ← γv − η∇L, w ← w + v)
speeds it up the more, the larger γ, until γ near 1 overshoots; normalizing the step
(w ← w − η∇L/‖∇L‖) makes its length independent of the gradient's size; Adagrad
(a ← a + g², w ← w − ηg/(√a + ε)) adapts the step per weight but its steps only shrink; RMSProp
keeps a moving average of g² instead, and Adam adds momentum to RMSProp (with bias correction):
"if unsure, choose Adam".

How: one MLP (784-256-256-10, ReLU, He initialization), the same initial weights per seed, trained
on the full MNIST for 5 epochs at batch 128 by each optimizer with its usual learning rate:
SGD with momentum γ ∈ {0, 0.5, 0.9, 0.99} at η = 0.01 (the lesson's form), normalized gradient
descent (``gn.optim.NormalizedSGD``, the global gradient norm, η = 0.1), Adagrad (η = 0.01),
RMSProp (η = 10⁻³) and Adam (η = 10⁻³). Three seeds; the figure gives the training loss (mean over
seeds, every 50 steps), the table the test accuracy on the 10,000 test images and the last
window's training loss.

    python experiments/optimizers.py [--quick] [--seeds 0 1 2] [--out DIR]
"""
from __future__ import annotations

import time

import gpunet as gn
from common import (accuracy, loss_curve, metadata, mlp, mnist, parser, paths, pyplot, save_figure, summarize,
                    write_json)

NAME = "optimizers"  # docs/results/optimizers.json, docs/figures/optimizers.png, docs/optimizers.md
OPTIMIZERS = {
    "SGD (γ = 0, η = 0.01)": lambda m: gn.optim.SGD(m, lr=0.01),
    "momentum γ = 0.5": lambda m: gn.optim.SGD(m, lr=0.01, momentum=0.5),
    "momentum γ = 0.9": lambda m: gn.optim.SGD(m, lr=0.01, momentum=0.9),
    "momentum γ = 0.99": lambda m: gn.optim.SGD(m, lr=0.01, momentum=0.99),
    "normalized GD (η = 0.1)": lambda m: gn.optim.NormalizedSGD(m, lr=0.1),
    "Adagrad (η = 0.01)": lambda m: gn.optim.Adagrad(m, lr=0.01),
    "RMSProp (η = 1e-3)": lambda m: gn.optim.RMSprop(m, lr=1e-3),
    "Adam (η = 1e-3)": lambda m: gn.optim.Adam(m, lr=1e-3),
}
WIDTHS, EPOCHS, BATCH, EVERY = (256, 256), 5, 128, 50


def run(data, make_opt, seed: int, epochs: int) -> dict:
    train, test = data
    gn.seed(seed)
    model = mlp(WIDTHS)
    model.need_input_grad = False
    opt = make_opt(model)
    curve = loss_curve(model, opt, train.x, train.y, epochs, BATCH, EVERY)
    return {"curve": curve, "final_loss": curve[-1], "test_accuracy": accuracy(model, test.x, test.y),
            "skipped_steps": opt.skipped_steps}


def figure(runs, path):
    import numpy as np

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for name in OPTIMIZERS:
        mean = np.mean(np.array([r["curve"] for r in runs if r["optimizer"] == name], dtype=np.float64), axis=0)
        ax.plot(EVERY * np.arange(1, len(mean) + 1), mean, label=name,
                ls="--" if name.startswith(("SGD", "momentum")) else "-")
    ax.set_yscale("log")
    ax.set_xlabel("training step (batch 128)")
    ax.set_ylabel(f"training loss (mean of {EVERY} steps, over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def main(argv=None):
    args = parser(__doc__).parse_args(argv)
    data = mnist(args.quick)
    epochs = 1 if args.quick else EPOCHS
    runs = []
    t0 = time.perf_counter()
    for name, make in OPTIMIZERS.items():
        for seed in args.seeds:
            r = run(data, make, seed, epochs)
            runs.append({"optimizer": name, "seed": seed, **r})
            print(f"{name:<24} seed {seed}: test accuracy {r['test_accuracy']:.4f}, final loss {r['final_loss']:.4g}",
                  flush=True)
    json_path, fig_path = paths(NAME, args)
    record = {"name": NAME, "meta": metadata(args, widths=list(WIDTHS), epochs=epochs, batch_size=BATCH,
                                             train_size=len(data[0]), test_size=len(data[1]),
                                             seconds=round(time.perf_counter() - t0, 1)),
              "summary": summarize(runs, [{"optimizer": name} for name in OPTIMIZERS]), "runs": runs}
    write_json(json_path, record)
    figure(runs, fig_path)


def tables(record: dict) -> dict:
    """The page's table from the JSON record (rendered into docs/optimizers.md by render.py)."""
    rows = ["| optimizer | test accuracy (mean over seeds) | range | final training loss | skipped steps |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for r in record["summary"]:
        rows.append(f"| {r['optimizer']} | {r['mean_test_accuracy']:.4f} | {r['min']:.4f}–{r['max']:.4f} | "
                    f"{r['final_loss']:.4g} | {r['skipped_steps']} |")
    return {"summary": "\n".join(rows)}


if __name__ == "__main__":
    main()
