"""Why gates matter: the adding problem, whose answer depends on inputs up to 50
steps back, learned (or not) by an RNN, a GRU and an LSTM.

Adding problem (Hochreiter & Schmidhuber 1997, T = 50): each step carries a
random value in [0, 1] and a marker; exactly two steps are marked, one in each
half, and the target is the sum of their values (MSE, read from h_n[-1]).
Always answering the mean, 1.0, gives MSE = Var(U1 + U2) = 1/6 = 0.167, the
chance level drawn on the plot.

What it shows (seed 0, the default 800 steps, Adam lr 1e-2, clipping at 1):

- the plain RNN never leaves chance: the gradient from the last step reaches
  the first marker through up to 50 step Jacobians that each shrink it (about
  0.68x per step at torch's init, ``gradient_flow.py``);
- the GRU solves it at step 235 (the first step at which the mean loss over 25
  steps is below 10% of chance): its update gate can learn to carry h unchanged;
- the LSTM at torch's init solves it late, at step 707: its forget gate starts
  at sigmoid(~0) = 0.5, so its cell halves every step until f has learned to
  open; with the forget bias raised by 3 (f = 0.95 from the start, the usual
  remedy) it solves it at step 462.

Gates are not magic everywhere: on a plain recall task (name the first of 30
tokens) the same plain RNN learned at step 238 and the GRU at step 554 (seed 0).
Recall needs the first token kept, nothing more; the adding problem needs a value
kept for 25 steps and then combined with a second one, which is where the
RNN's shrinking gradient leaves it with nothing to learn from.

Each model is trained twice, NumPy and torch, from the same weights; the script
prints the largest step-by-step loss difference and a verdict per model, computed from
its losses (solved, or where the mean loss of the last steps stands against chance),
and saves the four loss curves with the chance level.

    python examples/long_range.py --steps 800 --out examples_out
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from examples._common import (
    Batch,
    Recipe,
    Spec,
    compare,
    init_params,
    legend,
    one_thread,
    parser,
    plain_log_ticks,
    plot_pair,
    pyplot,
    report,
    save_figure,
    step_axis,
)

MODELS = ("RNN", "GRU", "LSTM", "LSTM, forget bias +3")
ADD_T, BATCH, HIDDEN = 50, 32, 32
RECIPE = Recipe(optimizer="adam", lr=1e-2, clip_norm=1.0)
CHANCE = 1 / 6  # MSE of always answering the mean sum, 1.0


def adding_batch(step: int, seed: int = 0) -> Batch:
    """x (T, B, 2): (value, marker); target (B,): the sum of the two marked values."""
    rng = np.random.default_rng([seed, 1, step])
    values = rng.uniform(0, 1, (ADD_T, BATCH))  # (T, B)
    first = rng.integers(0, ADD_T // 2, BATCH)  # (B,)
    second = rng.integers(ADD_T // 2, ADD_T, BATCH)  # (B,)
    marker = np.zeros((ADD_T, BATCH))  # (T, B)
    marker[first, np.arange(BATCH)] = 1
    marker[second, np.arange(BATCH)] = 1
    target = (values * marker).sum(0)  # (B,)
    return Batch(np.stack([values, marker], -1), target)


def spec(cell: str) -> Spec:
    return Spec(cell, 2, HIDDEN, 1, head="last", loss="mse")


def initial_params(model: str, sp: Spec, seed: int) -> dict:
    """torch's init, or with the LSTM's forget-gate bias raised (rows H:2H of bias_hh: gate order i, f, g, o)."""
    params = init_params(sp, seed)
    if model.endswith("forget bias +3"):
        bias = params["rnn.bias_hh_l0"].copy()  # (4H,)
        bias[HIDDEN:2 * HIDDEN] += 3.0
        params["rnn.bias_hh_l0"] = bias
    return params


def verdict(losses: np.ndarray, chance: float, window: int = 25) -> str:
    """When the task was solved: the first step at which the mean loss over the last
    ``window`` steps fell below 10% of chance; else the mean loss of the last ``window``
    steps (all of them in a shorter run) against chance: below it, at it (within 10%), above it."""
    window = min(window, len(losses))
    means = np.convolve(losses, np.ones(window) / window, mode="valid")  # (steps - window + 1,)
    below = np.flatnonzero(means < 0.1 * chance)
    if below.size:
        return f"solved at step {below[0] + window} (mean loss over {window} steps < 10% of chance {chance:.3f})"
    last = float(means[-1])
    where = ("below chance, learning" if last < 0.9 * chance else "above chance" if last > 1.1 * chance
             else "at chance")
    return (f"not solved in {len(losses)} steps: mean loss over the last {window} steps {last:.3f}, "
            f"{where} ({chance:.3f})")


def run(steps: int = 800, seed: int = 0, out: Path | None = None, models=MODELS) -> dict:
    results = {}
    for model in models:
        sp = spec(model.split(",")[0])
        r = compare(sp, initial_params(model, sp, seed), lambda s: adding_batch(s, seed), steps, RECIPE)
        r["verdict"] = verdict(r["numpy"], CHANCE)
        results[model] = r
        report(f"adding problem ({model})", r, steps)
    print(f"largest loss difference over all models, {steps} steps: "
          f"{max(r['max_loss_diff'] for r in results.values()):.3e}")
    for model, r in results.items():
        print(f"{model:22s} {r['verdict']}")
    if out is not None:
        plot(Path(out) / "long_range.png", results)
    return results


def plot(path: Path, results: dict) -> None:
    """Every curve whole, on a log axis (the losses span 1e-3 to above 1), the chance level
    drawn, and a title that says only what these runs did."""
    fig, ax = pyplot().subplots(figsize=(9, 4.5))
    for model, r in results.items():
        plot_pair(ax, r["numpy"], r["torch"], model, lw=1)
    ax.axhline(CHANCE, color="k", ls="--", lw=1, label=f"chance {CHANCE:.3f} (always answer 1.0)")
    ax.set_yscale("log")
    plain_log_ticks(ax)
    solved = [m for m, r in results.items() if r["verdict"].startswith("solved")]
    steps = len(next(iter(results.values()))["numpy"])
    ax.set_title(f"adding problem, T = {ADD_T} (MSE), {steps} steps: "
                 + (f"solved by {', '.join(solved)}" if solved else "none solved"), fontsize=10)
    step_axis(ax)
    ax.set_ylabel("loss (log scale)")
    legend(ax)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    args = parser(__doc__.splitlines()[0], steps=800).parse_args(argv)
    with one_thread():  # tiny models: one thread each for NumPy and torch
        return run(args.steps, args.seed, args.out)


if __name__ == "__main__":
    main()
