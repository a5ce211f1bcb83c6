"""Which language is a surname from? A character embedding and a 2-layer packed
bidirectional GRU read the name; a linear layer reads both directions' final states.

    tokens (T, B)  ->  embedding (T, B, E)  ->  GRU, 2 layers, both directions, lengths
                   ->  [h_n[-2], h_n[-1]] (B, 2H)  ->  linear (B, 8)  ->  cross-entropy

Data: ``examples/data/names/names.csv``, 1,598 real surnames in 8 languages
(source and licence in the README beside it); 20% are held out for testing.
Names have different lengths: each batch is padded to its longest name, and the
padding never enters the sums. torch packs the batch (``pack_padded_sequence``,
``enforce_sorted=False``); the NumPy side passes ``lengths=`` to the same GRU.
The forward direction's final state is the one after each name's own last
letter; the reverse direction starts there and ends at the first letter.

NumPy and torch train from the same weights; the script prints the largest
step-by-step loss difference, the test accuracy of both, and saves the loss
curve and a confusion matrix.

    python examples/name_classifier.py --steps 250 --out examples_out
"""

from __future__ import annotations

import csv
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
    numpy_loss_and_grads,
    one_thread,
    parser,
    plot_pair,
    pyplot,
    report,
    rnn_module,
    save_figure,
    step_axis,
    torch_model,
)

DATA = Path(__file__).resolve().parent / "data" / "names" / "names.csv"
PAD = "_"  # token 0: fills a batch up to its longest name; never read (lengths)
BATCH, HIDDEN, EMBED = 64, 32, 16
RECIPE = Recipe(optimizer="adam", lr=1e-2)


def load(seed: int = 0):
    """(train names, train labels, test names, test labels, vocabulary, languages); 20% held out."""
    with open(DATA, newline="") as f:
        rows = [(r["name"].lower(), r["language"]) for r in csv.DictReader(f)]
    languages = sorted({lang for _, lang in rows})
    vocab = [PAD] + sorted({ch for name, _ in rows for ch in name})
    names = [name for name, _ in rows]
    labels = np.array([languages.index(lang) for _, lang in rows])  # (N,)
    order = np.random.default_rng(seed).permutation(len(rows))  # (N,)
    cut = int(0.8 * len(rows))
    train, test = order[:cut], order[cut:]
    return [names[i] for i in train], labels[train], [names[i] for i in test], labels[test], vocab, languages


def encode(names: list[str], vocab: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(tokens (T, B) padded with token 0, lengths (B,))."""
    lengths = np.array([len(n) for n in names])  # (B,)
    tokens = np.zeros((lengths.max(), len(names)), dtype=np.int64)  # (T, B)
    for b, name in enumerate(names):
        tokens[: len(name), b] = [vocab.index(ch) for ch in name]
    return tokens, lengths


def spec(vocab_size: int, classes: int) -> Spec:
    return Spec("GRU", input_size=vocab_size, hidden_size=HIDDEN, out_features=classes, embedding_dim=EMBED,
                num_layers=2, head="last", bidirectional=True)


def batches(names: list[str], labels: np.ndarray, vocab: list[str], seed: int):
    """step -> a random batch of names, reproducible from (seed, step)."""

    def make(step: int) -> Batch:
        pick = np.random.default_rng([seed, step]).choice(len(names), BATCH, replace=False)  # (B,)
        tokens, lengths = encode([names[i] for i in pick], vocab)
        return Batch(tokens, labels[pick], lengths=lengths)

    return make


def numpy_predict(sp: Spec, params: dict, batch: Batch) -> np.ndarray:
    _, _, _, logits = numpy_loss_and_grads(sp, rnn_module(sp), params, batch, None)  # (B, C)
    return logits.argmax(-1)


def torch_predict(sp: Spec, params: dict, batch: Batch) -> np.ndarray:
    import torch

    with torch.no_grad(), one_thread():
        logits, _ = torch_model(sp, params)(torch.as_tensor(batch.input), None, batch.lengths)  # (B, C)
    return logits.numpy().argmax(-1)


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """(C, C): row = true language, column = predicted."""
    m = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(m, (labels, predicted), 1)
    return m


def plot_confusion(path: Path, m: np.ndarray, languages: list[str], accuracy: float) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    rates = m / np.maximum(m.sum(1, keepdims=True), 1)  # (C, C) fraction of each true language
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(languages)):
        for j in range(len(languages)):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(languages)), languages, rotation=45, ha="right")
    ax.set_yticks(range(len(languages)), languages)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"held-out names: accuracy {accuracy:.2f} (chance {1 / len(languages):.2f})")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true language")
    save_figure(fig, path)


def plot_training(path: Path, result: dict, every: int, chance: float) -> None:
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4))
    plot_pair(a, result["numpy"], result["torch"], "GRU")
    a.set_ylabel("cross-entropy (training batch)")
    a.set_title("surname -> language: 2-layer bidirectional GRU, packed", fontsize=10)
    x = every * np.arange(1, len(result["accuracy_curve_numpy"]) + 1)
    plot_pair(b, np.array(result["accuracy_curve_numpy"]), np.array(result["accuracy_curve_torch"]), "held out", x=x)
    b.axhline(chance, color="k", ls="--", lw=0.8, label=f"chance {chance:.3f}")
    b.set_ylim(0, 1)
    b.set_ylabel("accuracy (after the step)")
    b.set_title("held-out accuracy", fontsize=10)
    for ax in (a, b):
        step_axis(ax)
        ax.set_xlim(0.5, len(result["numpy"]) + 0.5)
        legend(ax)
    save_figure(fig, path)


def run(steps: int = 250, seed: int = 0, out: Path | None = None) -> dict:
    train_names, train_labels, test_names, test_labels, vocab, languages = load(seed)
    sp = spec(len(vocab), len(languages))
    every = max(1, steps // 10)
    result = compare(sp, init_params(sp, seed), batches(train_names, train_labels, vocab, seed), steps, RECIPE,
                     snapshot_every=every)
    report("names (embedding + 2-layer bidirectional GRU, packed)", result, steps)
    tokens, lengths = encode(test_names, vocab)
    test = Batch(tokens, test_labels, lengths=lengths)
    result["accuracy_curve_numpy"] = [float((numpy_predict(sp, p, test) == test_labels).mean())
                                      for p in result["snapshots_numpy"]]
    result["accuracy_curve_torch"] = [float((torch_predict(sp, p, test) == test_labels).mean())
                                      for p in result["snapshots_torch"]]
    pred_np = numpy_predict(sp, result["params_numpy"], test)  # (N,)
    pred_t = torch_predict(sp, result["params_torch"], test)  # (N,)
    result["accuracy_numpy"] = float((pred_np == test_labels).mean())
    result["accuracy_torch"] = float((pred_t == test_labels).mean())
    result["predictions_differ"] = int((pred_np != pred_t).sum())
    result["confusion"] = confusion(test_labels, pred_np, len(languages))
    print(f"held-out accuracy ({len(test_names)} names, {len(languages)} languages, chance {1 / len(languages):.3f}): "
          f"NumPy {result['accuracy_numpy']:.3f}, torch {result['accuracy_torch']:.3f}; "
          f"predictions that differ: {result['predictions_differ']}")
    for name, p in zip(test_names[:6], pred_np[:6]):
        print(f"  {name:14s} -> {languages[p]}")
    if out is not None:
        plot_training(Path(out) / "name_classifier_training.png", result, every, 1 / len(languages))
        plot_confusion(Path(out) / "name_classifier_confusion.png", result["confusion"], languages,
                       result["accuracy_numpy"])
    return result


def main(argv: list[str] | None = None) -> dict:
    args = parser(__doc__.splitlines()[0], steps=250).parse_args(argv)
    with one_thread():  # tiny models: one thread each for NumPy and torch
        return run(args.steps, args.seed, args.out)


if __name__ == "__main__":
    main()
