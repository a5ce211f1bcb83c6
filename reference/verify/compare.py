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

from .bounds import one_check
from .candidates import Candidate, Expect, Problem, to_numpy
from .deadline import phase
from .files import Limits
from .finite import check_truth, check_weights
from .footprint import check_footprint
from .modules import is_reference_module, is_torch_module, spec_of_module
from .precision import dtype_name, judged_dtype
from .registry import as_candidate
from .report import CompareReport, Divergence, TensorResult
from .session import Session
from .spec import Spec

WEIGHTS = ("candidate", "reference", "draw")
PARAM_BASES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


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
) -> CompareReport:
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
            else float64). A candidate returning another dtype is a dtype mismatch.
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
    ref_spec, ref_params = _reference_side(reference_module, mode)
    cand = as_candidate(candidate, layout=layout, dtype=dtype, factory=factory,
                        mode=mode or (ref_spec.mode if ref_spec else None))
    spec = _resolve_spec(cand, ref_spec)
    dtype = _resolve_dtype(cand, dtype)
    lengths_note = ""
    if cand.given_lengths is not None:  # the candidate's own test data fixes them: both sides run with them
        given = cand.given_lengths
        if lengths is not None:
            raise ValueError(f"lengths: given by --lengths (lengths=) and by the test data's sequence_lens "
                             f"({given.where}); give one of them")
        lengths, batch = given.values.tolist(), len(given.values)
        seq_len = given.T or max(seq_len, int(given.values.max()))
        lengths_note = f"lengths: sequence_lens from {os.path.basename(given.where)}"
    T0, B0 = (_default(cand, 0, seq_len), _default(cand, 1, batch)) if input is None else np.shape(input)[:2]
    check_footprint(spec, int(T0), int(B0), dtype, lengths is not None)  # before anything the size of the problem
    params, ref_own, weights_note = _resolve_weights(weights, cand, spec, ref_params, seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (_default(cand, 0, seq_len), _default(cand, 1, batch), spec.input_size)) \
        if input is None else np.asarray(to_numpy(input), dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != spec.input_size:
        raise ValueError(f"input: expected (T, B, {spec.input_size}) time-major, got shape {x.shape}")
    T, B = x.shape[:2]
    shapes = spec.state_shapes(B)
    hx, hx_note = _initial_states(hx, cand, spec, shapes, rng)
    lens = _lengths(lengths, cand, T, B)  # (B,) ints or None
    masks = _masks(dropout_masks, spec, rng, T, B)
    cots = _cotangents(cotangents, spec)
    expect = _expect(gradients, cand, spec)
    backward = expect is not None
    draw_out = rng.standard_normal((T, B, spec.D * spec.P))  # (T, B, D*P), drawn even forward-only
    draw_hid = tuple(rng.standard_normal(s) for s in shapes)  # like hx
    g_out: np.ndarray | None = None
    g_hid: tuple[np.ndarray | None, ...] | None = None
    if backward:
        g_out = draw_out if "output" in cots else None
        g_hid = tuple(g if n in cots else None for g, n in zip(draw_hid, ("h_n", "c_n")[: len(draw_hid)], strict=True))

    session = Session(cand, dtype, expect or Expect(False, (False, False), frozenset()), frozenset(cots))
    pb_cand = Problem(spec, params, x, hx, lens, masks, g_out, g_hid)
    pb_ref = pb_cand if ref_own is None else replace(pb_cand, params=ref_own)
    for pb in {id(pb_cand): pb_cand, id(pb_ref): pb_ref}.values():
        check_weights(session.rounded(pb))
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

        with phase("localisation (starting)"):
            find(report, session, pb_cand, ftol, gtol)
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


# -- resolving the arguments ------------------------------------------------------------------


def _reference_side(ref: Any, mode: str | None) -> tuple[Spec | None, dict | None]:
    if ref is None:
        return None, None
    if is_reference_module(ref):
        return Spec.coerce(ref), {k: np.asarray(v, dtype=np.float64) for k, v in ref.state_dict().items()}
    if is_torch_module(ref):
        spec = spec_of_module(ref, mode)
        return spec, {k: np.asarray(to_numpy(v), dtype=np.float64) for k, v in ref.state_dict().items()}
    try:
        return Spec.coerce(ref), None
    except TypeError:
        raise TypeError("reference_module: expected a reference or torch module, a Spec, a dict of Spec fields or "
                        f"an RNNConfig, got {type(ref).__name__}") from None


def _resolve_spec(cand: Candidate, ref_spec: Spec | None) -> Spec:
    if cand.spec is None:
        if ref_spec is None:
            raise ValueError("reference_module: required for a function candidate: a reference module, a Spec, a "
                             "dict of Spec fields (mode, input_size, hidden_size, ...) or an RNNConfig")
        return ref_spec
    if ref_spec is None:
        return cand.spec
    ignore = {"training"} | (set() if cand.declares_reset_after else {"reset_after"})
    diffs = [d for d in cand.spec.differences(ref_spec) if d.split(":")[0] not in ignore]
    if diffs:
        raise ValueError(f"reference_module: its configuration {ref_spec} differs from the candidate's "
                         f"{cand.spec}: " + "; ".join(f"{d} (candidate != reference)" for d in diffs))
    return ref_spec


def _resolve_dtype(cand: Candidate, dtype: Any) -> np.dtype:
    if dtype is not None:
        if cand.dtype is not None and cand.own_params is not None and dtype_name(dtype) != cand.dtype.name:
            raise ValueError(f"dtype: {cand.name} computes in {cand.dtype.name} (its weights' dtype); asked "
                             f"{dtype_name(dtype)}: convert it first, or leave dtype unset")
        dtype = judged_dtype(dtype, "dtype")
    else:
        dtype = cand.dtype or np.dtype(np.float64)
    return dtype


def _resolve_weights(weights: str | None, cand: Candidate, spec: Spec, ref_params: dict | None, seed: int):
    """(the candidate's weights, the reference's own weights when they differ in source, the report's note)."""
    if weights is None:
        weights = "candidate" if cand.own_params is not None else ("reference" if ref_params is not None else "draw")
    if weights not in WEIGHTS:
        raise ValueError(f"weights: expected one of {WEIGHTS}, got {weights!r}")
    f64 = lambda d: {k: np.asarray(v, dtype=np.float64) for k, v in d.items()}
    if weights == "candidate":
        if cand.own_params is None:
            raise ValueError(f"weights: 'candidate', but {cand.name} holds no weights of its own "
                             "(use 'reference' or 'draw')")
        return f64(cand.own_params), (None if ref_params is None else f64(ref_params)), \
            "the candidate's own" + ("; the reference module's own" if ref_params is not None else "")
    if weights == "reference":
        if ref_params is None:
            raise ValueError("weights: 'reference', but reference_module holds no weights (pass a reference or "
                             "torch module, or use 'draw')")
        return f64(ref_params), None, "the reference module's"
    return f64(spec.reference(seed=seed).state_dict()), None, f"drawn from seed {seed} at torch's init scale"


def _default(cand: Candidate, axis: int, value: int) -> int:
    fixed = cand.fixed_shape[axis]
    return value if fixed is None else fixed


def _initial_states(hx: Any, cand: Candidate, spec: Spec, shapes, rng) -> tuple[tuple, str]:
    random = isinstance(hx, str) and hx == "random"
    if isinstance(hx, str) and not random:
        raise ValueError(f"hx: expected 'random', None or the initial states, got {hx!r}")
    drawn = tuple(rng.uniform(-1, 1, s) for s in shapes)  # drawn always: the same seed gives the same data
    if not cand.takes_hx:
        if not random and hx is not None:
            raise ValueError(f"hx: {cand.name} takes no initial states; leave hx unset")
        return tuple(np.zeros(s) for s in shapes), "zero initial states (the candidate takes none)"
    if random:
        return drawn, ""
    if hx is None:
        return tuple(np.zeros(s) for s in shapes), ""
    parts = tuple(hx) if spec.lstm else (hx,)
    if len(parts) != len(shapes):
        raise ValueError(f"hx: expected {'(h_0, c_0)' if spec.lstm else 'h_0'}, got {len(parts)} arrays")
    out = tuple(np.asarray(to_numpy(h), dtype=np.float64) for h in parts)
    for name, h, s in zip(("h_0", "c_0")[: len(out)], out, shapes, strict=True):
        if h.shape != s:
            raise ValueError(f"hx: expected {name} of shape {s}, got {h.shape}")
    return out, ""


def _lengths(lengths: Any, cand: Candidate, T: int, B: int) -> np.ndarray | None:
    if lengths is None:
        return None
    if not cand.takes_lengths:
        raise ValueError(f"lengths: {cand.name} takes no lengths (an exported model runs whole sequences)")
    a = np.asarray(lengths)
    if a.shape != (B,) or a.dtype.kind not in "iu" or a.min(initial=1) < 1 or a.max(initial=1) > T:
        raise ValueError(f"lengths: expected {B} ints in [1, {T}] (one per batch row), got {list(np.ravel(a))}")
    return a.astype(np.int64)


def _masks(masks: Any, spec: Spec, rng, T: int, B: int) -> list | None:
    if not spec.dropout_active:
        if masks is not None:
            raise ValueError("dropout_masks: given, but the configuration applies no dropout (it needs training, "
                             "dropout > 0 and num_layers > 1)")
        return None
    shape = (T, B, spec.D * spec.P)
    if masks is None:
        return [(rng.random(shape) >= spec.dropout).astype(np.float64) for _ in range(spec.num_layers - 1)]
    masks = [np.asarray(to_numpy(m), dtype=np.float64) for m in masks]
    if len(masks) != spec.num_layers - 1 or any(m.shape != shape or not np.isin(m, (0, 1)).all() for m in masks):
        raise ValueError(f"dropout_masks: expected {spec.num_layers - 1} keep masks of 0s and 1s, each {shape}")
    return masks


def _cotangents(cotangents: Iterable[str] | None, spec: Spec) -> list[str]:
    names = ["output", "h_n", "c_n"][:3 if spec.lstm else 2]
    if cotangents is None:
        return names
    cots = [cotangents] if isinstance(cotangents, str) else list(cotangents)
    bad = [c for c in cots if c not in names]
    if bad or not cots:
        raise ValueError(f"cotangents: expected a non-empty subset of {names}, got {cots}")
    return [n for n in names if n in cots]


def _expect(gradients: Any, cand: Candidate, spec: Spec) -> Expect | None:
    if gradients is None:
        gradients = cand.has_gradients if cand.gradients is None else cand.gradients
    if gradients is False:
        return None
    if gradients is True:
        names = {"input", "h_0", "c_0", "weights"}
    else:
        names = {gradients} if isinstance(gradients, str) else set(gradients)
        allowed = {"input", "h_0", "c_0", "weights", *PARAM_BASES}
        bad = sorted(names - allowed)
        if bad or not names:
            raise ValueError(f"gradients: expected True, False or names among {sorted(allowed)}, got {sorted(names)}")
    if not cand.has_gradients:
        raise ValueError(f"gradients: {cand.name} runs forward only (it has no gradients); leave gradients unset")
    params = set(PARAM_BASES) if "weights" in names else names & set(PARAM_BASES)
    return Expect("input" in names, ("h_0" in names, "c_0" in names and spec.lstm), frozenset(params))

