"""What localisation calls agreement on a sub-problem: a bound on |candidate - reference| per element.

Every sub-problem's result is judged tensor by tensor against a bound, sliced as the tensor is
(one direction, the valid rows, one gate's block):

- :class:`Table` (float32 and float64): the tolerance table's one rule, ``atol + rtol * max|reference|``
  over the slice judged, with the forward entry for outputs and states and the gradient entry for
  gradients, on every sub-problem alike;
- :class:`Rounding` (bfloat16, float16, TF32): the sub-problem's own rounding envelope. The rounding
  models run on the sub-problem itself (a layer alone, one step from the reference's state, a pinned
  cell) and on its redraws (:func:`reference.verify.envelope.measure_envelope`), so the bound of one
  step is what rounding can do in one step, not the error the whole sequence has gathered by then.
  Its bound is the envelope's ``max`` statistic: per step where the tensor has a time axis, else
  over the whole tensor. ``rms`` and ``scale`` judge whole tensors only (the verdict): over a slice,
  one row or one gate's block, they are not the statistics the envelope measured.

    rule = Table(ftol, gtol)                       # or Rounding(precision)
    bounds = rule.bounds(session, probe)           # the bounds of one sub-problem's result
    ok, err = judge(c["hidden"][0], r["hidden"][0], bounds("hidden", 0), d, rows)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reference.precision import Precision
from reference.tolerances import compare_arrays

from ..candidates import Problem
from ..envelope import measure_envelope
from ..session import Session


class Rule:
    """atol + rtol * max|reference| over the slice judged (the tolerance table's one rule)."""

    def __init__(self, rtol: float, atol: float):
        self.rtol, self.atol = rtol, atol

    def __getitem__(self, key: Any) -> Rule:
        return self  # the same rule on every slice

    def allows(self, actual: np.ndarray, desired: np.ndarray) -> tuple[bool, float]:
        """(ok, max abs error) of two finite arrays of one shape."""
        ok, max_abs, _ = compare_arrays(actual, desired, self.rtol, self.atol)
        return ok, max_abs

    def exceeded(self, actual: np.ndarray, desired: np.ndarray) -> np.ndarray:
        """Elementwise: |actual - desired| above the bound (NaN counts as above)."""
        return ~(np.abs(actual - desired) <= self.atol + self.rtol * np.abs(desired).max(initial=0.0))


class Limit:
    """A bound per element: an array of the tensor's shape (the rounding envelope, broadcast over a step)."""

    def __init__(self, limit: np.ndarray):
        self.limit = limit

    def __getitem__(self, key: Any) -> Limit:
        return Limit(self.limit[key])

    def allows(self, actual: np.ndarray, desired: np.ndarray) -> tuple[bool, float]:
        err = np.abs(actual - desired)  # same shape as the limit
        return bool((err <= self.limit).all()), float(err.max(initial=0.0))

    def exceeded(self, actual: np.ndarray, desired: np.ndarray) -> np.ndarray:
        return ~(np.abs(actual - desired) <= self.limit)


Bound = Rule | Limit


class Bounds:
    """The bounds of one sub-problem's result, looked up as the result is: ``bounds("output")``,
    ``bounds("hidden", k)``, ``bounds("input")``, ``bounds("hx", k)``, ``bounds(parameter name)``."""

    def __init__(self, lookup):
        self._lookup = lookup

    def __call__(self, key: str, k: int | None = None) -> Bound:
        return self._lookup(key, k)


class Table:
    """The tolerance table's rule: ``ftol`` for outputs and states, ``gtol`` for gradients, on every sub-problem."""

    def __init__(self, ftol: tuple[float, float], gtol: tuple[float, float]):
        self.forward, self.gradient = Rule(*ftol), Rule(*gtol)
        self._bounds = Bounds(lambda key, k=None: self.forward if key in ("output", "hidden") else self.gradient)

    def bounds(self, S: Session, pb: Problem) -> Bounds:
        return self._bounds

    def __str__(self) -> str:
        return (f"the tolerance table (forward rtol {self.forward.rtol:.0e} atol {self.forward.atol:.0e}, "
                f"gradient rtol {self.gradient.rtol:.0e} atol {self.gradient.atol:.0e})")


ENVELOPE_NAMES = {"output": "output", "input": "grad input"}  # the result's keys -> the envelope's tensor names
STATE_NAMES = {"hidden": ("h_n", "c_n"), "hx": ("grad h_0", "grad c_0")}


class Rounding:
    """The rounding envelope of each sub-problem at ``precision`` (the module docstring)."""

    def __init__(self, precision: Precision):
        self.precision = precision

    def bounds(self, S: Session, pb: Problem) -> Bounds:
        envelope = measure_envelope(S.rounded(pb), self.precision)

        def lookup(key: str, k: int | None = None) -> Limit:
            name = STATE_NAMES[key][k or 0] if key in STATE_NAMES else ENVELOPE_NAMES.get(key, f"grad {key}")
            tensor, shape = envelope.tensors[name], np.shape(envelope.truth[name])
            limit = envelope.tolerance(name)  # (T,) per step, or (1,) over the whole tensor
            per_step = limit.reshape((-1,) + (1,) * (len(shape) - 1)) if tensor.time_axis else limit.reshape(())
            return Limit(np.broadcast_to(per_step, shape))

        return Bounds(lookup)

    def __str__(self) -> str:
        return f"each sub-problem's own rounding envelope at {self.precision.name} (max per step)"
