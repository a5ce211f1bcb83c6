"""The power study: the smallest planted bug each verdict catches, per precision, bug and sequence length.

One cell is a precision and a sequence length T, on an LSTM with I = 32, H = 64, B = 8
(torch's initial weights, inputs and initial states U(-1, 1), cotangents N(0, 1), rounded
to the storage format). Per cell:

1. envelopes from the problem drawn with seed 0 (``measure_envelope``'s defaults), one per
   declaration: the hand-written kernel's (``KERNEL_CLAIMS``: float32 intermediates for
   bfloat16 and float16) and torch.nn.LSTM's (``TORCH_CLAIMS``: every result and every sum at
   storage, as torch's native kernels on bfloat16 tensors compute);
2. correct kernels on fresh draws (seeds 1, 2, ...): the hand-written kernel without a bug
   and torch.nn.LSTM at the storage dtype (not for TF32, which torch's CPU kernels lack),
   each against its own envelope. The largest multiple of the envelope (at factor 1: the
   raw ratio to the models' errors) and each verdict's false MISMATCHes are counted; the
   fixed tolerance's loosened atol is the smallest that passes every one of them (``anchors``);
3. per bug, on ``trials`` fresh draws (seeds 10000, ...), the hand-written kernel with the
   bug: the smallest size on the grid that each verdict catches, found by bisection (a
   larger bug of the same kind is caught whenever a smaller one is). A verdict's power is
   the smallest size it catches in at least 95% of the trials: the ceil(0.95 n)-th smallest
   of the trials' sizes.

Sizes: the bias offset, the gradient's scale error and the carry's missing fraction run
over 1, 0.5, 0.2, 0.1, ... 1e-16; the state bug over formats of 1 ... 51 mantissa bits
(its size is the format's unit roundoff, 2^-(bits + 1)).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from reference.precision import Precision, rounding_models
from reference.precision.models import NARROW
from reference.verify.candidates import Problem
from reference.verify.envelope import (
    FACTORS,
    judge,
    measure_envelope,
    model_run,
    named_tensors,
    rounded_problem,
    truth_run,
)
from reference.verify.spec import Spec

from .anchors import TORCH_TESTING, atol_needed, fixed_tolerance_passes, two_x_passes
from .kernels import BUGS, lstm_kernel_run, torch_module_run

I, H, B = 32, 64, 8
KERNEL_CLAIMS = {"float64": Precision("float64"), "float32": Precision("float32"), "tf32": Precision("float32", "tf32"),
                 "float16": Precision("float16"), "bfloat16": Precision("bfloat16")}
TORCH_CLAIMS = {"float64": Precision("float64"), "float32": Precision("float32"),
                "float16": Precision("float16", "float16", "float16"),
                "bfloat16": Precision("bfloat16", "bfloat16", "bfloat16")}
STEPS = (10, 100, 1000)
TRIALS = {10: 20, 100: 20, 1000: 10}
CORRECT = {10: 100, 100: 100, 1000: 20}
GOAL = ("bfloat16", 100, 1000)  # the cell whose correct draws number 1000 (the goal: zero false MISMATCH)
METHODS = ("envelope", "fixed tolerance", "2x one draw")
SCALED_SIZES = tuple(float(f"{m}e-{e + (m > 1)}") for e in range(17) for m in (1, 5, 2))[:-2]  # 1, 0.5, ... 1e-16
SPEC = Spec("LSTM", I, H)


def state_sizes(precision: Precision) -> tuple[float, ...]:
    """The state bug's sizes, largest first: unit roundoffs of formats with 1 ... (compute's bits - 1) bits."""
    bits = 51 if precision.arithmetic == "float64" else 22
    return tuple(2.0 ** -(k + 1) for k in range(1, bits + 1))


def sizes(bug: str, precision: Precision) -> tuple[float, ...]:
    return state_sizes(precision) if bug == "state" else SCALED_SIZES


def problem(T: int, seed: int, precision: Precision) -> Problem:
    """The study's problem of length T, drawn from ``seed`` and rounded to the storage format."""
    rng = np.random.default_rng(seed)
    pb = Problem(SPEC, SPEC.reference(seed=1000).state_dict(), rng.uniform(-1, 1, (T, B, I)),
                 tuple(rng.uniform(-1, 1, (1, B, H)) for _ in range(2)), grad_output=rng.standard_normal((T, B, H)),
                 grad_hidden=tuple(rng.standard_normal((1, B, H)) for _ in range(2)))
    return rounded_problem(pb, precision)


def hand_kernel(pb: Problem, precision: Precision, bug: str | None = None, size: float = 0.0) -> dict:
    res = lstm_kernel_run(pb, precision.storage, precision.arithmetic, tf32=precision.compute == "tf32", bug=bug,
                          size=size)
    return named_tensors(res, True)


def correct_kernels(name: str) -> dict[str, tuple[Precision, Callable[[Problem], dict]]]:
    """{kernel: (its declaration, run)} of the correct kernels of a cell."""
    claim = KERNEL_CLAIMS[name]
    kernels = {"hand-written": (claim, lambda pb: hand_kernel(pb, claim))}
    if name in TORCH_CLAIMS:
        kernels["torch.nn.LSTM"] = (TORCH_CLAIMS[name],
                                    lambda pb: named_tensors(torch_module_run(pb, claim.storage), True))
    return kernels


class Judges:
    """The verdicts on one draw: the truth and the plain implementation computed once, each kernel
    result judged by every rule. The envelope is measured at factor 1: a multiple above FACTORS[format] is caught."""

    def __init__(self, pb: Problem, precision: Precision, atol: dict[str, float] | None):
        self.precision, self.atol = precision, atol
        self.truth = truth_run(pb, precision)
        self.plain = model_run(pb, plain_rounding(precision))
        self.rtol = TORCH_TESTING[precision.storage][0]

    def verdicts(self, envelope: Any, res: dict) -> dict[str, Any]:
        """{rule: caught (bool)}, the envelope's largest multiple at factor 1, and the atol the kernel needs."""
        multiple, tensor, statistic, t = judge(envelope, res, self.truth).largest
        out: dict[str, Any] = {"envelope": multiple > FACTORS[envelope.precision.name], "2x one draw": not two_x_passes(res, self.plain, self.truth),
                               "multiple": multiple, "where": f"{tensor}{'' if t is None else f' t={t}'} {statistic}",
                               "atol needed": atol_needed(res, self.truth, self.rtol)}
        if self.atol is not None:
            out["fixed tolerance"] = not fixed_tolerance_passes(res, self.truth, self.rtol, self.atol)
        return out


def plain_rounding(precision: Precision) -> Any:
    """The plain implementation of the two-times rule: the reference rounding every op to storage."""
    storage = precision.storage
    at_storage = Precision(storage, storage if storage in NARROW else precision.compute)
    return next(m for m in rounding_models(at_storage) if m.name == "every op")


def _threshold(caught: Any, n: int, hint: int | None = None) -> int | None:
    """The largest index i (sizes descending) with caught(i); None when caught(0) is False. From ``hint``
    (the previous trial's answer) it walks one size at a time, else it bisects."""
    if hint is not None:
        step = 1 if caught(hint) else -1
        i = hint
        while 0 <= i + step < n and caught(i + step) == (step == 1):
            i += step
        if step == 1:
            return i
        return i - 1 if i > 0 else None  # i - 1 was caught; at 0 nothing was
    if not caught(0):
        return None
    if caught(n - 1):
        return n - 1
    lo, hi = 0, n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if caught(mid) else (lo, mid)
    return lo


def power_size(thresholds: list[float | None], fraction: float = 0.95) -> float | None:
    """The smallest size caught in at least ``fraction`` of the trials (None: never, on the grid)."""
    need = math.ceil(fraction * len(thresholds))
    caught = sorted(t for t in thresholds if t is not None)
    return caught[need - 1] if len(caught) >= need else None


def run_cell(name: str, T: int, trials: int | None = None, correct: int | None = None,
             bugs: tuple[str, ...] = BUGS, log: Any = print) -> dict:
    """One cell of the study (module docstring); returns its JSON-ready record."""
    torch.set_num_threads(1)
    claim = KERNEL_CLAIMS[name]
    trials = TRIALS[T] if trials is None else trials
    correct = (GOAL[2] if (name, T) == GOAL[:2] else CORRECT[T]) if correct is None else correct
    start = time.time()
    kernels = correct_kernels(name)
    envelopes = {}
    for precision in {p for p, _ in kernels.values()}:
        envelopes[precision] = measure_envelope(problem(T, 0, precision), precision, factor=1.0)
    record: dict[str, Any] = {"precision": name, "T": T, "factor": FACTORS[name], "draws": envelopes[claim].draws,
                              "window": envelopes[claim].window, "envelope seconds": round(time.time() - start, 1),
                              "claims": {k: {"declared": str(p), "models": list(envelopes[p].models)}
                                         for k, (p, _) in kernels.items()}}
    log(f"{name} T={T}: envelopes in {record['envelope seconds']} s")
    t0 = time.time()
    false: dict[str, dict[str, Any]] = {}
    atol: dict[str, float] = {}
    default_atol = TORCH_TESTING[claim.storage][1]
    for d in range(correct):
        pb = problem(T, 1 + d, claim)
        judges = Judges(pb, claim, None)
        for kname, (precision, kernel) in kernels.items():
            v = judges.verdicts(envelopes[precision], kernel(pb))
            f = false.setdefault(kname, {"draws": 0, "envelope": 0, "2x one draw": 0, "torch.testing": 0,
                                         "largest multiple": 0.0})
            f["draws"] += 1
            f["envelope"] += v["envelope"]
            f["2x one draw"] += v["2x one draw"]
            f["torch.testing"] += any(a > default_atol for a in v["atol needed"].values())
            if v["multiple"] > f["largest multiple"]:
                f["largest multiple"], f["largest at"] = v["multiple"], v["where"]
            for k, a in v["atol needed"].items():
                atol[k] = max(atol.get(k, default_atol), a)
    record.update({"correct": false, "loosened atol": atol, "correct seconds": round(time.time() - t0, 1)})
    log(f"{name} T={T}: {correct} correct draws in {record['correct seconds']} s: {false}")
    t0 = time.time()
    record["bugs"] = {}
    for bug in bugs:
        grid = sizes(bug, claim)
        found: dict[str, list] = {m: [] for m in METHODS}
        for j in range(trials):
            pb = problem(T, 10_000 + j, claim)
            judges = Judges(pb, claim, atol)
            cache: dict[int, dict] = {}

            def verdicts(i: int, pb: Problem = pb, judges: Judges = judges, cache: dict = cache, bug: str = bug,
                         grid: tuple = grid) -> dict:
                if i not in cache:
                    cache[i] = judges.verdicts(envelopes[claim], hand_kernel(pb, claim, bug, grid[i]))
                return cache[i]

            for m in METHODS:
                previous = found[m][-1] if found[m] else None
                i = _threshold(lambda i, m=m: verdicts(i)[m], len(grid),
                               None if previous is None else grid.index(previous))
                found[m].append(None if i is None else grid[i])
        record["bugs"][bug] = {m: {"trials": found[m], "power": power_size(found[m])} for m in METHODS}
        log(f"{name} T={T} {bug}: " + ", ".join(f"{m} {record['bugs'][bug][m]['power']}" for m in METHODS))
    record["bug seconds"] = round(time.time() - t0, 1)
    return record
