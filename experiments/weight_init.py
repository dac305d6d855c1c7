"""Weight initialization: does the scale of the initial weights decide whether a deep network's
signal and gradient survive, and whether it trains?

Claim (the lesson): weights drawn with a fixed scale, N(0, 1) or a uniform one, make a deep
network's activations explode or vanish layer after layer; scaling the draw by the fan-in keeps
them steady — N(0, 1/n) and LeCun (std 1/√n_in) for tanh, Xavier/Glorot (std √(2/(n_in + n_out)))
for tanh and sigmoid, He (std √(2/n_in)) for ReLU — and a network initialized that way trains
where the others do not.

How, part 1 (signal propagation): a stack of 20 Linear layers (784 → 256, then 256 → 256) with a
tanh or a ReLU after each, biases zero, initialized by each scheme from seed 0. 1,000 MNIST
test images go forward and a standard-normal gradient comes back at the output
(gn.diagnostics.signal_propagation): the standard deviation of every activation layer's output and
of the gradient at every Linear layer's output.

How, part 2 (training): a 10-layer MLP (784 → 128, eight 128 → 128, 128 → 10) with tanh or ReLU,
initialized by each scheme, trained on the full MNIST for one epoch with plain SGD (η = 0.05,
batch 128) from three seeds; test accuracy on the 10,000 test images. A non-finite gradient step
is skipped (the optimizer's default) and counted.

    python experiments/weight_init.py [--quick] [--seeds 0 1 2] [--out DIR]
"""
from __future__ import annotations

import time

import numpy as np

import gpunet as gn
from common import accuracy, metadata, mnist, parser, paths, pyplot, save_figure, summarize, write_json

NAME = "weight_init"  # docs/results/weight_init.json, docs/figures/weight_init.png, docs/weight-init.md
INITS = {"N(0, 1)": gn.init.get("gaussian", std=1.0), "U(±1/√n)": "uniform", "N(0, 1/n)": "gaussian",
         "LeCun": "lecun_normal", "Glorot": "glorot_normal", "He": "he_normal"}
ACTIVATIONS = {"tanh": gn.Tanh, "relu": gn.ReLU}
DEPTH, WIDTH = 20, 256
TRAIN_DEPTH, TRAIN_WIDTH, BATCH, LR = 10, 128, 128, 0.05


def stack(init, activation, depth: int, width: int, n_out: int | None = None):
    layers, n_in = [], 784
    for i in range(depth):
        out = n_out if (n_out is not None and i == depth - 1) else width
        layers.append(gn.Linear(n_in, out, init=init))
        if i < depth - 1 or n_out is None:
            layers.append(ACTIVATIONS[activation]())
        n_in = out
    return gn.Sequential(*layers)


def propagation(x) -> list:
    out = []
    for name, init in INITS.items():
        for act in ACTIVATIONS:
            gn.seed(0)
            model = stack(init, act, DEPTH, WIDTH)
            report = gn.diagnostics.signal_propagation(model, x, seed=0)
            out.append({"init": name, "activation": act,
                        "act_std": report.column("act_std", ACTIVATIONS[act].__name__),
                        "grad_std": report.column("grad_std", "Linear")})
    return out


def train(init, act, data, seed: int, epochs: int) -> dict:
    train_set, test_set = data
    gn.seed(seed)
    model = stack(init, act, TRAIN_DEPTH, TRAIN_WIDTH, n_out=10)
    model.need_input_grad = False
    opt = gn.optim.SGD(model, lr=LR)
    loss_fn = gn.losses.CrossEntropy()
    losses = []
    for _ in range(epochs):
        for xb, yb in gn.data.batches(train_set.x, train_set.y, BATCH, shuffle=True):
            model.train()
            losses.append(loss_fn(model(xb), yb))
            model.backward(loss_fn.backward())
            opt.step()
    tail = gn.to_numpy(gn.xp.stack(losses[-50:])).astype(np.float64)
    return {"test_accuracy": accuracy(model, test_set.x, test_set.y), "final_loss": float(np.mean(tail)),
            "skipped_steps": opt.skipped_steps}


def figure(signal, path):
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    for row, act in enumerate(ACTIVATIONS):
        for col, key in enumerate(("act_std", "grad_std")):
            ax = axes[row, col]
            for r in signal:
                if r["activation"] == act:
                    values = np.array(r[key], dtype=np.float64)
                    ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=r["init"])
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            what = ("activation std (after each tanh/ReLU)" if key == "act_std"
                    else "gradient std (at each Linear's output)")
            ax.set_title(f"{act}: {what}", fontsize=10)
            if row == 1:
                ax.set_xlabel("layer")
    axes[0, 0].legend(fontsize=8)
    save_figure(fig, path)


def main(argv=None):
    args = parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    data = mnist(args.quick)
    signal = propagation(data[1].x[:1000])
    for r in signal:
        print(f"{r['init']:<10} {r['activation']:<5} act std layer 1 {r['act_std'][0]:.3g} -> {DEPTH} "
              f"{r['act_std'][-1]:.3g}; grad std layer {DEPTH} {r['grad_std'][-1]:.3g} -> 1 {r['grad_std'][0]:.3g}",
              flush=True)
    runs = []
    for act in ACTIVATIONS:
        for name, init in INITS.items():
            for seed in args.seeds:
                r = train(init, act, data, seed, epochs=1)
                runs.append({"init": name, "activation": act, "seed": seed, **r})
                print(f"{name:<10} {act:<5} seed {seed}: test accuracy {r['test_accuracy']:.4f}, final loss "
                      f"{r['final_loss']:.4g}, skipped steps {r['skipped_steps']}", flush=True)
    json_path, fig_path = paths(NAME, args)
    record = {"name": NAME, "meta": metadata(args, depth=DEPTH, width=WIDTH, train_depth=TRAIN_DEPTH,
                                             train_width=TRAIN_WIDTH, batch_size=BATCH, lr=LR, epochs=1,
                                             train_size=len(data[0]), test_size=len(data[1]),
                                             seconds=round(time.perf_counter() - t0, 1)),
              "signal": signal,
              "summary": summarize(runs, [{"activation": a, "init": i} for a in ACTIVATIONS for i in INITS]),
              "runs": runs}
    write_json(json_path, record)
    figure(signal, fig_path)


def tables(record: dict) -> dict:
    """The page's tables from the JSON record (rendered into docs/weight-init.md by render.py)."""
    depth = record["meta"]["depth"]
    sig = [f"| activation | initialization | activation std, layer 1 | layer {depth // 2} | layer {depth} | "
           f"gradient std, layer {depth} | layer 1 |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in record["signal"]:
        a, g = r["act_std"], r["grad_std"]
        sig.append(f"| {r['activation']} | {r['init']} | {a[0]:.3g} | {a[depth // 2 - 1]:.3g} | {a[-1]:.3g} | "
                   f"{g[-1]:.3g} | {g[0]:.3g} |")
    tr = ["| activation | initialization | test accuracy (mean over seeds) | range | final training loss | "
          "skipped steps |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in record["summary"]:
        tr.append(f"| {r['activation']} | {r['init']} | {r['mean_test_accuracy']:.4f} | "
                  f"{r['min']:.4f}–{r['max']:.4f} | "
                  f"{r['final_loss']:.4g} | {r['skipped_steps']} |")
    return {"signal": "\n".join(sig), "training": "\n".join(tr)}


if __name__ == "__main__":
    main()
