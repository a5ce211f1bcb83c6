"""The one place a candidate's precision is decided: float32 and float64 under the tolerance table,
bfloat16 and float16 against the rounding envelope, where the adapter runs them.

Every adapter asks :func:`judged_dtype` for the dtype its object computes in (a torch module's
parameters, a Keras policy's compute dtype, Flax and Equinox params, an ONNX file's weights), and so
does ``compare(..., dtype=)``. A bfloat16 or float16 candidate is judged by the error a correct
implementation at that precision makes (its error grows with the sizes, the weights and the steps, so no
fixed tolerance separates it from a bug): an adapter that runs such candidates asks :func:`narrow_format`
first, and is judged against the envelope (:mod:`reference.verify.low_precision`); the others refuse them
here, by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

JUDGED = ("float32", "float64")
NARROW = {"bfloat16": "bfloat16", "float16": "float16", "half": "float16"}  # a dtype's name -> its storage format
LOW_PRECISION_ADAPTERS = ("torch modules (and torch.autocast), functions, Keras's mixed policies, Flax (linen and "
                          "nnx) and Equinox cells, and ONNX files of float16 weights")  # those that run NARROW


def dtype_name(dtype: Any) -> str:
    """"float32", "bfloat16", ... from a NumPy, torch, JAX or Keras dtype, or its name."""
    try:  # NumPy's names, ml_dtypes' bfloat16, and anything np.dtype reads
        return dtype if isinstance(dtype, str) else np.dtype(dtype).name
    except TypeError:  # torch's dtypes
        return str(dtype).replace("torch.", "")


def judged_dtype(dtype: Any, who: str) -> np.dtype:
    """The dtype a candidate computing in ``dtype`` (a NumPy, torch, JAX or Keras dtype, or its name) is judged
    in: float32 or float64.

    bfloat16 and float16 are refused by name here: an adapter that runs them asks :func:`narrow_format`
    first. Every other dtype is not a real floating point one the reference can judge.
    """
    name = dtype_name(dtype)
    if name in JUDGED:
        return np.dtype(name)
    if name in NARROW:
        raise TypeError(f"{who}: computes in {name}, which this adapter does not run yet (a {name} result is judged "
                        f"by the error a correct {name} implementation makes, against the rounding envelope: "
                        f"{LOW_PRECISION_ADAPTERS} only, so far); compare a float32 copy of it (module.float(), a "
                        "float32 policy)")
    raise TypeError(f"{who}: computes in {name}; expected float32 or float64")


def narrow_format(dtype: Any) -> str | None:
    """"bfloat16" or "float16" for a candidate storing that format (a NumPy, torch, JAX or Keras dtype, or its
    name), else None: the storage of a candidate judged against the rounding envelope."""
    return NARROW.get(dtype_name(dtype))
