"""Memory before work, for a check: the reference's run, the candidate's, and the verifier's own copies.

    check_footprint(spec, T=100, B=64, dtype=np.float32, lengths=False)   # MemoryLimitError when it will not fit

``compare`` (and ``rnn-check``, before it builds anything) estimates what the main
check will hold at its peak and refuses, naming the estimate and the sizes, when
that exceeds the memory limit (:mod:`reference.memory`: the memory available by
default; ``memory_limit=`` / ``rnn-check --memory-limit`` set another, on purpose).

    reference    the float64 reference's forward + backward (reference.memory.estimate)
    candidate    the same estimate at the candidate's dtype: a correct BPTT keeps about
                 what the reference keeps (torch's own LSTM: measured below)
    copies       the verifier's arrays: COPIES_PER_ACTIVATION float64 arrays the size of
                 the input plus the output, T B (I + D P) (the drawn input and cotangents,
                 each side's rounded copies and results, the errors per step), and
                 COPIES_PER_PARAMETER float64 copies of the weights

Localisation's sub-problems are smaller than the main check (a layer alone, T = 1 steps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..memory import Estimate, check_memory, describe, estimate, parameter_elements
from .spec import Spec

COPIES_PER_ACTIVATION = 5
COPIES_PER_PARAMETER = 5


def footprint(spec: Spec, T: int, B: int, dtype: Any, lengths: bool = False) -> Estimate:
    """What the main check of ``spec`` on T steps of B rows, the candidate at ``dtype``, holds at its peak."""
    cfg = spec.config
    ref = estimate(cfg, T, B, np.float64, lengths)
    cand = estimate(cfg, T, B, dtype, lengths)
    activations = T * B * (cfg.input_size + cfg.num_directions * cfg.output_size)
    copies = 8 * (COPIES_PER_ACTIVATION * activations + COPIES_PER_PARAMETER * parameter_elements(cfg))
    parts = {"reference": ref.bytes, "candidate": cand.bytes, "the verifier's copies": copies}
    return Estimate(max(ref.bytes, cand.bytes) + copies, parts, f"{describe(cfg)}, T={T}, B={B}, {np.dtype(dtype).name}")


def check_footprint(spec: Spec, T: int, B: int, dtype: Any, lengths: bool = False) -> None:
    """MemoryLimitError (a ValueError) naming the estimate, its parts and the sizes when the check will not fit."""
    check_memory(footprint(spec, T, B, dtype, lengths), "checking a candidate (forward + backward, both sides)")
