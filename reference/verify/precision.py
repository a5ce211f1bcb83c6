"""The one place a candidate's precision is decided: float32 and float64 are judged, lower ones refused by name.

Every adapter asks :func:`judged_dtype` for the dtype its object computes in (a torch module's
parameters, a Keras policy's compute dtype, Flax and Equinox params, an ONNX file's weights), and so
does ``compare(..., dtype=)``. bfloat16 and float16 are refused here, by name, until they are judged as
a correct implementation at that precision errs: its error grows with the sizes, the weights and the
steps, so no fixed tolerance separates it from a bug.
"""

from __future__ import annotations

from typing import Any

import numpy as np

JUDGED = ("float32", "float64")


def dtype_name(dtype: Any) -> str:
    """"float32", "bfloat16", ... from a NumPy, torch, JAX or Keras dtype, or its name."""
    try:  # NumPy's names, ml_dtypes' bfloat16, and anything np.dtype reads
        return dtype if isinstance(dtype, str) else np.dtype(dtype).name
    except TypeError:  # torch's dtypes
        return str(dtype).replace("torch.", "")


def judged_dtype(dtype: Any, who: str) -> np.dtype:
    """The dtype a candidate computing in ``dtype`` (a NumPy, torch, JAX or Keras dtype, or its name) is judged
    in: float32 or float64.

    The one place where precision is decided. bfloat16 and float16 are refused by name until the
    verifier judges them as a correct implementation at that precision errs (its error grows with the
    sizes, the weights and the steps; no fixed tolerance separates it from a bug); every other dtype is
    not a real floating point one the reference can judge.
    """
    name = dtype_name(dtype)
    if name in JUDGED:
        return np.dtype(name)
    if name in ("bfloat16", "float16", "half"):
        raise TypeError(f"{who}: computes in {name}, which the verifier does not judge yet (float32 and float64 "
                        f"only: a {name} result is judged by the error a correct {name} implementation makes, not by "
                        "a fixed tolerance); compare a float32 copy of it (module.float(), a float32 policy)")
    raise TypeError(f"{who}: computes in {name}; expected float32 or float64")
