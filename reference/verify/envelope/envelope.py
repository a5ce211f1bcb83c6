"""The rounding envelope: how far from the truth a correct kernel at a precision may land, per tensor and step.

For a problem and a declared :class:`~reference.precision.Precision`, every rounding
model that brackets a correct kernel (``reference.precision.rounding_models``, plus
"rounded once": the truth rounded to storage, the least error a kernel returning
storage values can have) runs on ``draws`` draws of the problem: the problem itself,
then redraws of its inputs and cotangents (``runs.redraw``). Each model's error
against the truth is measured per tensor (per time step where it has a time axis)
by three statistics (``statistics``). The envelope of a statistic is

    limit = FACTORS[format] * max over models of the QUANTILE of the model's errors over the draws
                              (and over the steps within WINDOW of the step)

and a candidate's error is judged as a multiple of it (``judge``). The same limits
are a per-tensor, per-step tolerance (``Envelope.tolerance``) for localisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reference.precision import Precision, round_to, rounding_models

from ..candidates import Problem
from .runs import TIME_MAJOR, model_run, redraw, rounded_problem, truth_run
from .statistics import error_statistics

DRAWS = 16  # the problem and 15 redraws
QUANTILE = 1.0  # the largest error of the draws (and of the steps in the window)
WINDOW = 0.02  # steps pooled either side of a step: 2% of T, at least 1 (errors grow smoothly with t)
# The factor per format (Precision.name): 1.5 times the largest multiple of the models' errors (factor 1) that a
# correct kernel reached, rounded up to a half. Measured by the power study's correct draws (parity_tests/power:
# LSTM I=32 H=64 B=8, the hand-written mixed-precision kernel and torch.nn.LSTM, 100 draws each at T = 10 and 100,
# 20 at T = 1000, 1000 at bfloat16 T = 100; docs/low_precision.md, "Correct kernels: false MISMATCH"):
#   bfloat16  1.95 (hand-written, T = 100; torch.nn.LSTM 0.81)  -> 3.0
#   float16   1.71 (hand-written, T = 100; torch.nn.LSTM 1.34)  -> 3.0
#   tf32      0.60 (hand-written on the CPU; no cuDNN measured)  -> 3.0, as the formats whose products it shares
#   float32   4.02 (both, T = 10: op order and transcendentals differ from the core's, which round more finely)
#             -> 6.5
#   float64   3.06 (hand-written, T = 10)                        -> 5.0
FACTORS = {"bfloat16": 3.0, "float16": 3.0, "tf32": 3.0, "float32": 6.5, "float64": 5.0}
ROUNDED_ONCE = "rounded once"


@dataclass(frozen=True)
class TensorEnvelope:
    """One tensor's envelope, and the model errors it was made from.

    Attributes:
        limits: (3, S) limits of max, rms and scale: per step (S = T) where the tensor has a
            time axis, else over the whole tensor (S = 1).
        model_errors: (M, N, 3, S) every model's statistics on every draw.
    """

    name: str
    time_axis: bool
    limits: np.ndarray
    model_errors: np.ndarray


@dataclass(frozen=True)
class Envelope:
    """The envelope of every tensor of one problem at one precision (see the module docstring)."""

    precision: Precision
    models: tuple[str, ...]
    draws: int
    quantile: float
    factor: float
    window: int
    tensors: dict[str, TensorEnvelope]
    problem: Problem = field(repr=False)  # rounded to the storage format
    truth: dict[str, np.ndarray] = field(repr=False)  # the problem's truth (draw 0)

    def tolerance(self, name: str) -> np.ndarray:
        """The largest absolute error allowed for tensor ``name``: (T,) per step where it has a time
        axis, else (1,) (a per-tensor, per-step atol for localisation)."""
        return self.tensors[name].limits[0]

    def __str__(self) -> str:
        return (f"rounding envelope at {self.precision.name} ({self.precision}): {self.factor:g} x the "
                f"{'largest' if self.quantile == 1 else f'{self.quantile:g} quantile'} of {len(self.models)} models "
                f"({', '.join(self.models)}) over {self.draws} draws, steps pooled +-{self.window}")


def window_steps(T: int, fraction: float = WINDOW) -> int:
    """Steps pooled either side of a step."""
    return max(1, int(fraction * T))


def _limits(errors: np.ndarray, quantile: float, factor: float, window: int) -> np.ndarray:
    """factor * max over models of the quantile over draws and the steps within ``window``:
    (M, N, 3, S) -> (3, S). The ends repeat their edge step, so every step pools as many values."""
    if errors.shape[3] > 1:
        padded = np.pad(errors, [(0, 0), (0, 0), (0, 0), (window, window)], mode="edge")  # (M, N, 3, S + 2w)
        views = np.lib.stride_tricks.sliding_window_view(padded, 2 * window + 1, axis=3)  # (M, N, 3, S, 2w + 1)
        M, N, _, S, W = views.shape
        errors = np.moveaxis(views, 4, 2).reshape(M, N * W, 3, S)  # (M, N (2w + 1), 3, S)
    return factor * np.quantile(errors, quantile, axis=1, method="higher").max(axis=0)


def measure_envelope(problem: Problem, precision: Precision, *, draws: int = DRAWS, seed: int = 0,
                     quantile: float = QUANTILE, factor: float | None = None, window: int | None = None) -> Envelope:
    """The envelope of every tensor of ``problem`` (forward, and backward where it has cotangents) at ``precision``.

    Args:
        problem: weights, inputs, states, lengths, dropout masks and cotangents (rounded to
            the storage format here, as a kernel reads them).
        precision: what the kernel declares.
        draws: the problem and draws - 1 redraws of its inputs and cotangents (>= 2).
        seed: seeds the redraws.
        quantile, factor, window: the envelope's rule (module docstring); factor None: ``FACTORS[precision.name]``;
            window None: ``window_steps(T)``.
    Raises:
        ValueError: a bad argument, or a model whose error is not finite (the problem overflows the format).
    """
    if not isinstance(precision, Precision):
        raise TypeError(f"precision: expected a reference.precision.Precision, got {type(precision).__name__}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise ValueError(f"draws: expected an int >= 2 (the problem and its redraws), got {draws!r}")
    factor = FACTORS[precision.name] if factor is None else factor
    if not 0 < quantile <= 1 or not factor >= 1:
        raise ValueError(f"quantile, factor: expected 0 < quantile <= 1 and factor >= 1, got {quantile}, {factor}")
    pb = rounded_problem(problem, precision)
    T = pb.x.shape[0]
    window = window_steps(T) if window is None else window
    models = rounding_models(precision)
    names = (*(m.name for m in models), ROUNDED_ONCE)
    rng = np.random.default_rng(seed)
    errors: dict[str, list] = {}
    truth0: dict[str, np.ndarray] = {}
    for d in range(draws):
        drawn = pb if d == 0 else redraw(pb, rng)
        truth = truth_run(drawn, precision)
        truth0 = truth0 or truth
        results = [model_run(drawn, m) for m in models]
        results.append({k: round_to(v, precision.storage) for k, v in truth.items()})
        for k, v in truth.items():
            errors.setdefault(k, []).append(np.stack([error_statistics(r[k], v, k in TIME_MAJOR) for r in results]))
    tensors = {}
    for k, per_draw in errors.items():
        e = np.stack(per_draw, axis=1)  # (M, N, 3, S)
        bad = [names[m] for m in range(len(names)) if not np.isfinite(e[m]).all()]
        if bad:
            raise ValueError(f"problem: the rounding models {bad} give non-finite {k} at {precision.name} (the problem's "
                             f"values overflow the format); scale the inputs or cotangents down")
        tensors[k] = TensorEnvelope(k, k in TIME_MAJOR, _limits(e, quantile, factor, window), e)
    return Envelope(precision, names, draws, quantile, factor, window, tensors, pb, truth0)
