"""The two affine maps every cell shares, and their gradients.

A recurrent cell touches its weights only through

    xw = x @ W_ih^T + b_ih        (input side,  all time steps at once)
    hw = h @ W_hh^T + b_hh        (hidden side, one step at a time)

so given the gradients at xw and hw for every step, the weight gradients are one
matrix product each over all steps (``+=`` over time collapses into the product).
"""

from __future__ import annotations

import numpy as np


def affine(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """x @ weight^T + bias over the last axis, as one matrix product for any leading shape."""
    lead = x.shape[:-1]
    y = x.reshape(-1, x.shape[-1]) @ weight.T  # (N, out)
    if bias is not None:
        y += bias
    return y.reshape(*lead, weight.shape[0])  # (..., out)


def affine_backward(
    dy: np.ndarray, x: np.ndarray, weight: np.ndarray, has_bias: bool, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of y = x @ weight^T + bias given dy; leading axes are summed over.

    Returns (dx, dweight, dbias); dx is None when not needed, dbias when no bias.
    """
    dy2 = dy.reshape(-1, dy.shape[-1])  # (N, out)
    x2 = x.reshape(-1, x.shape[-1])  # (N, in)
    dweight = dy2.T @ x2  # (out, in)
    dbias = dy2.sum(axis=0) if has_bias else None  # (out,)
    dx = (dy2 @ weight).reshape(x.shape) if need_dx else None  # (..., in)
    return dx, dweight, dbias
