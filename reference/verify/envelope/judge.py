"""The verdict of a low-precision candidate: each tensor's and each step's error as a multiple of the envelope.

    verdict = judge(envelope, candidate_results)      # against the envelope's own problem
    print(verdict)   # MATCH at bfloat16: every error within the rounding envelope (largest 0.61x, grad input at t = 93, rms)
                     # MISMATCH at bfloat16: output leaves the envelope at t = 17 (40x, scale); ...

A multiple above 1 is an error no rounding model reaches even after the envelope's
factor: not rounding, a bug. A tensor the envelope has and the candidate did not
return is named as not compared; a verdict with nothing compared is never a MATCH.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .envelope import Envelope
from .runs import named_tensors
from .statistics import STATISTICS, error_statistics


@dataclass(frozen=True)
class TensorVerdict:
    """One tensor: the candidate's statistics (3, S) and their multiples of the envelope (3, S),
    per step (S = T) where the tensor has a time axis, else over the whole tensor (S = 1)."""

    name: str
    time_axis: bool
    multiples: np.ndarray
    errors: np.ndarray
    note: str = ""  # why it failed without numbers (a shape)

    @property
    def largest(self) -> tuple[float, str, int | None]:
        """(multiple, statistic, step; None without a time axis) of its largest multiple."""
        s, t = np.unravel_index(int(np.argmax(self.multiples)), self.multiples.shape)
        return float(self.multiples[s, t]), STATISTICS[s], int(t) if self.time_axis else None

    @property
    def passed(self) -> bool:
        return not self.note and self.largest[0] <= 1

    def first_exit(self) -> tuple[float, str, int | None] | None:
        """(multiple, statistic, step) at the first step where the error leaves the envelope (its
        largest statistic there); None inside it."""
        out = np.flatnonzero((self.multiples > 1).any(axis=0))
        if not out.size:
            return None
        t = int(out[0])
        s = int(np.argmax(self.multiples[:, t]))
        return float(self.multiples[s, t]), STATISTICS[s], t if self.time_axis else None


@dataclass(frozen=True)
class EnvelopeVerdict:
    envelope: Envelope = field(repr=False)
    tensors: list[TensorVerdict]
    unchecked: list[str]  # tensors of the envelope the candidate did not return

    @property
    def passed(self) -> bool:
        return bool(self.tensors) and all(t.passed for t in self.tensors)

    @property
    def largest(self) -> tuple[float, str, str, int | None]:
        """(multiple, tensor, statistic, step) of the largest multiple over every tensor."""
        return max(((*t.largest[:1], t.name, *t.largest[1:]) for t in self.tensors), key=lambda x: x[0])

    def multiples(self) -> dict[str, float]:
        """Each tensor's largest multiple."""
        return {t.name: t.largest[0] for t in self.tensors}

    def __str__(self) -> str:
        p = self.envelope.precision.name
        if not self.tensors:
            return f"NOT COMPARED at {p}: the candidate returned none of {', '.join(self.unchecked)}"
        unchecked = f"; not compared: {', '.join(self.unchecked)}" if self.unchecked else ""
        if self.passed:
            m, name, stat, t = self.largest
            return (f"MATCH at {p}: every error within the rounding envelope (largest {m:.2g}x, {name}{_at(t)}, "
                    f"{stat}){unchecked}")
        out = []
        for tv in self.tensors:
            if tv.note:
                out.append(f"{tv.name}: {tv.note}")
                continue
            exit_ = tv.first_exit()
            if exit_ is not None:
                m, stat, t = exit_
                out.append(f"{tv.name} leaves the envelope{_at(t)} ({_x(m)}, {stat})")
        return f"MISMATCH at {p}: " + "; ".join(out) + unchecked


def _at(t: int | None) -> str:
    return "" if t is None else f" at t = {t}"


def _x(m: float) -> str:
    return "inf (not finite)" if not np.isfinite(m) else f"{m:.3g}x"


def _multiples(error: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """error / limit, with 0 / 0 = 0 and e / 0 = inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        m = error / limit
    return np.where(error == 0, 0.0, np.where(limit == 0, np.inf, m))


def judge(envelope: Envelope, candidate: Mapping[str, Any], truth: Mapping[str, np.ndarray] | None = None
          ) -> EnvelopeVerdict:
    """The candidate's error against the truth, per tensor and step, as multiples of ``envelope``.

    Args:
        envelope: from ``measure_envelope`` at the candidate's declared precision.
        candidate: its results, as named tensors (``output``, ``h_n``, ``grad input``, ...) or in the
            verifier's result form (``output``, ``hidden``, ``input``, ``hx``, parameter names).
        truth: the truth of the problem the candidate ran (named tensors); None: the envelope's own problem.
    """
    if "hidden" in candidate:
        candidate = named_tensors(dict(candidate), envelope.problem.spec.lstm)
    truth = envelope.truth if truth is None else truth
    tensors, unchecked = [], []
    for name, env in envelope.tensors.items():
        if candidate.get(name) is None:
            unchecked.append(name)
            continue
        actual = np.asarray(candidate[name])
        if actual.shape != np.shape(truth[name]):
            inf = np.full((3, 1), np.inf)
            tensors.append(TensorVerdict(name, False, inf, inf, f"shape {actual.shape}, expected "
                                                                f"{np.shape(truth[name])}"))
            continue
        errors = error_statistics(actual, truth[name], env.time_axis)
        tensors.append(TensorVerdict(name, env.time_axis, _multiples(errors, env.limits), errors))
    return EnvelopeVerdict(envelope, tensors, unchecked)
