"""A function as a candidate: the function protocol (:class:`~reference.verify.candidates.CandidateFn`),
its weights given in torch's names or in another layout (:mod:`reference.verify.layouts`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..candidates import Candidate, CandidateError
from ..layouts import LAYOUTS, export_state_dict, import_gradients
from ..precision import narrow_format
from ..spec import Spec


def _name_of(fn: Callable) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


class FunctionCandidate(Candidate):
    """A :class:`CandidateFn`, receiving its weights in ``layout``."""

    def __init__(self, fn: Callable, layout: str = "torch", dtype: Any = None, name: str | None = None):
        if layout not in LAYOUTS:
            raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
        self.fn, self.layout = fn, layout
        self.storage = None if dtype is None else narrow_format(dtype)  # bfloat16, float16: float32 arrays
        self.dtype = None if dtype is None else np.dtype(np.float32) if self.storage else np.dtype(dtype)
        self.name = name or _name_of(fn)

    def call(self, spec, params, x, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        if self.layout != "torch":
            params = export_state_dict(self.layout, spec, params)
        res = self.fn(spec, params, x, hx, grad_output, grad_hidden, lengths=lengths, dropout_masks=dropout_masks)
        if self.layout != "torch" and (grad_output is not None or grad_hidden is not None):
            res = _import_layout_gradients(self.layout, spec, res)
        return res


def _import_layout_gradients(layout: str, spec: Spec, res: Any) -> Any:
    if not isinstance(res, Mapping):
        return res
    res = dict(res)
    nested = {k: res.pop(k) for k in list(res) if k not in ("output", "hidden", "input", "hx")}
    try:
        res.update(import_gradients(layout, spec, nested))
    except (TypeError, ValueError) as e:
        raise CandidateError(f"the candidate's weight gradients in the {layout} layout: {e}") from e
    return res



def candidate(obj: Callable, *, layout: str = "torch", dtype: Any = None, **_: Any) -> FunctionCandidate:
    """The registry's builder: ``obj`` called as the function protocol, its weights in ``layout``."""
    return FunctionCandidate(obj, layout, dtype)
