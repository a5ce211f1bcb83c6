"""One direction of one recurrent layer over a whole sequence: the BPTT loop.

This is the only time loop in the reference; the three cells plug into it
through their step functions. Structure (the fast one is also the clear one):

    forward:   xw = x W_ih^T + b            one matrix product for all T steps
               for each step: state = step(xw[t], state)     only h W_hh^T inside
    backward:  for each step, last first: carry dh (and dc) back through step
               dW_ih = sum_t dxw_t^T x_t    one matrix product after the loop
               dW_hh = sum_t dhw_t^T h_{t-1}

Variable lengths are a boolean ``mask`` (T, B, 1): where a step is padding the
state is carried through unchanged, the output is zero, and in backward the
incoming gradient passes straight to the previous state. Run in reverse
(t = T-1 ... 0), the same rule makes each sequence start at its own last valid
step, which is what torch's packed sequences do.

Shapes: T time, B batch, I input, H hidden, P output (= H without projection),
G gates (1 RNN, 3 GRU, 4 LSTM).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ._linear import affine, affine_backward
from .gru_cell import gru_step_backward, gru_step_forward
from .lstm_cell import lstm_projection_input, lstm_step_backward, lstm_step_forward
from .rnn_cell import rnn_step_backward, rnn_step_forward

State = tuple  # (h,) for RNN and GRU, (h, c) for LSTM


class LayerWeights(NamedTuple):
    """Weights of one layer and direction, in torch's layout."""

    w_ih: np.ndarray  # (G*H, I)
    w_hh: np.ndarray  # (G*H, P)
    b_ih: np.ndarray | None  # (G*H,)
    b_hh: np.ndarray | None  # (G*H,)
    w_hr: np.ndarray | None = None  # (P, H), LSTM with proj_size > 0 only


class _Cell(NamedTuple):
    """How a cell plugs into the loop."""

    gates: int
    project: Callable  # (x, w) -> xw: the part of the pre-activation known before the loop
    step: Callable  # (xw_t, state, w[, new, keep, work]) -> (state', cache); fills given buffers, may overwrite xw_t
    step_backward: Callable  # (dstate, cache, w[, dxw_t, dhw_t]) -> (dxw_t, dhw_t, dstate_prev); fills given buffers
    keep: int  # (B, H) arrays a step keeps besides its gates and the states (LSTM tanh(c'), GRU W_hn h + b_hn)
    separate_dhw: bool  # does the hidden side get a different gradient from the input side?


def _both_biases(x, w):
    # RNN and LSTM add b_ih and b_hh to the same sum: fold both into the projection.
    bias = None if w.b_ih is None else w.b_ih + w.b_hh  # (G*H,)
    return affine(x, w.w_ih, bias)  # (T, B, G*H)


def _rnn(nonlinearity: str) -> _Cell:
    def step(xw, state, w, new=None, keep=(), work=None):
        h, cache = rnn_step_forward(xw, state[0], w.w_hh, nonlinearity, out=None if new is None else new[0])
        return (h,), cache

    def step_backward(dstate, cache, w, dxw=None, dhw=None):
        dpre, dh_prev = rnn_step_backward(dstate[0], cache, w.w_hh, out=dxw)
        return dpre, dpre, (dh_prev,)

    return _Cell(1, _both_biases, step, step_backward, keep=0, separate_dhw=False)


def _gru_step(xw, state, w, new=None, keep=None, work=None):
    out = None if new is None else (xw, new[0], keep[0])
    h, cache = gru_step_forward(xw, state[0], w.w_hh, w.b_hh, out=out, work=work)
    return (h,), cache


def _gru_step_backward(dstate, cache, w, dxw=None, dhw=None):
    dxw, dhw, dh_prev = gru_step_backward(dstate[0], cache, w.w_hh, out=None if dxw is None else (dxw, dhw))
    return dxw, dhw, (dh_prev,)


def _lstm_step(xw, state, w, new=None, keep=None, work=None):
    out = None if new is None else (xw, new[0], new[1], keep[0])
    h, c, cache = lstm_step_forward(xw, state[0], state[1], w.w_hh, w.w_hr, out=out, work=work)
    return (h, c), cache


def _lstm_step_backward(dstate, cache, w, dxw=None, dhw=None):
    dgates, dh_prev, dc_prev = lstm_step_backward(dstate[0], dstate[1], cache, w.w_hh, w.w_hr, out=dxw)
    return dgates, dgates, (dh_prev, dc_prev)


CELLS: dict[str, _Cell] = {
    "RNN_TANH": _rnn("tanh"),
    "RNN_RELU": _rnn("relu"),
    # GRU keeps b_hh on the hidden side: b_hn sits inside the reset product.
    "GRU": _Cell(3, lambda x, w: affine(x, w.w_ih, w.b_ih), _gru_step, _gru_step_backward, keep=1, separate_dhw=True),
    "LSTM": _Cell(4, _both_biases, _lstm_step, _lstm_step_backward, keep=1, separate_dhw=False),
}


class LayerTape(NamedTuple):
    """Everything backward needs; nothing in it is written after forward."""

    mode: str  # a key of CELLS
    x: np.ndarray  # (T, B, I)
    state0: State  # (h0,) or (h0, c0)
    weights: LayerWeights
    mask: np.ndarray | None  # (T, B, 1) bool, True on valid steps
    reverse: bool
    states: np.ndarray  # (T + 1, B, P) hidden states in processing order; states[0] = h0
    caches: list  # T step caches in processing order (views into the layer's buffers)


def _time_steps(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


def _in_time_order(per_step: np.ndarray | list, reverse: bool) -> np.ndarray:
    """(T, ...) array of per-step values listed in processing order, in time order (a view when it can be)."""
    stacked = per_step if isinstance(per_step, np.ndarray) else np.stack(per_step)  # (T, ...)
    return stacked[::-1] if reverse else stacked


def recurrent_layout(w: LayerWeights) -> LayerWeights:
    """The same weights, with W_hh (and W_hr) stored column-major for the loop.

    Each step forms h @ W_hh^T. Given W_hh^T as a row-major matrix, which is what
    a column-major W_hh is, OpenBLAS's product on these shapes (B = 64, one
    step) ran 5-19% faster than through the transposed view of a row-major W_hh,
    in both dtypes and for every cell (measured at H = 256, 512, 1024, 2 threads),
    and never slower. The copy is made once per sequence. Backward keeps the
    row-major original: there the step forms dgates @ W_hh, which is fastest as is.
    """
    w_hr = None if w.w_hr is None else np.asfortranarray(w.w_hr)  # (P, H)
    return w._replace(w_hh=np.asfortranarray(w.w_hh), w_hr=w_hr)  # (G*H, P)


def layer_forward(
    mode: str,
    x: np.ndarray,
    state0: State,
    weights: LayerWeights,
    mask: np.ndarray | None = None,
    reverse: bool = False,
) -> tuple[np.ndarray, State, LayerTape]:
    """Run one layer in one direction over time.

    Args:
        mode: "RNN_TANH", "RNN_RELU", "GRU" or "LSTM".
        x: (T, B, I) time-major input, T >= 1.
        state0: (h0,) or (h0, c0); h0 (B, P), c0 (B, H).
        mask: (T, B, 1) bool or None (every step valid).
        reverse: walk t = T-1 ... 0.
    Returns:
        output (T, B, P) in time order (zero on padded steps), the final state
        (each sequence's state after its own last valid step) and the tape.
    """
    cell = CELLS[mode]
    T, B = x.shape[:2]
    xw = cell.project(x, weights)  # (T, B, G*H); GRU and LSTM steps store their gates over it
    step_weights = recurrent_layout(weights)
    H = xw.shape[-1] // cell.gates
    # Every step writes into slots allocated here, once: the state history (which is
    # also the output), what the caches keep, and one scratch for the product W_hh h.
    history = tuple(np.empty((T + 1,) + s.shape, dtype=xw.dtype) for s in state0)  # (T+1, B, P) [, (T+1, B, H)]
    for hist, s in zip(history, state0):
        hist[0] = s
    keep = np.empty((T, cell.keep, B, H), dtype=xw.dtype)  # (T, K, B, H)
    work = np.empty((B, xw.shape[-1]), dtype=xw.dtype)  # (B, G*H)
    caches = []
    for k, t in enumerate(_time_steps(T, reverse)):
        prev, new = tuple(h[k] for h in history), tuple(h[k + 1] for h in history)
        _, cache = cell.step(xw[t], prev, step_weights, new, keep[k], work)  # writes new, keep[k], xw[t]
        caches.append(cache)
        if mask is not None:  # padded rows keep their state
            for n, p in zip(new, prev):
                np.copyto(n, p, where=~mask[t])
    out = _in_time_order(history[0][1:], reverse)  # (T, B, P) a view of the tape ...
    out = np.where(mask, out, 0) if mask is not None else out.copy()  # ... so the caller gets a copy
    final = tuple(h[T].copy() for h in history)
    return out, final, LayerTape(mode, x, state0, weights, mask, reverse, history[0], caches)


def layer_backward(
    dout: np.ndarray | None, dstate_n: State, tape: LayerTape
) -> tuple[np.ndarray, State, dict[str, np.ndarray | None]]:
    """Backpropagation through time for one layer and direction.

    Args:
        dout: (T, B, P) gradient at the output, or None for zero; ignored on
            padded steps (the output there is a constant zero).
        dstate_n: gradients at the final state, (dh_n,) or (dh_n, dc_n); None
            entries are zero.
    Returns:
        dx (T, B, I), the gradient at the initial state (same structure) and a
        dict with "w_ih", "w_hh", "b_ih", "b_hh", "w_hr" (None where absent).
    """
    mode, x, state0, w, mask, reverse, states, caches = tape
    cell = CELLS[mode]
    T, B = x.shape[:2]
    if dout is not None and mask is not None:
        dout = np.where(mask, dout, 0)  # (T, B, P) padded outputs are constants
    dxw = np.empty((T, B, w.w_ih.shape[0]), dtype=x.dtype)  # (T, B, G*H)
    dhw = np.empty_like(dxw) if cell.separate_dhw else dxw  # (T, B, G*H)
    dh_steps = []  # gradient at each step's h, for dW_hr
    dstate = tuple(np.zeros_like(s) if d is None else d for d, s in zip(dstate_n, state0))
    for k, t in reversed(list(enumerate(_time_steps(T, reverse)))):
        if dout is not None:
            dstate = (dstate[0] + dout[t],) + dstate[1:]  # (B, P)
        d_step = dstate if mask is None else tuple(np.where(mask[t], d, 0) for d in dstate)
        _, _, d_prev = cell.step_backward(d_step, caches[k], w, dxw[t], dhw[t])  # fills dxw[t], dhw[t]
        if w.w_hr is not None:
            dh_steps.append(d_step[0])
        if mask is not None:  # on padded steps the gradient passes straight through
            d_prev = tuple(np.where(mask[t], dp, d) for dp, d in zip(d_prev, dstate))
        dstate = d_prev
    has_bias = w.b_ih is not None
    dx, dw_ih, db_ih = affine_backward(dxw, x, w.w_ih, has_bias)  # (T, B, I), (G*H, I), (G*H,)
    h_prev = _in_time_order(states[:-1], reverse)  # (T, B, P), aligned with dhw; a view of the tape
    if mask is not None:  # padded steps get zero gradient; zero their operands too, so 0 * NaN cannot leak in
        h_prev = np.where(mask, h_prev, 0)  # (T, B, P)
    _, dw_hh, db_hh = affine_backward(dhw, h_prev, w.w_hh, has_bias and cell.separate_dhw, need_dx=False)
    if has_bias and not cell.separate_dhw:
        db_hh = db_ih.copy()  # both biases enter the same sum
    grads = {"w_ih": dw_ih, "w_hh": dw_hh, "b_ih": db_ih, "b_hh": db_hh, "w_hr": None}
    if w.w_hr is not None:
        dh = _in_time_order(dh_steps[::-1], reverse)  # (T, B, P)
        m = _in_time_order([lstm_projection_input(c) for c in caches], reverse)  # (T, B, H)
        if mask is not None:
            m = np.where(mask, m, 0)  # (T, B, H)
        _, grads["w_hr"], _ = affine_backward(dh, m, w.w_hr, False, need_dx=False)  # (P, H)
    return dx, dstate, grads
