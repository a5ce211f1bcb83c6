"""One comparison for the whole suite, and the glue that runs torch next to the reference."""

from __future__ import annotations

from typing import Any

import numpy as np

from reference.tolerances import compare_arrays


def to_numpy(value: Any) -> np.ndarray:
    """An ndarray from an ndarray or a torch tensor on any device."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def in_dtype(dtype: Any, *values: Any) -> Any:
    """NumPy arrays (pairs of them, or None) in ``dtype``: a module takes its input and hx in its own
    dtype only, as torch's does. One value gives one result, several a tuple."""
    def convert(v: Any) -> Any:
        if v is None:
            return None
        return tuple(convert(p) for p in v) if isinstance(v, tuple) else np.asarray(v).astype(dtype)

    out = tuple(convert(v) for v in values)
    return out[0] if len(out) == 1 else out


def assert_close(name: str, actual: Any, desired: Any, rtol: float, atol: float, *, config: Any = None,
                 repro: str = "", check_dtype: bool = True) -> float:
    """Check shape, then dtype, then values: max|a - d| <= atol + rtol * max|d|.

    ``desired`` is the trusted side (torch, or the float64 oracle). The message
    names the tensor, the configuration and a one-line repro. Returns the
    norm-wise relative error, for the tests that record it.
    """
    a, d = to_numpy(actual), to_numpy(desired)
    where = f"\n  config: {config}" if config is not None else ""
    where += f"\n  repro:  {repro}" if repro else ""
    if a.shape != d.shape:
        raise AssertionError(f"{name}: shape {a.shape} != expected {d.shape}{where}")
    if check_dtype and a.dtype != d.dtype:
        raise AssertionError(f"{name}: dtype {a.dtype} != expected {d.dtype}{where}")
    if a.size == 0:
        return 0.0
    ok, max_err, rel = compare_arrays(a, d, rtol, atol)  # the one rule, shared with the verifier and benchmarks
    if not ok:
        a64, d64 = a.astype(np.float64), d.astype(np.float64)
        if not np.array_equal(np.isnan(a64), np.isnan(d64)) or not np.array_equal(np.isinf(a64), np.isinf(d64)):
            raise AssertionError(f"{name}: non-finite values differ from expected{where}")
        finite = np.isfinite(d64)
        scale = np.abs(d64[finite]).max(initial=0.0)
        worst = np.unravel_index(int(np.argmax(np.where(finite, np.abs(a64 - d64), -1))), a.shape)
        raise AssertionError(
            f"{name}: max abs error {max_err:.3e} > atol {atol:.1e} + rtol {rtol:.1e} * max|expected| {scale:.3e} "
            f"(relative {rel:.3e}); worst at {tuple(int(i) for i in worst)}: got {a64[worst]!r}, expected "
            f"{d64[worst]!r}{where}")
    return rel
