"""The implementations being compared, behind one small interface.

Each ``prepare_<impl>(row)`` returns a ``Prepared``: closures for the three timed
phases and ``results()`` (one forward + backward as NumPy arrays, keyed like the
reference's backward) for validation. Nothing is timed here.

    reference        the NumPy reference (CPU only); its forward always records a tape,
                     so "inference" is the same call as "forward"
    torch-nn         torch.nn.RNN/GRU/LSTM (cuDNN on CUDA)
    torch-equations  the same equations written as torch ops, differentiated by autograd
    torch-function   hand-written BPTT as a torch.autograd.Function (CUDA rows)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .config import Row
from .problem import as_hidden, make_problem


class Prepared(NamedTuple):
    infer: Callable[[], Any]  # forward without keeping anything for backward
    forward: Callable[[], Any]  # forward that records what backward needs; returns it
    backward: Callable[[Any], Any]  # backward from what forward returned (repeatable)
    results: Callable[[], dict]  # name -> np.ndarray after one forward + backward
    sync: Callable[[], None]  # wait for the device
    tape: Callable[[Any], Any] | None = None  # what forward returned -> the reference's tape


class Unavailable(Exception):
    """This implementation cannot run this row (missing module, device, ...)."""


def _no_sync() -> None:
    return None


def prepare_reference(row: Row) -> Prepared:
    if row.device != "cpu":
        raise Unavailable("the reference runs on the CPU only")
    p = make_problem(row)
    m, hx, dhx = p.module, as_hidden(p.hx), as_hidden(p.dhx)

    def forward():
        return m.forward(p.x, hx)  # (output, hidden, tape)

    def backward(fwd):
        return m.backward(fwd[2], p.dout, dhx)

    def results():
        out, hidden, tape = forward()
        grads = backward((out, hidden, tape))
        res = {"output": out, "h_n": hidden[0] if len(p.hx) == 2 else hidden}
        if len(p.hx) == 2:
            res["c_n"] = hidden[1]
        res["d_input"] = grads.pop("input")
        dh = grads.pop("hx")
        res.update({"d_h0": dh[0], "d_c0": dh[1]} if len(p.hx) == 2 else {"d_h0": dh})
        res.update({f"d_{k}": v for k, v in grads.items()})
        return res

    return Prepared(forward, forward, backward, results, _no_sync, tape=lambda fwd: fwd[2])


def _torch_runner(row: Row, run: Callable, params: dict) -> Prepared:
    """Closures around run(x, hx) -> (output, hidden) for any torch implementation."""
    import torch

    p = make_problem(row)
    dtype = getattr(torch, row.dtype)

    def leaf(a):
        return torch.tensor(a, dtype=dtype, device=row.device, requires_grad=True)

    x, hx = leaf(p.x), tuple(leaf(h) for h in p.hx)
    cot = [torch.tensor(a, dtype=dtype, device=row.device) for a in (p.dout, *p.dhx)]
    sync = torch.cuda.synchronize if row.device == "cuda" else _no_sync

    def forward():
        out, hidden = run(x, as_hidden(hx))
        return [out, *(hidden if isinstance(hidden, tuple) else (hidden,))]

    def infer():
        with torch.no_grad():
            return run(x, as_hidden(hx))

    def backward(outs):  # retain_graph: the same graph is walked back once per repeat
        torch.autograd.backward(outs, cot, retain_graph=True)

    def results():
        for t in (x, *hx, *params.values()):
            t.grad = None
        outs = forward()
        torch.autograd.backward(outs, cot)
        res = {"output": outs[0], "h_n": outs[1]}
        if len(outs) == 3:
            res["c_n"] = outs[2]
        res["d_input"] = x.grad
        res.update({"d_h0": hx[0].grad, "d_c0": hx[1].grad} if len(hx) == 2 else {"d_h0": hx[0].grad})
        res.update({f"d_{k}": v.grad for k, v in params.items()})
        return {k: v.detach().cpu().numpy() for k, v in res.items()}

    return Prepared(infer, forward, backward, results, sync)


def _check_device(row: Row) -> None:
    import torch

    if row.device == "cuda" and not torch.cuda.is_available():
        raise Unavailable("CUDA is not available")


def prepare_torch_nn(row: Row) -> Prepared:
    _check_device(row)
    from torch_impl import to_torch

    module = to_torch(make_problem(row).module, device=row.device)
    return _torch_runner(row, module, dict(module.named_parameters()))


def _optional(name: str):
    """torch_impl.<name>, or Unavailable with the reason it could not be imported."""
    try:
        return importlib.import_module(f"torch_impl.{name}")
    except Exception as e:  # noqa: BLE001 -- absent or failing at import: report it, keep the suite going
        raise Unavailable(f"torch_impl.{name}: {type(e).__name__}: {e}") from None


def _weights(row: Row) -> dict:
    import torch

    state = make_problem(row).module.state_dict()
    return {k: torch.tensor(v, device=row.device, requires_grad=True) for k, v in state.items()}


def _prepare_functional(row: Row, module_name: str, fn_name: str) -> Prepared:
    """fn(mode, x, hx, params) -> (output, hidden), torch.nn's layouts; mode is the row's cell."""
    _check_device(row)
    fn = getattr(_optional(module_name), fn_name, None)
    if fn is None:
        raise Unavailable(f"torch_impl.{module_name} has no {fn_name}")
    params = _weights(row)
    return _torch_runner(row, lambda x, hx: fn(row.cell, x, hx, params), params)


def prepare_torch_equations(row: Row) -> Prepared:
    return _prepare_functional(row, "equations", "rnn_forward")


def prepare_torch_function(row: Row) -> Prepared:
    return _prepare_functional(row, "bptt", "rnn_bptt")


PREPARE = {"reference": prepare_reference, "torch-nn": prepare_torch_nn,
           "torch-equations": prepare_torch_equations, "torch-function": prepare_torch_function}


def prepare(impl: str, row: Row) -> Prepared:
    return PREPARE[impl](row)


def as_numpy(results: dict) -> dict:
    return {k: np.asarray(v) for k, v in results.items()}
