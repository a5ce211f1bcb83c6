"""Elman RNN cell (torch.nn.RNNCell): forward, cache, backward.

Equations (torch's notation, both biases kept)::

    h' = act(W_ih x + b_ih + W_hh h + b_hh)          act = tanh or relu

Derivatives, from the cached output alone::

    dpre = dh' * (1 - h'^2)            (tanh)
    dpre = dh' * [h' > 0]              (relu)
    dx   = dpre W_ih      dW_ih = dpre^T x      db_ih = sum_b dpre
    dh   = dpre W_hh      dW_hh = dpre^T h      db_hh = sum_b dpre

Two levels of API:

* ``rnn_step_forward`` / ``rnn_step_backward`` take the input side ``xw`` already
  projected (both biases folded in), so a layer can project every time step
  in one matrix product and keep only ``h @ W_hh^T`` in the loop.
* ``rnn_cell_forward`` / ``rnn_cell_backward`` are the whole cell: the step with
  T = 1, plus the weight gradients.

Shapes: B batch, I input, H hidden.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._linear import affine, affine_backward
from .activations import ACTIVATIONS


class RNNStepCache(NamedTuple):
    h: np.ndarray  # (B, H) output of the step; its derivative needs nothing else
    nonlinearity: str  # "tanh" or "relu"


def rnn_step_forward(
    xw: np.ndarray, h_prev: np.ndarray, w_hh: np.ndarray, nonlinearity: str = "tanh",
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, RNNStepCache]:
    """h' = act(xw + h W_hh^T), where xw = W_ih x + b_ih + b_hh is precomputed.

    Args:
        xw: (B, H) input side of the pre-activation, both biases included.
        h_prev: (B, H) previous hidden state.
        w_hh: (H, H) recurrent weight.
        out: (B, H) buffer for h' (the layer passes its slot in the state history), or None.
    """
    act, _ = ACTIVATIONS[nonlinearity]
    pre = np.matmul(h_prev, w_hh.T, out=out)  # (B, H)
    pre += xw  # (B, H)
    h = act(pre, out=pre)  # (B, H)
    return h, RNNStepCache(h, nonlinearity)


def rnn_step_backward(
    dh: np.ndarray, cache: RNNStepCache, w_hh: np.ndarray, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Returns (dpre, dh_prev): the gradient at the pre-activation (which is the
    gradient at xw and at h W_hh^T alike) and at the previous hidden state.

    ``out``: (B, H) buffer for dpre (the layer passes its slice of dL/dxw), or None.
    """
    _, act_backward = ACTIVATIONS[cache.nonlinearity]
    dpre = act_backward(dh, cache.h, out=out)  # (B, H)
    dh_prev = dpre @ w_hh  # (B, H)
    return dpre, dh_prev


class RNNCellCache(NamedTuple):
    x: np.ndarray  # (B, I)
    h_prev: np.ndarray  # (B, H)
    step: RNNStepCache
    w_ih: np.ndarray  # (H, I)
    w_hh: np.ndarray  # (H, H)
    has_bias: bool


def rnn_cell_forward(
    x: np.ndarray,
    h_prev: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    b_ih: np.ndarray | None = None,
    b_hh: np.ndarray | None = None,
    nonlinearity: str = "tanh",
) -> tuple[np.ndarray, RNNCellCache]:
    """One RNN cell step on a batch.

    Args:
        x: (B, I) input.      h_prev: (B, H) hidden state.
        w_ih: (H, I).  w_hh: (H, H).  b_ih, b_hh: (H,) or both None.
    Returns:
        h: (B, H) and the cache for ``rnn_cell_backward``.
    """
    bias = None if b_ih is None else b_ih + b_hh  # (H,)
    xw = affine(x, w_ih, bias)  # (B, H)
    h, step = rnn_step_forward(xw, h_prev, w_hh, nonlinearity)
    return h, RNNCellCache(x, h_prev, step, w_ih, w_hh, b_ih is not None)


def rnn_cell_backward(dh: np.ndarray, cache: RNNCellCache) -> dict[str, np.ndarray]:
    """Gradients of one RNN cell step given dL/dh' (B, H).

    Returns a dict with "input" (B, I), "hx" (B, H), "weight_ih", "weight_hh" and,
    with biases, "bias_ih", "bias_hh" (equal: both enter the same sum).
    """
    x, h_prev, step, w_ih, w_hh, has_bias = cache
    dpre, dh_prev = rnn_step_backward(dh, step, w_hh)  # (B, H), (B, H)
    dx, dw_ih, db = affine_backward(dpre, x, w_ih, has_bias)  # (B, I), (H, I), (H,)
    _, dw_hh, _ = affine_backward(dpre, h_prev, w_hh, False, need_dx=False)  # (H, H)
    grads = {"input": dx, "hx": dh_prev, "weight_ih": dw_ih, "weight_hh": dw_hh}
    if has_bias:
        grads["bias_ih"] = db
        grads["bias_hh"] = db.copy()
    return grads
