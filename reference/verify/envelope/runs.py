"""The reference at a rounding model on a verifier problem, the truth, and the problem's redraws.

Results come in the verifier's form (``output``, ``hidden``, ``input``, ``hx``, one
entry per parameter) and leave as named tensors (:func:`named_tensors`): ``output``,
``h_n``, ``c_n``, ``grad input``, ``grad h_0``, ``grad c_0``, ``grad <parameter>``,
the names ``compare`` reports. A model's tensors are its results rounded to the
storage format, as a kernel at that precision returns them; the truth's are not
rounded (float64, or longdouble for float64 storage).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from reference.precision import Precision, Rounding, namespace, round_to, truth_rounding

from ..candidates import Problem
from ..session import reference_run, run_reference

TIME_MAJOR = ("output", "grad input")  # the tensors with a time axis (axis 0): judged per step


def named_tensors(res: dict, lstm: bool) -> dict[str, np.ndarray]:
    """The verifier's result form -> {name: array} in compare's names and order (None entries left out)."""
    out: dict[str, np.ndarray] = {"output": res["output"]}
    out.update(zip(("h_n", "c_n")[: 1 + lstm], res["hidden"], strict=True))
    if "input" in res:
        out["grad input"] = res["input"]
    for name, g in zip(("grad h_0", "grad c_0"), res.get("hx", ()), strict=False):
        if g is not None:
            out[name] = g
    out.update((f"grad {k}", v) for k, v in res.items() if k not in ("output", "hidden", "input", "hx"))
    return {k: v for k, v in out.items() if v is not None}


def model_run(pb: Problem, rounding: Rounding, *, rounded: bool = True) -> dict[str, np.ndarray]:
    """The one core on ``pb`` through ``rounding``'s namespace: its named tensors in the carrier
    dtype, each rounded to the storage format (``rounded=False``: as computed, for a truth)."""
    xp = namespace(rounding)
    module_dtype = np.float32 if xp.carrier == np.float32 else np.float64  # holds every carrier value exactly
    module = pb.spec.reference(pb.params, dtype=module_dtype)
    arr = lambda a: None if a is None else xp.asarray(a)  # rounded to storage on entry
    res, _, _ = reference_run(module, pb.spec, arr(pb.x), tuple(arr(h) for h in pb.hx), arr(pb.grad_output),
                              None if pb.grad_hidden is None else tuple(arr(g) for g in pb.grad_hidden), pb.lengths,
                              None if pb.masks is None else [arr(m) for m in pb.masks])
    leave = (lambda a: xp.to_storage(np.asarray(a))) if rounded else np.asarray
    return {k: leave(v) for k, v in named_tensors(res, pb.spec.lstm).items()}


def truth_run(pb: Problem, precision: Precision) -> dict[str, np.ndarray]:
    """The truth for a kernel at ``precision``: the core without rounding, in float64 (longdouble for float64)."""
    rounding = truth_rounding(precision)
    if rounding is None:
        res, _, _ = run_reference(pb)
        return named_tensors(res, pb.spec.lstm)
    return model_run(pb, rounding, rounded=False)


def _shuffled(rng: np.random.Generator, a: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """``a`` with its entries permuted among the valid positions (every position when ``valid`` is None)."""
    out = np.array(a, dtype=np.float64, copy=True)
    if valid is None:
        return rng.permutation(out.reshape(-1)).reshape(out.shape)
    out[valid] = rng.permutation(out[valid].reshape(-1)).reshape(out[valid].shape)  # (n, features)
    return out


def redraw(pb: Problem, rng: np.random.Generator) -> Problem:
    """A new draw of ``pb``'s inputs and cotangents: each array's own entries, permuted.

    The weights, lengths and dropout masks stay; the input, the initial states and the
    cotangents are shuffled (over valid steps only, with lengths), so a redraw has the
    problem's own distribution of values, whatever it was drawn from."""
    T = pb.x.shape[0]
    valid = None if pb.lengths is None else np.arange(T)[:, None] < np.asarray(pb.lengths)[None, :]  # (T, B)
    hidden = None if pb.grad_hidden is None else tuple(None if g is None else _shuffled(rng, g) for g in pb.grad_hidden)
    return replace(pb, x=_shuffled(rng, pb.x, valid), hx=tuple(_shuffled(rng, h) for h in pb.hx),
                   grad_output=None if pb.grad_output is None else _shuffled(rng, pb.grad_output, valid),
                   grad_hidden=hidden)


def rounded_problem(pb: Problem, precision: Precision) -> Problem:
    """``pb`` with every float rounded to the storage format (float64 arrays holding the rounded
    values): the values a kernel at ``precision`` reads, and the truth is computed on."""
    r: Any = lambda a: None if a is None else np.asarray(round_to(a, precision.storage), dtype=np.float64)
    return replace(pb, params={k: r(v) for k, v in pb.params.items()}, x=r(pb.x), hx=tuple(r(h) for h in pb.hx),
                   grad_output=r(pb.grad_output),
                   grad_hidden=None if pb.grad_hidden is None else tuple(r(g) for g in pb.grad_hidden))
