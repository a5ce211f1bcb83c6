"""Candidates: what is checked, behind one calling convention, and the checks on what they return.

The function protocol (:class:`CandidateFn`)::

    fn(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None) -> Mapping

* ``spec``: a :class:`~reference.verify.spec.Spec`, the configuration to run
  (localisation varies it: one layer alone, T=1 steps).
* ``params``: NumPy arrays keyed like torch's ``state_dict`` (or, with a
  ``layout``, ``{"l0": <weights in that layout>, "l0_reverse": ..., "l1": ...}``).
* ``input``: (T, B, I), time-major. ``hx``: ``(h_0,)`` or ``(h_0, c_0)``,
  (L*D, B, P) / (L*D, B, H).
* ``grad_output`` (T, B, D*P) and ``grad_hidden`` (a tuple like ``hx``): the
  cotangents. Both None: a forward-only call. An output that carries no
  gradient (``cotangents=`` of compare) is None.
* ``lengths``: (B,) ints in [1, T] or None (padded input, torch's packing
  semantics). ``dropout_masks``: L-1 keep masks of 0s and 1s, (T, B, D*P), in
  training mode with dropout only; the candidate applies the 1/(1-p) scale.

It returns a mapping with ``"output"`` (T, B, D*P) and ``"hidden"`` (a tuple
like ``hx``), and for a backward call the gradients it provides: ``"input"``,
``"hx"`` (a tuple like ``hx``, None where not provided) and one entry per
parameter (the keys of ``params``). Which gradients it provides is declared
with compare's ``gradients=``; a missing or unknown key is a
:class:`CandidateError`. Any code (NumPy, JAX, a C extension) fits behind it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, overload

import numpy as np

from .deadline import step
from .spec import Spec


class CandidateError(RuntimeError):
    """The candidate could not be run as asked, or returned something other than the protocol's.

    The message names what was expected and what came back; the cause is chained.
    """


class CandidateFn(Protocol):
    """The function protocol (see the module docstring)."""

    def __call__(self, spec: Spec, params: Mapping[str, Any], input: np.ndarray, hx: tuple,
                 grad_output: np.ndarray | None, grad_hidden: tuple | None, *, lengths: np.ndarray | None = None,
                 dropout_masks: list | None = None) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Problem:
    """One run: configuration, weights (torch's names, float64 holding the candidate's rounded values),
    time-major data and cotangents (None where an output carries no gradient; both None: forward only)."""

    spec: Spec
    params: dict
    x: np.ndarray  # (T, B, I)
    hx: tuple  # (h_0,) or (h_0, c_0)
    lengths: np.ndarray | None = None  # (B,)
    masks: list | None = None  # L-1 keep masks of 0/1, (T, B, D*P)
    grad_output: np.ndarray | None = None  # (T, B, D*P)
    grad_hidden: tuple | None = None  # like hx, entries may be None

    @property
    def backward(self) -> bool:
        return self.grad_output is not None or (self.grad_hidden is not None and
                                                any(g is not None for g in self.grad_hidden))

    def forward_only(self) -> Problem:
        return replace(self, grad_output=None, grad_hidden=None)


@overload
def to_numpy(a: None) -> None: ...


@overload
def to_numpy(a: object) -> np.ndarray: ...


def to_numpy(a: Any) -> np.ndarray | None:
    """A NumPy array from NumPy, torch (any device) or anything np.asarray takes; None stays None."""
    if a is None:
        return None
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


class Candidate:
    """What compare runs. Subclasses set the attributes and implement ``call``.

    Attributes:
        name: for the report.
        dtype: the dtype the candidate computes in (None: asked by compare, default float64).
        device: "cpu", "cuda", ...
        spec: its own configuration, when it has one (a module, a model file).
        own_params: its own weights (torch's names, NumPy), when it has them.
        has_gradients: whether it can run backward at all.
        takes_hx / takes_lengths: whether initial states / lengths can be passed.
        fixed_shape: (T, B) where the candidate runs only one shape (None: any).
        declares_reset_after: whether its ``spec.reset_after`` is its own (else the reference's is taken).
        gradients: the gradients it provides when compare's ``gradients=`` is unset, in its names
            ("input", "h_0", "weight_ih", ...; None: all, where it has gradients).
    """

    name = "candidate"
    dtype: np.dtype | None = None
    device = "cpu"
    spec: Spec | None = None
    own_params: dict | None = None
    has_gradients = True
    takes_hx = True
    takes_lengths = True
    fixed_shape: tuple = (None, None)
    declares_reset_after = False
    gradients: frozenset | None = None

    def call(self, spec: Spec, params: dict, x: np.ndarray, hx: tuple, grad_output: Any, grad_hidden: Any, *,
             lengths: Any = None, dropout_masks: Any = None) -> Any:
        raise NotImplementedError


def _name_of(fn: Callable) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


class FunctionCandidate(Candidate):
    """A :class:`CandidateFn`, receiving its weights in ``layout``."""

    def __init__(self, fn: Callable, layout: str = "torch", dtype: Any = None, name: str | None = None):
        from .layouts import LAYOUTS

        if layout not in LAYOUTS:
            raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
        self.fn, self.layout = fn, layout
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.name = name or _name_of(fn)

    def call(self, spec, params, x, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        if self.layout != "torch":
            from .layouts import export_state_dict

            params = export_state_dict(self.layout, spec, params)
        res = self.fn(spec, params, x, hx, grad_output, grad_hidden, lengths=lengths, dropout_masks=dropout_masks)
        if self.layout != "torch" and (grad_output is not None or grad_hidden is not None):
            res = _import_layout_gradients(self.layout, spec, res)
        return res


def _import_layout_gradients(layout: str, spec: Spec, res: Any) -> Any:
    if not isinstance(res, Mapping):
        return res
    from .layouts import import_gradients

    res = dict(res)
    nested = {k: res.pop(k) for k in list(res) if k not in ("output", "hidden", "input", "hx")}
    try:
        res.update(import_gradients(layout, spec, nested))
    except (TypeError, ValueError) as e:
        raise CandidateError(f"the candidate's weight gradients in the {layout} layout: {e}") from e
    return res


class ReferenceCandidate(Candidate):
    """A reference module (any dtype) as a candidate: e.g. the float32 reference against the float64 one, or a
    subclass with its own forward or backward (run as its own class, for every configuration localisation poses)."""

    declares_reset_after = True

    def __init__(self, module: Any):
        self.module = module
        self.spec = Spec.coerce(module)
        self.dtype = np.dtype(module.dtype)
        self.own_params = {k: np.asarray(v) for k, v in module.state_dict().items()}
        self.name = f"{type(module).__name__} (reference, {self.dtype.name})"

    def call(self, spec, params, x, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        return reference_run(self._module(spec, params), spec, x, hx, grad_output, grad_hidden, lengths,
                             dropout_masks)[0]

    def _module(self, spec: Spec, params: dict) -> Any:
        """The module's own class (a subclass's forward and backward are what is checked) built for ``spec``."""
        import warnings

        from ..recurrent import GRU, LSTM, RNN

        cls = type(self.module)
        if cls in (GRU, LSTM, RNN):
            return spec.reference(params, dtype=self.dtype)

        cfg = spec.config
        kwargs: dict[str, Any] = dict(num_layers=cfg.num_layers, bias=cfg.bias, batch_first=False,
                                      dropout=cfg.dropout, bidirectional=cfg.bidirectional, dtype=self.dtype)
        if cfg.mode == "LSTM":
            kwargs["proj_size"] = cfg.proj_size
        elif cfg.mode == "GRU":
            kwargs["reset_after"] = cfg.reset_after
        else:
            kwargs["nonlinearity"] = cfg.nonlinearity
        try:
            with warnings.catch_warnings():  # dropout with one layer: a warning, as torch gives
                warnings.simplefilter("ignore", UserWarning)
                m = cls(cfg.input_size, cfg.hidden_size, **kwargs)
            m.load_state_dict(params)
        except Exception as e:
            raise CandidateError(f"could not build {self.name} for {spec} ({cls.__name__}(input_size, hidden_size, "
                                 f"**{sorted(kwargs)})): {type(e).__name__}: {e}") from e
        return m.train(spec.training)


def reference_run(m: Any, spec: Spec, x, hx, grad_output, grad_hidden, lengths, masks, carries: bool = False):
    """Run a reference module forward (and backward when cotangents are given): (result dict, tape, grads)."""
    out, hidden, tape = m.forward(x, hx if spec.lstm else hx[0], lengths=lengths, dropout_masks=masks)
    res: dict[str, Any] = {"output": out, "hidden": tuple(hidden) if spec.lstm else (hidden,)}
    grads = None
    if grad_output is not None or (grad_hidden is not None and any(g is not None for g in grad_hidden)):
        gh = None if grad_hidden is None else (tuple(grad_hidden) if spec.lstm else grad_hidden[0])
        kw = {"carries": True} if carries else {}
        grads = m.backward(tape, grad_output, gh, **kw)
        res.update((k, v) for k, v in grads.items() if k not in ("hx", "carries"))
        res["hx"] = tuple(grads["hx"]) if spec.lstm else (grads["hx"],)
    return res, tape, grads


def run_reference(pb: Problem, carries: bool = False) -> tuple[dict, Any, Any]:
    """The truth: the float64 reference on ``pb`` -> (result, tape, raw backward result)."""
    return reference_run(pb.spec.reference(pb.params), pb.spec, pb.x, pb.hx, pb.grad_output, pb.grad_hidden,
                         pb.lengths, pb.masks, carries)


# -- the configuration of a module candidate ---------------------------------------------------


def spec_of_module(module: Any, mode: str | None = None, **overrides: Any) -> Spec:
    """The configuration of a torch.nn-like module: from its parameter shapes, checked against its attributes.

    ``mode`` is needed only where neither an attribute ``.mode`` nor torch's class
    (LSTM, GRU, RNN) says it, and the shapes cannot (a one-gate RNN: tanh or relu).
    """
    state = {k: to_numpy(v) for k, v in module.state_dict().items()}
    mode = _declared_mode(module) or mode
    try:
        spec = Spec.from_state_dict(state, mode, dropout=float(getattr(module, "dropout", 0.0) or 0.0),
                                    training=bool(getattr(module, "training", False)), **overrides)
    except ValueError as e:
        raise CandidateError(f"{type(module).__name__}: expected a recurrent module with torch's parameter names "
                             f"(weight_ih_l0, weight_hh_l0, ...), got parameters {sorted(state)[:8]}: {e}") from None
    declared = {"input_size": spec.input_size, "hidden_size": spec.hidden_size, "num_layers": spec.num_layers,
                "bias": spec.bias, "bidirectional": spec.bidirectional, "proj_size": spec.proj_size}
    wrong = [f"{k}={getattr(module, k)!r} but its weights say {v!r}" for k, v in declared.items()
             if isinstance(getattr(module, k, None), (bool, int, np.integer)) and getattr(module, k) != v]
    if wrong:
        raise CandidateError(f"{type(module).__name__}: its attributes disagree with its parameter shapes: "
                             + "; ".join(wrong))
    return spec


def _declared_mode(module: Any) -> str | None:
    mode = getattr(module, "mode", None)
    if isinstance(mode, str) and mode in ("RNN_TANH", "RNN_RELU", "GRU", "LSTM"):
        return mode
    cls = type(module)
    if cls.__module__.startswith("torch.nn") and cls.__name__ in ("RNN", "GRU", "LSTM"):
        if cls.__name__ == "RNN":
            return "RNN_TANH" if getattr(module, "nonlinearity", "tanh") == "tanh" else "RNN_RELU"
        return cls.__name__
    nonlinearity = getattr(module, "nonlinearity", None)
    if nonlinearity in ("tanh", "relu"):
        return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
    return None


def is_torch_module(obj: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(obj).__mro__)


def is_reference_module(obj: Any) -> bool:
    return any(c.__module__.startswith("reference.") and c.__name__ == "RNNBase" for c in type(obj).__mro__)


def as_candidate(obj: Any, *, layout: str = "torch", dtype: Any = None, factory: Callable | None = None,
                 mode: str | None = None) -> Candidate:
    """A :class:`Candidate` from a Candidate, a Flax or Equinox module (a linen one as (module, params); see
    :mod:`reference.verify.jax_cells`), a torch module, a reference module or a :class:`CandidateFn`."""
    if isinstance(obj, Candidate):
        return obj
    from .jax_cells import is_jax_object, jax_candidate
    from .keras_layers import KerasCandidate, is_keras_object

    if is_keras_object(obj):  # before torch's check: on the torch backend a Keras layer is also a torch Module
        if layout != "torch":
            raise ValueError("layout: Keras candidates hold their own weights; layout= is for function candidates")
        return KerasCandidate(obj)
    if is_jax_object(obj):  # Flax (linen, nnx) and Equinox; JAX is imported only here
        if layout != "torch":
            raise ValueError("layout: Flax and Equinox candidates hold their own weights; layout= is for function "
                             "candidates")
        return jax_candidate(obj)
    if is_torch_module(obj):
        if layout != "torch":
            raise ValueError("layout: torch module candidates use torch's layout; layout= is for function candidates")
        from torch_impl.compare import TorchCandidate  # torch enters here, and only here

        return TorchCandidate(obj, factory, mode=mode)
    if is_reference_module(obj):
        return ReferenceCandidate(obj)
    if callable(obj) and not isinstance(obj, type):
        return FunctionCandidate(obj, layout, dtype)
    raise TypeError(f"candidate: expected a torch module, a reference module, a Keras layer or model, a Flax or "
                    f"Equinox module, a model file's candidate or a "
                    f"function fn(spec, params, input, hx, grad_output, grad_hidden, *, lengths, dropout_masks); "
                    f"got {type(obj).__name__}")


# -- running a candidate and checking what it returns ----------------------------------------


@dataclass(frozen=True)
class Expect:
    """The gradients a candidate provides: ``input``; ``hx`` (h_0, c_0); parameters by base name
    ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"), in every layer and direction."""

    input: bool = True
    hx: tuple[bool, bool] = (True, True)
    params: frozenset = frozenset({"weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"})

    def param_names(self, params: Mapping[str, Any]) -> list[str]:
        from .spec import split_name

        return [k for k in params if split_name(k)[0] in self.params]


class Session:
    """One candidate at one dtype: runs it and the reference on the same (rounded) problems."""

    def __init__(self, cand: Candidate, dtype: np.dtype, expect: Expect, cotangents: frozenset):
        self.cand, self.dtype, self.expect, self.cotangents = cand, np.dtype(dtype), expect, cotangents

    def rounded(self, pb: Problem) -> Problem:
        """Every float of ``pb`` rounded to the candidate's dtype, so both sides read the same values."""
        if self.dtype == np.float64:
            return pb
        to = lambda a: np.asarray(a, dtype=np.float64).astype(self.dtype).astype(np.float64)  # same shape
        r = lambda a: None if a is None else to(a)
        return replace(pb, params={k: r(v) for k, v in pb.params.items()}, x=to(pb.x), hx=tuple(r(h) for h in pb.hx),
                       grad_output=r(pb.grad_output),
                       grad_hidden=None if pb.grad_hidden is None else tuple(r(g) for g in pb.grad_hidden))

    def candidate(self, pb: Problem) -> tuple[dict, list[str]]:
        return run_candidate(self.cand, self.rounded(pb), self.dtype, self.expect)

    def reference(self, pb: Problem, carries: bool = False) -> tuple[dict, Any, Any]:
        return run_reference(self.rounded(pb), carries)


def run_candidate(cand: Candidate, pb: Problem, dtype: np.dtype, expect: Expect) -> tuple[dict, list[str]]:
    """Run ``cand`` on ``pb`` at ``dtype``; returns (normalised result, dtype notes). Raises CandidateError."""
    c = lambda a: None if a is None else np.asarray(a, dtype=dtype)
    grad_hidden = None if pb.grad_hidden is None else tuple(c(g) for g in pb.grad_hidden)
    if pb.grad_output is None and grad_hidden is not None and all(g is None for g in grad_hidden):
        grad_hidden = None
    try:
        with step("forward and backward" if pb.backward else "forward"):  # an adapter may name them apart
            raw = cand.call(pb.spec, {k: c(v) for k, v in pb.params.items()}, np.asarray(pb.x, dtype=dtype),
                            tuple(c(h) for h in pb.hx), c(pb.grad_output), grad_hidden, lengths=pb.lengths,
                            dropout_masks=None if pb.masks is None else [c(m) for m in pb.masks])
    except CandidateError:
        raise
    except Exception as e:
        raise CandidateError(f"{cand.name} raised {type(e).__name__}: {e} (running {pb.spec}, T={pb.x.shape[0]}, "
                             f"B={pb.x.shape[1]}" + (", with lengths" if pb.lengths is not None else "")
                             + (", backward" if pb.backward else ", forward only") + ")") from e
    return normalise(raw, pb, expect, dtype, cand.name)


def _describe(v: Any) -> str:
    if v is None:
        return "None"
    if isinstance(v, (tuple, list)):
        return f"a {type(v).__name__} of {len(v)}"
    return type(v).__name__ + (f" of shape {tuple(v.shape)}" if hasattr(v, "shape") else "")


def _array(name: str, v: Any, who: str) -> np.ndarray:
    if v is None:
        raise CandidateError(f"{who} returned {name} as None; expected an array")
    try:
        a = to_numpy(v)
    except Exception as e:  # anything that will not become an array is the candidate's mistake
        raise CandidateError(f"{who} returned {name} as {_describe(v)}; expected an array") from e
    if a.dtype.kind not in "fiu":
        raise CandidateError(f"{who} returned {name} as {_describe(v)} of dtype {a.dtype}; expected a real array")
    return a


def normalise(raw: Any, pb: Problem, expect: Expect, dtype: np.dtype, who: str) -> tuple[dict, list[str]]:
    """Check a candidate's return against the protocol; returns ({output, hidden, [input, hx, params]}, dtype notes)."""
    n_states = len(pb.hx)
    if not isinstance(raw, Mapping):
        raise CandidateError(f"{who} returned {_describe(raw)}; expected a mapping with 'output' (T, B, D*P) and "
                             f"'hidden' (a tuple {'(h_n, c_n)' if n_states == 2 else '(h_n,)'})"
                             + (" plus its gradients" if pb.backward else ""))
    for key in ("output", "hidden"):
        if key not in raw or raw[key] is None:
            raise CandidateError(f"{who} returned no {key!r} (keys {sorted(raw)}); expected 'output' and 'hidden'")
    res: dict[str, Any] = {"output": _array("'output'", raw["output"], who)}
    hidden = raw["hidden"]
    if n_states == 1 and not isinstance(hidden, (tuple, list)):
        hidden = (hidden,)
    if not isinstance(hidden, (tuple, list)) or len(hidden) != n_states:
        raise CandidateError(f"{who} returned 'hidden' as {_describe(hidden)}; expected a tuple "
                             f"{'(h_n, c_n)' if n_states == 2 else '(h_n,)'}")
    res["hidden"] = tuple(_array(f"'hidden'[{k}]", h, who) for k, h in enumerate(hidden))
    unknown = sorted(set(raw) - {"output", "hidden", "input", "hx", *pb.params})
    if unknown:
        raise CandidateError(f"{who} returned unknown {'gradient ' if pb.backward else ''}keys {unknown}; expected "
                             "'output', 'hidden' and, for a backward call, 'input', 'hx' and the parameter names "
                             f"{str(list(pb.params)[:4])[:-1]}, ...]")
    if pb.backward:
        _gradients(raw, res, pb, expect, who)
    notes = [f"{name} is {a.dtype}" for name, a in _arrays(res) if a.dtype != dtype]  # integers too
    return res, notes


def _gradients(raw: Mapping, res: dict, pb: Problem, expect: Expect, who: str) -> None:
    hint = " (if it does not compute this gradient, say so with compare(..., gradients=...))"
    if expect.input:
        if raw.get("input") is None:
            raise CandidateError(f"{who} returned no gradient 'input' (keys {sorted(raw)}){hint}")
        res["input"] = _array("'input'", raw["input"], who)
    wanted = expect.hx[:len(pb.hx)]
    if any(wanted):
        ghx = raw.get("hx")
        if len(pb.hx) == 1 and ghx is not None and not isinstance(ghx, (tuple, list)):
            ghx = (ghx,)
        if not isinstance(ghx, (tuple, list)) or len(ghx) != len(pb.hx):
            raise CandidateError(f"{who} returned 'hx' as {_describe(ghx)}; expected a tuple like hx "
                                 f"({'(dh_0, dc_0)' if len(pb.hx) == 2 else '(dh_0,)'}){hint}")
        out = []
        for k, (want, g) in enumerate(zip(wanted, ghx, strict=True)):
            if want and g is None:
                raise CandidateError(f"{who} returned None for {'dh_0' if k == 0 else 'dc_0'}{hint}")
            out.append(_array(f"'hx'[{k}]", g, who) if want else None)
        res["hx"] = tuple(out)
    names = expect.param_names(pb.params)
    missing = [n for n in names if raw.get(n) is None]
    if missing:
        given = sorted(n for n in pb.params if raw.get(n) is not None)
        raise CandidateError(f"{who} returned no gradient for the parameters {missing} (it returned gradients for "
                             f"{given or 'none'}){hint}")
    for n in names:
        res[n] = _array(repr(n), raw[n], who)


def _arrays(res: dict):
    for k, v in res.items():
        if isinstance(v, tuple):
            for j, a in enumerate(v):
                if a is not None:
                    yield f"{k}[{j}]", a
        elif v is not None:
            yield k, v


def signature_takes(fn: Callable, name: str) -> bool:
    """Does ``fn`` accept the keyword ``name``?"""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
