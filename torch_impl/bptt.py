"""The reference's hand-written BPTT in torch tensor ops, as a torch.autograd.Function.

Forward is ``equations.stack_forward`` run without autograd; backward is the
reference's (``reference/layer.py``, ``reference/recurrent.py``) line for line,
so the hand-written maths runs on any device torch runs on::

    output, h_n = rnn_bptt("GRU", x, h0, dict(gru.named_parameters()), num_layers=2)

Derivatives of one step (a "d" prefix on a gate: the gradient at its pre-activation)::

    RNN   dpre = dh' * (1 - h'^2)   (tanh)     dpre = dh' * [h' > 0]   (relu)
          dxw = dhw = dpre                     dh = dpre W_hh
    GRU   dn = dh' * (1 - z) * (1 - n^2)       dz = dh' * (h - n) * z * (1 - z)
          dr = dn * hw_n * r * (1 - r)         hw_n = W_hn h + b_hn
          dxw = [dr, dz, dn]                   dhw = [dr, dz, dn * r]   (b_hn is inside the reset product)
          dh = dh' * z + dhw W_hh
    LSTM  dm = dh' W_hr  (or dh')              dW_hr = sum_t dh'_t^T m_t,  m = o * tanh(c')
          dc = dc' + dm * o * (1 - tanh(c')^2)
          di = dc * g * i * (1 - i)            df = dc * c * f * (1 - f)
          dg = dc * i * (1 - g^2)              do = dm * tanh(c') * o * (1 - o)
          dxw = dhw = [di, df, dg, do]         dh = dhw W_hh,   dc_prev = dc * f

and after the loop, one product each over all steps::

    dx = dxw W_ih     dW_ih = sum_t dxw_t^T x_t     dW_hh = sum_t dhw_t^T h_{t-1}
    db_ih = sum dxw   db_hh = sum dhw  (= db_ih for RNN and LSTM: both biases enter one sum)

On padded steps (lengths) the incoming gradient passes straight to the previous
state and the output's gradient is ignored. Layers are walked top-down; the
gradient at a layer's input goes back through the dropout mask and is summed
over the two directions that read it.

Shapes: T time, B batch, I input, H hidden, P output (proj_size or H), G gates,
L layers, D directions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .equations import (
    GRUStepCache,
    LayerTape,
    LSTMStepCache,
    RNNStepCache,
    finish,
    in_time_order,
    prepare,
    stack_forward,
    suffixes,
    time_steps,
)

# -- one step backward -------------------------------------------------------------


def rnn_step_backward(dh: Tensor, cache: RNNStepCache, w_hh: Tensor, nonlinearity: str) -> tuple[Tensor, Tensor]:
    """Returns (dpre, dh_prev): the gradient at the pre-activation (at xw and at
    h W_hh^T alike), (B, H), and at the previous hidden state, (B, H)."""
    h = cache.h
    dpre = dh * (1 - h * h) if nonlinearity == "tanh" else torch.where(h > 0, dh, 0.0)  # (B, H)
    return dpre, dpre @ w_hh  # (B, H), (B, H)


def gru_step_backward(dh: Tensor, cache: GRUStepCache, w_hh: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Returns (dxw, dhw, dh_prev): gradients at W_ih x + b_ih (B, 3H), at
    W_hh h + b_hh (B, 3H) and at the previous hidden state (B, H)."""
    h_prev, rz, n, hw_n = cache
    r, z = rz.chunk(2, dim=-1)  # 2 x (B, H)
    d_n = dh * (1 - z) * (1 - n * n)  # (B, H)
    d_z = dh * (h_prev - n) * z * (1 - z)  # (B, H)
    d_r = d_n * hw_n * r * (1 - r)  # (B, H)
    dxw = torch.cat([d_r, d_z, d_n], dim=-1)  # (B, 3H)
    dhw = torch.cat([d_r, d_z, d_n * r], dim=-1)  # (B, 3H) the n row passes through the reset product
    dh_prev = dhw @ w_hh + dh * z  # (B, H)
    return dxw, dhw, dh_prev


def lstm_step_backward(dh: Tensor, dc: Tensor, cache: LSTMStepCache, w_hh: Tensor,
                       w_hr: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Returns (dgates, dh_prev, dc_prev): the gradient at the gate pre-activations
    (B, 4H) -- at xw and at h W_hh^T alike -- and at the previous h (B, P) and c (B, H)."""
    c_prev, gates, tanh_c = cache
    i, f, g, o = gates.chunk(4, dim=-1)  # 4 x (B, H)
    dm = dh if w_hr is None else dh @ w_hr  # (B, H)
    dc_total = dc + dm * o * (1 - tanh_c * tanh_c)  # (B, H) total gradient at c'
    dgates = torch.cat([dc_total * g * i * (1 - i),  # d_i
                        dc_total * c_prev * f * (1 - f),  # d_f
                        dc_total * i * (1 - g * g),  # d_g
                        dm * tanh_c * o * (1 - o)], dim=-1)  # d_o; (B, 4H)
    return dgates, dgates @ w_hh, dc_total * f  # (B, 4H), (B, P), (B, H)


class _CellBackward(NamedTuple):
    step_backward: Callable  # (dstate, cache, w) -> (dxw_t, dhw_t, dstate_prev)
    separate_dhw: bool  # does the hidden side get a different gradient from the input side?


def _rnn(nonlinearity: str) -> _CellBackward:
    def step_backward(dstate, cache, w):
        dpre, dh_prev = rnn_step_backward(dstate[0], cache, w.w_hh, nonlinearity)
        return dpre, dpre, (dh_prev,)

    return _CellBackward(step_backward, separate_dhw=False)


def _gru_step_backward(dstate, cache, w):
    dxw, dhw, dh_prev = gru_step_backward(dstate[0], cache, w.w_hh)
    return dxw, dhw, (dh_prev,)


def _lstm_step_backward(dstate, cache, w):
    dgates, dh_prev, dc_prev = lstm_step_backward(dstate[0], dstate[1], cache, w.w_hh, w.w_hr)
    return dgates, dgates, (dh_prev, dc_prev)


CELLS: dict[str, _CellBackward] = {
    "RNN_TANH": _rnn("tanh"),
    "RNN_RELU": _rnn("relu"),
    "GRU": _CellBackward(_gru_step_backward, separate_dhw=True),
    "LSTM": _CellBackward(_lstm_step_backward, separate_dhw=False),
}


# -- one layer, one direction --------------------------------------------------------


def _weight_grad(dy: Tensor, x: Tensor) -> Tensor:
    """sum over all leading axes of dy_n^T x_n: one product for all steps."""
    return dy.reshape(-1, dy.shape[-1]).T @ x.reshape(-1, x.shape[-1])  # (out, in)


def layer_backward(dout: Tensor, dstate_n: tuple, tape: LayerTape) -> tuple[Tensor, tuple, dict[str, Tensor | None]]:
    """Backpropagation through time for one layer and direction.

    Args:
        dout: (T, B, P) gradient at the output (ignored on padded steps).
        dstate_n: (dh_n (B, P),) or (dh_n, dc_n (B, H)).
    Returns:
        dx (T, B, I), the gradient at the initial state (same structure) and a
        dict with "w_ih", "w_hh", "b_ih", "b_hh", "w_hr" (None where absent).
    """
    mode, x, _, w, mask, reverse, states, caches = tape
    cell = CELLS[mode]
    T = x.shape[0]
    if mask is not None:
        dout = torch.where(mask, dout, 0.0)  # (T, B, P) padded outputs are constants
    dxw, dhw, dh_steps = [None] * T, [None] * T, [None] * T  # per time step: (B, G*H), (B, G*H), (B, P)
    dstate = dstate_n
    for k, t in reversed(list(enumerate(time_steps(T, reverse)))):
        dstate = (dstate[0] + dout[t],) + dstate[1:]  # (B, P)
        d_step = dstate if mask is None else tuple(torch.where(mask[t], d, 0.0) for d in dstate)
        dxw[t], dhw[t], d_prev = cell.step_backward(d_step, caches[k], w)
        dh_steps[t] = d_step[0]
        if mask is not None:  # on padded steps the gradient passes straight through
            d_prev = tuple(torch.where(mask[t], dp, d) for dp, d in zip(d_prev, dstate))
        dstate = d_prev
    dxw_all = torch.stack(dxw)  # (T, B, G*H)
    dhw_all = torch.stack(dhw) if cell.separate_dhw else dxw_all  # (T, B, G*H)
    h_prev = in_time_order(states[:-1], reverse)  # (T, B, P), aligned with dhw
    # One product each after the loop: the same weights are used at every step.
    grads: dict[str, Tensor | None] = {"w_ih": _weight_grad(dxw_all, x), "w_hh": _weight_grad(dhw_all, h_prev),
                                       "b_ih": None, "b_hh": None, "w_hr": None}
    if w.b_ih is not None:
        grads["b_ih"] = dxw_all.sum(dim=(0, 1))  # (G*H,)
        grads["b_hh"] = dhw_all.sum(dim=(0, 1))  # (G*H,)
    if w.w_hr is not None:
        m = in_time_order([c.gates.chunk(4, dim=-1)[3] * c.tanh_c for c in caches], reverse)  # (T, B, H)
        grads["w_hr"] = _weight_grad(torch.stack(dh_steps), m)  # (P, H)
    dx = dxw_all @ w.w_ih  # (T, B, I)
    return dx, dstate, grads


def stack_backward(dout: Tensor, dstates: list, tapes: list, dropout: list,
                   bidirectional: bool) -> tuple[Tensor, list, dict[str, Tensor]]:
    """Backward through every layer and direction, top layer first.

    Args:
        dout: (T, B, D*P).  dstates: [dh_n (D*L, B, P)] or [dh_n, dc_n (D*L, B, H)].
        tapes: [layer][direction] from ``stack_forward``.  dropout: L - 1 scaled keep masks or Nones.
    Returns:
        dx (T, B, I), [dh_0] or [dh_0, dc_0], and the gradients keyed by torch's parameter names.
    """
    D = 2 if bidirectional else 1
    P = dstates[0].shape[-1]
    d_initial: list[list] = [[None] * dstates[0].shape[0] for _ in dstates]
    grads: dict[str, Tensor] = {}
    for layer in reversed(range(len(tapes))):
        dx = None
        for d, sfx in enumerate(suffixes(bidirectional)):
            idx = layer * D + d
            d_dir = dout[..., d * P : (d + 1) * P]  # (T, B, P)
            dxd, dstate0, g = layer_backward(d_dir, tuple(s[idx] for s in dstates), tapes[layer][d])
            for dst, src in zip(d_initial, dstate0):
                dst[idx] = src
            dx = dxd if dx is None else dx + dxd  # both directions read the same input
            k = f"l{layer}{sfx}"
            names = {"w_ih": f"weight_ih_{k}", "w_hh": f"weight_hh_{k}", "b_ih": f"bias_ih_{k}",
                     "b_hh": f"bias_hh_{k}", "w_hr": f"weight_hr_{k}"}
            grads.update((names[key], v) for key, v in g.items() if v is not None)
        if layer > 0 and dropout[layer - 1] is not None:
            dx = dx * dropout[layer - 1]  # (T, B, D*P)
        dout = dx
    return dout, [torch.stack(s) for s in d_initial], grads


# -- the autograd Function ------------------------------------------------------------


class BPTTSpec(NamedTuple):
    """The non-differentiable arguments of ``RNNBPTTFunction``."""

    mode: str
    num_layers: int
    bidirectional: bool
    names: tuple  # parameter names, in the order of the weight arguments
    mask: Tensor | None  # (T, B, 1) bool
    dropout: list  # L - 1 scaled keep masks (T, B, D*P), or Nones


class RNNBPTTFunction(torch.autograd.Function):
    """Time-major stack of layers with the hand-written backward.

    ``apply(spec, x (T, B, I), h0 (D*L, B, P), c0 (D*L, B, H) or None, *weights)``
    returns (output (T, B, D*P), h_n) or, for LSTM, (output, h_n, c_n).
    """

    @staticmethod
    def forward(ctx, spec: BPTTSpec, x: Tensor, h0: Tensor, c0: Tensor | None, *weights: Tensor):
        states0 = [h0] if c0 is None else [h0, c0]
        params = dict(zip(spec.names, weights))
        output, finals, tapes = stack_forward(spec.mode, x, states0, params, spec.num_layers, spec.bidirectional,
                                              spec.mask, spec.dropout)
        # The inputs go through save_for_backward so that torch detects in-place changes made after
        # forward; the tapes (intermediates, never seen by the caller) are kept on ctx.
        ctx.save_for_backward(x, h0, c0, *weights)
        ctx.spec, ctx.tapes = spec, tapes
        return (output, *finals)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout: Tensor, *dstates: Tensor):
        ctx.saved_tensors  # noqa: B018 -- raises if an input was modified in place since forward
        spec = ctx.spec
        dx, d_initial, grads = stack_backward(dout, list(dstates), ctx.tapes, spec.dropout, spec.bidirectional)
        dc0 = d_initial[1] if len(d_initial) == 2 else None
        return (None, dx, d_initial[0], dc0, *(grads[n] for n in spec.names))


def rnn_bptt(mode: str, input: Tensor, hx: Any, params: dict[str, Tensor], *, num_layers: int = 1,
             bidirectional: bool = False, batch_first: bool = False, proj_size: int = 0, lengths: Any = None,
             dropout: float = 0.0, dropout_masks: Sequence[Tensor] | None = None, training: bool = False):
    """``equations.rnn_forward`` with the hand-written backward instead of autograd's.

    Same arguments and results as ``rnn_forward`` (torch.nn's layouts): mode
    "RNN_TANH", "RNN_RELU", "GRU" or "LSTM"; input (T, B, I), (B, T, I) with
    batch_first or (T, I); hx h_0 (D*L, B, P) or (h_0, c_0 (D*L, B, H)) or None;
    params keyed by torch's names; lengths B ints in [1, T]; dropout_masks L - 1
    keep masks of 0s and 1s shaped like the output, scaled by 1/(1-p) here.
    Differentiable once (the backward is not itself differentiable).
    """
    inp = prepare(mode, input, hx, params, num_layers=num_layers, bidirectional=bidirectional,
                  batch_first=batch_first, proj_size=proj_size, lengths=lengths, dropout=dropout,
                  dropout_masks=dropout_masks, training=training)
    names = tuple(params)
    spec = BPTTSpec(mode, num_layers, bidirectional, names, inp.mask, inp.dropout)
    c0 = inp.states0[1] if mode == "LSTM" else None
    output, *finals = RNNBPTTFunction.apply(spec, inp.x, inp.states0[0], c0, *(params[n] for n in names))
    return finish(mode, output, finals, inp.batched, batch_first)
