"""A session: one candidate at one dtype, run beside the float64 reference on the same (rounded) problems."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from .candidates import Candidate, Expect, Problem, run_candidate
from .spec import Spec


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
