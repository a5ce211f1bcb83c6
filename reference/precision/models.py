"""A kernel's declared precision, and the rounding models that bracket what a correct kernel at it may do.

A :class:`Precision` is what a kernel claims:

    storage     the format of weights, inputs, outputs and everything kept between steps
    compute     the format its intermediate results are held in: float32 for a fused kernel
                (oneDNN's RNNs, cuDNN), the storage format for one that rounds every
                operation's result (torch's native kernels on bfloat16 tensors); "tf32" is
                float32 whose matrix products read their operands at TF32's 10 mantissa bits
    accumulate  the format matrix products' partial sums run in: float32 (float64 for
                float64 storage), or the storage format itself

No single rounding order is *the* right one: kernels differ in where they round,
and each order gives a different, equally correct, error. The models below are the
ends of the range a declaration allows; a correct kernel's error should not exceed
the largest of them (the envelope, ``reference.verify.envelope``, measures them):

    stored values   elementwise arithmetic in float32; only what a kernel writes to memory
                    (states, saved gate values, per-step gradients, the results of matrix
                    products) and the operands of matrix products rounded to storage (a
                    bfloat16 GEMM reads and writes bfloat16). The one model of a kernel that
                    computes in float32: its claim is that nothing else is rounded
    every op        every elementwise result and every product rounded to storage: a kernel
                    computing in its storage format
    storage sums    every op, and each partial sum of a product rounded to ``accumulate``, one
                    product at a time (the worst order); where the kernel accumulates in its
                    storage format (always for float32 and float64, whose sums are storage's)
    truncated TF32  every op, with the products' operands cut to TF32 instead of rounded
                    (a tensor core reading raw float32 operands ignores their low 13 bits)

Each model runs the one core through :mod:`reference.precision.namespace`. The
truth the models (and candidates) are measured against is the core without
rounding: float64 NumPy, or longdouble for float64 storage (``truth_rounding``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .formats import check_format
from .namespace import Rounding

COMPUTE = {"bfloat16": ("float32", "bfloat16"), "float16": ("float32", "float16"), "float32": ("float32", "tf32"),
           "float64": ("float64",)}  # per storage format: the compute formats a kernel may declare, default first
NARROW = ("bfloat16", "float16")  # storage formats narrower than the arithmetic of a fused kernel


def _wide_sum(storage: str) -> str:
    """The format a matrix product accumulates in by default: float32, float64 for float64 storage."""
    return "float64" if storage == "float64" else "float32"


@dataclass(frozen=True)
class Precision:
    """What a kernel declares: storage, compute and accumulation formats (see the module docstring).

    ``Precision("bfloat16")`` is bfloat16 storage with float32 intermediates and sums (a fused
    kernel); ``Precision("bfloat16", "bfloat16")`` rounds every result to bfloat16 (torch's native
    kernels on bfloat16 tensors), and with ``accumulate="bfloat16"`` its products' sums too;
    ``Precision("float32", "tf32")`` is cuDNN's float32 with TF32 products.
    """

    storage: str
    compute: str = ""  # "" -> COMPUTE[storage][0]: float32, or float64 for float64 storage
    accumulate: str = ""  # "" -> float32 (float64 for float64 storage)

    def __post_init__(self) -> None:
        check_format(self.storage, "storage")
        compute = self.compute or COMPUTE[self.storage][0]
        if compute not in COMPUTE[self.storage]:
            raise ValueError(f"compute: a kernel storing {self.storage} computes in "
                             f"{' or '.join(COMPUTE[self.storage])}, got {self.compute!r}")
        accumulate = self.accumulate or _wide_sum(self.storage)
        allowed = {_wide_sum(self.storage)} | ({self.storage} if compute == self.storage else set())
        if accumulate not in allowed:
            raise ValueError(f"accumulate: a kernel storing {self.storage} and computing in {compute} accumulates in "
                             f"{' or '.join(sorted(allowed))}, got {self.accumulate!r}")
        object.__setattr__(self, "compute", compute)
        object.__setattr__(self, "accumulate", accumulate)

    @property
    def name(self) -> str:
        """"bfloat16", "tf32", ...: the storage, or TF32 where the products read TF32."""
        return "tf32" if self.compute == "tf32" else self.storage

    @property
    def arithmetic(self) -> str:
        """The format elementwise arithmetic runs in (TF32's is float32)."""
        return "float32" if self.compute == "tf32" else self.compute

    @property
    def operands(self) -> str:
        """The format matrix products read their operands in."""
        return "tf32" if self.compute == "tf32" else self.storage

    def __str__(self) -> str:
        return f"storage {self.storage}, compute {self.compute}, accumulation {self.accumulate}"


def rounding_models(precision: Precision) -> tuple[Rounding, ...]:
    """The rounding models that bracket a correct kernel at ``precision`` (module docstring)."""
    s, ops, wide = precision.storage, precision.operands, _wide_sum(precision.storage)
    models = []
    if s in NARROW:  # float32 arithmetic on bfloat16 or float16 values: the carrier's own, rounded nowhere
        models.append(Rounding("stored values", s, None, ops, wide, s, s))
    if precision.arithmetic == s:  # intermediates at storage precision
        models.append(Rounding("every op", s, s, ops, wide, s, s))
        if precision.accumulate == s:
            models.append(Rounding("storage sums", s, s, ops, s, s, s, one_by_one=True))
    if precision.compute == "tf32":
        models.append(Rounding("truncated TF32", s, s, ops, wide, s, s, truncate_operands=True))
    return tuple(models)


def truth_rounding(precision: Precision) -> Rounding | None:
    """The truth's namespace: None for the plain float64 core (storage narrower than float64), else
    the core in longdouble with no rounding (float64 storage needs a wider truth)."""
    if precision.storage != "float64":
        return None
    if np.finfo(np.longdouble).nmant <= np.finfo(np.float64).nmant:
        raise ValueError("precision: float64 storage is judged against a wider truth (NumPy's longdouble), but "
                         "longdouble is float64 on this platform")
    return Rounding("truth", "float64", None, None, None, None, None, carrier="longdouble")
