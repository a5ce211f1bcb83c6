"""The tiny next-character task: one-hot "hello" in, "ohlol" out, one RNN layer.

    idx2char = ['e', 'h', 'l', 'o'];  x = "hello" (one-hot, T = 5);  y = "ohlol"

NumPy and torch start from the same weights and train with the same Adam; the
script prints the largest step-by-step loss difference and saves a loss plot.

    python examples/hello_ohlol.py --steps 200 --out examples_out
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from examples._common import Batch, Recipe, Spec, compare, init_params, parse_args, plot_losses, report

IDX2CHAR = ["e", "h", "l", "o"]
SPEC = Spec("RNN", input_size=4, hidden_size=8, out_features=4)
RECIPE = Recipe(optimizer="adam", lr=0.05)


def batch() -> Batch:
    x = np.eye(4)[[IDX2CHAR.index(c) for c in "hello"]][:, None, :]  # (T, 1, 4) one-hot
    y = np.array([IDX2CHAR.index(c) for c in "ohlol"])[:, None]  # (T, 1)
    return Batch(x, y)


def run(steps: int = 200, seed: int = 0, out: Path | None = None) -> dict:
    b = batch()
    result = compare(SPEC, init_params(SPEC, seed), lambda step: b, steps, RECIPE)
    report("hello->ohlol", result, steps)
    if out is not None:
        plot_losses(Path(out) / "hello_ohlol.png", "hello -> ohlol (RNN, Adam)", {"RNN": (result["numpy"], result["torch"])})
    return result


def predict(params: dict) -> str:
    from examples._common import numpy_loss_and_grads, rnn_module

    _, _, _, logits = numpy_loss_and_grads(SPEC, rnn_module(SPEC), params, batch(), None)
    return "".join(IDX2CHAR[k] for k in logits[:, 0].argmax(-1))


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0], steps=200)
    res = run(args.steps, args.seed, args.out)
    print(f"prediction after training: {predict(res['params_numpy'])!r} (target 'ohlol')")
