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
goes), the growth rate per step, and saves the two curves.

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
    numpy_loss_and_grads,
    one_thread,
    parser,
    pyplot,
    rnn_module,
    save_figure,
    torch_loss,
    torch_model,
)
from examples.char_lm import RECIPE, corpus, sequential_batches, spec
from reference import train as nt

MARKS = (100, 200, 300, 400, 600, 800)


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


def growth_per_step(weight_diff: np.ndarray, every: int) -> float:
    """The factor by which the weight difference grows per step, fitted (log-linear) where it
    lies between 1e-13 and 1e-3: above rounding, below saturation."""
    steps = every * np.arange(1, len(weight_diff) + 1)
    keep = (weight_diff > 1e-13) & (weight_diff < 1e-3)
    if keep.sum() < 3:
        return float("nan")
    slope = np.polyfit(steps[keep], np.log(weight_diff[keep]), 1)[0]
    return float(np.exp(slope))


def run(steps: int = 800, seed: int = 0, out: Path | None = None) -> dict:
    train, _, vocab = corpus()
    sp = spec(len(vocab))
    params0 = init_params(sp, seed)
    every = 5
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
    print(f"the free-running weight difference grows by {rate:.3f}x per step on average "
          f"({rate ** 10:.1f}x per 10 steps) while above rounding and below the weights' size")
    result = {"numpy": free["numpy"], "torch": free["torch"], "free_diff": free_diff, "weight_diff": weight_diff,
              "sync_loss_diff": sync_loss, "sync_grad_diff": sync_grad, "growth_per_step": rate,
              "params_numpy": free["params_numpy"], "params_torch": free["params_torch"]}
    if out is not None:
        plot(Path(out) / "step_for_step.png", result, every)
    return result


def plot(path: Path, r: dict, every: int) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    floor = 1e-18  # exact agreement drawn at the bottom of the log axis
    ax.semilogy(np.maximum(r["free_diff"], floor), lw=1, label="|loss difference|, free-running")
    ax.semilogy(every * np.arange(1, len(r["weight_diff"]) + 1), np.maximum(r["weight_diff"], floor), lw=1,
                label="largest |weight difference|, free-running")
    ax.semilogy(np.maximum(r["sync_loss_diff"], floor), ".", ms=2, label="|loss difference|, re-synchronised each step")
    ax.set_xlabel("step")
    ax.set_ylabel("NumPy - torch")
    ax.set_title("char-LM: rounding amplified by chaotic training, not a wrong step")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    args = parser(__doc__.splitlines()[0], steps=800).parse_args(argv)
    with one_thread():  # tiny models: one thread each for NumPy and torch
        return run(args.steps, args.seed, args.out)


if __name__ == "__main__":
    main()
