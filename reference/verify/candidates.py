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
from .spec import Spec, split_name


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
    layers: tuple[int, int] | None = None  # (first, stop): the candidate's layers first..stop-1 alone; None: all

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
    """A NumPy array from NumPy, torch (any device) or anything np.asarray takes; None stays None. A torch
    bfloat16 tensor comes as float32, which holds its values exactly (NumPy has no bfloat16)."""
    if a is None:
        return None
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        t = a.detach().cpu()
        return (t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy()
    return np.asarray(a)


@dataclass(frozen=True)
class GivenLengths:
    """Lengths a candidate's own inputs fix: B ints in [1, T], T the steps of its own input (None: not given)."""

    values: np.ndarray  # (B,) int64
    T: int | None
    where: str  # the file they came from, for the report and messages


class Candidate:
    """What compare runs. Subclasses set the attributes and implement ``call``.

    Attributes:
        name: for the report.
        dtype: the dtype the candidate computes in (None: asked by compare, default float64).
        storage: "bfloat16" or "float16" for a candidate storing that format (None: ``dtype``'s own). It is then
            given and returns its arrays in ``dtype`` (float32, holding the format's values exactly) and is
            judged against the rounding envelope (:mod:`reference.verify.low_precision`).
        judged_dtype: the precision it is judged at where that is lower than ``dtype`` (None: ``dtype``), and
            ``dtype_note`` says why (Keras's products of float64 arrays run in float32 on torch and JAX).
        device: "cpu", "cuda", ...
        spec: its own configuration, when it has one (a module, a model file).
        own_params: its own weights (torch's names, NumPy), when it has them.
        has_gradients: whether it can run backward at all.
        takes_hx / takes_lengths: whether initial states / lengths can be passed.
        fixed_shape: (T, B) where the candidate runs only one shape (None: any).
        given_lengths: lengths the candidate's own inputs fix (an ONNX model's test data gives
            sequence_lens): compare runs both sides with them unless told other lengths.
        declares_reset_after: whether its ``spec.reset_after`` is its own (else the reference's is taken).
        gradients: the gradients it provides when compare's ``gradients=`` is unset, in its names
            ("input", "h_0", "weight_ih", ...; None: all, where it has gradients).
        rebuilt: True for an object an adapter built (a sub-stack of a module, say), not the user's: it is
            run only once the fidelity gate (:mod:`reference.verify.session`) has passed its adapter's rebuild.
        exact: whether two runs of the same computation agree bit for bit (deterministic CPU kernels); the
            fidelity gate then asks a rebuild to agree bit for bit, else within the dtype's tolerance.
        rebuild_hint: how the adapter rebuilds, for the report when a rebuild is not faithful.
    """

    name = "candidate"
    dtype: np.dtype | None = None
    storage: str | None = None
    judged_dtype: np.dtype | None = None
    dtype_note = ""
    device = "cpu"
    spec: Spec | None = None
    own_params: dict | None = None
    has_gradients = True
    takes_hx = True
    takes_lengths = True
    fixed_shape: tuple = (None, None)
    given_lengths: GivenLengths | None = None
    declares_reset_after = False
    gradients: frozenset | None = None
    rebuilt = False
    exact = True
    rebuild_hint = ""

    def call(self, spec: Spec, params: dict, x: np.ndarray, hx: tuple, grad_output: Any, grad_hidden: Any, *,
             lengths: Any = None, dropout_masks: Any = None) -> Any:
        raise NotImplementedError

    def runs(self, spec: Spec, x: np.ndarray, hx: tuple, lengths: Any) -> bool:
        """Whether the user's object itself runs this problem of its whole stack (a model file exported at one
        shape, or taking no initial states, does not run every one); where it does not, the session runs
        :meth:`part` of the whole stack, a rebuild, past the fidelity gate."""
        return True

    def part(self, first: int, stop: int) -> Candidate:
        """The candidate of layers ``first``..``stop``-1 alone (the problems localisation poses for them).

        The default is this candidate itself: it runs whatever configuration it is given (a function).
        An adapter whose object is one stack returns the user's own layers where it can reach them,
        else a rebuilt object (``rebuilt = True``), which the session uses only past the fidelity gate.
        """
        return self

    def rebuild(self) -> Candidate | None:
        """This whole candidate rebuilt the way :meth:`part` rebuilds a sub-stack, for the fidelity gate
        (None: :meth:`part` rebuilds nothing)."""
        return None


# -- running a candidate and checking what it returns ----------------------------------------


@dataclass(frozen=True)
class Expect:
    """The gradients a candidate provides: ``input``; ``hx`` (h_0, c_0); parameters by base name
    ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"), in every layer and direction."""

    input: bool = True
    hx: tuple[bool, bool] = (True, True)
    params: frozenset = frozenset({"weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"})

    def param_names(self, params: Mapping[str, Any]) -> list[str]:
        return [k for k in params if split_name(k)[0] in self.params]



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
    if a.dtype.name == "bfloat16":  # ml_dtypes' (JAX's NumPy bfloat16): float32 holds its values exactly
        a = a.astype(np.float32)
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
