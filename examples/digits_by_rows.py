"""Handwritten digits read row by row: an RNN, GRU or LSTM sees an 8x8 image as a
sequence of 8 rows of 8 pixels and names the digit from its final state.

    image (8, 8)  ->  x (T = 8 rows, B, I = 8 pixels)  ->  RNN / GRU / LSTM  ->  h_n[-1] (B, H)
                  ->  linear (B, 10)  ->  cross-entropy

The classic tutorials do this with 28x28 MNIST (T = 28); here the data are
scikit-learn's 8x8 digits (1,797 images, shipped inside scikit-learn: nothing
is downloaded; ``pip install -e .[examples]``). Pixels are scaled to [0, 1];
20% of the images are held out.

NumPy and torch train from the same weights; the script prints the largest
step-by-step loss difference and both test accuracies, and saves the loss curve
and a grid of held-out digits with their predictions.

    python examples/digits_by_rows.py --mode LSTM --steps 300 --out examples_out
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
    pyplot,
    report,
    rnn_module,
    save_figure,
    torch_model,
)

BATCH, HIDDEN = 64, 32
RECIPE = Recipe(optimizer="adam", lr=1e-2)


def load(seed: int = 0):
    """(train images (N, 8, 8), train labels (N,), test images, test labels), pixels in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images / 16.0, digits.target  # (N, 8, 8), (N,)
    order = np.random.default_rng(seed).permutation(len(labels))  # (N,)
    cut = int(0.8 * len(labels))
    return images[order[:cut]], labels[order[:cut]], images[order[cut:]], labels[order[cut:]]


def as_rows(images: np.ndarray) -> np.ndarray:
    """(N, 8, 8) -> (T = 8, N, 8): one row of pixels per time step."""
    return np.ascontiguousarray(images.transpose(1, 0, 2))


def spec(mode: str) -> Spec:
    return Spec(mode, input_size=8, hidden_size=HIDDEN, out_features=10, head="last")


def batches(images: np.ndarray, labels: np.ndarray, seed: int):
    def make(step: int) -> Batch:
        pick = np.random.default_rng([seed, step]).choice(len(labels), BATCH, replace=False)  # (B,)
        return Batch(as_rows(images[pick]), labels[pick])

    return make


def numpy_predict(sp: Spec, params: dict, images: np.ndarray) -> np.ndarray:
    batch = Batch(as_rows(images), np.zeros(len(images), dtype=np.int64))
    _, _, _, logits = numpy_loss_and_grads(sp, rnn_module(sp), params, batch, None)  # (N, 10)
    return logits.argmax(-1)


def torch_predict(sp: Spec, params: dict, images: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad(), one_thread():
        logits, _ = torch_model(sp, params)(torch.as_tensor(as_rows(images)))  # (N, 10)
    return logits.numpy().argmax(-1)


def plot_digits(path: Path, images: np.ndarray, labels: np.ndarray, predicted: np.ndarray, title: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(3, 8, figsize=(9, 4))
    for ax, img, y, p in zip(axes.ravel(), images, labels, predicted):
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"{p}" if p == y else f"{p} (is {y})", fontsize=9, color="black" if p == y else "red")
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def run(steps: int = 300, seed: int = 0, out: Path | None = None, mode: str = "LSTM") -> dict:
    train_x, train_y, test_x, test_y = load(seed)
    sp = spec(mode)
    result = compare(sp, init_params(sp, seed), batches(train_x, train_y, seed), steps, RECIPE)
    report(f"digits by rows ({mode})", result, steps)
    pred_np, pred_t = numpy_predict(sp, result["params_numpy"], test_x), torch_predict(sp, result["params_torch"], test_x)
    result["accuracy_numpy"] = float((pred_np == test_y).mean())
    result["accuracy_torch"] = float((pred_t == test_y).mean())
    result["predictions_differ"] = int((pred_np != pred_t).sum())
    print(f"held-out accuracy ({len(test_y)} images, chance 0.10): NumPy {result['accuracy_numpy']:.3f}, "
          f"torch {result['accuracy_torch']:.3f}; predictions that differ: {result['predictions_differ']}")
    if out is not None:
        plot_losses(Path(out) / f"digits_by_rows_{mode}_loss.png", f"8x8 digits read row by row ({mode})",
                    {mode: (result["numpy"], result["torch"])})
        plot_digits(Path(out) / f"digits_by_rows_{mode}.png", test_x[:24], test_y[:24], pred_np[:24],
                    f"{mode} reading rows, held-out accuracy {result['accuracy_numpy']:.3f} (red: wrong)")
    return result


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], steps=300)
    p.add_argument("--mode", choices=["RNN", "GRU", "LSTM"], default="LSTM")
    args = p.parse_args(argv)
    with one_thread():  # tiny models: one thread each for NumPy and torch
        return run(args.steps, args.seed, args.out, args.mode)


if __name__ == "__main__":
    main()
