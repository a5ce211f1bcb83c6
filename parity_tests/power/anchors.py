"""The two rules the envelope's power is measured beside.

Fixed tolerance: torch.testing.assert_close's rule, |a - v| <= atol + rtol |v| for every
element, with its per-dtype defaults (torch.testing's documentation: bfloat16 1.6e-2 and
1e-5, float16 1e-3 and 1e-5, float32 1.3e-6 and 1e-5, float64 1e-7 and 1e-7; TF32
results are float32 tensors). Those fail correct low-precision kernels, so a user
loosens atol until the kernel passes: ``loosened_atol`` is the smallest atol per tensor
that passes every correct draw of the study, the strongest fixed tolerance a user could
have settled on.

Two times one draw (FlashAttention's tests): a kernel passes when, for every tensor,
its largest error is at most twice that of a plain implementation at the same
precision on the same draw; the plain implementation here is the reference rounding
after every op (``reference.precision``'s "every op" model).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

TORCH_TESTING = {"bfloat16": (1.6e-2, 1e-5), "float16": (1e-3, 1e-5), "float32": (1.3e-6, 1e-5),
                 "float64": (1e-7, 1e-7)}  # (rtol, atol) of torch.testing.assert_close, by dtype


def _error(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    wide = np.result_type(np.asarray(a).dtype, np.asarray(v).dtype, np.float64)
    return np.abs(np.asarray(a, dtype=wide) - np.asarray(v, dtype=wide))


def atol_needed(candidate: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray], rtol: float) -> dict[str, float]:
    """Per tensor, the smallest atol with which |a - v| <= atol + rtol |v| holds everywhere."""
    return {k: float((_error(candidate[k], v) - rtol * np.abs(np.asarray(v, dtype=np.float64))).max(initial=0.0))
            for k, v in truth.items()}


def fixed_tolerance_passes(candidate: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray], rtol: float,
                           atol: Mapping[str, float]) -> bool:
    """torch.testing's rule on every tensor, with one atol per tensor."""
    return all(need <= atol[k] for k, need in atol_needed(candidate, truth, rtol).items())


def two_x_passes(candidate: Mapping[str, np.ndarray], plain: Mapping[str, np.ndarray],
                 truth: Mapping[str, np.ndarray]) -> bool:
    """Every tensor's largest error at most twice the plain implementation's on the same draw."""
    return all(_error(candidate[k], v).max() <= 2 * _error(plain[k], v).max() for k, v in truth.items())
