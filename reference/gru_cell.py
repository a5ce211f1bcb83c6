"""Gated recurrent unit cell (torch.nn.GRUCell): forward, cache, backward.

Equations (torch's, gate order r, z, n)::

    r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)          reset gate
    z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)          update gate
    n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))       new gate
    h' = (1 - z) * n + z * h

Note where ``b_hn`` sits: *inside* the reset product (the "v3" GRU of cuDNN and
torch, not the paper's ``W_hn (r * h)``). So the hidden-side pre-activation
``hw = W_hh h + b_hh`` is needed on its own, and the n rows of the input side and
of the hidden side receive different gradients.

Derivatives (a "d" prefix on a gate means the gradient at its pre-activation)::

    dn   = dh' * (1 - z) * (1 - n^2)
    dz   = dh' * (h - n) * z * (1 - z)
    dr   = dn * hw_n * r * (1 - r)
    dxw  = [dr, dz, dn]                  gradient at W_ih x + b_ih
    dhw  = [dr, dz, dn * r]              gradient at W_hh h + b_hh
    dh   = dh' * z + dhw W_hh

Shapes: B batch, I input, H hidden; the gate axis is 3H in (r, z, n) order.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._linear import affine, affine_backward
from .activations import sigmoid, tanh


class GRUStepCache(NamedTuple):
    h_prev: np.ndarray  # (B, H)
    rz: np.ndarray  # (B, 2H) reset and update gates, after the sigmoid
    n: np.ndarray  # (B, H) new gate, after the tanh
    hw_n: np.ndarray  # (B, H) W_hn h + b_hn, the term the reset gate multiplies


def gru_step_forward(
    xw: np.ndarray, h_prev: np.ndarray, w_hh: np.ndarray, b_hh: np.ndarray | None,
    out: tuple | None = None, work: np.ndarray | None = None,
) -> tuple[np.ndarray, GRUStepCache]:
    """One GRU step given the input side xw = W_ih x + b_ih (B, 3H).

    Args:
        xw: (B, 3H).  h_prev: (B, H).  w_hh: (3H, H).  b_hh: (3H,) or None.
        out: buffers (gates (B, 3H), h' (B, H), hw_n (B, H)) or None for new ones.
            ``gates`` may be xw itself: the layer passes its slice of the input
            projection, which is not needed again, so the cached gates cost no
            allocation per step.
        work: (B, 3H) scratch for W_hh h, or None.
    """
    H = h_prev.shape[-1]
    gates, h, hw_n = (np.empty_like(xw), np.empty_like(h_prev), np.empty_like(h_prev)) if out is None else out
    hw = np.matmul(h_prev, w_hh.T, out=work)  # (B, 3H) one product for all three gates
    if b_hh is not None:
        hw += b_hh
    hw_n[...] = hw[:, 2 * H :]  # W_hn h + b_hn: the one hidden-side term backward needs
    rz = np.add(xw[:, : 2 * H], hw[:, : 2 * H], out=gates[:, : 2 * H])  # (B, 2H)
    sigmoid(rz, out=rz)
    r, z = rz[:, :H], rz[:, H:]  # 2 x (B, H)
    r_hw_n = np.multiply(r, hw_n, out=hw[:, 2 * H :])  # (B, H) r * (W_hn h + b_hn)
    n = np.add(xw[:, 2 * H :], r_hw_n, out=gates[:, 2 * H :])  # (B, H)
    tanh(n, out=n)
    np.subtract(h_prev, n, out=h)  # (B, H)   h' = n + z * (h - n)
    h *= z
    h += n
    return h, GRUStepCache(h_prev, rz, n, hw_n)


def gru_step_backward(
    dh: np.ndarray, cache: GRUStepCache, w_hh: np.ndarray, out: tuple | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (dxw, dhw, dh_prev): gradients at W_ih x + b_ih (B, 3H), at
    W_hh h + b_hh (B, 3H) and at the previous hidden state (B, H).

    ``out``: (dxw, dhw) buffers, each (B, 3H) (the layer passes its slices), or None.
    """
    h_prev, rz, n, hw_n = cache
    H = n.shape[-1]
    r, z = rz[:, :H], rz[:, H:]  # 2 x (B, H)
    if out is None:
        out = np.empty(dh.shape[:-1] + (3 * H,), dtype=dh.dtype), np.empty(dh.shape[:-1] + (3 * H,), dtype=dh.dtype)
    dxw, dhw = out  # 2 x (B, 3H)
    d_r, d_z, d_n = dxw[:, :H], dxw[:, H : 2 * H], dxw[:, 2 * H :]  # 3 x (B, H)
    # Each product is built in place in its output slice; 1 - z is the one temporary.
    one_minus_z = 1 - z  # (B, H)
    np.multiply(n, n, out=d_n)
    np.subtract(1, d_n, out=d_n)
    d_n *= one_minus_z
    d_n *= dh  # dh' * (1 - z) * (1 - n^2)
    np.subtract(h_prev, n, out=d_z)
    d_z *= z
    d_z *= one_minus_z
    d_z *= dh  # dh' * (h - n) * z * (1 - z)
    np.subtract(1, r, out=d_r)
    d_r *= r
    d_r *= hw_n
    d_r *= d_n  # dn * hw_n * r * (1 - r)
    dhw[:, : 2 * H] = dxw[:, : 2 * H]  # same r and z rows ...
    np.multiply(d_n, r, out=dhw[:, 2 * H :])  # ... but the n row passes through the reset product
    dh_prev = dhw @ w_hh  # (B, H)
    dh_prev += dh * z
    return dxw, dhw, dh_prev


class GRUCellCache(NamedTuple):
    x: np.ndarray  # (B, I)
    step: GRUStepCache
    w_ih: np.ndarray  # (3H, I)
    w_hh: np.ndarray  # (3H, H)
    has_bias: bool


def gru_cell_forward(
    x: np.ndarray,
    h_prev: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    b_ih: np.ndarray | None = None,
    b_hh: np.ndarray | None = None,
) -> tuple[np.ndarray, GRUCellCache]:
    """One GRU cell step on a batch.

    Args:
        x: (B, I).  h_prev: (B, H).  w_ih: (3H, I).  w_hh: (3H, H).
        b_ih, b_hh: (3H,) or both None.
    Returns:
        h: (B, H) and the cache for ``gru_cell_backward``.
    """
    xw = affine(x, w_ih, b_ih)  # (B, 3H)
    h, step = gru_step_forward(xw, h_prev, w_hh, b_hh)
    return h, GRUCellCache(x, step, w_ih, w_hh, b_ih is not None)


def gru_cell_backward(dh: np.ndarray, cache: GRUCellCache) -> dict[str, np.ndarray]:
    """Gradients of one GRU cell step given dL/dh' (B, H).

    Returns "input" (B, I), "hx" (B, H), "weight_ih", "weight_hh" and, with
    biases, "bias_ih", "bias_hh" (equal in the r and z rows, not in the n rows).
    """
    x, step, w_ih, w_hh, has_bias = cache
    dxw, dhw, dh_prev = gru_step_backward(dh, step, w_hh)  # (B, 3H), (B, 3H), (B, H)
    dx, dw_ih, db_ih = affine_backward(dxw, x, w_ih, has_bias)
    _, dw_hh, db_hh = affine_backward(dhw, step.h_prev, w_hh, has_bias, need_dx=False)
    grads = {"input": dx, "hx": dh_prev, "weight_ih": dw_ih, "weight_hh": dw_hh}
    if has_bias:
        grads["bias_ih"] = db_ih
        grads["bias_hh"] = db_hh
    return grads
