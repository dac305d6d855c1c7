"""Model averaging: does averaging several models' predictions, or one run's weights over time, give
a better and steadier model than one network?

Claim (the lesson): independently trained networks make partly independent errors, so the mean of
their predicted probabilities is more accurate than a typical member and, above all, does not
depend on the luck of one seed ("averaging reduces variance"). Averaging the weights of one run
— an exponential moving average w̄ ← βw̄ + (1 − β)w after every step (EMA), or the mean of the
weights at the end of each of the last epochs (stochastic weight averaging, SWA) — gets part of
that gain for the price of one model.

How: five seeds of the same MLP (784-256-256-10, ReLU, He initialization) trained on the full
MNIST for 10 epochs with SGD and momentum (η = 0.05, γ = 0.9, batch 128, a constant η, so the
last weights still move). Each seed trains three times: plainly, with ``EMA(0.999)`` (the model
ends with w̄) and with ``SWA(start_epoch=5)`` (the mean of the weights after epochs 6 to 10). The
ensemble (``gn.train.Ensemble``) averages the five plain members' softmax probabilities; every
ensemble of k of them (k = 1 … 5, each subset) shows how the accuracy and its spread change with k.
Test accuracy and loss on the 10,000 test images: each member's, their mean and range, and the
ensemble's.

    python experiments/model_averaging.py [--quick] [--seeds 0 1 2 3 4] [--out DIR]
"""
from __future__ import annotations

import itertools
import time

import numpy as np

import gpunet as gn
from common import metadata, mlp, mnist, parser, paths, pyplot, save_figure, summarize, write_json

NAME = "model_averaging"  # docs/results/model_averaging.json, docs/figures/model_averaging.png, docs/model-averaging.md
WIDTHS, EPOCHS, BATCH, LR, MOMENTUM, EMA_DECAY, SWA_START = (256, 256), 10, 128, 0.05, 0.9, 0.999, 5
VARIANTS = {"plain": lambda epochs: [],
            "EMA (β = 0.999)": lambda epochs: [gn.callbacks.EMA(EMA_DECAY)],
            "SWA (last half of the epochs)": lambda epochs: [gn.callbacks.SWA(start_epoch=epochs // 2)]}


def scores(model, test) -> dict:
    """Test accuracy and cross-entropy of ``model`` (eval mode): logits, or an ensemble's log p."""
    model.eval()
    log_p = [gn.to_numpy(model(xb)).astype(np.float64) for xb, _ in gn.data.batches(test.x, test.y, 1000,
                                                                                        shuffle=False)]
    z = np.concatenate(log_p)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # the identity on an ensemble's log p
    y = gn.to_numpy(test.y)
    return {"test_accuracy": float((log_p.argmax(axis=1) == y).mean()),
            "test_loss": float(-log_p[np.arange(len(y)), y].mean())}


def run(data, callbacks, seed: int, epochs: int):
    train, test = data
    gn.seed(seed)
    model = mlp(WIDTHS)
    model.need_input_grad = False
    trainer = gn.Trainer(model, "cross_entropy", gn.optim.SGD(model, lr=LR, momentum=MOMENTUM), callbacks=callbacks)
    history = trainer.fit(train, val=test, epochs=epochs, batch_size=BATCH, verbose=0)
    return model, {**scores(model, test), "val_accuracy": list(history["val_accuracy"])}


def figure(record, path):
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    names = list(VARIANTS)
    for i, name in enumerate(names):
        acc = [r["test_accuracy"] for r in record["runs"] if r["variant"] == name]
        ax.scatter(np.full(len(acc), i) + np.linspace(-0.08, 0.08, len(acc)), acc, label=f"{name}: each seed")
    ax.axhline(record["ensemble"]["test_accuracy"], color="black", ls="--",
               label=f"ensemble of the {len(record['meta']['seeds'])} plain members")
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    k = [r["members"] for r in record["by_size"]]
    bx.errorbar(k, [r["mean_test_accuracy"] for r in record["by_size"]], yerr=[r["std"] for r in record["by_size"]],
                marker="o", capsize=4)
    bx.fill_between(k, [r["min"] for r in record["by_size"]], [r["max"] for r in record["by_size"]], alpha=0.2,
                    label="range over the subsets")
    bx.set(xlabel="plain members in the ensemble", ylabel="test accuracy", xticks=k,
           title="every ensemble of k members: mean ± std")
    bx.legend(fontsize=8)
    for a in (ax, bx):
        a.grid(alpha=0.3, axis="y")
    save_figure(fig, path)


def main(argv=None):
    args = parser(__doc__, seeds=(0, 1, 2, 3, 4)).parse_args(argv)
    data = mnist(args.quick)
    epochs = 2 if args.quick else EPOCHS
    runs, members = [], []
    t0 = time.perf_counter()
    for seed in args.seeds:
        for name, make in VARIANTS.items():
            model, r = run(data, make(epochs), seed, epochs)
            runs.append({"variant": name, "seed": seed, **r})
            if name == "plain":
                members.append(model)
            print(f"seed {seed} {name:<30}: test accuracy {r['test_accuracy']:.4f}, test loss {r['test_loss']:.4f}",
                  flush=True)
    ensemble = scores(gn.train.Ensemble(members), data[1])  # log of the mean of the members' softmax
    print(f"ensemble of {len(members)}: test accuracy {ensemble['test_accuracy']:.4f}, "
          f"test loss {ensemble['test_loss']:.4f}")
    by_size = []  # every ensemble of k of the plain members: how the accuracy and its spread go with k
    for k in range(1, len(members) + 1):
        acc = [scores(gn.train.Ensemble([members[i] for i in subset]), data[1])["test_accuracy"]
               for subset in itertools.combinations(range(len(members)), k)]
        by_size.append({"members": k, "ensembles": len(acc), "mean_test_accuracy": float(np.mean(acc)),
                        "std": float(np.std(acc)), "min": float(np.min(acc)), "max": float(np.max(acc))})
    summary = summarize(runs, [{"variant": name} for name in VARIANTS], means=("test_loss",), sums=(), std=True)
    json_path, fig_path = paths(NAME, args)
    record = {"name": NAME, "meta": metadata(args, widths=list(WIDTHS), epochs=epochs, batch_size=BATCH, lr=LR,
                                             momentum=MOMENTUM, ema_decay=EMA_DECAY, swa_start_epoch=epochs // 2,
                                             train_size=len(data[0]), test_size=len(data[1]),
                                             seconds=round(time.perf_counter() - t0, 1)),
              "summary": summary, "ensemble": ensemble, "by_size": by_size, "runs": runs}
    write_json(json_path, record)
    figure(record, fig_path)


def tables(record: dict) -> dict:
    """The page's tables from the JSON record (rendered into docs/model-averaging.md by render.py)."""
    rows = ["| model | test accuracy (mean over seeds) | standard deviation | range | test loss |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for r in record["summary"]:
        rows.append(f"| {r['variant']}, one per seed | {r['mean_test_accuracy']:.4f} | {r['std']:.4f} | "
                    f"{r['min']:.4f}–{r['max']:.4f} | {r['test_loss']:.4f} |")
    e = record["ensemble"]
    rows.append(f"| ensemble of the {len(record['meta']['seeds'])} plain members | {e['test_accuracy']:.4f} | | | "
                f"{e['test_loss']:.4f} |")
    seeds = record["meta"]["seeds"]
    per = ["| seed | " + " | ".join(r["variant"] for r in record["summary"]) + " |",
           "| ---: |" + " ---: |" * len(record["summary"])]
    acc = {(r["seed"], r["variant"]): r["test_accuracy"] for r in record["runs"]}
    for seed in seeds:
        per.append(f"| {seed} | " + " | ".join(f"{acc[seed, s['variant']]:.4f}" for s in record["summary"]) + " |")
    size = ["| members in the ensemble | ensembles (every subset of the seeds) | test accuracy, mean | "
            "standard deviation | range |", "| ---: | ---: | ---: | ---: | ---: |"]
    for r in record["by_size"]:
        size.append(f"| {r['members']} | {r['ensembles']} | {r['mean_test_accuracy']:.4f} | {r['std']:.4f} | "
                    f"{r['min']:.4f}–{r['max']:.4f} |")
    return {"summary": "\n".join(rows), "per_seed": "\n".join(per), "by_size": "\n".join(size)}


if __name__ == "__main__":
    main()
