"""torch.nn's recurrent equations written out with plain torch tensor ops.

The same maths as the NumPy reference, on any device and any float dtype, as
an oracle independent of torch's fused CPU kernels and of cuDNN. Autograd
through it gives first and second derivatives (cuDNN's RNN has no double
backward). ``bptt.py`` runs the same forward and replaces autograd by the
hand-written backward.

Equations (torch's notation; ``*`` is elementwise)::

    RNN   h' = act(W_ih x + b_ih + W_hh h + b_hh)                 act = tanh or relu
    GRU   r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
          z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
          n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))          b_hn inside the reset product
          h' = (1 - z) * n + z * h
    LSTM  i, f, o = sigmoid(W_i* x + b_i* + W_h* h + b_h*)
          g  = tanh(W_ig x + b_ig + W_hg h + b_hg)
          c' = f * c + i * g
          h' = o * tanh(c')          or  W_hr (o * tanh(c'))  with proj_size P > 0

Stacking, as in ``reference/recurrent.py``::

    x_0 = input
    x_{l+1} = dropout_l( concat_d layer_{l,d}(x_l) )     keep mask * 1/(1-p); all zeros at p = 1
    h_n[l * D + d] = final state of layer l, direction d  (before dropout)

Variable lengths are a mask (T, B, 1): on padded steps the state is carried
through unchanged and the output is zero (torch's packed sequences).

The input projection of all steps is one matrix product before the loop; only
the recurrent product stays inside it.

Shapes: T time, B batch, I input, H hidden, P output (proj_size or H), G gates
(1 RNN, 3 GRU, 4 LSTM), L layers, D directions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

MODES = ("RNN_TANH", "RNN_RELU", "GRU", "LSTM")
_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


# -- one step, given the input side xw (projected before the loop) ---------------


class RNNStepCache(NamedTuple):
    h: Tensor  # (B, H) output of the step; its derivative needs nothing else


class GRUStepCache(NamedTuple):
    h_prev: Tensor  # (B, H)
    rz: Tensor  # (B, 2H) reset and update gates, after the sigmoid
    n: Tensor  # (B, H) new gate, after the tanh
    hw_n: Tensor  # (B, H) W_hn h + b_hn, the term the reset gate multiplies


class LSTMStepCache(NamedTuple):
    c_prev: Tensor  # (B, H)
    gates: Tensor  # (B, 4H) i, f, g, o after their nonlinearities
    tanh_c: Tensor  # (B, H) tanh(c')


def rnn_step(xw: Tensor, h_prev: Tensor, w_hh: Tensor, nonlinearity: str = "tanh") -> tuple[Tensor, RNNStepCache]:
    """h' = act(xw + h W_hh^T), xw = W_ih x + b_ih + b_hh.

    Args:
        xw: (B, H).  h_prev: (B, H).  w_hh: (H, H).
    """
    pre = xw + h_prev @ w_hh.T  # (B, H)
    h = torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)  # (B, H)
    return h, RNNStepCache(h)


def gru_step(xw: Tensor, h_prev: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> tuple[Tensor, GRUStepCache]:
    """One GRU step given xw = W_ih x + b_ih; b_hh stays on the hidden side.

    Args:
        xw: (B, 3H).  h_prev: (B, H).  w_hh: (3H, H).  b_hh: (3H,) or None.
    """
    H = h_prev.shape[-1]
    hw = h_prev @ w_hh.T  # (B, 3H)
    if b_hh is not None:
        hw = hw + b_hh  # (B, 3H)
    rz = torch.sigmoid(xw[..., : 2 * H] + hw[..., : 2 * H])  # (B, 2H)
    r, z = rz[..., :H], rz[..., H:]  # 2 x (B, H)
    hw_n = hw[..., 2 * H :]  # (B, H)
    n = torch.tanh(xw[..., 2 * H :] + r * hw_n)  # (B, H)
    h = n + z * (h_prev - n)  # (B, H)   = (1 - z) * n + z * h
    return h, GRUStepCache(h_prev, rz, n, hw_n)


def lstm_step(xw: Tensor, h_prev: Tensor, c_prev: Tensor, w_hh: Tensor,
              w_hr: Tensor | None = None) -> tuple[Tensor, Tensor, LSTMStepCache]:
    """One LSTM step given xw = W_ih x + b_ih + b_hh.

    Args:
        xw: (B, 4H).  h_prev: (B, P).  c_prev: (B, H).  w_hh: (4H, P).  w_hr: (P, H) or None.
    Returns:
        h (B, P), c (B, H) and the step cache.
    """
    H = c_prev.shape[-1]
    pre = xw + h_prev @ w_hh.T  # (B, 4H)
    gates = torch.cat([torch.sigmoid(pre[..., : 2 * H]),  # i, f
                       torch.tanh(pre[..., 2 * H : 3 * H]),  # g
                       torch.sigmoid(pre[..., 3 * H :])], dim=-1)  # o; (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)  # 4 x (B, H)
    c = f * c_prev + i * g  # (B, H)
    tanh_c = torch.tanh(c)  # (B, H)
    h = o * tanh_c  # (B, H)
    if w_hr is not None:
        h = h @ w_hr.T  # (B, P)
    return h, c, LSTMStepCache(c_prev, gates, tanh_c)


# -- cells: torch.nn.RNNCell, GRUCell, LSTMCell ----------------------------------


def _affine(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    y = x @ weight.T  # (..., out)
    return y if bias is None else y + bias


def _sum_biases(b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor | None:
    # RNN and LSTM add b_ih and b_hh to the same sum: fold both into the input side.
    return None if b_ih is None else b_ih + b_hh


def rnn_cell(input: Tensor, hx: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None = None,
             bias_hh: Tensor | None = None, nonlinearity: str = "tanh") -> Tensor:
    """torch.nn.RNNCell: h' = act(W_ih x + b_ih + W_hh h + b_hh).

    Args:
        input: (B, I) or (I,).  hx: (B, H) or (H,).  weight_ih: (H, I).  weight_hh: (H, H).
        bias_ih, bias_hh: (H,) or both None.
    """
    xw = _affine(input, weight_ih, _sum_biases(bias_ih, bias_hh))  # (B, H)
    return rnn_step(xw, hx, weight_hh, nonlinearity)[0]


def gru_cell(input: Tensor, hx: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None = None,
             bias_hh: Tensor | None = None) -> Tensor:
    """torch.nn.GRUCell (gates r, z, n; b_hn inside the reset product).

    Args:
        input: (B, I) or (I,).  hx: (B, H) or (H,).  weight_ih: (3H, I).  weight_hh: (3H, H).
        bias_ih, bias_hh: (3H,) or both None.
    """
    xw = _affine(input, weight_ih, bias_ih)  # (B, 3H)
    return gru_step(xw, hx, weight_hh, bias_hh)[0]


def lstm_cell(input: Tensor, hx: tuple[Tensor, Tensor], weight_ih: Tensor, weight_hh: Tensor,
              bias_ih: Tensor | None = None, bias_hh: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """torch.nn.LSTMCell (gates i, f, g, o); returns (h', c').

    Args:
        input: (B, I) or (I,).  hx: (h, c), each (B, H) or (H,).  weight_ih: (4H, I).
        weight_hh: (4H, H).  bias_ih, bias_hh: (4H,) or both None.
    """
    xw = _affine(input, weight_ih, _sum_biases(bias_ih, bias_hh))  # (B, 4H)
    h, c, _ = lstm_step(xw, hx[0], hx[1], weight_hh)
    return h, c


# -- one layer, one direction, over time ------------------------------------------


class LayerWeights(NamedTuple):
    """Weights of one layer and direction, in torch's layout."""

    w_ih: Tensor  # (G*H, I)
    w_hh: Tensor  # (G*H, P)
    b_ih: Tensor | None  # (G*H,)
    b_hh: Tensor | None  # (G*H,)
    w_hr: Tensor | None  # (P, H), LSTM with proj_size > 0 only


class _Cell(NamedTuple):
    project: Callable  # (x, w) -> xw, the part of the pre-activation known before the loop
    step: Callable  # (xw_t, state, w) -> (state', cache)


def _both_biases(x: Tensor, w: LayerWeights) -> Tensor:
    return _affine(x, w.w_ih, _sum_biases(w.b_ih, w.b_hh))  # (T, B, G*H)


def _rnn(nonlinearity: str) -> _Cell:
    def step(xw, state, w):
        h, cache = rnn_step(xw, state[0], w.w_hh, nonlinearity)
        return (h,), cache

    return _Cell(_both_biases, step)


def _gru_step(xw, state, w):
    h, cache = gru_step(xw, state[0], w.w_hh, w.b_hh)
    return (h,), cache


def _lstm_step(xw, state, w):
    h, c, cache = lstm_step(xw, state[0], state[1], w.w_hh, w.w_hr)
    return (h, c), cache


CELLS: dict[str, _Cell] = {
    "RNN_TANH": _rnn("tanh"),
    "RNN_RELU": _rnn("relu"),
    # GRU keeps b_hh on the hidden side: b_hn sits inside the reset product.
    "GRU": _Cell(lambda x, w: _affine(x, w.w_ih, w.b_ih), _gru_step),
    "LSTM": _Cell(_both_biases, _lstm_step),
}


class LayerTape(NamedTuple):
    """What one layer's forward leaves for a hand-written backward (``bptt.py``)."""

    mode: str
    x: Tensor  # (T, B, I)
    state0: tuple  # (h0,) or (h0, c0)
    weights: LayerWeights
    mask: Tensor | None  # (T, B, 1) bool, True on valid steps
    reverse: bool
    states: list  # T + 1 hidden states (B, P) in processing order; states[0] = h0
    caches: list  # T step caches in processing order


def time_steps(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


def in_time_order(per_step: list, reverse: bool) -> Tensor:
    """Stack tensors listed in processing order into a (T, ...) tensor in time order."""
    return torch.stack(per_step[::-1] if reverse else per_step)  # (T, ...)


def layer_forward(mode: str, x: Tensor, state0: tuple, weights: LayerWeights, mask: Tensor | None = None,
                  reverse: bool = False) -> tuple[Tensor, tuple, LayerTape]:
    """Run one layer in one direction over time.

    Args:
        x: (T, B, I).  state0: (h0 (B, P),) or (h0, c0 (B, H)).  mask: (T, B, 1) bool or None.
        reverse: walk t = T-1 ... 0.
    Returns:
        output (T, B, P) in time order (zero on padded steps), the final state and the tape.
    """
    cell = CELLS[mode]
    xw = cell.project(x, weights)  # (T, B, G*H)
    state, states, caches = state0, [state0[0]], []
    for t in time_steps(x.shape[0], reverse):
        new, cache = cell.step(xw[t], state, weights)
        if mask is not None:  # padded rows keep their state
            new = tuple(torch.where(mask[t], n, s) for n, s in zip(new, state))
        state = new
        states.append(state[0])
        caches.append(cache)
    out = in_time_order(states[1:], reverse)  # (T, B, P)
    if mask is not None:
        out = torch.where(mask, out, 0.0)  # (T, B, P)
    return out, state, LayerTape(mode, x, state0, weights, mask, reverse, states, caches)


# -- the stack of layers, time-major ---------------------------------------------


def layer_weights(params: dict[str, Tensor], layer: int, sfx: str) -> LayerWeights:
    k = f"l{layer}{sfx}"
    return LayerWeights(params[f"weight_ih_{k}"], params[f"weight_hh_{k}"], params.get(f"bias_ih_{k}"),
                        params.get(f"bias_hh_{k}"), params.get(f"weight_hr_{k}"))


def suffixes(bidirectional: bool) -> list[str]:
    return ["", "_reverse"][: 2 if bidirectional else 1]


def stack_forward(mode: str, x: Tensor, states0: list, params: dict[str, Tensor], num_layers: int,
                  bidirectional: bool, mask: Tensor | None, dropout: list) -> tuple[Tensor, list, list]:
    """All layers and directions, time-major.

    Args:
        x: (T, B, I).  states0: [h0 (D*L, B, P)] or [h0, c0 (D*L, B, H)].
        mask: (T, B, 1) bool or None.  dropout: L - 1 scaled keep masks (T, B, D*P) or Nones.
    Returns:
        output (T, B, D*P), the final states [h_n] or [h_n, c_n] and the tapes [layer][direction].
    """
    D = 2 if bidirectional else 1
    finals: list[list[Tensor]] = [[] for _ in states0]  # per state kind, D*L entries of (B, *)
    tapes = []
    for layer in range(num_layers):
        outs, layer_tapes = [], []
        for d, sfx in enumerate(suffixes(bidirectional)):
            state0 = tuple(s[layer * D + d] for s in states0)
            out, state_n, tape = layer_forward(mode, x, state0, layer_weights(params, layer, sfx), mask, d == 1)
            for f, s in zip(finals, state_n):
                f.append(s)
            outs.append(out)
            layer_tapes.append(tape)
        tapes.append(layer_tapes)
        x = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (T, B, D*P)
        if layer < num_layers - 1 and dropout[layer] is not None:
            x = x * dropout[layer]  # (T, B, D*P); h_n was taken before this
    return x, [torch.stack(f) for f in finals], tapes


# -- torch.nn's calling convention ------------------------------------------------


class Inputs(NamedTuple):
    """The arguments of ``rnn_forward`` in the time-major form the loop uses."""

    x: Tensor  # (T, B, I)
    states0: list  # [h0 (D*L, B, P)] or [h0, c0 (D*L, B, H)]
    mask: Tensor | None  # (T, B, 1) bool
    dropout: list  # L - 1 scaled keep masks (T, B, D*P), or Nones
    batched: bool


def parameter_names(mode: str, num_layers: int, bias: bool, bidirectional: bool, proj_size: int) -> list[str]:
    """torch's parameter names of a multi-layer module, in torch's order."""
    names = []
    for layer in range(num_layers):
        for sfx in suffixes(bidirectional):
            k = f"l{layer}{sfx}"
            names += [f"weight_ih_{k}", f"weight_hh_{k}"]
            names += [f"bias_ih_{k}", f"bias_hh_{k}"] if bias else []
            names += [f"weight_hr_{k}"] if proj_size else []
    return names


def check_params(mode: str, params: dict[str, Tensor], num_layers: int, bidirectional: bool, proj_size: int) -> None:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    bias = "bias_ih_l0" in params
    expected = parameter_names(mode, num_layers, bias, bidirectional, proj_size)
    if set(params) != set(expected):
        raise KeyError(f"params: missing {sorted(set(expected) - set(params))}, "
                       f"unexpected {sorted(set(params) - set(expected))}")


def _keep_masks(masks: Sequence[Tensor] | None, p: float, active: bool, shape: tuple, batched: bool,
                batch_first: bool, like: Tensor, count: int) -> list:
    """Scaled keep masks (T, B, D*P): given 0/1 masks in the output's layout, or drawn like torch."""
    if masks is not None and not active:
        raise ValueError("dropout_masks: given, but no dropout is applied (needs training, dropout > 0, num_layers > 1)")
    if not active:
        return [None] * count
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    if masks is None:  # Bernoulli(1 - p) per element, from torch's generator
        return [torch.bernoulli(torch.full(shape, 1.0 - p, dtype=like.dtype, device=like.device)) * scale
                for _ in range(count)]
    if len(masks) != count:
        raise ValueError(f"dropout_masks: expected {count} masks (one per layer boundary), got {len(masks)}")
    out = []
    for k, m in enumerate(masks):
        m = torch.as_tensor(m, device=like.device).to(like.dtype)
        m = to_time_major(m, batched, batch_first)  # (T, B, D*P)
        if tuple(m.shape) != shape:
            raise ValueError(f"dropout_masks[{k}]: expected the shape of the layer's output, got {tuple(masks[k].shape)}")
        if not bool(((m == 0) | (m == 1)).all()):
            raise ValueError(f"dropout_masks[{k}]: expected keep masks of 0s and 1s (the 1/(1-p) scale is applied for you)")
        out.append(m * scale)
    return out


def to_time_major(a: Tensor, batched: bool, batch_first: bool) -> Tensor:
    if not batched:
        return a.unsqueeze(1)  # (T, 1, ...)
    return a.transpose(0, 1) if batch_first else a


def from_time_major(a: Tensor, batched: bool, batch_first: bool) -> Tensor:
    if not batched:
        return a.squeeze(1)
    return a.transpose(0, 1) if batch_first else a


def prepare(mode: str, input: Tensor, hx: Any, params: dict[str, Tensor], *, num_layers: int, bidirectional: bool,
            batch_first: bool, proj_size: int, lengths: Any, dropout: float, dropout_masks: Any,
            training: bool) -> Inputs:
    """Validate torch.nn's arguments and bring them into time-major form."""
    check_params(mode, params, num_layers, bidirectional, proj_size)
    if input.dim() not in (2, 3):
        raise ValueError(f"input: expected 2-D (unbatched) or 3-D input, got shape {tuple(input.shape)}")
    batched = input.dim() == 3
    x = to_time_major(input, batched, batch_first)  # (T, B, I)
    T, B = x.shape[:2]
    D, w_hh = (2 if bidirectional else 1), params["weight_hh_l0"]
    P, H = w_hh.shape[1], w_hh.shape[0] // _GATES[mode]
    shapes = [(D * num_layers, B, P)] + ([(D * num_layers, B, H)] if mode == "LSTM" else [])
    if hx is None:
        given = [None] * len(shapes)
    elif isinstance(hx, (tuple, list)) == (mode == "LSTM"):
        given = list(hx) if mode == "LSTM" else [hx]
    else:
        raise TypeError(f"hx: expected {'a pair (h_0, c_0)' if mode == 'LSTM' else 'one tensor'} for {mode}")
    if len(given) != len(shapes):
        raise TypeError(f"hx: expected {len(shapes)} tensors, got {len(given)}")
    states0 = []
    for h, shape in zip(given, shapes):
        if h is None:
            states0.append(x.new_zeros(shape))
            continue
        h = h if batched else h.unsqueeze(1)
        if tuple(h.shape) != shape:
            raise ValueError(f"hx: expected shape {shape if batched else (shape[0], shape[2])}, got {tuple(h.shape)}")
        states0.append(h)
    mask = None
    if lengths is not None:
        if not batched:
            raise ValueError("lengths: not supported with unbatched (2-D) input")
        lengths = torch.as_tensor(lengths, device=x.device).reshape(-1)
        if lengths.numel() != B or bool((lengths < 1).any()) or bool((lengths > T).any()):
            raise ValueError(f"lengths: expected {B} ints in [1, {T}], got {lengths.tolist()}")
        mask = (torch.arange(T, device=x.device)[:, None] < lengths[None, :])[:, :, None]  # (T, B, 1)
    active = training and dropout > 0 and num_layers > 1
    drop = _keep_masks(dropout_masks, dropout, active, (T, B, D * P), batched, batch_first, x, num_layers - 1)
    return Inputs(x, states0, mask, drop, batched)


def finish(mode: str, output: Tensor, finals: list, batched: bool, batch_first: bool):
    """(output, hidden) in torch.nn's layout."""
    output = from_time_major(output, batched, batch_first)
    finals = [f if batched else f.squeeze(1) for f in finals]
    return output, (tuple(finals) if mode == "LSTM" else finals[0])


def rnn_forward(mode: str, input: Tensor, hx: Any, params: dict[str, Tensor], *, num_layers: int = 1,
                bidirectional: bool = False, batch_first: bool = False, proj_size: int = 0, lengths: Any = None,
                dropout: float = 0.0, dropout_masks: Sequence[Tensor] | None = None, training: bool = False):
    """torch.nn.RNN / GRU / LSTM forward with explicit torch ops; differentiable twice.

    Args:
        mode: "RNN_TANH", "RNN_RELU", "GRU" or "LSTM" (torch's ``module.mode``).
        input: (T, B, I), (B, T, I) with batch_first, or unbatched (T, I).
        hx: h_0 (D*L, B, P); for LSTM (h_0, c_0 (D*L, B, H)); unbatched without B; None = zeros.
        params: torch's parameter names -> tensors (``dict(module.named_parameters())``).
        lengths: B ints in [1, T], as pack_padded_sequence(enforce_sorted=False) -> module ->
            pad_packed_sequence(total_length=T).
        dropout, training: dropout between layers applies only when training with dropout > 0.
        dropout_masks: L - 1 keep masks of 0s and 1s shaped like the output; scaled by
            1/(1-p) here (p = 1 gives zeros). Drawn with torch's generator when omitted.
    Returns:
        (output, h_n) or (output, (h_n, c_n)), shaped as torch.nn's.
    """
    inp = prepare(mode, input, hx, params, num_layers=num_layers, bidirectional=bidirectional,
                  batch_first=batch_first, proj_size=proj_size, lengths=lengths, dropout=dropout,
                  dropout_masks=dropout_masks, training=training)
    output, finals, _ = stack_forward(mode, inp.x, inp.states0, params, num_layers, bidirectional, inp.mask,
                                      inp.dropout)
    return finish(mode, output, finals, inp.batched, batch_first)


def module_config(module: Any) -> dict[str, Any]:
    """The keyword arguments of ``rnn_forward`` for a torch.nn or reference RNN/GRU/LSTM:

        rnn_forward(m.mode, x, hx, params, **module_config(m))
    """
    return {"num_layers": module.num_layers, "bidirectional": module.bidirectional, "batch_first": module.batch_first,
            "proj_size": getattr(module, "proj_size", 0), "dropout": float(module.dropout), "training": module.training}
