"""Input scaling: does the scale of the input decide whether (and how fast) an MLP learns?

Claim (the lesson): inputs should be scaled — to [0, 1], to [−1, 1] or standardized to zero mean and
unit variance — before training; raw pixel values of 0..255 make the first layer's pre-activations
255 times larger, so a learning rate that suits scaled inputs makes plain SGD diverge, and even an
adaptive method starts far from where it should.

How: the same MLP (784-128-10, ReLU, He initialization, the same seed per run) trained on full
MNIST for a fixed budget of 2 epochs at batch 128 from each of four inputs: raw 0..255, x/255,
x/127.5 − 1, and standardized per pixel with the training set's mean and standard deviation
(gn.data.Standardizer; constant border pixels centred, not scaled). Two optimizers with their
usual learning rates: plain SGD (η = 0.05) and Adam (η = 10⁻³). Three seeds; the table gives the
mean test accuracy and its range over the seeds, the figure the training loss (mean over seeds,
every 25 steps). A non-finite gradient step is skipped by the optimizer (its default), and the
count of skipped steps is recorded, as is the share of hidden units that no test image activates
(a ReLU with a negative pre-activation for every input passes no gradient: a dead unit).

The lesson's floating-point point: adding numbers of very different magnitudes loses the small
one. The script records (a + b) − b for a = 10⁻¹⁰, b = 10¹⁰ and for a = 10⁻³, b = 10³, in float32
and float64.

    python experiments/input_scaling.py [--quick] [--seeds 0 1 2] [--out DIR]
"""
from __future__ import annotations

import time

import numpy as np

import gpunet as gn
from common import accuracy, loss_curve, metadata, mnist, parser, paths, pyplot, save_figure, summarize, write_json

NAME = "input_scaling"  # docs/results/input_scaling.json, docs/figures/input_scaling.png, docs/input-scaling.md
SCALINGS = ("raw 0..255", "[0, 1]", "[-1, 1]", "standardized")
OPTIMIZERS = {"SGD (lr 0.05)": lambda m: gn.optim.SGD(m, lr=0.05),
              "Adam (lr 1e-3)": lambda m: gn.optim.Adam(m, lr=1e-3)}
EPOCHS, BATCH, EVERY = 2, 128, 25


def scaled(train, test):
    """{scaling name: (train x, test x)} from raw 0..255 float32 pixels."""
    raw_tr, raw_te = train.x.astype(np.float32), test.x.astype(np.float32)
    std = gn.data.Standardizer().fit(raw_tr)
    return {"raw 0..255": (raw_tr, raw_te), "[0, 1]": (raw_tr / 255, raw_te / 255),
            "[-1, 1]": (raw_tr / 127.5 - 1, raw_te / 127.5 - 1),
            "standardized": (std.transform(raw_tr).astype(np.float32), std.transform(raw_te).astype(np.float32))}


def run(x, y, x_test, y_test, make_opt, seed: int, epochs: int) -> dict:
    gn.seed(seed)
    model = gn.Sequential(gn.Linear(784, 128, init="he_normal"), gn.ReLU(), gn.Linear(128, 10, init="he_normal"))
    model.need_input_grad = False
    opt = make_opt(model)
    curve = loss_curve(model, opt, x, y, epochs, BATCH, EVERY)
    test_accuracy = accuracy(model, x_test, y_test)  # leaves the model in eval mode
    hidden = gn.to_numpy(model[1](model[0](gn.to_device(x_test, model.device))))
    return {"curve": curve, "final_loss": curve[-1], "test_accuracy": test_accuracy,
            "skipped_steps": opt.skipped_steps,
            "dead_units": float((hidden.max(axis=0) <= 0).mean())}


def float_sums() -> list:
    out = []
    for a, b in ((1e-10, 1e10), (1e-3, 1e3)):
        for dtype in (np.float32, np.float64):
            got = (dtype(a) + dtype(b)) - dtype(b)
            out.append({"a": a, "b": b, "dtype": np.dtype(dtype).name, "(a + b) - b": float(got),
                        "relative error": abs(float(got) - a) / a})
    return out


def figure(runs, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, len(OPTIMIZERS), figsize=(11, 4), sharey=True)
    for ax, opt in zip(axes, OPTIMIZERS):
        for scaling in SCALINGS:
            curves = [r["curve"] for r in runs if r["optimizer"] == opt and r["scaling"] == scaling]
            mean = np.mean(np.array(curves, dtype=np.float64), axis=0)
            steps = EVERY * np.arange(1, len(mean) + 1)
            ax.plot(steps, mean, label=scaling)
        ax.set_title(opt)
        ax.set_xlabel("training step (batch 128)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"training loss (mean of {EVERY} steps, over seeds)")
    axes[0].legend()
    save_figure(fig, path)


def main(argv=None):
    args = parser(__doc__).parse_args(argv)
    train, test = mnist(args.quick, normalize=None)
    inputs = scaled(train, test)
    epochs = 1 if args.quick else EPOCHS
    runs = []
    t0 = time.perf_counter()
    for scaling in SCALINGS:
        x, x_test = inputs[scaling]
        for opt, make in OPTIMIZERS.items():
            for seed in args.seeds:
                r = run(x, train.y, x_test, test.y, make, seed, epochs)
                runs.append({"scaling": scaling, "optimizer": opt, "seed": seed, **r})
                print(f"{scaling:<13} {opt:<15} seed {seed}: test accuracy {r['test_accuracy']:.4f}, "
                      f"final loss {r['curve'][-1]:.4g}, skipped steps {r['skipped_steps']}", flush=True)
    json_path, fig_path = paths(NAME, args)
    record = {"name": NAME, "meta": metadata(args, epochs=epochs, batch_size=BATCH, train_size=len(train),
                                             test_size=len(test), seconds=round(time.perf_counter() - t0, 1)),
              "summary": summarize(runs, [{"optimizer": o, "scaling": sc} for o in OPTIMIZERS for sc in SCALINGS],
                                   means=("final_loss", "dead_units")), "float_sums": float_sums(), "runs": runs}
    write_json(json_path, record)
    figure(runs, fig_path)


if __name__ == "__main__":
    main()


def tables(record: dict) -> dict:
    """The page's tables from the JSON record (rendered into docs/input-scaling.md by render.py)."""
    rows = ["| optimizer | input | test accuracy (mean over seeds) | range | final training loss | "
            "dead hidden units | skipped steps |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in record["summary"]:
        rows.append(f"| {r['optimizer']} | {r['scaling']} | {r['mean_test_accuracy']:.4f} | "
                    f"{r['min']:.4f}–{r['max']:.4f} | {r['final_loss']:.4g} | {r['dead_units']:.0%} | "
                    f"{r['skipped_steps']} |")
    sums = ["| a | b | dtype | (a + b) − b | relative error |", "| ---: | ---: | --- | ---: | ---: |"]
    for r in record["float_sums"]:
        sums.append(f"| {r['a']:g} | {r['b']:g} | {r['dtype']} | {r['(a + b) - b']:.6g} | {r['relative error']:.3g} |")
    return {"summary": "\n".join(rows), "float_sums": "\n".join(sums)}
