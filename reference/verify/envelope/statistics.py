"""What an error is measured by: three statistics per tensor and per time step.

For the error e = actual - truth over one step of a tensor with a time axis (``output``,
``grad input``), or over the whole of a tensor without one (``h_n``, weight gradients),
with v the truth there:

    max     max |e|                      one element far off
    rms     sqrt(mean e^2)               many elements a little off (rounding more often than claimed)
    scale   |<e, v>| / <v, v>            e leaning along v: a systematic drift or a scaled result

Rounding errors are small by all three; they are also nearly uncorrelated with v, so
``scale`` is far below ``max / |v|``: averaged over the B * P elements of a step (or a
whole weight gradient), it sees a bug that moves every element a little the same way
(a shifted bias, a scaled gradient), long before that bug's largest element stands out.

A tensor with a time axis is judged per step only. Over all its steps at once, ``scale``
averages rounding noise away until what is left is each kernel's own systematic
rounding bias: torch's bfloat16 LSTM outputs lean -2e-4 (native kernels) and +1.2e-4
(oneDNN) along the truth at T = 100, the reference rounding every op +6e-5; all are
correct, and no rounding model can enumerate every kernel's order of operations.
"""

from __future__ import annotations

import numpy as np

STATISTICS = ("max", "rms", "scale")


def error_statistics(actual: np.ndarray, truth: np.ndarray, time_axis: bool) -> np.ndarray:
    """(3, S): max, rms and scale of actual - truth per step along axis 0 (S = T) where the tensor
    has a time axis, else over the whole tensor (S = 1).

    Entries where the truth is not finite must match it exactly; an entry that does not
    (or a non-finite actual value where the truth is finite) makes its step's statistics inf."""
    a, v = np.asarray(actual), np.asarray(truth)
    if a.shape != v.shape:
        raise ValueError(f"actual: expected the truth's shape {v.shape}, got {a.shape}")
    wide = np.result_type(a.dtype, v.dtype, np.float64)  # longdouble stays longdouble
    rows = a.shape[0] if time_axis and a.ndim else 1
    return _statistics(a.astype(wide).reshape(rows, -1), v.astype(wide).reshape(rows, -1))


def _statistics(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(3, S) max, rms, scale of a - v over the rows of (S, n) arrays."""
    finite = np.isfinite(v)  # (S, n)
    agree = np.where(finite, np.isfinite(a), (a == v) | (np.isnan(a) & np.isnan(v)))  # (S, n)
    e = np.where(finite & agree, a - v, 0)  # (S, n)
    v = np.where(finite, v, 0)  # (S, n)
    with np.errstate(over="ignore", invalid="ignore"):
        largest = np.abs(e).max(axis=1, initial=0)  # (S,)
        rms = np.sqrt((e * e).mean(axis=1)) if e.shape[1] else np.zeros(e.shape[0], e.dtype)  # (S,)
        vv = (v * v).sum(axis=1)  # (S,)
        ev = np.abs((e * v).sum(axis=1))  # (S,)
        scale = np.divide(ev, vv, out=np.zeros_like(ev), where=vv > 0)  # (S,)
    out = np.stack([largest, rms, scale]).astype(np.float64)  # (3, S)
    out[:, ~agree.all(axis=1)] = np.inf
    return out
