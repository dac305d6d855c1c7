"""Early stopping: does stopping when the validation loss stops improving, and restoring the best
weights, give a better model than training on?

Claim (the lesson): a large model trained on few examples fits them ever better while its
validation loss, after a minimum, rises again (overfitting); stopping there — when the validation
loss has not improved for ``patience`` epochs — and going back to the weights of its best epoch
gives a model at least as good as the one trained to the end, for a fraction of the epochs.

How: the first 1,000 MNIST training images, a validation set of the last 1,000 (never trained
on) and the 10,000 test images. A large MLP (784-1024-1024-10, ReLU, He initialization: 1.9 M
parameters for 1,000 examples) trained with Adam (η = 10⁻³) at batch 32 three ways from the same
seed: for the full 150 epochs, with ``EarlyStopping(patience=10)`` restoring the best weights (its
default) and with ``restore_best=False`` (the weights of the stopping epoch). Three seeds; the
table gives the epochs run, the best epoch, the test loss and accuracy, the figure the training
and validation loss per epoch.

    python experiments/early_stopping.py [--quick] [--seeds 0 1 2] [--out DIR]
"""
from __future__ import annotations

import time

import numpy as np

import gpunet as gn
from common import curves, metadata, mlp, parser, paths, pyplot, save_figure, small_mnist, summarize, write_json

NAME = "early_stopping"  # docs/results/early_stopping.json, docs/figures/early_stopping.png, docs/early-stopping.md
WIDTHS, LR, BATCH, EPOCHS, PATIENCE = (1024, 1024), 1e-3, 32, 150, 10
MODES = {"no early stopping": None,
         "early stopping, best weights restored": True,
         "early stopping, last weights kept": False}


def run(data, mode, seed: int, epochs: int, patience: int) -> dict:
    train, val, test = data
    gn.seed(seed)
    model = mlp(WIDTHS)
    model.need_input_grad = False
    callbacks = [] if mode is None else [gn.callbacks.EarlyStopping("val_loss", patience=patience,
                                                                    restore_best=mode, verbose=0)]
    trainer = gn.Trainer(model, "cross_entropy", gn.optim.Adam(model, lr=LR), callbacks=callbacks)
    history = trainer.fit(train, val=val, epochs=epochs, batch_size=BATCH, verbose=0)
    result = trainer.evaluate(test)
    val_loss = history["val_loss"]
    return {**curves(history), "epochs_run": history.num_epochs,
            "best_epoch": history.epochs[int(np.argmin(val_loss))], "restored_epoch": history.restored_epoch,
            "test_loss": result["loss"], "test_accuracy": result["accuracy"]}


def figure(runs, path, seed):
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.3))
    full = next(r for r in runs if r["mode"] == "no early stopping" and r["seed"] == seed)
    stopped = next(r for r in runs if r["restored_epoch"] and r["seed"] == seed)
    epochs = np.arange(1, len(full["loss"]) + 1)
    ax.plot(epochs, full["loss"], label="training loss")
    ax.plot(epochs, full["val_loss"], label="validation loss")
    bx.plot(epochs, full["accuracy"], label="training accuracy")
    bx.plot(epochs, full["val_accuracy"], label="validation accuracy")
    for a in (ax, bx):
        a.axvline(stopped["restored_epoch"], color="green", ls="--",
                  label=f"best epoch {stopped['restored_epoch']} (restored)")
        a.axvline(stopped["epochs_run"], color="gray", ls=":", label=f"early stopping at epoch {stopped['epochs_run']}")
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("cross-entropy")
    bx.set_ylabel("accuracy")
    bx.set_ylim(0.8, 1.005)
    fig.suptitle(f"784-1024-1024-10 MLP on 1,000 MNIST images, Adam, trained 150 epochs (seed {seed})", fontsize=10)
    save_figure(fig, path)


def main(argv=None):
    args = parser(__doc__).parse_args(argv)
    data = small_mnist(args.quick)
    epochs, patience = (8, 2) if args.quick else (EPOCHS, PATIENCE)
    runs = []
    t0 = time.perf_counter()
    for seed in args.seeds:
        for mode, restore in MODES.items():
            r = run(data, restore, seed, epochs, patience)
            runs.append({"mode": mode, "seed": seed, **r})
            print(f"{mode:<38} seed {seed}: {r['epochs_run']} epochs (best {r['best_epoch']}), test loss "
                  f"{r['test_loss']:.4f}, test accuracy {r['test_accuracy']:.4f}", flush=True)
    summary = summarize(runs, [{"mode": mode} for mode in MODES], means=("epochs_run", "best_epoch", "test_loss"),
                        sums=())
    json_path, fig_path = paths(NAME, args)
    train, val, test = data
    record = {"name": NAME, "meta": metadata(args, widths=list(WIDTHS), lr=LR, batch_size=BATCH, epochs=epochs,
                                             patience=patience, train_size=len(train), val_size=len(val),
                                             test_size=len(test), seconds=round(time.perf_counter() - t0, 1)),
              "summary": summary, "runs": runs}
    write_json(json_path, record)
    figure(runs, fig_path, args.seeds[0])


def tables(record: dict) -> dict:
    """The page's tables from the JSON record (rendered into docs/early-stopping.md by render.py)."""
    rows = ["| training | epochs run | best epoch (lowest validation loss) | test loss | "
            "test accuracy (mean over seeds) | range |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in record["summary"]:
        rows.append(f"| {r['mode']} | {r['epochs_run']:.1f} | {r['best_epoch']:.1f} | {r['test_loss']:.4f} | "
                    f"{r['mean_test_accuracy']:.4f} | {r['min']:.4f}–{r['max']:.4f} |")
    per = ["| seed | " + " | ".join(record["summary"][i]["mode"] for i in range(len(record["summary"]))) + " |",
           "| ---: |" + " ---: |" * len(record["summary"])]
    for seed in record["meta"]["seeds"]:
        cells = []
        for s in record["summary"]:
            r = next(r for r in record["runs"] if r["seed"] == seed and r["mode"] == s["mode"])
            cells.append(f"{r['test_accuracy']:.4f} ({r['epochs_run']} epochs)")
        per.append(f"| {seed} | " + " | ".join(cells) + " |")
    return {"summary": "\n".join(rows), "per_seed": "\n".join(per)}


if __name__ == "__main__":
    main()
