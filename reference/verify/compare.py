"""compare(): run a candidate and the float64 reference on the same problem, and say where they first differ.

    report = compare(candidate, reference_module, lengths=[6, 4, 3], seq_len=6)
    print(report)                  # per-tensor errors, MATCH/MISMATCH, first divergence
    report.passed                  # bool

Both sides get the same weights, inputs, initial states and random cotangents
(never ``.sum()``). The reference always runs in float64 on the candidate's
rounded values; the tolerance is the table's entry for the candidate's dtype and
device (``reference.tolerances.candidate_tol``) under its one rule
(``compare_arrays``: max|a - d| <= atol + rtol * max|d|, per named tensor).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from reference.tolerances import candidate_tol, compare_arrays

from .arguments import (
    checked_lengths,
    cotangent_names,
    default_size,
    dropout_masks_for,
    expected_gradients,
    initial_states,
    reference_side,
    resolve_dtype,
    resolve_spec,
    resolve_weights,
)
from .bounds import one_check
from .candidates import Expect, Problem, to_numpy
from .deadline import phase
from .files import Limits
from .finite import check_truth, check_weights
from .footprint import check_footprint
from .low_precision import LowPrecisionReport, declared_precision, judge_low_precision
from .registry import as_candidate
from .report import CompareReport, Divergence, TensorResult
from .session import Session
from .spec import Spec


@one_check
def compare(
    candidate: Any,
    reference_module: Any = None,
    input: Any = None,
    hx: Any = "random",
    *,
    lengths: Sequence[int] | None = None,
    dropout_masks: Sequence[Any] | None = None,
    seed: int = 0,
    seq_len: int = 5,
    batch: int = 3,
    dtype: Any = None,
    compute: str | None = None,
    accumulate: str | None = None,
    layout: str = "torch",
    factory: Callable[[Spec], Any] | None = None,
    weights: str | None = None,
    cotangents: Iterable[str] | None = None,
    gradients: bool | Iterable[str] | None = None,
    mode: str | None = None,
    localise: bool = True,
    trust_pickle: bool = False,
    limits: Limits | None = None,
    memory_limit: float | str | None = None,
    timeout: float | None = None,
) -> CompareReport | LowPrecisionReport:
    """Run ``candidate`` and the reference on the same weights, inputs and cotangents.

    Args:
        candidate: a torch module (torch's names and call signature), a reference
            module, a model file's path or candidate (:func:`~reference.verify.models.load_model`)
            or a function following :class:`~reference.verify.candidates.CandidateFn`.
        reference_module: the configuration to check against: a reference or torch
            module (configuration and weights), a :class:`Spec`, a dict of Spec
            fields or an RNNConfig. Optional when the candidate has its own
            configuration; when both have one they must agree (else ValueError).
        input: (T, B, I) time-major, or None to draw U(-1, 1) of (seq_len, batch, I).
        hx: "random" (default: U(-1, 1), so h_0/c_0 gradients are exercised), None
            (zeros), or the states as torch takes them, (L*D, B, P) [and (L*D, B, H)].
        lengths: B ints in [1, T] (packed sequences), or None.
        dropout_masks: L-1 keep masks of 0/1, (T, B, D*P); drawn from ``seed`` in
            training mode with dropout when not given.
        seed: seeds every drawn value: weights, data, cotangents, masks.
        dtype: the dtype the candidate is asked to compute in (default: its own,
            else float64). A candidate returning another dtype is a dtype mismatch. A candidate
            storing bfloat16 or float16 (a torch module's weights; ``dtype="bfloat16"`` for a
            function, which is then given and returns float32 arrays holding bfloat16 values; a
            float32 torch module asked for bfloat16 or float16 runs under ``torch.autocast``) is
            judged against the rounding envelope (:mod:`reference.verify.low_precision`).
        compute: what a low-precision candidate computes its intermediate results in: the storage
            format (the default for bfloat16 and float16: the widest claim), "float32" (a fused
            kernel: a tighter envelope), or "tf32" for float32 whose matrix products read TF32
            (cuDNN's float32 with allow_tf32).
        accumulate: the format matrix products' partial sums run in (default: the storage format
            where ``compute`` is left to default, else float32).
        layout: "torch" or a layout of :mod:`reference.verify.layouts` in which a
            function candidate receives its weights and returns their gradients.
        factory: builds a torch module candidate for another Spec (localisation).
        weights: "candidate" (the candidate's own; the default when it has them;
            a reference module's own weights are then compared with them and any
            difference is a mismatch), "reference" (the reference module's, loaded
            into the candidate) or "draw" (fresh, at torch's init scale, from
            ``seed``; the default otherwise). The report says which.
        cotangents: the outputs that carry a random gradient, any of "output",
            "h_n", "c_n" (default: all). The others get none (None to a function).
        gradients: the gradients the candidate provides: True (all), False
            (forward only), or names among "input", "h_0", "c_0", "weights" (all
            parameters) and "weight_ih", "weight_hh", "bias_ih", "bias_hh",
            "weight_hr". Default: all, or none for a forward-only runtime, or those the candidate
            declares (``Candidate.gradients``: e.g. no bias_hh for a cell that has no recurrent bias).
        mode: the mode of a module candidate whose class and attributes do not
            say it (default: the reference's).
        localise: find the first divergence when something fails.
        trust_pickle: with a path: let a .pt/.pth that is a pickled module load
            in full, which runs the code it names (default: state_dicts only,
            read with torch's weights_only=True).
        limits: what the check may read from files (:class:`~reference.verify.Limits`:
            per file, and in all; default 2 GiB and 4 GiB).
        memory_limit: bytes the check may hold at its peak, estimated from the
            sizes before anything is allocated: "available" (the default: the
            memory available now), a number, or ``math.inf`` to run on purpose.
        timeout: seconds the check may run; past them the candidate is stopped
            and CheckTimeout (a TimeoutError) names the step it was running
            (see :mod:`reference.verify.deadline` for how, and its limits).

    Returns:
        a :class:`CompareReport`, or a :class:`~reference.verify.low_precision.LowPrecisionReport` at
        bfloat16, float16 or TF32 (both: ``passed``, ``str()``).

    Raises:
        CandidateError: the candidate could not be run, or broke the protocol.
        ValueError, TypeError: a bad argument, naming it; a file refused; MemoryLimitError
            (a ValueError): the check would not fit in memory.
        CheckTimeout: the check ran past ``timeout``.
    """
    if isinstance(candidate, (str, os.PathLike)):
        from .models import load_model

        candidate = load_model(candidate, mode=mode, layout=None if layout == "torch" else layout,
                               trust_pickle=trust_pickle)
    ref_spec, ref_params = reference_side(reference_module, mode)
    cand = as_candidate(candidate, layout=layout, dtype=dtype, factory=factory,
                        mode=mode or (ref_spec.mode if ref_spec else None))
    spec = resolve_spec(cand, ref_spec)
    dtype, storage = resolve_dtype(cand, dtype)
    precision = declared_precision(storage, dtype, compute, accumulate)  # None: the tolerance table
    lengths_note = ""
    if cand.given_lengths is not None:  # the candidate's own test data fixes them: both sides run with them
        given = cand.given_lengths
        if lengths is not None:
            raise ValueError(f"lengths: given by --lengths (lengths=) and by the test data's sequence_lens "
                             f"({given.where}); give one of them")
        lengths, batch = given.values.tolist(), len(given.values)
        seq_len = given.T or max(seq_len, int(given.values.max()))
        lengths_note = f"lengths: sequence_lens from {os.path.basename(given.where)}"
    T0, B0 = (default_size(cand, 0, seq_len), default_size(cand, 1, batch)) if input is None else np.shape(input)[:2]
    check_footprint(spec, int(T0), int(B0), dtype, lengths is not None)  # before anything the size of the problem
    params, ref_own, weights_note = resolve_weights(weights, cand, spec, ref_params, seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (default_size(cand, 0, seq_len), default_size(cand, 1, batch), spec.input_size)) \
        if input is None else np.asarray(to_numpy(input), dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != spec.input_size:
        raise ValueError(f"input: expected (T, B, {spec.input_size}) time-major, got shape {x.shape}")
    T, B = x.shape[:2]
    shapes = spec.state_shapes(B)
    hx, hx_note = initial_states(hx, cand, spec, shapes, rng)
    lens = checked_lengths(lengths, cand, T, B)  # (B,) ints or None
    masks = dropout_masks_for(dropout_masks, spec, rng, T, B)
    cots = cotangent_names(cotangents, spec)
    expect = expected_gradients(gradients, cand, spec)
    backward = expect is not None
    draw_out = rng.standard_normal((T, B, spec.D * spec.P))  # (T, B, D*P), drawn even forward-only
    draw_hid = tuple(rng.standard_normal(s) for s in shapes)  # like hx
    g_out: np.ndarray | None = None
    g_hid: tuple[np.ndarray | None, ...] | None = None
    if backward:
        g_out = draw_out if "output" in cots else None
        g_hid = tuple(g if n in cots else None for g, n in zip(draw_hid, ("h_n", "c_n")[: len(draw_hid)], strict=True))

    session = Session(cand, dtype, expect or Expect(False, (False, False), frozenset()), frozenset(cots), storage)
    pb_cand = Problem(spec, params, x, hx, lens, masks, g_out, g_hid)
    pb_ref = pb_cand if ref_own is None else replace(pb_cand, params=ref_own)
    for pb in {id(pb_cand): pb_cand, id(pb_ref): pb_ref}.values():
        check_weights(session.rounded(pb))
    if precision is not None:
        if ref_own is not None:
            raise ValueError("weights: at low precision the candidate's own weights are judged alone; give "
                             "weights='reference' (loaded into the candidate, rounded to its storage) or a "
                             "reference_module without weights (a Spec)")
        with phase("the main check (low precision)"):
            return judge_low_precision(session, pb_cand, precision, weights_note,
                                       "; ".join(n for n in (hx_note, lengths_note) if n), localise=localise)
    with phase("the main check"):
        ref_res, _, _ = session.reference(pb_ref)
        check_truth(pb_ref, ref_res)
        cand_res, dtype_notes = session.candidate(pb_cand)
    session.original = (pb_cand, cand_res)
    judged = cand.judged_dtype if cand.judged_dtype is not None and dtype == cand.dtype else dtype
    ftol, gtol = candidate_tol(judged, cand.device, "forward"), candidate_tol(judged, cand.device, "gradient")

    tensors = [check_tensor("output", "forward", cand_res["output"], ref_res["output"], ftol, 0)]
    for k, name in enumerate(("h_n", "c_n")[:len(hx)]):
        tensors.append(check_tensor(name, "forward", cand_res["hidden"][k], ref_res["hidden"][k], ftol))
    unchecked = []
    if expect is not None:  # backward
        if expect.input:
            tensors.append(check_tensor("grad input", "gradient", cand_res["input"], ref_res["input"], gtol, 0))
        else:
            unchecked.append("grad input")
        for k, name in enumerate(("grad h_0", "grad c_0")[:len(hx)]):
            if expect.hx[k]:
                tensors.append(check_tensor(name, "gradient", cand_res["hx"][k], ref_res["hx"][k], gtol))
            else:
                unchecked.append(name)
        provided = set(expect.param_names(params))
        for p in params:
            if p in provided:
                tensors.append(check_tensor(f"grad {p}", "gradient", cand_res[p], ref_res[p], gtol))
            else:
                unchecked.append(f"grad {p}")
    notes = [n for n in (weights_note, hx_note, lengths_note) if n]
    report = CompareReport(spec, cand.name, dtype.name, cand.device, T, B,
                           None if lens is None else lens.tolist(), tensors, "; ".join(notes),
                           tuple(cots) if backward else (), unchecked)
    if judged != dtype:
        report.dtype_note = f"judged as {judged.name}: {cand.dtype_note}"
    elif cand.dtype_note and dtype == cand.dtype:
        report.dtype_note = cand.dtype_note
    if dtype_notes:
        report.dtype_problem = (f"asked for {dtype.name}, the candidate returned {', '.join(dtype_notes)}: "
                                f"compare it at its own dtype (dtype=...), or make it return {dtype.name}")
    if ref_own is not None:
        from .diff import state_dict_diff

        diffs = state_dict_diff(params, ref_own, spec, rtol=0.0)
        report.weight_diff = [d.text for d in diffs]
        if diffs:
            d = diffs[0]
            report.forward = Divergence("weights", d.layer, d.direction, None, ", ".join(d.gates) or d.tensor,
                                        detail=f"{d.text} (A: the candidate's weights, B: the reference's; "
                                               "weights='reference' loads the reference's into the candidate)")
    for label, t in (("output", tensors[0]), ("grad input", next((t for t in tensors if t.name == "grad input"),
                                                                 None))):
        if t is not None and t.per_step is not None:
            report.step_errors[label] = t.per_step
    if localise and not report.passed and not report.dtype_problem and not report.weight_diff:
        from .localise import localise as find
        from .localise.bounds import Table

        with phase("localisation (starting)"):
            find(report, session, pb_cand, Table(ftol, gtol))
    return report


def check_tensor(name: str, kind: str, actual: Any, desired: Any, tol: tuple[float, float],
                 time_axis: int | None = None) -> TensorResult:
    """One named tensor under the one rule; shape and finiteness are checked first."""
    rtol, atol = tol
    nan = float("nan")
    a, d = np.asarray(actual), np.asarray(desired, dtype=np.float64)
    if a.shape != d.shape:
        return TensorResult(name, kind, nan, nan, rtol, atol, False, f"shape {a.shape} != expected {d.shape}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all() and np.isfinite(d).all():
        return TensorResult(name, kind, float("inf"), float("inf"), rtol, atol, False, "non-finite values")
    ok, max_abs, rel = compare_arrays(a, d, rtol, atol)
    per_step = None
    if time_axis is not None and a.size:
        with np.errstate(invalid="ignore"):  # inf - inf where both are infinite: the rule has judged those
            diff = np.abs(a - d)
        per_step = np.moveaxis(diff, time_axis, 0).reshape(diff.shape[time_axis], -1).max(axis=1)
    return TensorResult(name, kind, float(max_abs), float(rel), rtol, atol, bool(ok), "", per_step)

