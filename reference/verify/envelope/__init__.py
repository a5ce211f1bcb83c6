"""Low-precision verdicts: the rounding envelope of a problem at a declared precision, and the judge.

    from reference.precision import Precision
    env = measure_envelope(problem, Precision("bfloat16"))
    verdict = judge(env, candidate_results)
    print(verdict)                      # MATCH at bfloat16: every error within the rounding envelope (...)
    plot_envelope(verdict, "errors.png")

NumPy only (matplotlib for the plot). See docs/low_precision.md.
"""

from .envelope import DRAWS, FACTORS, QUANTILE, WINDOW, Envelope, TensorEnvelope, measure_envelope, window_steps
from .judge import EnvelopeVerdict, TensorVerdict, judge
from .plot import plot_envelope
from .runs import model_run, named_tensors, redraw, rounded_problem, truth_run
from .statistics import STATISTICS, error_statistics

__all__ = [
    "DRAWS",
    "FACTORS",
    "QUANTILE",
    "STATISTICS",
    "WINDOW",
    "Envelope",
    "EnvelopeVerdict",
    "TensorEnvelope",
    "TensorVerdict",
    "error_statistics",
    "judge",
    "measure_envelope",
    "model_run",
    "named_tensors",
    "plot_envelope",
    "redraw",
    "rounded_problem",
    "truth_run",
    "window_steps",
]
