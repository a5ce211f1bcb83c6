"""Argument validation shared by every public entry point.

Each check raises ``TypeError`` (wrong kind of thing) or ``ValueError`` (right
kind, wrong value or shape) with a message that names the argument, what was
expected and what was given. Checks run before any state changes.
"""

from __future__ import annotations

import numbers
from typing import Any, cast

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    return f"{type(value).__name__} {value!r}"[:120]


def check_dtype(dtype: Any) -> np.dtype:
    """The module dtype: float32 or float64."""
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):
        resolved = np.dtype(object)  # not None: np.dtype("float64") == None is True
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"dtype: expected numpy.float32 or numpy.float64, got {dtype!r}")
    return resolved


def check_real(name: str, value: Any, positive: bool = False) -> float:
    """A finite real number (a Python or NumPy scalar, not a bool), optionally > 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {_describe(value)}")
    if not np.isfinite(cast(float, value)) or (positive and value <= 0):
        raise ValueError(f"{name}: expected a finite{' positive' if positive else ''} number, got {value}")
    return float(value)


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {_describe(value)}")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {_describe(value)}")
    return bool(value)


def check_probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a float in [0, 1], got {_describe(value)}")
    if not 0 <= cast(float, value) <= 1:
        raise ValueError(f"{name}: expected a float in [0, 1], got {value}")
    return float(value)


def check_nonlinearity(value: Any) -> str:
    if not isinstance(value, str) or value not in ("tanh", "relu"):  # torch: ValueError for any other value
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {value!r}")
    return value


def make_rng(seed: Any) -> np.random.Generator:
    """A NumPy Generator from None, an int, a SeedSequence or a Generator."""
    if isinstance(seed, (bool, float)):
        raise TypeError(f"seed: expected None, an int or a numpy Generator, got {_describe(seed)}")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as e:
        raise type(e)(f"seed: expected None, a non-negative int or a numpy Generator, got {_describe(seed)}") from None


def as_float_array(name: str, value: Any, dtype: np.dtype, copy: bool = True) -> np.ndarray:
    """A read-only copy of ``value`` in ``dtype`` (``copy=False``: ``value`` itself
    where it already is a row-major array of ``dtype``, never written).

    Rule: real floating input of any precision (float16, float32, float64) is
    cast to the module's dtype; integer, bool, complex and object input raise
    TypeError. The copy means later changes to the caller's array cannot reach a
    tape; what a tape never keeps (a cotangent) needs none.
    """
    try:
        arr = np.asarray(value)
    except ValueError:  # nested sequences of unequal lengths
        raise ValueError(f"{name}: expected a rectangular array, got a ragged {type(value).__name__}") from None
    except Exception:  # noqa: BLE001 -- objects NumPy cannot convert
        raise TypeError(f"{name}: expected an array-like of real floats, got {type(value).__name__}") from None
    if arr.dtype.kind != "f":
        raise TypeError(f"{name}: expected real floating values, got {_describe(arr)}")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, as torch's .to() does
        out = np.array(arr, dtype=dtype, copy=True if copy else None, order="C")
    if out is not arr:  # never change the flags of the caller's array
        out.flags.writeable = False
    return out


def check_shape(name: str, arr: np.ndarray, expected: tuple, hint: str = "") -> None:
    if arr.shape != tuple(expected):
        extra = f" ({hint})" if hint else ""
        raise ValueError(f"{name}: expected shape {tuple(expected)}{extra}, got {arr.shape}")


def check_ndim(name: str, arr: np.ndarray, allowed: tuple[int, ...], meaning: str) -> None:
    if arr.ndim not in allowed:
        raise ValueError(f"{name}: expected {meaning}, got a {arr.ndim}-D array of shape {arr.shape}")


def check_lengths(lengths: Any, T: int, B: int) -> np.ndarray:
    """Sequence lengths: B ints, each in [1, T]; returned as an int64 array."""
    try:
        arr = np.asarray(lengths)
    except Exception:  # noqa: BLE001 -- any failure to convert is the caller's TypeError
        raise TypeError(f"lengths: expected a sequence of ints, got {type(lengths).__name__}") from None
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):  # [] is float64
        raise TypeError(f"lengths: expected integers, got {_describe(arr)}")
    if arr.shape != (B,):
        raise ValueError(f"lengths: expected one length per batch element, shape ({B},), got shape {arr.shape}")
    if B and (arr.min() < 1 or arr.max() > T):
        raise ValueError(f"lengths: expected every length in [1, {T}] (T = {T}), got {arr.tolist()}")
    return arr.astype(np.int64)


def check_tape(tape: Any, owner_token: object, tape_type: type[Any]) -> None:
    if not isinstance(tape, tape_type):
        raise TypeError(f"tape: expected the {tape_type.__name__} returned by this module's forward, got {type(tape).__name__}")
    if tape.owner is not owner_token:
        raise ValueError("tape: this tape was recorded by another module; pass the tape from this module's forward")
