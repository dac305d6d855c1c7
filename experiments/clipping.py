"""Vanishing and exploding gradients, and gradient clipping: what happens to the gradient in a deep
network whose weights are too small or too large, and does clipping rescue a training run whose
learning rate is too large?

Claim (the lesson): backpropagation multiplies the gradient by every layer's weights on its way
down, so in a deep network it shrinks layer after layer when ‖W‖ is too small (vanishing: the
first layers stop learning) and grows when ‖W‖ is too large (exploding: one step throws the
weights far off). Clipping bounds the step: by global norm, g ← g·θ/‖g‖ when ‖g‖ > θ (the
direction kept), or by value, g ← clamp(g, −c, c) per element; a run that diverges without it
then trains.

How, part 1: a 20-layer ReLU MLP (784 → 256, eighteen 256 → 256, 256 → 10) initialized He-normal
with its standard deviation scaled by a gain of 0.5 (too small), 1 (He) and 2 (too large), from
seed 0; 1,000 MNIST test images forward, the cross-entropy's gradient back
(gn.diagnostics.signal_propagation): the norm of every Linear layer's weight-and-bias gradient.

How, part 2: a 10-layer ReLU MLP (784 → 256, eight 256 → 256, 256 → 10) trained on the full MNIST
for 2 epochs with SGD and momentum (γ = 0.9, batch 128) in two settings that diverge without
clipping: (A) He weights at η = 0.3, three times η = 0.1 (shown for reference);
(B) weights 1.5× He's — an exploding network — at an ordinary η = 0.01. Each without clipping,
with ``clip_norm`` θ ∈ {1, 10} and with ``clip_value`` c ∈ {0.1, 0.01}; three seeds. A step whose
gradient is not finite is skipped (the optimizer's default) and counted; the figure gives the
training loss every 25 steps (mean over seeds; the line stops where any seed's loss stops being
finite, and the legend counts the seeds that diverged), the table the test accuracy on the 10,000
test images.

    python experiments/clipping.py [--quick] [--seeds 0 1 2] [--out DIR]
"""
from __future__ import annotations

import time

import numpy as np

import gpunet as gn
from common import accuracy, loss_curve, metadata, mlp, mnist, parser, paths, pyplot, save_figure, summarize, write_json

NAME = "clipping"  # docs/results/clipping.json, docs/figures/clipping.png, docs/clipping.md
DEPTH, WIDTH, GAINS = 20, 256, (0.5, 1.0, 2.0)
TRAIN_DEPTH, BATCH, MOMENTUM, EPOCHS, EVERY = 10, 128, 0.9, 2, 25
# (setting, gain, η, clipping): setting A — He weights at a learning rate 3× one that trains;
# setting B — weights 1.5× He's (an exploding network) at an ordinary learning rate
RUNS = [("A", 1.0, 0.1, {}), ("A", 1.0, 0.3, {}), ("A", 1.0, 0.3, {"clip_norm": 1.0}),
        ("A", 1.0, 0.3, {"clip_norm": 10.0}), ("A", 1.0, 0.3, {"clip_value": 0.1}),
        ("A", 1.0, 0.3, {"clip_value": 0.01}),
        ("B", 1.5, 0.01, {}), ("B", 1.5, 0.01, {"clip_norm": 1.0}), ("B", 1.5, 0.01, {"clip_norm": 10.0}),
        ("B", 1.5, 0.01, {"clip_value": 0.1}), ("B", 1.5, 0.01, {"clip_value": 0.01})]


def deep(depth: int, gain: float):
    return mlp([WIDTH] * (depth - 1), init=gn.init.get("he_normal", gain=gain))


def clip_label(clip: dict) -> str:
    if "clip_norm" in clip:
        return f"clip_norm θ = {clip['clip_norm']:g}"
    if "clip_value" in clip:
        return f"clip_value c = {clip['clip_value']:g}"
    return "no clipping"


def propagation(x, y) -> list:
    out = []
    for gain in GAINS:
        gn.seed(0)
        model = deep(DEPTH, gain)
        report = gn.diagnostics.signal_propagation(model, x, y, loss=gn.losses.CrossEntropy())
        out.append({"gain": gain, "grad_norm": report.column("grad_norm", "Linear"),
                    "act_std": report.column("act_std", "ReLU")})
    return out


def train(data, gain: float, lr: float, clip: dict, seed: int, epochs: int) -> dict:
    train_set, test_set = data
    gn.seed(seed)
    model = deep(TRAIN_DEPTH, gain)
    model.need_input_grad = False
    opt = gn.optim.SGD(model, lr=lr, momentum=MOMENTUM, **clip)
    norms = []
    curve = loss_curve(model, opt, train_set.x, train_set.y, epochs, BATCH, EVERY, grad_norms=norms)
    return {"curve": curve, "grad_norms": norms, "final_loss": curve[-1],
            "test_accuracy": accuracy(model, test_set.x, test_set.y), "skipped_steps": opt.skipped_steps,
            "steps": opt.iterations}


def figure(record, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for r in record["signal"]:
        g = np.array(r["grad_norm"], dtype=np.float64)
        axes[0].plot(np.arange(1, len(g) + 1), g, marker=".", label=f"gain {r['gain']:g} × He")
    axes[0].set(yscale="log", xlabel="Linear layer (1 = first)", ylabel="‖∂L/∂W‖ of the layer",
                title=f"gradient norm per layer, {DEPTH}-layer ReLU MLP at initialization")
    for ax, setting in zip(axes[1:], ("A", "B")):
        for label in dict.fromkeys(r["label"] for r in record["runs"] if r["setting"] == setting):
            curves = np.array([r["curve"] for r in record["runs"] if r["label"] == label], dtype=np.float64)
            mean = curves.mean(axis=0)  # NaN from the window where any seed's loss is no longer finite
            diverged = int((~np.isfinite(curves[:, -1])).sum())
            name = label.split(": ", 1)[1] + (f" ({diverged} of {len(curves)} seeds diverged)" if diverged else "")
            ax.plot(EVERY * np.arange(1, len(mean) + 1), mean, label=name)
        titles = {"A": "A: He weights, SGD η = 0.3 (and η = 0.1 for reference)",
                  "B": "B: weights 1.5× He, SGD η = 0.01"}
        ax.set(yscale="log", xlabel="training step (batch 128)", ylabel="training loss (mean of 25 steps)",
               title=titles[setting])
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv=None):
    args = parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    data = mnist(args.quick)
    signal = propagation(data[1].x[:1000], data[1].y[:1000])
    for r in signal:
        print(f"gain {r['gain']:g}: gradient norm, layer {DEPTH} {r['grad_norm'][-1]:.3g} -> layer 1 "
              f"{r['grad_norm'][0]:.3g}", flush=True)
    runs = []
    epochs = 1 if args.quick else EPOCHS
    for setting, gain, lr, clip in RUNS:
        label = f"{setting}: η = {lr:g}, {clip_label(clip)}"
        for seed in args.seeds:
            with np.errstate(all="ignore"):  # the runs that diverge overflow on the way, as they should
                r = train(data, gain, lr, clip, seed, epochs)
            runs.append({"setting": setting, "gain": gain, "lr": lr, "clipping": clip_label(clip), "label": label,
                         "seed": seed, **r})
            print(f"{label:<36} seed {seed}: test accuracy {r['test_accuracy']:.4f}, final loss {r['final_loss']:.4g}, "
                  f"skipped steps {r['skipped_steps']} of {r['steps']}", flush=True)
    json_path, fig_path = paths(NAME, args)
    record = {"name": NAME, "meta": metadata(args, depth=DEPTH, width=WIDTH, train_depth=TRAIN_DEPTH, epochs=epochs,
                                             batch_size=BATCH, momentum=MOMENTUM, train_size=len(data[0]),
                                             test_size=len(data[1]), seconds=round(time.perf_counter() - t0, 1)),
              "signal": signal,
              "summary": summarize(runs, [{"setting": s, "label": f"{s}: η = {lr:g}, {clip_label(c)}"}
                                          for s, _, lr, c in RUNS]),
              "runs": runs}
    write_json(json_path, record)
    figure(record, fig_path)


def tables(record: dict) -> dict:
    """The page's tables from the JSON record (rendered into docs/clipping.md by render.py)."""
    depth = record["meta"]["depth"]
    sig = [f"| weights | gradient norm, layer {depth} (last) | layer {depth // 2} | layer 1 (first) | "
           "first / last |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in record["signal"]:
        g = r["grad_norm"]
        sig.append(f"| gain {r['gain']:g} × He | {g[-1]:.3g} | {g[depth // 2 - 1]:.3g} | {g[0]:.3g} | "
                   f"{g[0] / g[-1]:.3g} |")
    rows = ["| setting | training | test accuracy (mean over seeds) | range | final training loss | "
            "skipped steps (all seeds) |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in record["summary"]:
        rows.append(f"| {r['setting']} | {r['label'].split(': ', 1)[1]} | {r['mean_test_accuracy']:.4f} | "
                    f"{r['min']:.4f}–{r['max']:.4f} | {r['final_loss']:.4g} | {r['skipped_steps']} |")
    return {"signal": "\n".join(sig), "training": "\n".join(rows)}


if __name__ == "__main__":
    main()
