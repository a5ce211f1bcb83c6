"""compare() at low precision: a candidate storing bfloat16 or float16, or float32 with TF32 products,
judged against the rounding envelope instead of a fixed tolerance.

    report = compare(torch.nn.LSTM(8, 16).bfloat16())          # storage bfloat16: judged here
    report = compare(lstm_on_cuda, compute="tf32")             # float32 whose products read TF32
    print(report)      # MATCH at bfloat16: every error within the rounding envelope (largest 0.41x, ...)
    report.plot("errors.png")                                  # |error| per step against the envelope band

The problem is compare's own (weights, inputs, states, lengths, masks, cotangents), rounded to the
storage format, as the kernel reads it. The truth is the float64 reference on those rounded values;
the envelope is what the rounding models a correct kernel at the declared precision may follow
(:mod:`reference.precision.models`) err on that problem and on its redraws
(:func:`reference.verify.envelope.measure_envelope`). The candidate's error, per tensor and per
step, is a multiple of the envelope: above 1 on any tensor or step, no rounding model reaches it
and it is a bug (the verdict names the tensor and the first step that leaves the envelope).

What the candidate declares. A candidate storing bfloat16 or float16 that declares nothing is judged
at the widest precision its storage allows (``Precision(s, s, s)``: every result, and every partial
sum of a product, may be rounded to storage; torch's native CPU kernels do this, its oneDNN kernels
round less). A kernel that keeps its intermediates and sums in float32 (cuDNN, oneDNN) may declare
``compute="float32"``: its envelope is tighter, so smaller bugs show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reference.precision import Precision

from .candidates import Problem
from .deadline import phase
from .envelope import EnvelopeVerdict, judge, measure_envelope, plot_envelope, rounded_problem
from .localise import localise as find
from .localise.bounds import Rounding
from .precision import JUDGED
from .report import Divergence, place_lines
from .session import Session
from .spec import Spec

FORWARD = ("output", "h_n", "c_n")  # the tensors of the forward pass; the others are gradients


def declared_precision(storage: str | None, dtype: np.dtype, compute: str | None,
                       accumulate: str | None) -> Precision | None:
    """The precision a candidate is judged at against the envelope, or None for the tolerance table.

    Args:
        storage: the candidate's narrow storage format ("bfloat16", "float16"), or None (``dtype``'s own).
        dtype: the dtype its arrays are exchanged in (float32 or float64).
        compute, accumulate: compare's arguments (None: the widest the storage allows; see the module docstring).
    Raises:
        ValueError: a compute or accumulation format the storage does not allow, naming the argument.
    """
    for name, value in (("compute", compute), ("accumulate", accumulate)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name}: expected a format name (float32, bfloat16, float16, tf32), got "
                            f"{type(value).__name__}")
    if storage is None:
        if compute in (None, dtype.name) and accumulate in (None, dtype.name):
            return None  # float32 or float64 as they are: the tolerance table
        return Precision(dtype.name, compute or "", accumulate or "")
    if compute is None:  # the widest declaration: every result rounded to storage, and every partial sum
        compute, accumulate = storage, accumulate or storage
    return Precision(storage, compute, accumulate or "")


@dataclass
class LowPrecisionReport:
    """A low-precision verdict about the candidate compare ran, with the problem it ran."""

    spec: Spec
    candidate: str
    device: str
    T: int
    B: int
    lengths: list | None
    verdict: EnvelopeVerdict
    weights: str = ""
    notes: str = ""
    forward: Divergence | None = None  # where localisation placed a failure, each sub-problem judged by its own
    gradient: Divergence | None = None  # rounding envelope (reference.verify.localise.bounds.Rounding)
    stopped: str = ""  # why localisation stopped, when it could not finish
    step_errors: dict[str, np.ndarray] = field(default_factory=dict)  # localisation's per-step errors

    @property
    def precision(self) -> Precision:
        return self.verdict.envelope.precision

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    def __bool__(self) -> bool:
        return self.passed

    @property
    def forward_failed(self) -> bool:
        """An output or a final state leaves the envelope (localisation then looks forward, else backward)."""
        return any(not t.passed for t in self.verdict.tensors if t.name in FORWARD)

    @property
    def divergence(self) -> Divergence | None:
        """The first divergence found (forward before gradient)."""
        return self.forward or self.gradient

    def __str__(self) -> str:
        env = self.verdict.envelope
        lengths = f", lengths={self.lengths}" if self.lengths is not None else ""
        header = (f"{self.candidate} vs reference at {self.precision.name}, {self.device}: {self.spec}, "
                  f"T={self.T}, B={self.B}{lengths}")
        truth = (f"  truth: the float64 reference on the same values rounded to {self.precision.storage}; envelope: "
                 f"the largest error of {len(env.models)} rounding models ({', '.join(env.models)}) over "
                 f"{env.draws} draws, x {env.factor:g}")
        lines = [header, f"  declared: {self.precision}", truth]
        if self.weights:
            lines.append(f"  weights: {self.weights}")
        if self.notes:
            lines.append(f"  {self.notes}")
        width = max((len(t.name) for t in self.verdict.tensors), default=0)
        for t in self.verdict.tensors:
            m, stat, step = t.largest
            where = t.note or (f"{stat}" + ("" if step is None else f" at t = {step}"))
            lines.append(f"  {t.name:<{width}}  {m:9.3g}x of the envelope  ({where})  {'ok' if t.passed else 'FAIL'}")
        lines.append(str(self.verdict))
        unplaced = "" if self.passed or not self.verdict.tensors else (
            "not localised: every sub-problem is within its own rounding envelope (the verdict's place above is "
            "where the error leaves the envelope of the whole run)")
        lines.extend(place_lines(self.forward, self.gradient, self.stopped, unplaced))
        return "\n".join(lines)

    def plot(self, path: str) -> str:
        """|error| per step for each tensor, against the envelope band, on a log scale (needs matplotlib)."""
        return plot_envelope(self.verdict, path, title=f"{self.candidate} at {self.precision.name}: {self.spec}")


def judge_low_precision(session: Session, pb: Problem, precision: Precision, weights: str = "",
                        notes: str = "", localise: bool = True) -> LowPrecisionReport:
    """Run the session's candidate on ``pb`` rounded to ``precision``'s storage, and judge it against the
    envelope of that problem; on a MISMATCH (``localise``), find where it first goes wrong, each sub-problem
    judged against its own envelope."""
    if precision.storage not in (*JUDGED, "bfloat16", "float16"):  # Precision has checked the name already
        raise ValueError(f"precision: storage {precision.storage} is not judged")
    rounded = rounded_problem(pb, precision)  # the values the kernel reads, in float64
    envelope = measure_envelope(rounded, precision)
    result, _ = session.candidate(rounded)
    cand = session.cand
    report = LowPrecisionReport(pb.spec, cand.name, cand.device, pb.x.shape[0], pb.x.shape[1],
                                None if pb.lengths is None else list(map(int, pb.lengths)), judge(envelope, result),
                                weights, notes)
    if localise and not report.passed and report.verdict.tensors and not any(t.note for t in report.verdict.tensors):
        session.original = (rounded, result)
        with phase("localisation (starting)"):
            find(report, session, rounded, Rounding(precision))
    return report
