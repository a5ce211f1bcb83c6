"""Nothing compared is never a MATCH: weights, or a truth, that are not finite for a reason of the problem's.

The one tolerance rule counts NaN against NaN and inf against the same inf as agreement. That is
right where a non-finite input makes part of the truth non-finite (an inf in the input, given on
purpose: a candidate must reproduce it there and be right elsewhere). It is wrong as a verdict when
the weights themselves are not finite (a model file trained into NaN), when every value of the truth
is non-finite, or when every weight, input, state and cotangent is finite and the truth still is
not (the recurrence overflows): then nothing is compared, and the verdict is an error naming the
tensor and the reason (ValueError; ``rnn-check`` exits 2).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .candidates import Problem


def _count(a: Any) -> str:
    """'3 NaN and 1 inf (of 48 values)' for a non-finite array."""
    a = np.asarray(a, dtype=np.float64)
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    parts = [f"{nan} NaN"] * (nan > 0) + [f"{inf} inf"] * (inf > 0)
    return f"{' and '.join(parts)} (of {a.size} values)"


def _inputs(pb: Problem):
    yield "input", pb.x
    yield from ((f"hx: {n}", h) for n, h in zip(("h_0", "c_0"), pb.hx, strict=False))
    if pb.grad_output is not None:
        yield "the cotangent of output", pb.grad_output
    for n, g in zip(("h_n", "c_n"), pb.grad_hidden or (), strict=False):
        if g is not None:
            yield f"the cotangent of {n}", g


def _finite(a: Any) -> bool:
    return bool(np.isfinite(np.asarray(a, dtype=np.float64)).all())


def check_weights(pb: Problem) -> None:
    """ValueError naming the first weight that is not finite."""
    for k, v in pb.params.items():
        if not _finite(v):
            raise ValueError(f"weights: {k} holds {_count(v)}: the reference's result is then not finite, so "
                             "nothing would be compared")


def check_truth(pb: Problem, truth: dict) -> None:
    """ValueError where the reference's result is not finite though every input is (naming its first such
    tensor), or where no value of it is finite at all."""
    named = [("output", truth["output"])] + list(zip(("h_n", "c_n"), truth["hidden"], strict=False))
    named += [("grad input", truth.get("input"))] + list(zip(("grad h_0", "grad c_0"), truth.get("hx") or (),
                                                             strict=False))
    named += [(f"grad {k}", truth.get(k)) for k in pb.params]
    named = [(n, a) for n, a in named if a is not None]
    bad = next(((n, a) for n, a in named if not _finite(a)), None)
    if bad is None:
        return
    given = next(((n, a) for n, a in _inputs(pb) if not _finite(a)), None)
    if given is None:
        scale = max(float(np.abs(np.asarray(v, np.float64)).max(initial=0.0)) for v in pb.params.values())
        raise ValueError(f"the reference's {bad[0]} holds {_count(bad[1])} although every weight, input, state and "
                         f"cotangent is finite: the recurrence overflows (largest weight {scale:.3g}), so nothing "
                         "would be compared")
    if not any(np.isfinite(np.asarray(a, dtype=np.float64)).any() for _, a in named):
        raise ValueError(f"{given[0]} holds {_count(given[1])}, and no value of the reference's result is finite: "
                         "nothing would be compared")
