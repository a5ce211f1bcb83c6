"""A session: one candidate at one dtype, run beside the float64 reference on the same (rounded) problems.

The fidelity gate. A comparison is about the object the user gave: compare runs it, and only it, on the
problem the report is about. Localisation poses sub-problems (a layer alone, single steps, pinned gates):
an adapter runs them on the user's own object where it can (its own layers, its weights set and
restored), and otherwise on an object it rebuilds (a torch module's class for one layer of its stack,
one ONNX node per layer). A rebuilt object is used only after its adapter's rebuild of the *whole*
candidate has reproduced the user's object on the original problem: every output and gradient bit for
bit where the runs are deterministic, else within the dtype's tolerance. Otherwise localisation stops,
the mismatch stands, and the report says by how much the rebuild differs and why.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from reference.precision import round_to
from reference.tolerances import candidate_tol, compare_arrays

from .candidates import Candidate, CandidateError, Expect, Problem, run_candidate
from .spec import Spec


class Session:
    """One candidate at one dtype: runs it and the reference on the same (rounded) problems."""

    def __init__(self, cand: Candidate, dtype: np.dtype, expect: Expect, cotangents: frozenset,
                 storage: str | None = None):
        self.cand, self.dtype, self.expect, self.cotangents = cand, np.dtype(dtype), expect, cotangents
        self.storage = storage  # a narrower format the candidate stores its values in (bfloat16, float16), or None
        self.original: tuple[Problem, dict] | None = None  # the problem compare judged, and the candidate's result
        self._parts: dict[tuple[int, int], Candidate] = {}
        self._unfaithful: str | None = None  # after the gate ran: "" faithful, else why not

    def round(self, a: Any) -> np.ndarray:
        """``a`` rounded to the candidate's dtype (its storage format, where narrower), held in float64."""
        if self.storage is not None:
            return np.asarray(round_to(a, self.storage), dtype=np.float64)
        return np.asarray(a, dtype=np.float64).astype(self.dtype).astype(np.float64)

    def rounded(self, pb: Problem) -> Problem:
        """Every float of ``pb`` rounded as ``round`` does, so both sides read the same values."""
        if self.dtype == np.float64 and self.storage is None:
            return pb
        r = lambda a: None if a is None else self.round(a)  # same shape
        return replace(pb, params={k: r(v) for k, v in pb.params.items()}, x=self.round(pb.x),
                       hx=tuple(r(h) for h in pb.hx), grad_output=r(pb.grad_output),
                       grad_hidden=None if pb.grad_hidden is None else tuple(r(g) for g in pb.grad_hidden))

    def candidate(self, pb: Problem) -> tuple[dict, list[str]]:
        return run_candidate(self.part(pb), self.rounded(pb), self.dtype, self.expect)

    def reference(self, pb: Problem, carries: bool = False) -> tuple[dict, Any, Any]:
        return run_reference(self.rounded(pb), carries)

    def part(self, pb: Problem) -> Candidate:
        """The candidate that runs ``pb``: the user's own for the whole stack, else its adapter's part, a
        rebuilt one only past the fidelity gate."""
        whole = self.original[0].spec.num_layers if self.original is not None else pb.spec.num_layers
        layers = pb.layers or (0, whole)
        if layers == (0, whole) and self.cand.runs(pb.spec, pb.x, pb.hx, pb.lengths):
            return self.cand
        if layers not in self._parts:
            part = self.cand.part(*layers)
            if part.rebuilt:
                self.fidelity_gate()
            self._parts[layers] = part
        return self._parts[layers]

    def fidelity_gate(self) -> None:
        """Raise CandidateError unless the adapter's rebuild of the whole candidate reproduces it on the
        original problem (see the module docstring); decided once per session."""
        if self._unfaithful is None:
            self._unfaithful = self._rebuild_differs()
        if self._unfaithful:
            raise CandidateError(self._unfaithful)

    def _rebuild_differs(self) -> str:
        if self.original is None:
            raise RuntimeError("the fidelity gate needs the original problem and result (compare sets them)")
        pb, mine = self.original
        rebuilt = self.cand.rebuild()
        if rebuilt is None:
            return f"{self.cand.name} cannot be rebuilt for a part of its stack, and its own object runs only whole"
        theirs, _ = run_candidate(rebuilt, self.rounded(pb), self.dtype, self.expect)
        name, err = _largest_difference(mine, theirs, None if self.cand.exact else self._tolerance())
        if name is None:
            return ""
        how = "bit for bit" if self.cand.exact else "within the tolerance"
        return (f"the rebuilt {rebuilt.name} differs from yours by {err:.1e} in {name} on the original problem "
                f"(it must agree {how} before it stands in for yours): {self.cand.rebuild_hint or 'it is not yours'}")

    def _tolerance(self) -> dict[str, tuple[float, float]]:
        judged = self.cand.judged_dtype or self.dtype
        return {kind: candidate_tol(judged, self.cand.device, kind) for kind in ("forward", "gradient")}


def _largest_difference(a: dict, b: dict, tol: dict | None) -> tuple[str | None, float]:
    """(the first tensor of result ``b`` that differs from ``a``'s, its max abs difference), or (None, 0):
    bit for bit where ``tol`` is None, else under the one rule (forward tolerance for outputs and states)."""
    for key, value in a.items():
        pairs = list(zip(value, b.get(key) or (None,) * len(value), strict=True)) if isinstance(value, tuple) \
            else [(value, b.get(key))]
        for k, (x, y) in enumerate(pairs):
            if x is None:
                continue
            name = f"{key}[{k}]" if isinstance(value, tuple) else key
            if y is None or np.shape(x) != np.shape(y):
                return name, float("inf")
            x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
            with np.errstate(invalid="ignore"):
                err = float(np.nan_to_num(np.abs(x64 - y64), nan=np.inf).max(initial=0.0))
            kind = "forward" if key in ("output", "hidden") else "gradient"
            same = np.array_equal(x64, y64, equal_nan=True) if tol is None else compare_arrays(y64, x64, *tol[kind])[0]
            if not same:
                return name, err
    return None, 0.0


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
