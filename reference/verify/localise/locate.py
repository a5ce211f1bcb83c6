"""localise(): the first divergence of a failed comparison, forward when an output differs, else backward."""

from __future__ import annotations

import numpy as np

from ..candidates import CandidateError, Problem
from ..report import CompareReport
from ..session import Session
from .backward import gradient
from .common import Stage
from .forward import forward


def localise(report: CompareReport, session: Session, pb: Problem, ftol, gtol) -> None:
    """Fill ``report.forward`` or ``report.gradient`` (and ``step_errors``); ``report.stopped`` on failure."""
    stage = Stage()
    curves: dict[str, np.ndarray] = {}
    try:
        if any(not t.passed for t in report.tensors if t.kind == "forward"):
            report.forward = forward(session, pb, ftol, stage, curves)
        else:
            report.gradient = gradient(session, pb, gtol, stage, curves)
    except CandidateError as e:
        report.stopped = f"while {stage.text}: {e}"
    except Exception as e:  # noqa: BLE001 -- the mismatch stands; say why its place could not be found
        report.stopped = f"while {stage.text}: {type(e).__name__}: {e}"
    report.step_errors.update(curves)
