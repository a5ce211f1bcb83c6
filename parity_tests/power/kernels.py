"""Low-precision kernels to judge: torch's own modules, and an LSTM written by hand with planted bugs.

Both run a verifier :class:`~reference.verify.candidates.Problem` and return its
result in the verifier's form (``output``, ``hidden``, ``input``, ``hx`` and one
gradient per parameter, NumPy float64 holding the kernel's stored values).

``torch_module_run`` is torch.nn.RNN, GRU or LSTM itself at a low precision
(torch's CPU kernels: oneDNN where it takes the configuration, else torch's
native ones), packed when the problem has lengths.

``lstm_kernel_run`` is a one-layer LSTM written out step by step, the way a
mixed-precision kernel is: weights, inputs, outputs and h in the storage dtype;
matrix products of storage operands (TF32: rounded to 10 mantissa bits); gates and
the cell state c in the compute dtype; weight gradients summed over time in the
compute dtype (a master copy, cast at every use). Its bugs, each with a size:

    bias         the forget gate's pre-activation + size (forward; backward follows it)
    weight grad  grad weight_hh_l0 * (1 + size)
    carry        the gradient carried from c_t to c_{t-1} (through f * c) * (1 - size); 1 drops it
    state        c rounded each step to a format of unit roundoff ``size`` (bfloat16's is 2^-8),
                 where the compute dtype was claimed; the gradient passes straight through
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from reference.precision.formats import round_mantissa
from reference.verify.candidates import Problem

TORCH_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32,
                "float64": torch.float64}
BUGS = ("bias", "weight grad", "carry", "state")


def _numpy(t: Any) -> np.ndarray | None:
    return None if t is None else t.detach().to(torch.float64).cpu().numpy()


def _result(out: Any, states: tuple, x: Any, hx: tuple, param_grads: dict | None) -> dict:
    """The verifier's result form from torch tensors; ``param_grads`` None: forward only."""
    res: dict[str, Any] = {"output": _numpy(out), "hidden": tuple(_numpy(s) for s in states)}
    if param_grads is not None:
        res["input"] = _numpy(x.grad)
        res["hx"] = tuple(_numpy(h.grad) for h in hx)
        res.update((k, _numpy(g)) for k, g in param_grads.items())
    return res


def _cotangents(pb: Problem, dtype: torch.dtype) -> tuple[Any, tuple]:
    go = None if pb.grad_output is None else torch.tensor(pb.grad_output, dtype=dtype)
    gh = tuple(None if g is None else torch.tensor(g, dtype=dtype) for g in (pb.grad_hidden or ()))
    return go, gh


def _backward(outputs: list, cotangents: list) -> None:
    pairs = [(o, g) for o, g in zip(outputs, cotangents, strict=True) if g is not None]
    torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])


def torch_module_run(pb: Problem, storage: str) -> dict:
    """torch.nn.<RNN|GRU|LSTM> in ``storage`` dtype on ``pb`` (eval mode, batch first False)."""
    spec, dtype = pb.spec, TORCH_DTYPES[storage]
    module = getattr(torch.nn, spec.torch_class)(spec.input_size, spec.hidden_size, **spec.torch_kwargs())
    module = module.to(dtype).eval()
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.tensor(pb.params[name]))
    x = torch.tensor(pb.x, dtype=dtype, requires_grad=True)
    hx = tuple(torch.tensor(h, dtype=dtype, requires_grad=True) for h in pb.hx)
    feed = x
    if pb.lengths is not None:
        feed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(pb.lengths), enforce_sorted=False)
    out, hidden = module(feed, hx if spec.lstm else hx[0])
    if pb.lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=pb.x.shape[0])
    states = tuple(hidden) if spec.lstm else (hidden,)
    if not pb.backward:
        return _result(out, states, x, hx, None)
    go, gh = _cotangents(pb, dtype)
    _backward([out, *states], [go, *gh])
    return _result(out, states, x, hx, {k: p.grad for k, p in module.named_parameters()})


class _RoundedOperands(torch.autograd.Function):
    """a @ b with both operands rounded to TF32 (10 mantissa bits), forward and backward alike."""

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:
        a, b = _tf32(a), _tf32(b)
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        a, b = ctx.saved_tensors
        grad = _tf32(grad)
        return grad @ b.T, a.T @ grad


def _tf32(t: Any) -> Any:
    return torch.from_numpy(round_mantissa(t.detach().numpy(), 10))


class _ScaledGradient(torch.autograd.Function):
    """The identity forward; the gradient times ``scale`` backward."""

    @staticmethod
    def forward(ctx: Any, t: Any, scale: float) -> Any:
        ctx.scale = scale
        return t.view_as(t)

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        return grad * ctx.scale, None


class _RoundedState(torch.autograd.Function):
    """c rounded to ``bits`` explicit mantissa bits (to nearest even, no exponent limit) forward; the
    gradient passes straight through."""

    @staticmethod
    def forward(ctx: Any, t: Any, bits: int) -> Any:
        m, e = np.frexp(t.detach().numpy())  # t = m 2^e, 0.5 <= |m| < 1: m holds bits + 1 significant bits
        return torch.from_numpy(np.ldexp(np.round(np.ldexp(m, bits + 1)), e - bits - 1)).to(t.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        return grad, None


def state_bits(size: float) -> int:
    """The mantissa bits of a format whose unit roundoff is ``size`` (2^-(bits + 1))."""
    return round(-math.log2(size)) - 1


def lstm_kernel_run(pb: Problem, storage: str, compute: str, *, tf32: bool = False, bug: str | None = None,
                    size: float = 0.0) -> dict:
    """The hand-written LSTM (one layer, one direction, no lengths) on ``pb``, with ``bug`` of ``size``."""
    if bug is not None and bug not in BUGS:
        raise ValueError(f"bug: expected one of {BUGS} or None, got {bug!r}")
    spec = pb.spec
    if not (spec.lstm and spec.num_layers == 1 and not spec.bidirectional and not spec.proj_size and spec.bias
            and pb.lengths is None):
        raise ValueError(f"lstm_kernel_run: runs a one-layer, one-direction LSTM with biases and no lengths, not {spec}")
    sd, cd = TORCH_DTYPES[storage], TORCH_DTYPES[compute]
    mm = _RoundedOperands.apply if tf32 else torch.mm
    T, B, _ = pb.x.shape
    H = spec.hidden_size
    params = {k: torch.tensor(v, dtype=cd, requires_grad=True) for k, v in pb.params.items()}  # master copies
    x = torch.tensor(pb.x, dtype=sd, requires_grad=True)
    hx = tuple(torch.tensor(h, dtype=sd, requires_grad=True) for h in pb.hx)
    w_ih = params["weight_ih_l0"].to(sd)  # one use: its gradient is one product over all steps
    xw = mm(x.reshape(T * B, -1), w_ih.T).to(cd).reshape(T, B, 4 * H)  # (T, B, 4H)
    xw = xw + params["bias_ih_l0"] + params["bias_hh_l0"]
    h, c = hx[0][0], hx[1][0].to(cd)  # (B, H) storage, (B, H) compute
    outs = []
    for t in range(T):
        w_hh = params["weight_hh_l0"].to(sd)  # cast at each use: its gradient's time sum runs in the compute dtype
        a = xw[t] + mm(h, w_hh.T).to(cd)  # (B, 4H)
        i, f, g, o = a.chunk(4, dim=1)  # 4 x (B, H)
        if bug == "bias":
            f = f + size
        c_prev = _ScaledGradient.apply(c, 1.0 - size) if bug == "carry" else c
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)  # (B, H)
        if bug == "state":
            c = _RoundedState.apply(c, state_bits(size))
        h = (torch.sigmoid(o) * torch.tanh(c)).to(sd)  # (B, H) stored, and read by the next product
        outs.append(h)
    out = torch.stack(outs)  # (T, B, H)
    states = (h[None], c.to(sd)[None])
    if not pb.backward:
        return _result(out, states, x, hx, None)
    go, gh = _cotangents(pb, sd)
    _backward([out, *states], [go, *gh])
    grads = {k: p.grad for k, p in params.items()}
    if bug == "weight grad":
        grads["weight_hh_l0"] = grads["weight_hh_l0"] * (1.0 + size)
    return _result(out, states, x, hx, {k: g.to(sd) for k, g in grads.items()})  # returned at storage, as a module
