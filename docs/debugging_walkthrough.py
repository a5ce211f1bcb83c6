"""A hand-written NumPy GRU with one planted BPTT bug, debugged as docs/debugging.md
describes: the cell first (finite differences), then the layer (the verifier).

    python docs/debugging_walkthrough.py            # the broken GRU: both checks fail, the verifier says where
    python docs/debugging_walkthrough.py --fixed    # the corrected one: both pass

    rnn-check --candidate docs/debugging_walkthrough.py:gru_layer_broken \\
        --mode GRU --input-size 3 --hidden-size 4 --seq-len 5 --batch 2

The GRU is written the way a learner writes one from the equations (torch's form,
batch rows, gate rows r, z, n); nothing here uses the reference's own code. The
bug: in backward, the derivative of n = tanh(p_n) is written 1 - n instead of
1 - n * n. Forward is untouched, so every output still matches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from reference import check_gradients
from reference.verify import compare


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def gru_step(x, h, W_ih, W_hh, b_ih, b_hh):
    """One step, torch's GRU: returns (h', cache). x (B, I), h (B, H)."""
    H = h.shape[1]
    xw = x @ W_ih.T + b_ih  # (B, 3H)
    hw = h @ W_hh.T + b_hh  # (B, 3H)  b_hn stays with W_hn h, inside the reset product
    r = sigmoid(xw[:, :H] + hw[:, :H])  # (B, H)
    z = sigmoid(xw[:, H:2 * H] + hw[:, H:2 * H])  # (B, H)
    n = np.tanh(xw[:, 2 * H:] + r * hw[:, 2 * H:])  # (B, H)
    h_new = (1 - z) * n + z * h  # (B, H)
    return h_new, (x, h, r, z, n, hw)


def gru_step_backward(dh_new, cache, W_ih, W_hh, broken):
    """Gradients of one step given dL/dh' (B, H): input, previous state, weights, biases."""
    x, h, r, z, n, hw = cache
    H = h.shape[1]
    dn = dh_new * (1 - z)  # (B, H)
    dz = dh_new * (h - n)  # (B, H)
    dp_n = dn * ((1 - n) if broken else (1 - n * n))  # THE BUG: tanh' is 1 - n^2
    dp_z = dz * z * (1 - z)  # (B, H)
    dr = dp_n * hw[:, 2 * H:]  # (B, H)
    dp_r = dr * r * (1 - r)  # (B, H)
    dxw = np.concatenate([dp_r, dp_z, dp_n], axis=1)  # (B, 3H)
    dhw = np.concatenate([dp_r, dp_z, dp_n * r], axis=1)  # (B, 3H)
    return {"x": dxw @ W_ih, "h": dhw @ W_hh + dh_new * z, "W_ih": dxw.T @ x, "W_hh": dhw.T @ h,
            "b_ih": dxw.sum(0), "b_hh": dhw.sum(0)}


# -- step 1: the cell, against finite differences --------------------------------------


def check_cell(broken: bool, seed: int = 0):
    """reference.check_gradients on one step: every analytic gradient against central differences."""
    rng = np.random.default_rng(seed)
    I, H, B = 3, 4, 2
    k = 1 / np.sqrt(H)
    arrays = {"x": rng.uniform(-1, 1, (B, I)), "h": rng.uniform(-1, 1, (B, H)),
              "W_ih": rng.uniform(-k, k, (3 * H, I)), "W_hh": rng.uniform(-k, k, (3 * H, H)),
              "b_ih": rng.uniform(-k, k, 3 * H), "b_hh": rng.uniform(-k, k, 3 * H)}
    dh_new = rng.standard_normal((B, H))  # a random cotangent, never .sum()
    _, cache = gru_step(**arrays)
    analytic = gru_step_backward(dh_new, cache, arrays["W_ih"], arrays["W_hh"], broken)
    return check_gradients(lambda **a: gru_step(**a)[0], arrays, analytic, dh_new)


# -- step 2: the layer, against the reference, with the verifier ------------------------


def gru_layer(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None, broken=False):
    """A one-layer, one-direction GRU in the verifier's function protocol (reference.verify.candidates)."""
    if spec.num_layers != 1 or spec.bidirectional or lengths is not None or spec.mode != "GRU":
        raise NotImplementedError("this walkthrough GRU does one layer, one direction, no lengths")
    W_ih, W_hh = params["weight_ih_l0"], params["weight_hh_l0"]
    b_ih, b_hh = params["bias_ih_l0"], params["bias_hh_l0"]
    h, hs, caches = hx[0][0], [], []
    for t in range(input.shape[0]):
        h, cache = gru_step(input[t], h, W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
        caches.append(cache)
    out = {"output": np.stack(hs), "hidden": (h[None],)}
    if grad_output is None and (grad_hidden is None or grad_hidden[0] is None):
        return out  # a forward-only call
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dx = np.zeros_like(input)
    dh_next = np.zeros_like(h) if grad_hidden is None or grad_hidden[0] is None else grad_hidden[0][0]
    for t in reversed(range(input.shape[0])):
        dh = dh_next + (0 if grad_output is None else grad_output[t])  # the output and the next step
        g = gru_step_backward(dh, caches[t], W_ih, W_hh, broken)
        dx[t], dh_next = g["x"], g["h"]
        for name, key in (("weight_ih_l0", "W_ih"), ("weight_hh_l0", "W_hh"), ("bias_ih_l0", "b_ih"),
                          ("bias_hh_l0", "b_hh")):
            grads[name] += g[key]  # += : the same weights at every step
    return {**out, "input": dx, "hx": (dh_next[None],), **grads}


def gru_layer_broken(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
    return gru_layer(spec, params, input, hx, grad_output, grad_hidden, lengths=lengths, broken=True)


def gru_layer_fixed(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
    return gru_layer(spec, params, input, hx, grad_output, grad_hidden, lengths=lengths, broken=False)


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fixed", action="store_true", help="run the corrected GRU")
    args = p.parse_args(argv)
    broken = not args.fixed
    cell = check_cell(broken)
    print("Step 1, the cell (one step against central differences):")
    print(cell)
    report = compare(gru_layer_broken if broken else gru_layer_fixed,
                     {"mode": "GRU", "input_size": 3, "hidden_size": 4}, seq_len=5, batch=2)
    print("\nStep 2, the layer (the verifier, reference.verify.compare):")
    print(report)
    return cell, report


if __name__ == "__main__":
    main()
