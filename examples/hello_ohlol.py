"""The tiny next-character task: one-hot "hello" in, "ohlol" out, in two forms.

    idx2char = ['e', 'h', 'l', 'o'];  x = "hello" (one-hot, T = 5);  y = "ohlol"

Layer form: ``reference.RNN(4, 8)`` over the whole sequence, a linear head,
Adam, the loop in ``examples/_common.py``.

Cell form (the classic tutorial's): one ``RNNCell(4, 4)`` whose hidden state
*is* the 4 logits, and a time loop written out by hand::

    forward   for t = 0..4:    h_t, tape_t = cell.forward(x_t, h_{t-1});  loss += CE(h_t, y_t)
    backward  for t = 4..0:    dh = dCE_t/dh_t + dh_next       (two paths reach h_t: its own loss
                               g = cell.backward(tape_t, dh)     and the next step)
                               dW += g[W];  dh_next = g["hx"]    (+= : one W serves every step)

torch runs the same loop through ``torch.nn.RNNCell`` (converted from the same
cell by ``torch_impl.to_torch``) with autograd. Both print the predicted string
each epoch; the script prints the largest step-by-step loss difference and
saves a loss plot for each form.

The cell form has a floor: its logits are a tanh, in [-1, 1], so no character
can get a probability above e / (e + 3/e) = 0.71 and the summed loss stays above
5 * 0.34 = 1.7. Some starts also stall in a local minimum: from ``--seed 0``
the cell keeps predicting 'oholl' (two l's in a row need the state, not the
input, to tell them apart); the default ``--seed 1`` predicts 'ohlol' from epoch 5 on.

    python examples/hello_ohlol.py --steps 30 --out examples_out
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import reference
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
from reference import train as nt

IDX2CHAR = ["e", "h", "l", "o"]
X_IDX = [IDX2CHAR.index(c) for c in "hello"]  # (T,)
Y_IDX = [IDX2CHAR.index(c) for c in "ohlol"]  # (T,)
SPEC = Spec("RNN", input_size=4, hidden_size=8, out_features=4)
RECIPE = Recipe(optimizer="adam", lr=0.05)
CELL_LR = 0.1


def batch() -> Batch:
    x = np.eye(4)[X_IDX][:, None, :]  # (T, 1, 4) one-hot
    y = np.array(Y_IDX)[:, None]  # (T, 1)
    return Batch(x, y)


def text(logits: np.ndarray) -> str:
    """(T, C) logits -> the predicted string."""
    return "".join(IDX2CHAR[k] for k in logits.argmax(-1))


# -- layer form ---------------------------------------------------------------


def run_layer(steps: int, seed: int, out: Path | None) -> dict:
    b = batch()
    result = compare(SPEC, init_params(SPEC, seed), lambda step: b, steps, RECIPE)
    report("hello->ohlol, layer form", result, steps)
    _, _, _, logits = numpy_loss_and_grads(SPEC, rnn_module(SPEC), result["params_numpy"], b, None)
    result["prediction"] = text(logits[:, 0])  # (T, C)
    print(f"layer form, prediction after {steps} steps: {result['prediction']!r} (target 'ohlol')")
    if out is not None:
        plot_losses(Path(out) / "hello_ohlol.png", "hello -> ohlol, layer form (RNN + linear, Adam)",
                    {"RNN": (result["numpy"], result["torch"])})
    return result


# -- cell form: the time loop by hand -------------------------------------------


def numpy_cell_epoch(cell: reference.RNNCell, x: np.ndarray, y: np.ndarray):
    """One forward and hand-written backward through time. Returns (loss, grads, logits (T, 4))."""
    h = np.zeros((1, 4))  # (B=1, H=4): the state is the logits
    tapes, caches, hs, loss = [], [], [], 0.0
    for t in range(len(x)):
        h, tape = cell.forward(x[t], h)  # (1, 4)
        step_loss, cache = nt.cross_entropy_forward(h, y[t])  # the classic loop sums the per-step losses
        tapes.append(tape)
        caches.append(cache)
        hs.append(h)
        loss += float(step_loss)
    grads = {k: np.zeros_like(v) for k, v in cell.state_dict().items()}
    dh_next = np.zeros((1, 4))  # (1, 4): nothing flows in from after the last step
    for t in reversed(range(len(x))):
        dh = nt.cross_entropy_backward(1.0, caches[t]) + dh_next  # (1, 4): own loss + the next step
        g = cell.backward(tapes[t], dh)
        for k in grads:
            grads[k] += g[k]  # += because the same weights serve every step
        dh_next = g["hx"]  # (1, 4)
    return loss, grads, np.concatenate(hs)  # (T, 4)


def torch_cell_epoch(tcell, x: np.ndarray, y: np.ndarray):
    import torch
    import torch.nn.functional as F

    h = torch.zeros(1, 4, dtype=torch.float64)
    loss, hs = 0.0, []
    for t in range(len(x)):
        h = tcell(torch.as_tensor(x[t]), h)  # (1, 4)
        loss = loss + F.cross_entropy(h, torch.as_tensor(y[t]))
        hs.append(h)
    return loss, torch.cat(hs).detach().numpy()  # (T, 4)


def run_cell(epochs: int, seed: int, out: Path | None) -> dict:
    import torch

    from torch_impl import to_torch

    x = np.eye(4)[X_IDX][:, None, :]  # (T, 1, 4)
    y = np.array(Y_IDX)[:, None]  # (T, 1)
    cell = reference.RNNCell(4, 4, seed=seed)
    tcell = to_torch(cell)  # same weights, torch.nn.RNNCell
    opt, params = nt.Adam(lr=CELL_LR), cell.state_dict()
    topt = torch.optim.Adam(tcell.parameters(), lr=CELL_LR)
    np_losses, t_losses, texts = [], [], []
    with one_thread():
        for epoch in range(epochs):
            loss, grads, logits = numpy_cell_epoch(cell, x, y)
            params = opt.step(params, grads)
            cell.load_state_dict(params)

            t_loss, t_logits = torch_cell_epoch(tcell, x, y)
            topt.zero_grad()
            t_loss.backward()
            topt.step()

            np_losses.append(loss)
            t_losses.append(t_loss.item())
            texts.append((text(logits), text(t_logits)))
            print(f"epoch {epoch + 1:3d}  NumPy {texts[-1][0]!r} loss {loss:.6f}   "
                  f"torch {texts[-1][1]!r} loss {t_losses[-1]:.6f}")
    np_losses, t_losses = np.array(np_losses), np.array(t_losses)
    result = {"numpy": np_losses, "torch": t_losses, "texts": texts,
              "params_numpy": params, "params_torch": {k: v.detach().numpy() for k, v in tcell.state_dict().items()},
              "max_loss_diff": float(np.abs(np_losses - t_losses).max())}
    result["max_param_diff"] = float(max(np.abs(params[k] - result["params_torch"][k]).max() for k in params))
    report("hello->ohlol, cell form (RNNCell(4, 4), hand-written loop)", result, epochs)
    if out is not None:
        plot_losses(Path(out) / "hello_ohlol_cell.png", "hello -> ohlol, cell form (RNNCell(4, 4), state = logits)",
                    {"RNNCell": (np_losses, t_losses)}, ylabel="summed cross-entropy")
    return result


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], steps=30)
    p.add_argument("--form", choices=["layer", "cell", "both"], default="both")
    p.set_defaults(seed=1)  # seed 0 stalls the cell form at 'oholl' (see the docstring)
    args = p.parse_args(argv)
    results = {}
    with one_thread():  # tiny models: one thread each for NumPy and torch
        if args.form in ("cell", "both"):
            results["cell"] = run_cell(args.steps, args.seed, args.out)
        if args.form in ("layer", "both"):
            results["layer"] = run_layer(args.steps, args.seed, args.out)
    return results


if __name__ == "__main__":
    main()
