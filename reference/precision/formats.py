"""Floating-point formats narrower than their carrier, and rounding to them in plain NumPy.

A value "in bfloat16" is held here in a wider NumPy *carrier* dtype that holds
every value of the format exactly (and every product of two of them):

    format     exponent bits   mantissa bits (explicit)   carrier
    bfloat16   8               7                          float32
    float16    5               10                         float32
    tf32       8               10                         float32     (NVIDIA's TensorFloat-32: float32's range)
    float32    8               23                         float64
    float64    11              52                         longdouble  (80-bit extended on x86-64 Linux)

Rounding is to nearest, ties to even, as the hardware's conversions do. bfloat16
and TF32 share float32's exponent, so rounding drops low mantissa bits of the
float32 pattern u with one integer addition (carries into the exponent give the
next binade, or infinity past the largest finite value):

    u' = (u + 2^(k-1) - 1 + ((u >> k) & 1)) & ~(2^k - 1)      k = 23 - mantissa bits

float16 has its own exponent range (subnormals below 2^-14, overflow above 65504):
NumPy's own float32 -> float16 conversion rounds it. A float64 value goes to
bfloat16 or float16 through float32, as torch's conversions do (``Tensor.to``
rounds twice). NaN stays NaN; its payload is not specified (torch's own conversions
differ in it between formats and kernels).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class Format(NamedTuple):
    name: str
    mantissa_bits: int  # explicit (stored) mantissa bits
    carrier: np.dtype  # the NumPy dtype that holds it exactly


FORMATS: dict[str, Format] = {
    "bfloat16": Format("bfloat16", 7, np.dtype(np.float32)),
    "float16": Format("float16", 10, np.dtype(np.float32)),
    "tf32": Format("tf32", 10, np.dtype(np.float32)),
    "float32": Format("float32", 23, np.dtype(np.float64)),
    "float64": Format("float64", 52, np.dtype(np.longdouble)),
}

def check_format(name: Any, argument: str = "format") -> Format:
    """The Format called ``name``; ValueError naming the argument and the choices otherwise."""
    if not isinstance(name, str) or name not in FORMATS:
        raise ValueError(f"{argument}: expected one of {', '.join(FORMATS)}, got {name!r}")
    return FORMATS[name]


def round_mantissa(x: Any, bits: int, *, toward_zero: bool = False) -> np.ndarray:
    """float32 values rounded to ``bits`` explicit mantissa bits (0 <= bits <= 23), float32's
    exponent range kept: to nearest, ties to even, or ``toward_zero`` (the low bits cut off,
    as a tensor core reading raw float32 operands as TF32 does). Returns float32."""
    if not 0 <= bits <= 23:
        raise ValueError(f"bits: expected 0 to 23 explicit mantissa bits, got {bits}")
    x = np.asarray(x, dtype=np.float32)
    k = 23 - bits  # low bits dropped
    if k == 0:
        return x.copy()
    u = x.view(np.uint32)
    keep = np.uint32((0xFFFFFFFF << k) & 0xFFFFFFFF)
    if toward_zero:
        r = u & keep
    else:
        r = (u >> np.uint32(k)) & np.uint32(1)  # the last kept bit: ties go to even
        r += np.uint32((1 << (k - 1)) - 1)
        r += u  # wraps around only for NaNs
        r &= keep
    out = r.view(np.float32)
    nan = np.isnan(x)
    return np.where(nan, x, out) if nan.any() else out  # a NaN's payload may sit in the low bits alone


def round_to(x: Any, fmt: str) -> np.ndarray:
    """x rounded to format ``fmt``, held in the format's carrier dtype (a new array).

    Args:
        x: any real array or scalar (float64 values pass through float32 for the
            formats float32 carries, as torch's conversions do).
        fmt: a name of :data:`FORMATS`.
    """
    f = check_format(fmt)
    a = np.asarray(x)
    if f.name == "float64":
        return a.astype(np.float64).astype(np.longdouble)
    if f.name == "float32":
        with np.errstate(over="ignore"):  # beyond float32's range is infinity, as a cast gives
            return a.astype(np.float32).astype(np.float64)
    with np.errstate(over="ignore"):
        x32 = a.astype(np.float32)
    if f.name == "float16":
        with np.errstate(over="ignore"):
            return x32.astype(np.float16).astype(np.float32)
    return round_mantissa(x32, f.mantissa_bits)
