"""Elman RNN step (torch.nn.RNN, RNNCell): forward, backward and forward-mode tangent.

Names. Every function takes ``xp``, the array namespace of its arrays (NumPy, or torch
through array_api_compat, ...), and the layer's weights ``w`` (``layer.LayerWeights``):
``w.w_hh`` (H, H) is torch's ``W_hh``, for ``da W_hh``; ``w.w_hh_T`` is its transpose,
kept row-major for ``h W_hh^T`` (``layer.prepare_weights``). ``xw = x W_ih^T + b_ih + b_hh``
(B, H), the input side with both biases, is computed for a block of steps before the
loop. Batches of rows: x (B, I), h (B, H), products ``x W^T``. h_prev is the state a step
starts from, h the state it makes.

Forward::

    a = xw + h_prev W_hh^T                 (B, H) pre-activation
    h = act(a)                             act = tanh or relu

Backward. ``dX`` is dL/dX, the gradient of the loss at X (shaped like X); ``dh_da`` is
the partial derivative dh/da, elementwise (a diagonal Jacobian), so the chain rule reads
``da = dh * dh_da``. dh arrives from later steps::

    h = act(a)               =>  da = dh * dh_da,    dh_da = 1 - h^2      (tanh: from the output)
                                                     dh_da = [h > 0]      (relu)
    a = xw + h_prev W_hh^T   =>  dxw = dhw = da,     dh_prev = da W_hh    (the layer forms dW_ih, dW_hh, the biases)

dh_da depends on forward's values only: ``rnn_partials`` forms it for a block of steps at
once, and a step is one product and one matrix product.

Tangent (a dot is a forward-mode tangent)::

    a. = xw. + h_prev. W_hh^T + h_prev W_hh.^T
    h. = dh_da * a.

Shapes: B batch, I input, H hidden; any leading axes K... before B broadcast.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .activations import clip_input, masked, relu, relu_backward, relu_derivative, tanh, tanh_backward, tanh_derivative
from .blocks import chain_in_place


def rnn_step(xp: Any, xw: Any, h_prev: Any, w: Any, nonlinearity: str) -> tuple[Any, None]:
    """One step: (h, cache). The cache is empty: backward needs only h, which the layer keeps as the state."""
    a = xw + h_prev @ w.w_hh_T  # (B, H)
    h = tanh(xp, a) if nonlinearity == "tanh" else relu(xp, a)  # (B, H)
    return h, None


def rnn_partials(h: Any, nonlinearity: str) -> Any:
    """dh_da from the outputs h (K, B, H) of K steps: 1 - h^2, or the bool [h > 0] for relu."""
    return tanh_derivative(h) if nonlinearity == "tanh" else relu_derivative(h)  # (K, B, H)


def rnn_step_backward(xp: Any, dh: Any, dh_da: Any, w: Any, nonlinearity: str) -> tuple[Any, Any]:
    """(da, dh_prev) given one step's dh_da: the gradient at the pre-activation -- at xw
    and at h_prev W_hh^T alike -- and at the state the step started from, each (B, H)."""
    if nonlinearity == "tanh":
        da = chain_in_place(dh_da, dh)  # (B, H)
    else:  # relu: a select, so that an infinite or NaN dh stays out of the entries it switched off
        da = masked(xp, dh_da, dh)  # (B, H)
    dh_prev = da @ w.w_hh  # (B, H)
    return da, dh_prev


def rnn_step_jvp(xp: Any, xw_dot: Any, h_prev_dot: Any, h_prev: Any, h: Any, w: Any, w_dot: Any, nonlinearity: str) -> Any:
    """h. (K..., B, H) given the tangents of xw, h_prev and the weights (w_dot entries None = 0)."""
    a_dot = xw_dot + h_prev_dot @ w.w_hh_T  # (K..., B, H)
    if w_dot.w_hh_T is not None:
        a_dot = a_dot + h_prev @ w_dot.w_hh_T
    return tanh_backward(a_dot, h) if nonlinearity == "tanh" else relu_backward(xp, a_dot, h)  # dh_da * a.


# -- ONNX's general form ---------------------------------------------------------------------------
#
# ONNX's RNN operator: any gate function f and the cell clip, a~ = clip(a):
#
#     h = f(a~)                  =>  da = dh * dh_da,   dh_da = f'(a~) [|a| <= clip]
#
# f' needs the pre-activation (the piecewise functions cannot be told apart from their output),
# so the cache keeps a.


class RNNGeneralCache(NamedTuple):
    a: Any  # (B, H) pre-activation before the clip


def rnn_general_step(xp: Any, xw: Any, h_prev: Any, w: Any, act: Any, clip: float | None) -> tuple[Any, RNNGeneralCache]:
    """One step of ONNX's RNN: (h, cache)."""
    a = xw + h_prev @ w.w_hh_T  # (B, H)
    return act(xp, clip_input(xp, a, clip)[0]), RNNGeneralCache(a)


def rnn_general_partials(xp: Any, a: Any, h: Any, act: Any, clip: float | None) -> Any:
    """dh_da = f'(a~) [|a| <= clip] (K, B, H) from K steps' pre-activations a and outputs h."""
    x, dclip = clip_input(xp, a, clip)
    dh_da = act.derivative(xp, x, h)  # (K, B, H)
    return dh_da if dclip is None else dh_da * dclip


def rnn_general_step_jvp(xp: Any, xw_dot: Any, h_prev_dot: Any, h_prev: Any, h: Any, a: Any, w: Any, w_dot: Any, act: Any,
                         clip: float | None) -> Any:
    """h. = f'(a~) [|a| <= clip] a. (K..., B, H), given the tangents of xw, h_prev and the weights."""
    a_dot = xw_dot + h_prev_dot @ w.w_hh_T  # (K..., B, H)
    if w_dot.w_hh_T is not None:
        a_dot = a_dot + h_prev @ w_dot.w_hh_T
    return rnn_general_partials(xp, a, h, act, clip) * a_dot
