"""The implementations being compared, behind one small interface.

Each ``prepare_<impl>(row)`` returns a ``Prepared``: closures for the three timed
phases and ``results()`` (one forward + backward as NumPy arrays, keyed like the
reference's backward) for validation. Nothing is timed here.

    torch-nn         torch.nn.RNN/GRU/LSTM (oneDNN or torch's CPU kernels; cuDNN on CUDA)
    reference        the reference on NumPy arrays; its forward always records a tape,
                     so "inference" is the same call as "forward"
    reference@REV    the same, imported from a previous revision (--baseline-ref REV)
    reference-torch  the reference module called on torch tensors of the row's device:
                     the same maths computed by torch ops
    gemm-floor       the reference's matrix products alone (floor.py): NumPy on the CPU,
                     torch on CUDA; computes no RNN, so nothing to validate
    torch-function   the hand-written BPTT as a torch.autograd.Function (torch_impl.rnn_bptt)
    torch-autograd   the core's forward on torch tensors, differentiated by torch's autograd (torch_impl.rnn_forward)
    jax              lax.scan + jax.vjp, jit-compiled (jax_impl.py), where jax is installed
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from .config import FLOOR, Row
from .prepared import Prepared, Unavailable
from .problem import as_hidden, make_problem


def _no_sync() -> None:
    return None


def _module_results(m, x, hx, dout, dhx) -> tuple[Callable, Callable, Callable]:
    """forward, backward and results of a reference module on any library's arrays."""
    lstm = isinstance(hx, tuple)

    def forward():
        return m.forward(x, hx)  # (output, hidden, tape)

    def backward(fwd):
        return m.backward(fwd[2], dout, dhx)

    def results():
        out, hidden, tape = forward()
        grads = dict(backward((out, hidden, tape)))
        res = {"output": out, "h_n": hidden[0] if lstm else hidden}
        if lstm:
            res["c_n"] = hidden[1]
        res["d_input"] = grads.pop("input")
        dh = grads.pop("hx")
        res.update({"d_h0": dh[0], "d_c0": dh[1]} if lstm else {"d_h0": dh})
        res.update({f"d_{k}": v for k, v in grads.items() if k in m.state_dict()})
        return res

    return forward, backward, results


NO_NUMPY_KERNEL = "{0} rows run torch implementations only (NumPy has no {0} kernel)"


def _torch_only(row: Row) -> None:
    """Unavailable for an implementation computing in NumPy (or jax) at a low-precision row."""
    if row.low_precision:
        raise Unavailable(NO_NUMPY_KERNEL.format(row.dtype))


def prepare_reference(row: Row) -> Prepared:
    _torch_only(row)
    if row.device != "cpu":
        raise Unavailable("the reference on NumPy runs on the CPU only (reference-torch runs it on CUDA)")
    p = make_problem(row)
    forward, backward, results = _module_results(p.module, p.x, as_hidden(p.hx), p.dout, as_hidden(p.dhx))
    return Prepared(forward, forward, backward, results, _no_sync, tape=lambda fwd: fwd[2],
                    caller=(p.module, p.x, p.hx))


def _sync(device: str) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if device == "cuda" else _no_sync


def prepare_reference_torch(row: Row) -> Prepared:
    """The reference module on torch tensors: computes in torch where the module supports it."""
    _torch_only(row)  # its weights are NumPy arrays
    _check_device(row)
    import torch

    p = make_problem(row)

    def tensor(a):
        return torch.tensor(a, dtype=getattr(torch, row.dtype), device=row.device)

    x, dout = tensor(p.x), tensor(p.dout)
    hx, dhx = as_hidden(tuple(tensor(h) for h in p.hx)), as_hidden(tuple(tensor(h) for h in p.dhx))
    forward, backward, results = _module_results(p.module, x, hx, dout, dhx)
    try:
        out = forward()[0]
    except (TypeError, ValueError) as e:
        raise Unavailable(f"the reference module rejects {row.device} torch tensors: {e}") from None
    if not isinstance(out, torch.Tensor):
        raise Unavailable(f"the reference module computes torch input in {type(out).__module__} "
                          f"(returned {type(out).__name__}), not in torch")
    return Prepared(forward, forward, backward, results, _sync(row.device))


def _torch_runner(row: Row, run: Callable, params: dict, candidate: object = None) -> Prepared:
    """Closures around run(x, hx) -> (output, hidden) for any torch implementation; ``candidate`` is
    what compare() judges at a low-precision row (the module, or a function around ``run``'s maths)."""
    import torch

    p = make_problem(row)
    dtype = getattr(torch, row.dtype)

    def leaf(a):
        return torch.tensor(a, dtype=dtype, device=row.device, requires_grad=True)

    x, hx = leaf(p.x), tuple(leaf(h) for h in p.hx)
    cot = [torch.tensor(a, dtype=dtype, device=row.device) for a in (p.dout, *p.dhx)]

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
        return res

    return Prepared(infer, forward, backward, results, _sync(row.device), candidate=candidate)


def _check_device(row: Row) -> None:
    import torch

    if row.device == "cuda" and not torch.cuda.is_available():
        raise Unavailable("CUDA is not available")


def prepare_torch_nn(row: Row) -> Prepared:
    _check_device(row)
    import torch

    from torch_impl import to_torch

    module = to_torch(make_problem(row).module, device=row.device).to(getattr(torch, row.dtype))
    return _torch_runner(row, module, dict(module.named_parameters()), candidate=module)


def _optional(name: str):
    """torch_impl.<name>, or Unavailable with the reason it could not be imported."""
    try:
        return importlib.import_module(f"torch_impl.{name}")
    except Exception as e:  # noqa: BLE001 -- absent or failing at import: report it, keep the suite going
        raise Unavailable(f"torch_impl.{name}: {type(e).__name__}: {e}") from None


def _weights(row: Row) -> dict:
    import torch

    state = make_problem(row).module.state_dict()
    return {k: torch.tensor(np.asarray(v), dtype=getattr(torch, row.dtype), device=row.device, requires_grad=True)
            for k, v in state.items()}


def _prepare_functional(row: Row, module_name: str, fn_name: str) -> Prepared:
    """fn(mode, x, hx, params, proj_size=...) -> (output, hidden), torch.nn's layouts; mode is the row's cell."""
    _check_device(row)
    fn = getattr(_optional(module_name), fn_name, None)
    if fn is None:
        raise Unavailable(f"torch_impl.{module_name} has no {fn_name}")
    params = _weights(row)
    kw = {"proj_size": row.P} if row.P else {}
    return _torch_runner(row, lambda x, hx: fn(row.cell, x, hx, params, **kw), params,
                         candidate=function_candidate(fn, row))


def prepare_torch_autograd(row: Row) -> Prepared:
    return _prepare_functional(row, "bptt", "rnn_forward")


def prepare_torch_function(row: Row) -> Prepared:
    return _prepare_functional(row, "bptt", "rnn_bptt")


def function_candidate(fn: Callable, row: Row) -> Callable:
    """``fn(mode, x, hx, params)`` behind compare()'s function protocol, computing in the row's dtype:
    compare hands it float32 arrays holding values of that format and takes float32 back."""
    def candidate(spec, params, input, hx, grad_output, grad_hidden, **_):
        import torch

        dtype, device = getattr(torch, row.dtype), row.device

        def leaf(a):
            return torch.tensor(np.asarray(a), dtype=dtype, device=device, requires_grad=True)

        weights = {k: leaf(v) for k, v in params.items()}
        x, states = leaf(input), tuple(leaf(h) for h in hx)
        out, hidden = fn(spec.mode, x, as_hidden(states), weights, **({"proj_size": spec.proj_size}
                                                                         if spec.proj_size else {}))
        hidden = hidden if isinstance(hidden, tuple) else (hidden,)
        res: dict = {"output": out, "hidden": hidden}
        if grad_output is not None:
            outs = [t for t, g in zip((out, *hidden), (grad_output, *grad_hidden)) if g is not None]
            cots = [torch.tensor(np.asarray(g), dtype=dtype, device=device)
                    for g in (grad_output, *grad_hidden) if g is not None]
            torch.autograd.backward(outs, cots)
            res.update(input=x.grad, hx=tuple(h.grad for h in states), **{k: w.grad for k, w in weights.items()})
        return {k: _float32(v) for k, v in res.items()}

    return candidate


def _float32(v):
    """A torch tensor (or a tuple of them) as float32 NumPy arrays; None stays None."""
    if isinstance(v, tuple):
        return tuple(_float32(t) for t in v)
    return None if v is None else v.detach().float().cpu().numpy()


def prepare_floor(row: Row) -> Prepared:
    """The matrix products alone: NumPy on the CPU, torch on CUDA (floor.py)."""
    from . import floor

    if row.device == "cpu":
        _torch_only(row)
    rng = np.random.default_rng(2)
    if row.device == "cpu":
        def make(shape):
            return rng.uniform(-1, 1, shape).astype(row.dtype)
        sync = _no_sync
    else:
        _check_device(row)
        import torch

        def make(shape):
            return torch.tensor(rng.uniform(-1, 1, shape), dtype=getattr(torch, row.dtype), device=row.device)
        sync = _sync(row.device)
    a = floor.floor_arrays(row, make)
    return Prepared(lambda: floor.forward(a), lambda: floor.forward(a), lambda _: floor.backward(a), None, sync)


def prepare_jax(row: Row) -> Prepared:
    _torch_only(row)
    try:
        from . import jax_impl
    except ImportError as e:
        raise Unavailable(f"jax is not installed ({e})") from None
    return jax_impl.prepare(row)


PREPARE = {"reference": prepare_reference, "torch-nn": prepare_torch_nn, FLOOR: prepare_floor,
           "reference-torch": prepare_reference_torch, "torch-autograd": prepare_torch_autograd,
           "torch-function": prepare_torch_function, "jax": prepare_jax}


def prepare(impl: str, row: Row) -> Prepared:
    """``reference@REV`` is the reference imported from that revision (the worker's sys.path)."""
    return PREPARE[impl.split("@")[0]](row)


def as_numpy(results: dict) -> dict:
    """Arrays of any library (NumPy, torch on any device, jax) as NumPy arrays."""
    out = {}
    for k, v in results.items():
        if hasattr(v, "detach"):  # torch
            v = v.detach().cpu()
        out[k] = np.asarray(v)
    return out
