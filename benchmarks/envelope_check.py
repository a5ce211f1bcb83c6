"""A bfloat16 or float16 row is validated against the rounding envelope before it is timed.

The tolerance table has no entry for these formats: a correct kernel errs by more than any fixed
tolerance a float32 bug hides under (docs/verify.md, "Low precision"). So each torch implementation
of such a row hands its own object (``Prepared.candidate``: the torch.nn module it times, or its
function behind compare's protocol) to ``reference.verify.compare``, which judges every tensor and
step against the errors that rounding models of a correct kernel make on the same problem. A row
whose candidate leaves the envelope is a mismatch, and the runner never times it.

compare draws its own data at the row's sizes (I, H, P, the module's weights), at ``VALIDATION_T``
steps and ``VALIDATION_B`` sequences: the envelope replays every rounding model over 15 redraws in
emulated arithmetic, which costs minutes at the rows' own T100 B64 (LSTM H256 bfloat16: 94 s at
T10 B64 on 2 loaded cores; 28 s at T5 B8, 65 s at T5 B8 H512).
"""

from __future__ import annotations

import time

from .config import Row

VALIDATION_T = 5  # time steps compare runs (the row's own T is timed)
VALIDATION_B = 8  # sequences compare runs (the row's own B is timed)


def spec_of(row: Row) -> dict:
    """The row's configuration in compare's terms (one layer, one direction)."""
    return {"mode": row.cell, "input_size": row.I, "hidden_size": row.H, "proj_size": row.P}


def judge(candidate: object, row: Row) -> dict:
    """compare()'s verdict on ``candidate`` at the row's format, as a validation record: ``valid``,
    ``status``, ``envelope_multiple`` (the largest error over the envelope, below 1 inside it),
    ``validated_at`` (the T and B compare ran) and ``validation_s``.

    A torch module is judged as it is (its weights are the ones it is timed with); a function is
    given compare's weights rounded to the format and ``dtype=row.dtype``.
    """
    from reference.verify import compare

    start = time.perf_counter()
    sizes = {"seq_len": VALIDATION_T, "batch": VALIDATION_B}
    if callable(candidate) and not hasattr(candidate, "parameters"):
        report = compare(candidate, spec_of(row), dtype=row.dtype, **sizes)
    else:
        report = compare(candidate, **sizes)
    verdict = report.verdict
    return {"valid": report.passed, "envelope_multiple": float(verdict.largest[0]) if verdict.tensors else None,
            "validated_at": f"T{VALIDATION_T} B{VALIDATION_B}", "validation_s": round(time.perf_counter() - start, 1),
            "status": ("ok: " if report.passed else "mismatch: ") + str(verdict)}
