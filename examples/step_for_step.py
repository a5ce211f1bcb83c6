"""How long do NumPy and torch train step for step? The char-LM of ``char_lm.py``,
trained by both from the same weights, measured two ways:

- free-running: each side follows its own trajectory, as ``char_lm.py`` does; the
  loss and weight differences start at float64 rounding (1e-16 relative) and grow;
- re-synchronised: at every step torch starts from NumPy's weights and carried
  state, so the difference measured is one step's alone.

Why the free-running difference grows. The two sides add the same numbers in a
different order (BLAS blocking, torch's fused kernels), so each step's result
differs in the last bits. Training then acts like any chaotic map: SGD with a
large learning rate on this loss has a positive largest Lyapunov exponent, so
two trajectories that start 1e-16 apart separate by a fixed factor per step on
average, until the difference is as large as the weights themselves. The
re-synchronised run shows that no step adds more than rounding: the growth is
the dynamics amplifying rounding, not a wrong gradient.

The script prints both at 100, 200, 300, 400, 600 and 800 steps (as far as ``--steps``
goes) and the growth rate per step where the run is long enough to measure one (the weight
difference must pass through three snapshots between rounding and the weights' size, which
takes a few hundred steps), and saves the curves.

    python examples/step_for_step.py --steps 800 --out examples_out
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from examples._common import (
    compare,
    init_params,
    legend,
    numpy_loss_and_grads,
    one_thread,
    parser,
    plain_log_ticks,
    pyplot,
    rnn_module,
    save_figure,
    step_axis,
    step_numbers,
    torch_loss,
    torch_model,
)
from examples.char_lm import RECIPE, corpus, sequential_batches, spec
from reference import train as nt

MARKS = (100, 200, 300, 400, 600, 800)
GROWTH_BAND = (1e-13, 1e-3)  # the weight difference's range where its growth rate is fitted


def resynchronised(sp, params: dict, batches, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Per step: |loss difference| and the largest gradient difference, torch started from NumPy's state."""
    import torch

    assert RECIPE.optimizer == "sgd" and RECIPE.momentum == 0, "re-synchronising needs a stateless optimizer"
    rnn, opt = rnn_module(sp), nt.SGD(lr=RECIPE.lr)
    loss_diff, grad_diff, hidden = [], [], None
    with one_thread():
        for step in range(steps):
            batch = batches(step)
            hx = nt.detach(hidden) if batch.carry else None
            loss, grads, hidden_next, _ = numpy_loss_and_grads(sp, rnn, params, batch, hx)
            model = torch_model(sp, params)  # torch from NumPy's weights ...
            t_hx = None if hx is None else tuple(torch.as_tensor(h) for h in hx)  # ... and NumPy's carried state
            logits, _ = model(torch.as_tensor(batch.input), t_hx)
            t_loss = torch_loss(sp, logits, batch.target)
            t_loss.backward()
            loss_diff.append(abs(loss - t_loss.item()))
            grad_diff.append(max(float(np.abs(grads[k] - p.grad.numpy()).max()) for k, p in model.named_parameters()))
            nt.clip_grad_norm_(grads, RECIPE.clip_norm)
            params, hidden = opt.step(params, grads), hidden_next
    return np.array(loss_diff), np.array(grad_diff)


def growth_per_step(weight_diff: np.ndarray, every: int) -> float | None:
    """The factor by which the weight difference grows per step, fitted (log-linear) where it
    lies in ``GROWTH_BAND``: above rounding, below saturation. None when fewer than three
    snapshots lie there: the run is too short to measure a rate."""
    steps = every * step_numbers(len(weight_diff))
    keep = (weight_diff > GROWTH_BAND[0]) & (weight_diff < GROWTH_BAND[1])
    if keep.sum() < 3:
        return None
    slope = np.polyfit(steps[keep], np.log(weight_diff[keep]), 1)[0]
    return float(np.exp(slope))


def growth_line(rate: float | None, weight_diff: np.ndarray, steps: int) -> str:
    """What the run says about the free-running weight difference, from its own numbers."""
    if rate is not None:
        return (f"the free-running weight difference grows by {rate:.3f}x per step on average "
                f"({rate ** 10:.1f}x per 10 steps) while between {GROWTH_BAND[0]:g} and {GROWTH_BAND[1]:g}")
    return (f"the free-running weight difference stayed at {weight_diff.max():.1e} or below over {steps} steps: "
            f"too few snapshots between {GROWTH_BAND[0]:g} and {GROWTH_BAND[1]:g} to measure a growth rate "
            f"(--steps 800 does)")


def run(steps: int = 800, seed: int = 0, out: Path | None = None) -> dict:
    train, _, vocab = corpus()
    sp = spec(len(vocab))
    params0 = init_params(sp, seed)
    every = 5 if steps >= 50 else 1  # weight snapshots: every step of a short run
    free = compare(sp, params0, sequential_batches(train), steps, RECIPE, snapshot_every=every)
    free_diff = np.abs(free["numpy"] - free["torch"])  # (steps,)
    weight_diff = np.array([max(float(np.abs(a[k] - b[k]).max()) for k in a)
                            for a, b in zip(free["snapshots_numpy"], free["snapshots_torch"])])  # (steps // every,)
    sync_loss, sync_grad = resynchronised(sp, dict(params0), sequential_batches(train), steps)
    rate = growth_per_step(weight_diff, every)
    print(f"char-LM, NumPy and torch from the same weights, SGD lr {RECIPE.lr}, clip {RECIPE.clip_norm}")
    print("  steps   largest |loss difference| so far      largest |gradient difference|")
    print("          free-running     re-synchronised      re-synchronised")
    for n in [m for m in MARKS if m <= steps] or [steps]:
        print(f"  {n:5d}   {free_diff[:n].max():14.2e}   {sync_loss[:n].max():15.2e}      {sync_grad[:n].max():15.2e}")
    print(f"largest step-by-step loss difference: free-running {free_diff.max():.3e}, "
          f"re-synchronised {sync_loss.max():.3e}")
    print(growth_line(rate, weight_diff, steps))
    result = {"numpy": free["numpy"], "torch": free["torch"], "free_diff": free_diff, "weight_diff": weight_diff,
              "sync_loss_diff": sync_loss, "sync_grad_diff": sync_grad, "growth_per_step": rate,
              "params_numpy": free["params_numpy"], "params_torch": free["params_torch"]}
    if out is not None:
        plot(Path(out) / "step_for_step.png", result, every)
    return result


def plot(path: Path, r: dict, every: int) -> None:
    """The three differences on a log axis. An exact 0 has no place on it: such steps are
    marked in a strip of their own under the panel, never drawn at an invented small value."""
    plt = pyplot()
    fig, (ax, zeros) = plt.subplots(2, 1, figsize=(10, 4.8), sharex=True, gridspec_kw={"height_ratios": [6, 1]})
    n = len(r["free_diff"])
    few = n <= 50  # a short run: a marker per point; a long one: lines, and the free-running loss on top
    curves = [  # label, x, values, style: the re-synchronised marks are hollow or small, so a line under them shows
        ("|loss difference|, free-running", step_numbers(n), r["free_diff"],
         dict(marker="." if few else "none", ms=5, zorder=3)),
        ("largest |weight difference|, free-running", every * step_numbers(len(r["weight_diff"])), r["weight_diff"],
         dict(marker="s" if few else "none", ms=4, ls="--", zorder=2)),
        ("|loss difference|, re-synchronised each step", step_numbers(n), r["sync_loss_diff"],
         dict(marker="o" if few else ".", ms=7 if few else 2, ls="none", mfc="none" if few else None, zorder=1)),
    ]
    for k, (label, x, y, style) in enumerate(curves):
        (line,) = ax.plot(x, np.where(y > 0, y, np.nan), lw=1.2, label=label, **style)  # zeros left out
        zeros.plot(x[y == 0], np.full(int((y == 0).sum()), k), ls="none", marker="o" if few else "|",
                   ms=5, mfc="none", color=line.get_color())
    ax.set_yscale("log")
    shown = np.concatenate([y[y > 0] for _, _, y, _ in curves])
    if shown.size:
        ax.set_ylim(shown.min() / 2, shown.max() * 2)  # a margin: no point on the frame
    plain_log_ticks(ax)
    ax.set_ylabel("|NumPy - torch|")
    zeros.set_ylim(-0.7, len(curves) - 0.3)
    zeros.set_yticks([])
    zeros.set_ylabel("= 0", rotation=0, ha="right", va="center")
    step_axis(zeros)
    rate = r["growth_per_step"]
    grows = f"grows {rate:.3f}x per step" if rate is not None else "stays at rounding (too few steps to see growth)"
    ax.set_title(f"char-LM, {n} steps: free-running {grows};\nre-synchronised, largest loss difference "
                 f"{r['sync_loss_diff'].max():.1e}", fontsize=10)
    legend(ax, title="steps with an exact 0: strip below")
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    args = parser(__doc__.splitlines()[0], steps=800).parse_args(argv)
    with one_thread():  # tiny models: one thread each for NumPy and torch
        return run(args.steps, args.seed, args.out)


if __name__ == "__main__":
    main()
