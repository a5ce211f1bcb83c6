"""Elman RNN step (torch.nn.RNN, RNNCell): forward, backward and forward-mode tangent.

Convention: arrays are batches of rows; x_t is (B, I), h is (B, H) and weights are
torch's (H, I) / (H, H), so products read ``x W^T``. ``xw = x W_ih^T + b_ih + b_hh``
(the input side, both biases folded in) is computed for all steps before the loop.

Forward::

    a  = xw + h W_hh^T                     (B, H) pre-activation
    h' = act(a)                            act = tanh or relu

Backward (``dh'`` = dL/dh' arrives; chain rule through act, then through the product)::

    da = dh' * act'(a) = dh' * (1 - h'^2)      (tanh: derivative from the output)
       = dh' * [h' > 0]                        (relu)
    dh = da W_hh                               a = ... + h W_hh^T  =>  dL/dh = da W_hh
    dxw = dhw = da                             (the layer forms dW_ih, dW_hh, the biases)

act'(a) does not depend on the incoming gradient: ``rnn_partials`` forms it for a
block of steps at once, and a step is one product and one matrix product.

Tangent (a dot is a forward-mode tangent)::

    a.  = xw. + h. W_hh^T + h W_hh.^T
    h'. = act'(a) * a.

Shapes: B batch, I input, H hidden; any leading axes K... before B broadcast.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .activations import clip_input, masked, relu, relu_backward, relu_derivative, tanh, tanh_backward, tanh_derivative


def rnn_step(xp: Any, xw: Any, h_prev: Any, w: Any, nonlinearity: str) -> tuple[Any, None]:
    """One step: (h', cache). The cache is empty: backward needs only h', which the layer keeps as the state."""
    a = xw + h_prev @ w.w_hh_T  # (B, H)
    h = tanh(xp, a) if nonlinearity == "tanh" else relu(xp, a)  # (B, H)
    return h, None


def rnn_partials(h: Any, nonlinearity: str) -> Any:
    """act'(a) from the outputs h (K, B, H) of K steps: 1 - h^2, or the bool [h > 0] for relu."""
    return tanh_derivative(h) if nonlinearity == "tanh" else relu_derivative(h)  # (K, B, H)


def rnn_step_backward(xp: Any, dh: Any, d_act: Any, w: Any, nonlinearity: str) -> tuple[Any, Any]:
    """(da, dh_prev) given the step's act'(a): the gradient at the pre-activation --
    which is the gradient at xw and at h W_hh^T alike -- and at the previous hidden
    state, each (B, H).

    tanh's da is written over ``d_act``, the step's own share of the block's partials
    (read by no other step): the block of partials becomes the block of da, which the
    layer keeps without a copy per step. relu's is a select, into a new array."""
    if nonlinearity == "tanh":
        d_act *= dh  # (B, H)   da = dh' * (1 - h'^2), in place
        da = d_act
    else:
        da = masked(xp, d_act, dh)  # (B, H)   da = dh' * [h' > 0]
    return da, da @ w.w_hh  # (B, H), (B, H)


def rnn_step_jvp(xp: Any, dxw: Any, dh_prev: Any, h_prev: Any, h: Any, w: Any, dw: Any, nonlinearity: str) -> Any:
    """h'. (K..., B, H) given the tangents of xw, h and the weights (dw entries None = 0)."""
    da = dxw + dh_prev @ w.w_hh_T  # (K..., B, H)
    if dw.w_hh_T is not None:
        da = da + h_prev @ dw.w_hh_T
    return tanh_backward(da, h) if nonlinearity == "tanh" else relu_backward(xp, da, h)  # act'(a) * a.


# -- ONNX's general form ---------------------------------------------------------------------------
#
# ONNX's RNN operator: any gate function f and the cell clip, a~ = clip(a):
#
#     h' = f(a~)                 =>  da = dh' * f'(a~) * [|a| <= clip]
#
# f' needs the pre-activation (the piecewise functions cannot be told apart from their output),
# so the cache keeps a.


class RNNGeneralCache(NamedTuple):
    a: Any  # (B, H) pre-activation before the clip


def rnn_general_step(xp: Any, xw: Any, h_prev: Any, w: Any, act: Any, clip: float | None) -> tuple[Any, RNNGeneralCache]:
    """One step of ONNX's RNN: (h', cache)."""
    a = xw + h_prev @ w.w_hh_T  # (B, H)
    return act(xp, clip_input(xp, a, clip)[0]), RNNGeneralCache(a)


def rnn_general_partials(xp: Any, a: Any, h: Any, act: Any, clip: float | None) -> Any:
    """f'(a~) [|a| <= clip] (K, B, H) from K steps' pre-activations a and outputs h."""
    x, dclip = clip_input(xp, a, clip)
    d_act = act.derivative(xp, x, h)  # (K, B, H)
    return d_act if dclip is None else d_act * dclip


def rnn_general_step_jvp(xp: Any, dxw: Any, dh_prev: Any, h_prev: Any, h: Any, a: Any, w: Any, dw: Any, act: Any,
                         clip: float | None) -> Any:
    """h'. = f'(a~) [|a| <= clip] a. (K..., B, H), given the tangents of xw, h and the weights."""
    da = dxw + dh_prev @ w.w_hh_T  # (K..., B, H)
    if dw.w_hh_T is not None:
        da = da + h_prev @ dw.w_hh_T
    return rnn_general_partials(xp, a, h, act, clip) * da
