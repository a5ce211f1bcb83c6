"""torch's own recurrent modules at low precision against their envelopes: the kernels nobody here wrote.

torch.nn.RNN (tanh, relu), GRU and LSTM (with projections, bidirectional, stacked, packed) on the
CPU in bfloat16 and float16, declared as torch's native kernels compute (every result and every
sum of gradients at storage: ``Precision(s, s, s)``); oneDNN runs the bfloat16 LSTM and GRU without
projections. Each on ``draws`` fresh problems against the envelope of seed 0; the record is the
largest multiple of the envelope (at its factor) and where it was.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from reference.precision import Precision
from reference.verify.candidates import Problem
from reference.verify.envelope import judge, measure_envelope, rounded_problem, truth_run
from reference.verify.spec import Spec

from .kernels import torch_module_run

I, H, B = 16, 32, 8
MODULES: tuple[tuple[Spec, bool], ...] = (  # (configuration, packed with lengths)
    (Spec("RNN_TANH", I, H), False), (Spec("RNN_RELU", I, H), False), (Spec("GRU", I, H), False),
    (Spec("LSTM", I, H), False), (Spec("LSTM", I, H, proj_size=8), False),
    (Spec("GRU", I, H, num_layers=2, bidirectional=True), False), (Spec("LSTM", I, H, bidirectional=True), True),
)


def drawn(spec: Spec, T: int, seed: int, packed: bool) -> Problem:
    """Inputs and states U(-1, 1), cotangents N(0, 1) from ``seed``; packed: the same lengths in every draw
    (the envelope is per step: a step past every length it was measured with has a limit of 0)."""
    rng = np.random.default_rng(seed)
    hx = tuple(rng.uniform(-1, 1, s) for s in spec.state_shapes(B))
    lengths = np.random.default_rng(T).integers(1, T + 1, B) if packed else None
    return Problem(spec, spec.reference(seed=1000).state_dict(), rng.uniform(-1, 1, (T, B, I)), hx, lengths, None,
                   rng.standard_normal((T, B, spec.D * spec.P)), tuple(rng.standard_normal(h.shape) for h in hx))


def run_modules(T: int = 50, draws: int = 5, log: Any = print) -> list[dict]:
    torch.set_num_threads(1)
    rows = []
    for storage in ("bfloat16", "float16"):
        precision = Precision(storage, storage, storage)
        for spec, packed in MODULES:
            start = time.time()
            env = measure_envelope(drawn(spec, T, 0, packed), precision)
            largest: tuple = (0.0, "", "", None)
            for seed in range(1, 1 + draws):
                pb = rounded_problem(drawn(spec, T, seed, packed), precision)
                largest = max(largest, judge(env, torch_module_run(pb, storage), truth_run(pb, precision)).largest,
                              key=lambda x: x[0])
            m, tensor, statistic, t = largest
            rows.append({"module": f"{spec}{' packed' if packed else ''}", "storage": storage, "T": T, "draws": draws,
                         "declared": str(precision), "largest multiple": m,
                         "at": f"{tensor}{'' if t is None else f' t={t}'} {statistic}",
                         "seconds": round(time.time() - start, 1)})
            log(rows[-1])
    return rows
