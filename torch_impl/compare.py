"""The verifier's torch adapter: torch modules as candidates, torch files (and .npz weights) as models.

The verifier itself lives in :mod:`reference.verify` and needs NumPy only; torch
enters through this adapter, which the verifier's registry
(:mod:`reference.verify.registry`) imports by name when it is given a torch
module or a torch file, as a plugin: ``reference`` never imports it. The
verifier's names are re-exported here.

A torch module candidate has torch's parameter names and call signature,
``module(input, hx) -> (output, hidden)`` (``batch_first`` honoured). It is run
as it is: the module itself, with its own weights, training flag and device,
without writing its ``.grad`` (gradients come from ``torch.autograd.grad``).
Variable lengths are passed as a ``PackedSequence`` (torch.nn's convention) or,
when ``forward`` has a ``lengths`` keyword, as ``lengths=`` with padded input.
Dropout masks are passed as ``dropout_masks=`` (L-1 keep masks of 0s and 1s; the
module applies the 1/(1-p) scale): torch.nn draws its own masks, so compare it in
eval mode. Localisation's problems of the whole stack (other weights, T=1 steps,
pinned gates) run the module itself, its weights and training flag set for the
call and restored after it. A part of a stack (one layer alone) runs a module
the adapter rebuilds, ``factory(spec)``, by default ``type(module)(input_size,
hidden_size, num_layers=, bias=, batch_first=False, dropout=, bidirectional=[,
proj_size=][, nonlinearity=])``, and only once ``factory`` has rebuilt the whole
module faithfully (the fidelity gate, :mod:`reference.verify.session`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from reference.verify import (
    CandidateError,
    CompareReport,
    Divergence,
    Spec,
    compare,
    plot_errors,
)
from reference.verify.candidates import Candidate, signature_takes
from reference.verify.deadline import step
from reference.verify.modules import spec_of_module
from reference.verify.precision import judged_dtype, narrow_format
from reference.verify.spec import check_real

from .convert import load_into
from .files import check_declared_size, read_torch_file

__all__ = ["CandidateError", "CompareReport", "Divergence", "Spec", "TorchCandidate", "candidate", "compare", "load",
           "load_torch_file", "plot_errors", "torch_nn_candidate"]


class TorchCandidate(Candidate):
    """A torch module (and a factory for other configurations) as a verifier candidate."""

    spec: Spec  # the module's own configuration, weights and dtype, set in __init__
    own_params: dict[str, np.ndarray]
    dtype: np.dtype

    def __init__(self, module: Any, factory: Callable[[Spec], Any] | None = None, mode: str | None = None,
                 name: str | None = None, rebuilt: bool = False, autocast: str | None = None):
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
        params = dict(module.named_parameters())
        if not params:
            raise CandidateError(f"{type(module).__name__}: has no parameters; expected a recurrent module with "
                                 "torch's parameter names (weight_ih_l0, weight_hh_l0, ...)")
        self.module, self.rebuilt = module, rebuilt
        self.name = name or type(module).__name__
        check_real(module.state_dict(), self.name)
        p = next(iter(params.values()))
        self.storage = narrow_format(p.dtype)  # bfloat16, float16: arrays in float32, judged against the envelope
        self.dtype = np.dtype(np.float32) if self.storage else judged_dtype(p.dtype, self.name)
        self.autocast = autocast  # run under torch.autocast at this dtype: float32 weights, narrow arithmetic
        if autocast is not None:
            if narrow_format(autocast) is None or self.dtype != np.float32 or self.storage:
                raise ValueError(f"dtype: autocast runs a float32 module in bfloat16 or float16; {self.name} holds "
                                 f"{p.dtype} and {autocast!r} was asked")
            self.storage, self.name = narrow_format(autocast), f"{self.name} (torch.autocast {autocast})"
        self.device, self.torch_dtype, self.exact = p.device.type, p.dtype, p.device.type == "cpu"
        self.spec = spec_of_module(module, mode, reset_after=bool(getattr(module, "reset_after", True)))
        self.declares_reset_after = isinstance(module, torch.nn.GRU) or hasattr(module, "reset_after")
        self.own_params = {k: _np(v) for k, v in module.state_dict().items()}
        self._device, self._mode = p.device, mode
        self._factory = factory or (lambda s: type(module)(s.input_size, s.hidden_size, **s.torch_kwargs()))
        self.rebuild_hint = ("it is factory(spec) (by default the module's class, called with torch's constructor "
                             "arguments) loaded with the same weights; a module whose forward depends on more than "
                             "that (an attribute set after construction, say) needs a factory= that rebuilds it")
        forward = module.forward
        self._takes_lengths_kw = signature_takes(forward, "lengths")
        self._takes_masks = signature_takes(forward, "dropout_masks")

    # -- the module itself, and rebuilt parts ---------------------------------------------------

    def part(self, first: int, stop: int) -> TorchCandidate:
        return self._built(self.spec.layers(first, stop), f"layers {first}..{stop - 1}")

    def rebuild(self) -> TorchCandidate:
        return self._built(self.spec, "whole")

    def _built(self, spec: Spec, what: str) -> TorchCandidate:
        try:
            m = self._factory(spec)
        except Exception as e:
            raise CandidateError(f"could not build {self.name} for {spec} (pass factory=, a function of a Spec that "
                                 f"returns the module): {type(e).__name__}: {e}") from e
        m = m.to(device=self._device, dtype=self.torch_dtype).train(spec.training)
        return TorchCandidate(m, self._factory, self._mode, name=f"{self.name} ({what}, rebuilt by its factory)",
                              rebuilt=True, autocast=self.autocast)

    @contextlib.contextmanager
    def _set(self, spec: Spec, params: Mapping[str, np.ndarray]) -> Iterator[Any]:
        """The module itself, holding ``params`` in ``spec``'s training mode for the call; restored after it,
        whatever happens (its weights bit for bit)."""
        ignore = {"dropout"} if spec.num_layers == 1 else set()
        if not self.declares_reset_after:
            ignore.add("reset_after")
        diffs = [d for d in spec.differences(self.spec) if d.split(":")[0] not in ignore]
        if diffs:
            raise CandidateError(f"{self.name} runs {self.spec}, asked {spec} ({'; '.join(diffs)})")
        m = self.module
        saved = {k: p.detach().clone() for k, p in m.named_parameters()}
        load = any(not np.array_equal(params[k], _np(v)) for k, v in saved.items())
        training = m.training
        try:
            if load:
                load_into(m, params)
            m.train(spec.training)
            yield m
        finally:
            m.train(training)
            if load:
                load_into(m, {k: _np(v) for k, v in saved.items()})  # the same values, bit for bit

    def call(self, spec: Spec, params: dict, x: np.ndarray, hx: tuple, grad_output: Any, grad_hidden: Any, *,
             lengths: Any = None, dropout_masks: Any = None) -> dict[str, Any]:
        with self._set(spec, params) as m:
            return self._run(m, spec, x, hx, grad_output, grad_hidden, lengths, dropout_masks)

    def _run(self, m: Any, spec: Spec, x: np.ndarray, hx: tuple, grad_output: Any, grad_hidden: Any, lengths: Any,
             dropout_masks: Any) -> dict[str, Any]:
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        bf = bool(getattr(m, "batch_first", False))
        backward = grad_output is not None or grad_hidden is not None
        tensor = lambda a: torch.tensor(np.asarray(a), dtype=self.torch_dtype, device=self._device,
                                        requires_grad=backward)
        tm = (lambda t: t.transpose(0, 1)) if bf else (lambda t: t)  # time-major <-> the module's layout
        xt = tensor(x)
        hxt = tuple(tensor(h) for h in hx)
        kwargs = {}
        if dropout_masks is not None:
            if not self._takes_masks:
                raise CandidateError(f"{self.name}.forward takes no dropout_masks=: torch.nn draws its own masks, "
                                     "so compare it in eval mode (module.eval()) or with dropout=0")
            kwargs["dropout_masks"] = [tm(torch.as_tensor(np.asarray(k), dtype=self.torch_dtype, device=self._device))
                                       for k in dropout_masks]
        autocast = torch.autocast(self._device.type, getattr(torch, self.autocast)) if self.autocast \
            else contextlib.nullcontext()
        with torch.set_grad_enabled(backward), step("forward"), autocast:
            h_arg = hxt if spec.lstm else hxt[0]
            if lengths is None:
                out, hidden = m(tm(xt), h_arg, **kwargs)
            elif self._takes_lengths_kw:
                out, hidden = m(tm(xt), h_arg, lengths=torch.as_tensor(np.asarray(lengths)), **kwargs)
            else:
                packed = pack_padded_sequence(tm(xt), torch.as_tensor(np.asarray(lengths)), batch_first=bf,
                                              enforce_sorted=False)
                out, hidden = m(packed, h_arg, **kwargs)
                out, _ = pad_packed_sequence(out, batch_first=bf, total_length=xt.shape[0])
        if not isinstance(out, torch.Tensor):
            raise CandidateError(f"{self.name} returned {type(out).__name__} as its output; expected a tensor")
        out = tm(out)
        hidden = tuple(hidden) if isinstance(hidden, (tuple, list)) else (hidden,)
        res: dict[str, Any] = {"output": _np(out), "hidden": tuple(_np(h) for h in hidden)}
        if backward:
            named = dict(m.named_parameters())
            pairs = [(t, g) for t, g in zip((out, *hidden), (grad_output, *(grad_hidden or ())), strict=False) if g is not None]
            inputs = [xt, *hxt, *named.values()]
            with step("backward"):
                grads = torch.autograd.grad([t for t, _ in pairs], inputs,  # cotangents in their outputs' dtype
                                            [torch.as_tensor(np.asarray(g), dtype=t.dtype, device=self._device)
                                             for t, g in pairs], allow_unused=True)
            zeros = lambda t: torch.zeros_like(t) if t is not None else None
            res["input"] = _np(grads[0] if grads[0] is not None else zeros(xt))
            res["hx"] = tuple(_np(g if g is not None else zeros(h)) for g, h in zip(grads[1:1 + len(hxt)], hxt, strict=True))
            # a parameter the graph never reads has gradient zero
            res.update((n, _np(g if g is not None else torch.zeros_like(p)))
                       for (n, p), g in zip(named.items(), grads[1 + len(hxt):], strict=True))
        return res


def _np(t: Any) -> np.ndarray:
    """A tensor as NumPy: bfloat16 and float16 as float32, which holds their values exactly (NumPy has no bfloat16)."""
    t = t.detach().cpu()
    return (t.float() if t.dtype in (torch.bfloat16, torch.float16) else t).numpy()


def candidate(obj: Any, *, factory: Callable[[Spec], Any] | None = None, mode: str | None = None,
              dtype: Any = None, **_: Any) -> TorchCandidate:
    """The registry's builder: a torch module run as it is (``factory`` builds it for other configurations).
    ``dtype`` bfloat16 or float16 for a float32 module: run under ``torch.autocast`` at that dtype."""
    params = list(obj.parameters()) if isinstance(obj, torch.nn.Module) else []
    autocast = narrow_format(dtype) if dtype is not None and params and params[0].dtype == torch.float32 else None
    return TorchCandidate(obj, factory, mode=mode, autocast=autocast)


def load(path: str, *, mode: str | None = None, layout: str | None = None, trust_pickle: bool = False,
         **_: Any) -> TorchCandidate:
    """The registry's reader of torch files (see :func:`load_torch_file`) and of .npz weights, run in torch.nn."""
    if path.endswith(".npz"):
        import os

        from reference.verify.models import load_weights

        state, spec, _layout = load_weights(path, layout=layout, mode=mode)
        return torch_nn_candidate(spec, state, name=os.path.basename(path))
    return load_torch_file(path, mode=mode, trust_pickle=trust_pickle)


def torch_nn_candidate(spec: Spec, state: Mapping[str, Any], name: str | None = None) -> TorchCandidate:
    """torch.nn.<spec's class> of ``spec`` holding ``state``, in eval mode, as a candidate."""
    if not spec.reset_after:
        raise ValueError("spec: torch.nn.GRU has only torch's form (reset_after=True); give a candidate for the "
                         "paper's form")
    m = getattr(torch.nn, spec.torch_class)(spec.input_size, spec.hidden_size, **spec.torch_kwargs())
    first = np.asarray(next(iter(state.values())))
    m = m.to(dtype=torch.float64 if first.dtype == np.float64 else torch.float32).eval()
    load_into(m, state)
    return TorchCandidate(m, name=name or f"torch.nn.{spec.torch_class}")


def load_torch_file(path: str, mode: str | None = None, *, trust_pickle: bool = False) -> TorchCandidate:
    """A state_dict loaded into torch.nn (configuration from the shapes), or, trusted, a pickled module as it is.

    The file is read with ``torch.load(weights_only=True)``: tensors and
    containers only, so reading it runs no code from it. A pickled module, a
    TorchScript archive or any other pickle that needs more is refused with a
    ValueError that names what torch found, unless ``trust_pickle=True``: then
    it is loaded in full (``weights_only=False``), which runs whatever code the
    pickle names, as you. A missing, truncated or mislabelled file is refused by
    name (see :mod:`reference.verify.files`).
    """
    import os

    obj = read_torch_file(path, trust_pickle=trust_pickle)
    name = os.path.basename(path)
    if isinstance(obj, torch.nn.Module):
        return TorchCandidate(obj, mode=mode, name=name)
    if isinstance(obj, Mapping):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        for k, v in tensors.items():
            check_declared_size(v, f"model: {name}: {k}")
        check_real(tensors, f"model: {name}")
        for k, v in tensors.items():
            judged_dtype(v.dtype, f"model: {name}: {k}")
        state = {k: v.detach().cpu().numpy() for k, v in tensors.items()}
        try:
            spec = Spec.from_state_dict(state, mode)
        except ValueError as e:
            raise ValueError(f"model: {name} holds a state_dict that is not one recurrent module's: {e}") from None
        return torch_nn_candidate(spec, state, name=f"{name} in torch.nn.{spec.torch_class}")
    raise ValueError(f"model: {name} holds a {type(obj).__name__}; expected a torch module or a state_dict")
