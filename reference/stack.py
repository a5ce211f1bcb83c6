"""The stack: layers, directions and inter-layer dropout over ``layer.py``'s loop.

    x_0 = input
    x_{l+1} = dropout_l( concat_d layer_{l,d}(x_l) )        l < L - 1, training only
    output = concat_d layer_{L-1,d}(x_{L-1})
    h_n[l * D + d] = final state of layer l, direction d     (taken before dropout)

Backward walks the layers top-down: the gradient at x_{l+1} goes back through
the dropout mask, is split by direction, and each direction's input gradient is
summed into the gradient at x_l (both directions read the same input).

This is the functional core the modules (``reference.RNN``, ...) and torch's
autograd adapter (``torch_impl.rnn_bptt``) both call: arrays in, arrays out, in
whatever array library they come from. It checks nothing; the modules validate.

Shapes: T time, B batch, I input, H hidden, P output (proj_size or H), L layers,
D directions; everything time-major.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ._namespace import Placement
from .config import RNNConfig
from .gate_rows import torch_rows
from .layer import LayerTape, LayerWeights, cell_of, layer_backward, layer_forward, prepare_weights


def prepare_stack(place: Placement, cfg: RNNConfig, params: Mapping[str, Any]) -> list[list[LayerWeights]]:
    """params keyed like torch's state_dict (arrays in the call's namespace) -> [layer][direction] weights."""
    weights = []
    for layer in range(cfg.num_layers):
        row = []
        for sfx in cfg.suffixes():
            k = f"l{layer}{sfx}"
            row.append(prepare_weights(place, cfg, params[f"weight_ih_{k}"], params[f"weight_hh_{k}"],
                                       params.get(f"bias_ih_{k}"), params.get(f"bias_hh_{k}"),
                                       params.get(f"weight_hr_{k}"), params.get(f"weight_p_{k}")))
        weights.append(row)
    return weights


class StackTape(NamedTuple):
    layers: list  # [layer][direction] -> LayerTape
    dropout: list  # per layer boundary: (T, B, D*P) scaled keep mask, or None
    mask: Any  # (T, B, 1) bool or None


def stack_forward(place: Placement, cfg: RNNConfig, weights: list, x: Any, states0: tuple, mask: Any = None,
                  dropout: list | None = None) -> tuple[Any, tuple, StackTape]:
    """Args:
        x: (T, B, I).  states0: ((L*D, B, P),) or, LSTM, with (L*D, B, H).
        mask: (T, B, 1) bool or None.  dropout: L - 1 scaled keep masks (T, B, D*P) or None.
    Returns:
        output (T, B, D*P) (zero on padded steps), the final states shaped like
        states0, and the tape.
    """
    xp, D = place.xp, cfg.num_directions
    cells = [cell_of(cfg, d) for d in range(D)]
    dropout = dropout or [None] * (cfg.num_layers - 1)
    finals: list = [[] for _ in states0]  # per state kind, L*D arrays (B, .)
    tapes = []
    for layer in range(cfg.num_layers):
        outs, layer_tapes = [], []
        for d in range(D):
            idx = layer * D + d
            state0 = tuple(s[idx, ...] for s in states0)
            out, state_n, tape = layer_forward(xp, cells[d], x, state0, weights[layer][d], mask,
                                               reverse=d == 1 or cfg.reverse)
            for f, s in zip(finals, state_n, strict=True):
                f.append(s)
            outs.append(out)
            layer_tapes.append(tape)
        tapes.append(layer_tapes)
        x = outs[0] if D == 1 else xp.concat(outs, axis=-1)  # (T, B, D*P)
        if mask is not None:  # the output is zero past each sequence's length
            x = xp.where(mask, x, xp.zeros_like(x[:1, :1, :1]))
        if layer < cfg.num_layers - 1 and dropout[layer] is not None:
            x = x * dropout[layer]  # (T, B, D*P); h_n was taken before this
    return x, tuple(xp.stack(f) for f in finals), StackTape(tapes, dropout, mask)


class StackGrads(NamedTuple):
    dx: Any  # (T, B, I)
    dstates0: tuple  # shaped like states0
    params: dict  # torch's state_dict names -> gradients, in torch's layout and order
    carries: list | None  # [layer][direction][t] -> (dh_t,) or (dh_t, dc_t)


def stack_backward(place: Placement, cfg: RNNConfig, tape: StackTape, dout: Any, dstates: tuple,
                   keep_carries: bool = False) -> StackGrads:
    """Args:
        dout: (T, B, D*P) gradient at the output, or None (zero).
        dstates: gradients at the final states, shaped like states0 (zeros, not None).
    """
    xp, D, P = place.xp, cfg.num_directions, cfg.output_size
    cells = [cell_of(cfg, d) for d in range(D)]
    d_initial: list = [[None] * (cfg.num_layers * D) for _ in dstates]
    grads: dict[str, Any] = {}
    carries: list = [[None] * D for _ in range(cfg.num_layers)]
    for layer in reversed(range(cfg.num_layers)):
        dx = None
        for d, sfx in enumerate(cfg.suffixes()):
            idx = layer * D + d
            d_dir = None if dout is None else dout[..., d * P : (d + 1) * P]  # (T, B, P)
            g = layer_backward(xp, cells[d], cfg, d_dir, tuple(s[idx, ...] for s in dstates), tape.layers[layer][d],
                               keep_carries)
            for dst, src in zip(d_initial, g.dstate0, strict=True):
                dst[idx] = src
            dx = g.dx if dx is None else dx + g.dx  # both directions read the same input
            grads.update(_torch_layout(xp, cfg, f"l{layer}{sfx}", g))
            carries[layer][d] = g.carries
        if layer > 0 and tape.dropout[layer - 1] is not None:
            dx = dx * tape.dropout[layer - 1]  # (T, B, D*P)
        dout = dx
    if tape.mask is not None:  # padding is never read (torch: exactly 0), even where a carried NaN state sits
        dout = xp.where(tape.mask, dout, xp.zeros_like(dout[:1, :1, :1]))  # (T, B, I)
    ordered = {name: grads[name] for name in cfg.parameter_shapes()}  # torch's order
    return StackGrads(dout, tuple(xp.stack(s) for s in d_initial), ordered, carries if keep_carries else None)


def _torch_layout(xp: Any, cfg: RNNConfig, k: str, g: Any) -> dict[str, Any]:
    """One layer and direction's gradients under torch's names, LSTM rows back in i, f, g, o order."""
    rows = (lambda a: torch_rows(xp, a)) if cfg.mode == "LSTM" else (lambda a: a)
    out = {f"weight_ih_{k}": rows(g.w_ih), f"weight_hh_{k}": rows(g.w_hh)}
    if cfg.bias:
        out[f"bias_ih_{k}"], out[f"bias_hh_{k}"] = rows(g.b_ih), rows(g.b_hh)
    if cfg.proj_size:
        out[f"weight_hr_{k}"] = g.w_hr
    if cfg.peephole:
        out[f"weight_p_{k}"] = g.w_p
    return out


def layer_tape(tape: StackTape, layer: int, direction: int) -> LayerTape:
    return tape.layers[layer][direction]
