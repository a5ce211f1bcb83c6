"""Your own LSTM in plain NumPy, forward and hand-written BPTT, checked by the verifier.

One layer, torch's gate order (i, f, g, o) and weight layout, padded batches with ``lengths``
(a row stops at its length, as torch's packed sequences do). ``my_lstm`` puts the two
functions behind the verifier's function protocol (reference/verify/candidates.py), so
``reference.verify.compare`` runs it and the float64 reference on the same weights, inputs,
initial states, lengths and random upstream gradients, and says where they first differ.

    python examples/my_numpy_lstm.py          # every tensor within tolerance: MATCH
    python examples/my_numpy_lstm.py --bug    # the same file with one line changed (BUG below)

Shapes: T time, B batch, I input, H hidden. The equations, per step t (torch's, row form):

    i, f, g, o = sigmoid(a_i), sigmoid(a_f), tanh(a_g), sigmoid(a_o)   a = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def lstm_forward(x, h, c, w_ih, w_hh, b_ih, b_hh, lengths):
    """x (T, B, I), h and c (B, H), w_ih (4H, I), w_hh (4H, H), lengths (B,) -> out (T, B, H), h_n, c_n, cache."""
    out, cache = np.zeros((len(x), len(h), h.shape[1])), []  # (T, B, H): zero past a row's length
    for t in range(len(x)):
        a = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, 4H)
        i, f, g, o = np.split(a, 4, axis=1)  # 4 x (B, H), torch's order
        i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
        c_next = f * c + i * g  # (B, H)
        tanh_c = np.tanh(c_next)  # (B, H)
        h_next = o * tanh_c  # (B, H)
        live = (t < lengths)[:, None]  # (B, 1): rows still inside their sequence
        cache.append((x[t], h, c, i, f, g, o, tanh_c, live))
        out[t] = np.where(live, h_next, 0.0)
        h, c = np.where(live, h_next, h), np.where(live, c_next, c)  # a finished row keeps its state
    return out, h, c, cache


def lstm_backward(dout, dh, dc, cache, w_ih, w_hh):
    """dout (T, B, H), dh = dL/dh_n and dc = dL/dc_n (B, H) -> dx, dh_0, dc_0, weight gradients."""
    dx = np.zeros((len(dout), dout.shape[1], w_ih.shape[1]))  # (T, B, I)
    dw_ih, dw_hh, db = np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros(len(w_ih))
    for t in reversed(range(len(dout))):
        x_t, h_prev, c_prev, i, f, g, o, tanh_c, live = cache[t]
        dh_t = dh + dout[t]  # (B, H): the step's output and the next step's carry
        do = dh_t * tanh_c  # dL/do
        dc_t = dc + dh_t * o * (1 - tanh_c ** 2)  # dL/dc_t, through h_t = o * tanh(c_t)
        di, df, dg = dc_t * g, dc_t * c_prev, dc_t * i  # dL/di, dL/df, dL/dg
        da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)], axis=1)
        da = np.where(live, da, 0.0)  # (B, 4H): a finished row's step did not happen
        dw_ih += da.T @ x_t  # += : the same weights at every step
        dw_hh += da.T @ h_prev
        db += da.sum(0)
        dx[t] = da @ w_ih  # (B, I)
        dh = np.where(live, da @ w_hh, dh)  # dL/dh_{t-1}; a finished row passes its carry on
        dc = np.where(live, dc_t * f, dc)  # dL/dc_{t-1}
    return dx, dh, dc, {"weight_ih_l0": dw_ih, "weight_hh_l0": dw_hh, "bias_ih_l0": db, "bias_hh_l0": db.copy()}


# -- the verifier's function protocol, and the check -----------------------------------------------

BUG = ("dc_t = dc + dh_t * o * (1 - tanh_c ** 2)", "dc_t = dc + dh_t * o")  # forgets tanh' on the cell path


def my_lstm(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
    """The function protocol: torch's names in and out, (L*D, B, H) states, gradients on request."""
    from reference.verify import Spec

    if spec != Spec("LSTM", spec.input_size, spec.hidden_size):
        raise ValueError(f"my_lstm runs one LSTM layer, one direction, with biases; got {spec}")
    w_ih, w_hh, b_ih, b_hh = (params[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    T, B, _ = input.shape
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    out, h_n, c_n, cache = lstm_forward(input, hx[0][0], hx[1][0], w_ih, w_hh, b_ih, b_hh, lengths)
    result = {"output": out, "hidden": (h_n[None], c_n[None])}
    if grad_output is None and grad_hidden is None:  # a forward-only call
        return result
    dh_n, dc_n = (np.zeros_like(h_n) if g is None else g[0] for g in (grad_hidden or (None, None)))
    dout = np.zeros_like(out) if grad_output is None else grad_output
    dx, dh_0, dc_0, grads = lstm_backward(dout, dh_n, dc_n, cache, w_ih, w_hh)
    return {**result, "input": dx, "hx": (dh_0[None], dc_0[None]), **grads}


def with_bug():
    """``my_lstm`` from a copy of this file with ``BUG``'s one line changed."""
    import importlib.util
    import tempfile

    source = Path(__file__).read_text()
    right, wrong = BUG
    assert source.count(f"  {right}  #") == 1, "the line BUG changes must occur once in the code"
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "my_numpy_lstm_with_bug.py"
        copy.write_text(source.replace(f"  {right}  #", f"  {wrong}  #"))
        spec = importlib.util.spec_from_file_location(copy.stem, copy)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.my_lstm


def main(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bug", action="store_true", help=f"change one line: {BUG[0]!r} -> {BUG[1]!r}")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed
    from reference.verify import Spec, compare

    candidate = with_bug() if args.bug else my_lstm
    report = compare(candidate, Spec("LSTM", input_size=3, hidden_size=4), lengths=[5, 3, 4], seq_len=5)
    print(report)
    return report


if __name__ == "__main__":
    raise SystemExit(0 if main().passed else 1)
