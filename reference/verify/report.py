"""What a comparison found: per-tensor errors, the verdict, and where the candidate first goes wrong."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .spec import Spec, direction_name


@dataclass
class TensorResult:
    """One compared tensor."""

    name: str
    kind: str  # "forward" or "gradient"
    max_abs: float
    rel: float
    rtol: float
    atol: float
    passed: bool
    note: str = ""  # why it failed without numbers: shape, dtype, non-finite
    per_step: np.ndarray | None = None  # (T,) max abs error per time step, where the tensor has a time axis


@dataclass
class Divergence:
    """Where a candidate first goes wrong.

    kind: "weights" (the two sides hold different weights), "step" (the cell
    equations: one step from a correct state differs), "sequence" (every step
    is right, their chaining is not: order, lengths, state carry), "dropout" /
    "stacking" (layers right alone, not stacked), "final state" (h_n/c_n
    assembly), "gradient step" (backward through one step, given the
    reference's incoming gradient), "gradient sequence" (each step's backward
    is right, the carry between steps is not), "gradient stacking".
    ``time`` is a time index t (not a processing index); ``gate`` a gate
    letter in torch's names (LSTM i f g o, GRU r z n) or the quantity: "c",
    "h", "bias_ih", "bias_hh", "W_hr", "dropout", "lengths", "input", "h_n",
    "c_n", or a parameter's name.
    """

    kind: str
    layer: int | None
    direction: int | None  # 0 forward, 1 reverse
    time: int | None
    gate: str
    batch: int | None = None
    error: float = float("nan")
    detail: str = ""

    def where(self) -> str:
        parts = []
        if self.layer is not None:
            parts.append(f"layer {self.layer}")
        if self.direction is not None:
            parts.append(f"{direction_name(self.direction)} direction")
        if self.time is not None:
            parts.append(f"time step {self.time}" + (f" (batch row {self.batch})" if self.batch is not None else ""))
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        return f"{self.kind}: {where + ', ' if where else ''}{self.gate}: {self.detail}"


@dataclass
class CompareReport:
    spec: Spec
    candidate: str
    dtype: str
    device: str
    T: int
    B: int
    lengths: list | None
    tensors: list[TensorResult]
    weights: str = ""  # where the weights came from
    cotangents: tuple[str, ...] = ()  # outputs that carried a random gradient
    unchecked: list[str] = field(default_factory=list)  # gradients the candidate does not provide
    dtype_problem: str = ""  # set when the candidate returned another dtype than asked
    dtype_note: str = ""  # set when the candidate is judged at a lower precision than its arrays' dtype, and why
    weight_diff: list[str] = field(default_factory=list)  # where the two sides' weights differ
    forward: Divergence | None = None
    gradient: Divergence | None = None
    stopped: str = ""  # why localisation stopped, when it could not finish
    step_errors: dict[str, np.ndarray] = field(default_factory=dict)  # label -> (T,) errors, for the picture

    @property
    def passed(self) -> bool:
        return not self.dtype_problem and not self.weight_diff and all(t.passed for t in self.tensors)

    def __bool__(self) -> bool:
        return self.passed

    def failures(self) -> list[TensorResult]:
        return [t for t in self.tensors if not t.passed]

    @property
    def divergence(self) -> Divergence | None:
        """The first divergence found (forward before gradient)."""
        return self.forward or self.gradient

    @property
    def forward_failed(self) -> bool:
        """An output or a final state fails (localisation then looks forward, else backward)."""
        return any(not t.passed for t in self.tensors if t.kind == "forward")

    def __str__(self) -> str:
        fwd = next((t for t in self.tensors if t.kind == "forward"), None)
        grd = next((t for t in self.tensors if t.kind == "gradient"), None)
        lines = [f"compare {self.candidate} against reference {self.spec} (float64)",
                 f"  T={self.T} B={self.B}" + (f" lengths={self.lengths}" if self.lengths is not None else "")
                 + f", candidate {self.dtype} on {self.device}" + (f" ({self.dtype_note})" if self.dtype_note else "")
                 + (f"; weights: {self.weights}" if self.weights else "")]
        if self.cotangents:
            lines.append(f"  random cotangents on: {', '.join(self.cotangents)}")
        if fwd:
            lines.append(f"  tolerance forward rtol {fwd.rtol:.0e} atol {fwd.atol:.0e}"
                         + (f", gradient rtol {grd.rtol:.0e} atol {grd.atol:.0e}" if grd else "")
                         + "   (max|a - d| <= atol + rtol * max|d|)")
        if self.dtype_problem:
            lines.append(f"  DTYPE MISMATCH: {self.dtype_problem}")
        width = max([len(t.name) for t in self.tensors] + [6]) + 2
        lines.append(f"  {'tensor':<{width}}{'max abs err':>12}{'rel err':>12}  status")
        for t in self.tensors:
            status = "ok" if t.passed else "FAIL"
            nums = f"{t.max_abs:>12.2e}{t.rel:>12.2e}" if not math.isnan(t.max_abs) else f"{'-':>12}{'-':>12}"
            lines.append(f"  {t.name:<{width}}{nums}  {status}" + (f"  ({t.note})" if t.note else ""))
        if self.unchecked:
            lines.append(f"  not checked (the candidate does not provide them): {', '.join(self.unchecked)}")
        if self.weight_diff:
            lines.append("  the candidate's weights differ from the reference's:")
            lines.extend(f"    {d}" for d in self.weight_diff)
        n_fail = len(self.failures())
        lines.append(f"RESULT: {'MATCH' if self.passed else 'MISMATCH'} "
                     f"({len(self.tensors) - n_fail}/{len(self.tensors)} tensors within tolerance)")
        lines.extend(place_lines(self.forward, self.gradient, self.stopped,
                                 "" if self.passed else "not localised (see the tensors above)"))
        return "\n".join(lines)


def place_lines(forward: Divergence | None, gradient: Divergence | None, stopped: str, unplaced: str) -> list[str]:
    """A report's lines on where localisation placed a failure, or why it stopped; ``unplaced`` (when given) where
    it found no place."""
    lines = [f"  first forward divergence  -> {forward}"] if forward else []
    if gradient:
        lines.append(f"  first gradient divergence -> {gradient}")
    if stopped:
        lines.append(f"  localisation stopped: {stopped}")
    elif unplaced and not forward and not gradient:
        lines.append(f"  {unplaced}")
    return lines


def plot_errors(report: CompareReport, path: str) -> str:
    """Error per time step per tensor (log scale) as a PNG at ``path`` (needs matplotlib); returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    floor = 1e-18
    for label, errs in report.step_errors.items():
        ax.semilogy(np.arange(len(errs)), np.maximum(errs, floor), marker="o", ms=3, label=label)
    fwd = next((t for t in report.tensors if t.kind == "forward"), None)
    if fwd is not None:
        ax.axhline(fwd.atol, color="grey", ls=":", lw=1, label="atol (forward)")
    for div, color in ((report.forward, "red"), (report.gradient, "purple")):
        if div is not None and div.time is not None:
            ax.axvline(div.time, color=color, ls="--", lw=1,
                       label=f"first divergence: l{div.layer} {'rev' if div.direction else 'fwd'} t={div.time} {div.gate}")
    ax.set_xlabel("time step t")
    ax.set_ylabel("max abs error")
    ax.set_title(f"{report.candidate} vs reference {report.spec}: {'MATCH' if report.passed else 'MISMATCH'}",
                 fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
