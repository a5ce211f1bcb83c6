"""Why gates matter: the adding problem and the copy task, RNN vs GRU vs LSTM.

Adding problem (Hochreiter & Schmidhuber 1997): each step carries a random value
in [0, 1] and a marker; exactly two steps are marked, one in each half of the
sequence, and the target is the sum of their values (regression, MSE, read
from h_n[-1]). Predicting the mean (1.0) gives MSE about 0.167.

Copy task: K symbols, a stretch of blanks, a delimiter, then the model must
output the K symbols again; only those K outputs are scored (cross-entropy
with ignore_index = -100 elsewhere). Guessing gives log(8) = 2.08.

Each cell is trained twice, NumPy and torch, from the same weights; the script
prints the largest step-by-step loss difference per cell and task and saves a
plot with both tasks.

    python examples/long_range.py --steps 200 --out examples_out
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from examples._common import Batch, Recipe, Spec, compare, init_params, parse_args, report

CELLS = ("RNN", "GRU", "LSTM")
ADD_T, COPY_K, COPY_DELAY, BATCH, HIDDEN = 30, 4, 10, 32, 32
RECIPE = Recipe(optimizer="adam", lr=1e-2, clip_norm=1.0)
BLANK, DELIM, SYMBOLS = 0, 9, 8  # symbols are 1..8


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


def copy_batch(step: int, seed: int = 0) -> Batch:
    """tokens (T, B) with T = 2K + delay; targets (T, B), -100 except on the last K steps."""
    rng = np.random.default_rng([seed, 2, step])
    T = 2 * COPY_K + COPY_DELAY
    symbols = rng.integers(1, SYMBOLS + 1, (COPY_K, BATCH))  # (K, B)
    x = np.full((T, BATCH), BLANK)  # (T, B)
    x[:COPY_K] = symbols
    x[COPY_K + COPY_DELAY - 1] = DELIM
    y = np.full((T, BATCH), -100)  # (T, B) not scored
    y[-COPY_K:] = symbols
    return Batch(x, y)


def tasks(cell: str) -> dict:
    return {
        "adding": (Spec(cell, 2, HIDDEN, 1, head="last", loss="mse"), adding_batch),
        "copy": (Spec(cell, SYMBOLS + 2, HIDDEN, SYMBOLS + 2, embedding_dim=8), copy_batch),
    }


def run(steps: int = 200, seed: int = 0, out: Path | None = None, cells=CELLS, task_names=("adding", "copy")) -> dict:
    results = {}
    for cell in cells:
        for name, (spec, make) in tasks(cell).items():
            if name in task_names:
                results[(name, cell)] = r = compare(spec, init_params(spec, seed), lambda s, make=make: make(s, seed), steps, RECIPE)
                report(f"{name} ({cell})", r, steps)
    worst = max(r["max_loss_diff"] for r in results.values())
    print(f"largest loss difference over all cells and tasks, {steps} steps: {worst:.3e}")
    if out is not None:
        plot(Path(out) / "long_range.png", results, task_names)
    return results


def plot(path: Path, results: dict, task_names) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(task_names), figsize=(5.5 * len(task_names), 4), squeeze=False)
    for ax, name in zip(axes[0], task_names):
        for (task, cell), r in results.items():
            if task == name:
                (line,) = ax.plot(r["numpy"], label=f"{cell} (NumPy)")
                every = max(1, len(r["torch"]) // 40)
                ax.plot(np.arange(len(r["torch"]))[::every], r["torch"][::every], ".", color=line.get_color(),
                        label=f"{cell} (torch)")
        ax.set_title({"adding": f"adding problem, T = {ADD_T} (MSE)",
                      "copy": f"copy task, K = {COPY_K}, delay {COPY_DELAY} (CE)"}[name])
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0], steps=200)
    run(args.steps, args.seed, args.out)
