"""Many-to-one classification of padded variable-length sequences: which of three
synthetic generators produced a sequence?

    class 0: a noisy sine wave        class 1: a noisy square wave        class 2: a random walk

Each batch holds sequences of lengths 4 ... 24, zero-padded to the longest and
passed with ``lengths`` (torch: pack_padded_sequence(enforce_sorted=False)); the
classifier reads h_n[-1], each sequence's state after its own last valid step.

NumPy and torch start from the same weights; the script prints the largest
step-by-step loss difference, the final accuracy, and saves a loss plot.

    python examples/classify_sequences.py --steps 200 --out examples_out
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
    numpy_loss_and_grads,
    one_thread,
    parser,
    plot_losses,
    report,
    rnn_module,
)

SPEC = Spec("GRU", input_size=1, hidden_size=16, out_features=3, head="last")
RECIPE = Recipe(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True)
BATCH, MIN_T, MAX_T = 16, 4, 24


def generate(label: int, T: int, rng: np.random.Generator) -> np.ndarray:
    """(T,) one sequence from generator ``label``."""
    t = np.arange(T)
    phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(4, 8)
    if label == 0:
        clean = np.sin(2 * np.pi * t / period + phase)
    elif label == 1:
        clean = np.sign(np.sin(2 * np.pi * t / period + phase))
    else:
        clean = np.cumsum(rng.normal(0, 0.5, T))
    return clean + rng.normal(0, 0.1, T)


def make_batch(step: int, seed: int = 0) -> Batch:
    """A reproducible padded batch: x (T, B, 1), labels (B,), lengths (B,)."""
    rng = np.random.default_rng([seed, step])
    labels = rng.integers(0, 3, BATCH)  # (B,)
    lengths = rng.integers(MIN_T, MAX_T + 1, BATCH)  # (B,)
    x = np.zeros((lengths.max(), BATCH, 1))  # (T, B, 1) zero padding
    for b in range(BATCH):
        x[: lengths[b], b, 0] = generate(labels[b], lengths[b], rng)
    return Batch(x, labels, lengths=lengths)


def accuracy(params: dict, seed: int = 12345) -> float:
    batch = make_batch(0, seed)
    _, _, _, logits = numpy_loss_and_grads(SPEC, rnn_module(SPEC), params, batch, None)
    return float((logits.argmax(-1) == batch.target).mean())


def run(steps: int = 200, seed: int = 0, out: Path | None = None) -> dict:
    result = compare(SPEC, init_params(SPEC, seed), lambda step: make_batch(step, seed), steps, RECIPE)
    report("classifier (GRU, padded batches, lengths)", result, steps)
    result["accuracy"] = accuracy(result["params_numpy"])
    print(f"accuracy on a fresh batch after training: {result['accuracy']:.2f} (chance 0.33)")
    if out is not None:
        plot_losses(Path(out) / "classify_sequences.png", "which generator? (GRU, many-to-one, padded)",
                    {"GRU": (result["numpy"], result["torch"])})
    return result


def main(argv: list[str] | None = None) -> dict:
    args = parser(__doc__.splitlines()[0], steps=200).parse_args(argv)
    with one_thread():  # tiny models: one thread each for NumPy and torch
        return run(args.steps, args.seed, args.out)


if __name__ == "__main__":
    main()
