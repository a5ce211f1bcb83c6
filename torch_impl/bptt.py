"""The reference's core on torch tensors: as an autograd Function, and under autograd.

    output, h_n = rnn_bptt("GRU", x, h0, dict(gru.named_parameters()), num_layers=2)       # hand-written backward
    output, h_n = rnn_forward("GRU", x, h0, dict(gru.named_parameters()), num_layers=2)    # autograd's backward

Both run ``reference.stack`` -- the one copy of the maths, written against the
array API -- on torch tensors, on any device torch runs on. ``rnn_bptt`` wraps
the core's forward and its hand-written backward in a ``torch.autograd.Function``;
``rnn_forward`` lets autograd differentiate the core's forward ops instead
(twice, if asked). Autograd through the same forward is the independent check of
the hand-written backward; torch.nn is the independent check of the forward.
This module only moves arguments (torch.nn's layouts, lengths, dropout masks)
in and out; it holds no maths.

Shapes: T time, B batch, I input, H hidden, P output (proj_size or H), G gates,
L layers, D directions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import array_api_compat
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from reference import RNNConfig
from reference._namespace import Placement
from reference.stack import prepare_stack, stack_backward, stack_forward


class Inputs(NamedTuple):
    """One call's arguments, time-major, as the core takes them."""

    config: RNNConfig
    place: Placement
    x: Tensor  # (T, B, I), zero on padded steps
    states0: tuple  # ((D*L, B, P),) or with (D*L, B, H)
    mask: Tensor | None  # (T, B, 1) bool
    dropout: list  # L - 1 scaled keep masks (T, B, D*P), or Nones
    batched: bool


def _config(mode: str, params: Mapping[str, Tensor], num_layers: int, bidirectional: bool, batch_first: bool,
            proj_size: int, dropout: float, reset_after: bool) -> RNNConfig:
    if "weight_ih_l0" not in params or "weight_hh_l0" not in params:
        raise ValueError(f"params: expected torch's names (weight_ih_l0, weight_hh_l0, ...), got {sorted(params)}")
    gates = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}.get(mode)
    if gates is None:
        raise ValueError(f"mode: expected RNN_TANH, RNN_RELU, GRU or LSTM, got {mode!r}")
    cfg = RNNConfig(mode, params["weight_ih_l0"].shape[1], params["weight_hh_l0"].shape[0] // gates, num_layers,
                    "bias_ih_l0" in params, batch_first, dropout, bidirectional, proj_size, reset_after)
    expected = cfg.parameter_shapes()
    if set(params) != set(expected):
        raise ValueError(f"params: expected the keys {list(expected)}, got {list(params)}")
    for name, shape in expected.items():
        if tuple(params[name].shape) != shape:
            raise ValueError(f"params[{name!r}]: expected shape {shape}, got {tuple(params[name].shape)}")
    return cfg


def _time_major(a: Tensor, batched: bool, batch_first: bool) -> Tensor:
    if not batched:
        return a.unsqueeze(1)  # (T, 1, .)
    return a.transpose(0, 1) if batch_first else a  # (T, B, .)


def prepare(mode: str, input: Tensor, hx: Any, params: Mapping[str, Tensor], *, num_layers: int = 1,
            bidirectional: bool = False, batch_first: bool = False, proj_size: int = 0, lengths: Any = None,
            dropout: float = 0.0, dropout_masks: Sequence[Tensor] | None = None, training: bool = False,
            reset_after: bool = True) -> Inputs:
    """Validate torch.nn's arguments and bring them into the core's form (time-major, masks, scaled dropout)."""
    cfg = _config(mode, params, num_layers, bidirectional, batch_first, proj_size, dropout, reset_after)
    place = Placement(array_api_compat.array_namespace(input), input.device, "torch")
    if input.dim() not in (2, 3):
        raise ValueError(f"input: expected 2-D (unbatched) or 3-D input, got shape {tuple(input.shape)}")
    batched = input.dim() == 3
    x = _time_major(input, batched, batch_first)  # (T, B, I)
    T, B = x.shape[0], x.shape[1]
    shapes = cfg.state_shapes(B)
    if hx is None:
        given: list = [None] * len(shapes)
    elif isinstance(hx, (tuple, list)) == (mode == "LSTM") and (mode != "LSTM" or len(hx) == 2):
        given = list(hx) if mode == "LSTM" else [hx]
    else:
        raise TypeError(f"hx: expected {'a pair (h_0, c_0)' if mode == 'LSTM' else 'one tensor'} for {mode}")
    states0 = []
    for h, shape in zip(given, shapes, strict=True):
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
        lens = torch.as_tensor(lengths, device=x.device).reshape(-1)
        if lens.numel() != B or bool((lens < 1).any()) or bool((lens > T).any()):
            raise ValueError(f"lengths: expected {B} ints in [1, {T}], got {lens.tolist()}")
        mask = (torch.arange(T, device=x.device)[:, None] < lens[None, :])[:, :, None]  # (T, B, 1)
        x = torch.where(mask, x, x.new_zeros(()))  # padding is never read
    active = training and dropout > 0 and num_layers > 1
    drop = _keep_masks(dropout_masks, dropout, active, (T, B, cfg.num_directions * cfg.output_size), batched,
                       batch_first, x, num_layers - 1)
    return Inputs(cfg, place, x, tuple(states0), mask, drop, batched)


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
        m = _time_major(torch.as_tensor(m, device=like.device).to(like.dtype), batched, batch_first)  # (T, B, D*P)
        if tuple(m.shape) != shape:
            raise ValueError(f"dropout_masks[{k}]: expected the shape of the layer's output, got {tuple(masks[k].shape)}")
        if not bool(((m == 0) | (m == 1)).all()):
            raise ValueError(f"dropout_masks[{k}]: expected keep masks of 0s and 1s (the 1/(1-p) scale is applied for you)")
        out.append(m * scale)
    return out


def finish(mode: str, output: Tensor, finals: Sequence[Tensor], batched: bool, batch_first: bool):
    """(output, hidden) in torch.nn's layout."""
    if not batched:
        output, finals = output.squeeze(1), [f.squeeze(1) for f in finals]
    elif batch_first:
        output = output.transpose(0, 1)
    return output, (tuple(finals) if mode == "LSTM" else finals[0])


def rnn_forward(mode: str, input: Tensor, hx: Any, params: Mapping[str, Tensor], **kwargs: Any):
    """torch.nn.RNN / GRU / LSTM forward, the core's ops traced by autograd (differentiable twice).

    Args:
        mode: "RNN_TANH", "RNN_RELU", "GRU" or "LSTM" (torch's ``module.mode``).
        input: (T, B, I), (B, T, I) with batch_first, or unbatched (T, I).
        hx: h_0 (D*L, B, P); for LSTM (h_0, c_0 (D*L, B, H)); unbatched without B; None = zeros.
        params: torch's parameter names -> tensors (``dict(module.named_parameters())``).
        kwargs: num_layers, bidirectional, batch_first, proj_size, lengths (B ints in [1, T], as
            pack_padded_sequence(enforce_sorted=False) -> module -> pad_packed_sequence(total_length=T)),
            dropout, training, dropout_masks (L - 1 keep masks of 0s and 1s shaped like the output,
            scaled by 1/(1-p) here), reset_after (GRU: False for the paper's form).
    Returns:
        (output, h_n) or (output, (h_n, c_n)), shaped as torch.nn's.
    """
    inp = prepare(mode, input, hx, params, **kwargs)
    weights = prepare_stack(inp.place, inp.config, params)
    output, finals, _ = stack_forward(inp.place, inp.config, weights, inp.x, inp.states0, inp.mask, inp.dropout)
    return finish(mode, output, finals, inp.batched, inp.config.batch_first)


class BPTTSpec(NamedTuple):
    """The non-differentiable arguments of ``RNNBPTTFunction``."""

    config: RNNConfig
    place: Placement
    names: tuple  # parameter names, in the order of the weight arguments
    mask: Tensor | None  # (T, B, 1) bool
    dropout: list  # L - 1 scaled keep masks (T, B, D*P), or Nones


class RNNBPTTFunction(torch.autograd.Function):
    """Time-major stack of layers with the core's hand-written backward.

    ``apply(spec, x (T, B, I), h0 (D*L, B, P), c0 (D*L, B, H) or None, *weights)``
    returns (output (T, B, D*P), h_n) or, for LSTM, (output, h_n, c_n).
    """

    @staticmethod
    def forward(ctx, spec: BPTTSpec, x: Tensor, h0: Tensor, c0: Tensor | None, *weights: Tensor):
        params = {n: w.detach() for n, w in zip(spec.names, weights, strict=True)}
        states0 = (h0.detach(),) if c0 is None else (h0.detach(), c0.detach())
        prepared = prepare_stack(spec.place, spec.config, params)
        output, finals, tape = stack_forward(spec.place, spec.config, prepared, x.detach(), states0, spec.mask,
                                             spec.dropout)
        # The inputs and the output go through save_for_backward, so torch detects in-place changes made
        # after forward (the output may share memory with the tape); the tape itself is kept on ctx.
        ctx.save_for_backward(x, h0, c0, output, *weights)
        ctx.spec, ctx.tape = spec, tape
        return (output, *finals)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout: Tensor, *dstates: Tensor):
        ctx.saved_tensors  # noqa: B018 -- raises if an input or the output was modified in place since forward
        spec = ctx.spec
        g = stack_backward(spec.place, spec.config, ctx.tape, dout, tuple(dstates))
        dc0 = g.dstates0[1] if len(g.dstates0) == 2 else None
        return (None, g.dx, g.dstates0[0], dc0, *(g.params[n] for n in spec.names))


def rnn_bptt(mode: str, input: Tensor, hx: Any, params: Mapping[str, Tensor], **kwargs: Any):
    """``rnn_forward`` with the core's hand-written backward instead of autograd's.

    Same arguments and results as ``rnn_forward``. Differentiable once (the
    backward is not itself differentiable).
    """
    inp = prepare(mode, input, hx, params, **kwargs)
    names = tuple(inp.config.parameter_shapes())
    spec = BPTTSpec(inp.config, inp.place, names, inp.mask, inp.dropout)
    c0 = inp.states0[1] if mode == "LSTM" else None
    output, *finals = RNNBPTTFunction.apply(spec, inp.x, inp.states0[0], c0, *(params[n] for n in names))
    return finish(mode, output, finals, inp.batched, inp.config.batch_first)


def module_config(module: Any) -> dict[str, Any]:
    """The keyword arguments of ``rnn_forward`` / ``rnn_bptt`` for a torch.nn or reference RNN/GRU/LSTM:

        rnn_forward(m.mode, x, hx, params, **module_config(m))
    """
    cfg = RNNConfig.of(module)
    return {"num_layers": cfg.num_layers, "bidirectional": cfg.bidirectional, "batch_first": cfg.batch_first,
            "proj_size": cfg.proj_size, "dropout": cfg.dropout, "training": bool(getattr(module, "training", False)),
            "reset_after": cfg.reset_after}
