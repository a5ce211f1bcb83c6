"""localise(): the first divergence of a failed comparison, forward when an output differs, else backward."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..candidates import CandidateError, Problem
from ..report import Divergence
from ..session import Session
from .backward import gradient
from .bounds import Rounding, Table
from .common import Stage
from .forward import forward


class Localised(Protocol):
    """A report localisation fills: a CompareReport, or a LowPrecisionReport."""

    @property
    def forward_failed(self) -> bool: ...

    forward: Divergence | None
    gradient: Divergence | None
    stopped: str
    step_errors: dict[str, np.ndarray]


def localise(report: Localised, session: Session, pb: Problem, rule: Table | Rounding) -> None:
    """Fill ``report.forward`` or ``report.gradient`` (and ``step_errors``); ``report.stopped`` on failure.
    ``rule``: what agreement is on each sub-problem (:mod:`.bounds`)."""
    stage = Stage()
    curves: dict[str, np.ndarray] = {}
    try:
        if report.forward_failed:
            report.forward = forward(session, pb, rule, stage, curves)
        else:
            report.gradient = gradient(session, pb, rule, stage, curves)
    except CandidateError as e:
        report.stopped = f"while {stage.text}: {e}"
    except Exception as e:  # noqa: BLE001 -- the mismatch stands; say why its place could not be found
        report.stopped = f"while {stage.text}: {type(e).__name__}: {e}"
    report.step_errors.update(curves)
