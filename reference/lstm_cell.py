"""Long short-term memory cell (torch.nn.LSTMCell, and the step of nn.LSTM with
projections): forward, cache, backward.

Equations (torch's, gate order i, f, g, o)::

    i  = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      input gate
    f  = sigmoid(W_if x + b_if + W_hf h + b_hf)      forget gate
    g  = tanh   (W_ig x + b_ig + W_hg h + b_hg)      cell candidate
    o  = sigmoid(W_io x + b_io + W_ho h + b_ho)      output gate
    c' = f * c + i * g
    m  = o * tanh(c')
    h' = m                  (no projection)
    h' = W_hr m             (proj_size P > 0: h is (B, P), c stays (B, H))

Derivatives (a "d" prefix on a gate means the gradient at its pre-activation)::

    dm  = dh' W_hr   (or dh')          dW_hr = dh'^T m
    dc  = dc' + dm * o * (1 - tanh(c')^2)      total gradient at c'
    di  = dc * g * i * (1 - i)
    df  = dc * c * f * (1 - f)
    dg  = dc * i * (1 - g^2)
    do  = dm * tanh(c') * o * (1 - o)
    dc_prev = dc * f
    dh_prev = [di, df, dg, do] W_hh

Shapes: B batch, I input, H hidden, P projection (P = H without one); the gate
axis is 4H in (i, f, g, o) order.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._linear import affine, affine_backward
from .activations import sigmoid, tanh


class LSTMStepCache(NamedTuple):
    c_prev: np.ndarray  # (B, H)
    gates: np.ndarray  # (B, 4H) i, f, g, o after their nonlinearities
    tanh_c: np.ndarray  # (B, H) tanh(c'), cached so backward needs no tanh


def lstm_step_forward(
    xw: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    w_hh: np.ndarray,
    w_hr: np.ndarray | None = None,
    out: tuple | None = None,
    work: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, LSTMStepCache]:
    """One LSTM step given the input side xw = W_ih x + b_ih + b_hh (B, 4H).

    Args:
        xw: (B, 4H).  h_prev: (B, P).  c_prev: (B, H).
        w_hh: (4H, P).  w_hr: (P, H) or None.
        out: buffers (gates (B, 4H), h' (B, P), c' (B, H), tanh(c') (B, H)) or
            None for new ones. ``gates`` may be xw itself: the layer passes its
            slice of the input projection, which is not needed again, so the
            cached gates cost no allocation per step.
        work: (B, 4H) scratch for W_hh h, or None.
    Returns:
        h: (B, P), c: (B, H) and the step cache.
    """
    H = c_prev.shape[-1]
    if out is None:
        out = np.empty_like(xw), np.empty_like(h_prev), np.empty_like(c_prev), np.empty_like(c_prev)
    gates, h, c, tanh_c = out
    hw = np.matmul(h_prev, w_hh.T, out=work)  # (B, 4H)
    np.add(xw, hw, out=gates)  # (B, 4H)
    sigmoid(gates[:, : 2 * H], out=gates[:, : 2 * H])  # i, f
    tanh(gates[:, 2 * H : 3 * H], out=gates[:, 2 * H : 3 * H])  # g
    sigmoid(gates[:, 3 * H :], out=gates[:, 3 * H :])  # o
    i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))  # 4 x (B, H)
    np.multiply(f, c_prev, out=c)  # (B, H)
    c += np.multiply(i, g, out=hw[:, :H])  # the scratch is free again: no temporary
    tanh(c, out=tanh_c)  # (B, H)
    if w_hr is None:
        np.multiply(o, tanh_c, out=h)  # (B, H)
    else:
        np.matmul(np.multiply(o, tanh_c, out=hw[:, :H]), w_hr.T, out=h)  # (B, P)
    return h, c, LSTMStepCache(c_prev, gates, tanh_c)


def lstm_step_backward(
    dh: np.ndarray, dc: np.ndarray, cache: LSTMStepCache, w_hh: np.ndarray,
    w_hr: np.ndarray | None = None, out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (dgates, dh_prev, dc_prev): the gradient at the gate
    pre-activations (B, 4H) -- which is the gradient at xw and at h W_hh^T alike --
    and at the previous hidden (B, P) and cell (B, H) states.

    ``out``: (B, 4H) buffer for dgates (the layer passes its slice of dL/dxw), or None.
    dL/dW_hr is not formed here: it is one product over all steps, taken by the
    caller from dh and m = o * tanh(c') (see ``lstm_projection_input``).
    """
    c_prev, gates, tanh_c = cache
    H = c_prev.shape[-1]
    i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))  # 4 x (B, H)
    dm = dh if w_hr is None else dh @ w_hr  # (B, H)
    # Each product is built in place in its output slice: no temporaries per step.
    dc_total = np.multiply(tanh_c, tanh_c)  # (B, H)
    np.subtract(1, dc_total, out=dc_total)
    dc_total *= o
    dc_total *= dm
    dc_total += dc  # dc' + dm * o * (1 - tanh(c')^2)
    dgates = np.empty_like(gates) if out is None else out  # (B, 4H)
    d_i, d_f, d_g, d_o = (dgates[:, k * H : (k + 1) * H] for k in range(4))  # 4 x (B, H)
    np.subtract(1, i, out=d_i)
    d_i *= i
    d_i *= g
    d_i *= dc_total  # dc * g * i * (1 - i)
    np.subtract(1, f, out=d_f)
    d_f *= f
    d_f *= c_prev
    d_f *= dc_total  # dc * c * f * (1 - f)
    np.multiply(g, g, out=d_g)
    np.subtract(1, d_g, out=d_g)
    d_g *= i
    d_g *= dc_total  # dc * i * (1 - g^2)
    np.subtract(1, o, out=d_o)
    d_o *= o
    d_o *= tanh_c
    d_o *= dm  # dm * tanh(c') * o * (1 - o)
    dh_prev = dgates @ w_hh  # (B, P)
    dc_total *= f  # dc_prev = dc * f, reusing the buffer
    return dgates, dh_prev, dc_total


def lstm_projection_input(cache: LSTMStepCache) -> np.ndarray:
    """m = o * tanh(c'), the (B, H) input of the projection, rebuilt from the cache
    (one product; cheaper than keeping another B*H floats per step)."""
    H = cache.c_prev.shape[-1]
    return cache.gates[:, 3 * H :] * cache.tanh_c  # (B, H)


class LSTMCellCache(NamedTuple):
    x: np.ndarray  # (B, I)
    h_prev: np.ndarray  # (B, H)
    step: LSTMStepCache
    w_ih: np.ndarray  # (4H, I)
    w_hh: np.ndarray  # (4H, H)
    has_bias: bool


def lstm_cell_forward(
    x: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    b_ih: np.ndarray | None = None,
    b_hh: np.ndarray | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], LSTMCellCache]:
    """One LSTM cell step on a batch.

    Args:
        x: (B, I).  h_prev, c_prev: (B, H).  w_ih: (4H, I).  w_hh: (4H, H).
        b_ih, b_hh: (4H,) or both None.
    Returns:
        (h, c): 2 x (B, H) and the cache for ``lstm_cell_backward``.
    """
    bias = None if b_ih is None else b_ih + b_hh  # (4H,)
    xw = affine(x, w_ih, bias)  # (B, 4H)
    h, c, step = lstm_step_forward(xw, h_prev, c_prev, w_hh)
    return (h, c), LSTMCellCache(x, h_prev, step, w_ih, w_hh, b_ih is not None)


def lstm_cell_backward(
    dh: np.ndarray, dc: np.ndarray, cache: LSTMCellCache
) -> dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]]:
    """Gradients of one LSTM cell step given dL/dh' and dL/dc', each (B, H).

    Returns "input" (B, I), "hx" = (dh_prev, dc_prev), "weight_ih", "weight_hh"
    and, with biases, "bias_ih", "bias_hh" (equal: both enter the same sum).
    """
    x, h_prev, step, w_ih, w_hh, has_bias = cache
    dgates, dh_prev, dc_prev = lstm_step_backward(dh, dc, step, w_hh)
    dx, dw_ih, db = affine_backward(dgates, x, w_ih, has_bias)  # (B, I), (4H, I), (4H,)
    _, dw_hh, _ = affine_backward(dgates, h_prev, w_hh, False, need_dx=False)  # (4H, H)
    grads = {"input": dx, "hx": (dh_prev, dc_prev), "weight_ih": dw_ih, "weight_hh": dw_hh}
    if has_bias:
        grads["bias_ih"] = db
        grads["bias_hh"] = db.copy()
    return grads
