"""Wrong answers for the verdict functions: start from a correct result, change exactly one returned quantity.

A *result* is a mapping of named arrays, tuples of arrays allowed (``{"output":
..., "hidden": (h_n, c_n), "input": ..., "hx": (dh_0, dc_0), "weight_ih_l0":
...}``); its quantities are named flat: ``output``, ``hidden[1]``, ``hx[0]``,
``weight_hh_l1_reverse``. A :class:`Perturbation` names one quantity (``key``),
one place in it (``index``: one element, or a region: a gate's row block, one
time step, one batch row, one layer and direction) and one kind of wrong:

* ``above`` / ``below``: the place moved by ``factor`` times the rule's bound,
  ``factor`` > 1 (just above: the verdict must FAIL) or < 1 (just below: it must
  PASS). The bound is the rule's own: ``normwise`` atol + rtol * max|truth|
  (``compare_arrays``, the verifier) or ``elementwise`` atol + rtol * |truth_i|
  (gradcheck);
* ``nan`` / ``inf``: NaN or an infinity where the truth is finite; ``finite``: a
  finite value where the truth is infinite or NaN;
* ``dtype``: the quantity in the other float dtype (float32 <-> float64);
* ``shape``: the quantity one element longer along an axis, or flattened;
* ``drop``: the quantity missing (None in its place).

Every kind but ``below`` is a wrong answer. :func:`perturbations` is the
hypothesis strategy that draws the quantity, the place and the kind;
:func:`wrong_candidate` is a verifier candidate (the function protocol of
``reference.verify.candidates``) that returns the float64 reference's result with
one perturbation applied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from reference.tolerances import candidate_tol
from reference.verify.session import reference_run
from reference.verify.spec import Spec, split_name

KINDS = ("above", "below", "nan", "inf", "finite", "dtype", "shape", "drop")
WRONG = tuple(k for k in KINDS if k != "below")
VALUE_KINDS = ("above", "below", "nan", "inf")  # the kinds that keep shape and dtype
_PART = re.compile(r"^(\w+)\[(\d+)\]$")
Index = tuple  # of ints and slices: an element or a region


@dataclass(frozen=True)
class Perturbation:
    kind: str  # one of KINDS
    key: str  # the quantity, flat-named ("output", "hidden[1]", "hx[0]", "weight_ih_l0", ...)
    index: Index = ()  # the place changed (an element or a region); unused by dtype, shape and drop
    factor: float = 1.0  # above/below: the change as a multiple of the rule's bound at the place
    sign: float = 1.0  # the direction of the change (and of an infinity)
    variant: int = 0  # shape: 0 one element longer along axis 0, 1 along the last axis, 2 flattened

    @property
    def wrong(self) -> bool:
        return self.kind != "below"

    @property
    def element(self) -> bool:
        """Whether the place is one element (not a region)."""
        return all(isinstance(i, (int, np.integer)) for i in self.index)


# -- results: flat names over nested tuples ---------------------------------------------------


def flatten(result: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """{flat name: array} of a result; tuple parts become ``name[k]``, None entries are skipped."""
    out = {}
    for k, v in result.items():
        if isinstance(v, (tuple, list)):
            out.update((f"{k}[{j}]", np.asarray(a)) for j, a in enumerate(v) if a is not None)
        elif v is not None:
            out[k] = np.asarray(v)
    return out


def replaced(result: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``result`` with the flat-named quantity ``key`` set to ``value`` (the input is not changed)."""
    out = dict(result)
    m = _PART.match(key)
    if m is None or key in out:
        out[key] = value
        return out
    base, j = m.group(1), int(m.group(2))
    parts = list(out[base])
    parts[j] = value
    out[base] = tuple(parts)
    return out


# -- the rule's bound and one perturbed array ----------------------------------------------


def bound(truth: np.ndarray, index: Index, rtol: float, atol: float, rule: str = "normwise") -> np.ndarray:
    """The largest error the rule allows at ``truth[index]`` (an array shaped like the region)."""
    d = np.asarray(truth, dtype=np.float64)
    if rule == "normwise":
        scale = np.abs(d[np.isfinite(d)]).max(initial=0.0)
        return np.full(np.shape(d[index]), atol + rtol * scale)
    if rule == "elementwise":
        return atol + rtol * np.abs(d[index])
    raise ValueError(f"rule: expected 'normwise' or 'elementwise', got {rule!r}")


def wrong_value(p: Perturbation, truth: Any, rtol: float = 0.0, atol: float = 0.0, rule: str = "normwise") -> Any:
    """``truth`` perturbed by ``p`` (a new array; None for a drop)."""
    d = np.asarray(truth)
    if p.kind == "drop":
        return None
    if p.kind == "dtype":
        return d.astype(np.float32 if d.dtype == np.float64 else np.float64)
    if p.kind == "shape":
        if p.variant == 2 and d.ndim > 1:
            return d.reshape(-1).copy()
        axis = 0 if p.variant == 0 or d.ndim == 0 else d.ndim - 1
        d1 = d.reshape(1) if d.ndim == 0 else d
        return np.concatenate([d1, np.take(d1, [0], axis=axis)], axis=axis)
    a = np.array(d, copy=True)
    if p.kind in ("above", "below"):
        d64 = np.asarray(d, dtype=np.float64)
        a[p.index] = d64[p.index] + p.sign * p.factor * bound(d64, p.index, rtol, atol, rule)
    elif p.kind == "nan":
        a[p.index] = np.nan
    elif p.kind == "inf":
        a[p.index] = p.sign * np.inf
    elif p.kind == "finite":
        a[p.index] = np.where(np.isfinite(d[p.index]), d[p.index], 0.0)
    else:
        raise ValueError(f"kind: expected one of {KINDS}, got {p.kind!r}")
    return a


def perturb(result: Mapping[str, Any], p: Perturbation, rtol: float = 0.0, atol: float = 0.0,
            rule: str = "normwise") -> dict[str, Any]:
    """A copy of ``result`` with exactly the quantity ``p.key`` perturbed."""
    return replaced(result, p.key, wrong_value(p, flatten(result)[p.key], rtol, atol, rule))


# -- where a place is: time, batch row, layer and direction, gate ---------------------------------


def regions(key: str, shape: tuple[int, ...], spec: Spec | None = None) -> list[Index]:
    """The structured regions of a quantity: time steps and batch rows of (T, B, ...) arrays, layer-direction
    slabs and batch rows of states, gate row blocks of weights and biases; plain axis-0 slices otherwise."""
    base = _PART.match(key).group(1) if _PART.match(key) else key
    if not shape or 0 in shape:
        return []
    out: list[Index] = []
    one = lambda k: slice(k, k + 1)  # a region, never read as an element index
    if base in ("output", "input"):  # (T, B, .)
        out += [(one(t),) for t in range(shape[0])] + [(slice(None), one(b)) for b in range(shape[1])]
        if base == "output" and spec is not None:
            P = spec.P
            out += [(slice(None), slice(None), slice(d * P, (d + 1) * P)) for d in range(spec.D)]
    elif base in ("hidden", "hx"):  # (L*D, B, .)
        out += [(one(k),) for k in range(shape[0])] + [(slice(None), one(b)) for b in range(shape[1])]
    elif spec is not None and _is_param(key) and split_name(key)[0] != "weight_hr":
        H = spec.hidden_size
        out += [(slice(g * H, (g + 1) * H),) for g in range(shape[0] // H)]
    else:
        out += [(one(k),) for k in range(shape[0])]
    return out


def _is_param(key: str) -> bool:
    try:
        split_name(key)
    except ValueError:
        return False
    return True


def place(key: str, index: Index, spec: Spec) -> dict[str, int]:
    """What an element index of a quantity means: time, batch, layer, direction, gate (the ones that apply)."""
    base = _PART.match(key).group(1) if _PART.match(key) else key
    if base in ("output", "input"):
        out = {"time": int(index[0]), "batch": int(index[1])}
        if base == "output":
            out["direction"] = int(index[2]) // spec.P
        return out
    if base in ("hidden", "hx"):
        return {"layer": int(index[0]) // spec.D, "direction": int(index[0]) % spec.D, "batch": int(index[1])}
    name, layer, d = split_name(key)
    out = {"layer": layer, "direction": d}
    if name != "weight_hr":
        out["gate"] = int(index[0]) // spec.hidden_size
    return out


# -- strategies ---------------------------------------------------------------------------


def _applies(kind: str, a: np.ndarray) -> bool:
    if kind == "finite":
        return bool((~np.isfinite(a)).any())
    if kind in ("above", "below", "nan", "inf"):
        return bool(np.isfinite(a).any())
    return kind != "dtype" or a.dtype in (np.float32, np.float64)


def indices(key: str, a: np.ndarray, kind: str, spec: Spec | None = None, use_regions: bool = True) -> Any:
    """Strategy: a place in ``a`` for ``kind``: any element, the element of smallest magnitude (where an
    element-wise and a norm-wise rule differ most), or a region (where every element qualifies)."""
    finite = np.isfinite(a) if kind != "finite" else ~np.isfinite(a)
    cells = [tuple(int(i) for i in ix) for ix in np.argwhere(finite)]
    options = [st.sampled_from(cells)]
    if kind in ("above", "below"):
        smallest = np.unravel_index(int(np.argmin(np.where(finite, np.abs(a), np.inf))), a.shape)
        options.append(st.just(tuple(int(i) for i in smallest)))
    if use_regions:
        whole = [r for r in regions(key, a.shape, spec) if finite[r].all()]
        if whole:
            options.append(st.sampled_from(whole))
    return st.one_of(options)


def perturbations(result: Mapping[str, Any], kinds: Sequence[str] = KINDS, *, keys: Sequence[str] | None = None,
                  spec: Spec | None = None, above: tuple[float, float] = (1.05, 2.0),
                  below: tuple[float, float] = (0.5, 0.95), use_regions: bool = True) -> Any:
    """Strategy: one :class:`Perturbation` of ``result``: the kind, the quantity (among ``keys``) and its place.

    ``above`` and ``below`` are the ranges of ``factor``: the margins keep the
    verdict clear of the rounding of ``truth + change`` (and, for gradcheck, of
    the finite differences' own error).
    """
    flat = flatten(result)
    names = list(flat) if keys is None else list(keys)
    pairs = [(k, n) for k in kinds for n in names if flat[n].size and _applies(k, flat[n])]
    if not pairs:
        raise ValueError(f"perturbations: no quantity among {names} takes any of {list(kinds)}")

    @st.composite
    def draw(draw_):
        kind, key = draw_(st.sampled_from(pairs))
        a = flat[key]
        index, factor, variant = (), 1.0, 0
        if kind in VALUE_KINDS or kind == "finite":
            index = draw_(indices(key, a, kind, spec, use_regions))
        if kind in ("above", "below"):
            lo, hi = above if kind == "above" else below
            factor = draw_(st.floats(lo, hi))
        if kind == "shape":
            variant = draw_(st.sampled_from([0, 1, 2] if a.ndim > 1 else [0]))
        return Perturbation(kind, key, index, factor, draw_(st.sampled_from([1.0, -1.0])), variant)

    return draw()


# -- a verifier candidate that is wrong in one quantity ------------------------------------


REPORT_NAMES = {"output": "output", "hidden[0]": "h_n", "hidden[1]": "c_n", "input": "grad input",
                "hx[0]": "grad h_0", "hx[1]": "grad c_0"}
DROP_MESSAGES = {"output": "returned no 'output'", "hidden[0]": r"'hidden'\[0\] as None",
                 "hidden[1]": r"'hidden'\[1\] as None", "input": "returned no gradient 'input'",
                 "hx[0]": "returned None for dh_0", "hx[1]": "returned None for dc_0"}


def report_name(key: str) -> str:
    """The name ``compare``'s report gives the quantity ``key`` of a candidate's result."""
    return REPORT_NAMES.get(key, f"grad {key}")


def kind_of(key: str) -> str:
    """The tolerance kind of a quantity: "forward" (output, final states) or "gradient"."""
    return "forward" if key == "output" or key.startswith("hidden") else "gradient"


def drop_message(key: str) -> str:
    """A regex of the CandidateError a dropped quantity must raise."""
    return DROP_MESSAGES.get(key, rf"no gradient for the parameters \['{key}'\]")


def reference_result(spec: Spec, params: Mapping[str, Any], x: Any, hx: tuple, grad_output: Any, grad_hidden: Any,
                     lengths: Any = None, dropout_masks: Any = None) -> dict[str, Any]:
    """The float64 reference's result on a candidate call's arguments (the truth)."""
    f64 = lambda a: None if a is None else np.asarray(a, dtype=np.float64)
    m = spec.reference({k: f64(v) for k, v in params.items()})
    gh = None if grad_hidden is None else tuple(f64(g) for g in grad_hidden)
    res, _, _ = reference_run(m, spec, f64(x), tuple(f64(h) for h in hx), f64(grad_output), gh, lengths,
                              None if dropout_masks is None else [f64(k) for k in dropout_masks])
    return res


def wrong_candidate(p: Perturbation | None, spec: Spec, T: int, B: int, *, on_every_run: bool = False) -> Any:
    """A function candidate: the float64 reference's result in the asked dtype, with ``p`` applied.

    ``p`` applies to the full problem (``spec``, T, B) only, unless
    ``on_every_run``: a bug confined to one returned quantity then leaves the
    sub-problems localisation poses (one layer alone, T=1 steps, truncated
    stacks) right, so the localiser must find it where it is. Above/below use the
    table's entry for the asked dtype and the quantity's kind, under the norm-wise rule.
    """

    def candidate(spec_, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        dtype = np.asarray(input).dtype
        res = reference_result(spec_, params, input, hx, grad_output, grad_hidden, lengths, dropout_masks)
        flat = flatten(res)
        res = {k: (tuple(None if a is None else np.asarray(a, dtype) for a in v) if isinstance(v, tuple)
                   else np.asarray(v, dtype)) for k, v in res.items()}
        full = spec_ == spec and np.shape(input)[:2] == (T, B)
        if p is None or p.key not in flat or not (full or on_every_run):
            return res
        rtol, atol = candidate_tol(dtype, "cpu", kind_of(p.key))
        if p.kind == "dtype":  # the other dtype than the one asked
            value = flat[p.key].astype(np.float32 if dtype == np.float64 else np.float64)
        else:
            value = wrong_value(p, flat[p.key], rtol, atol)  # from the float64 truth
            if value is not None and p.kind != "shape":
                value = value.astype(dtype)
        return replaced(res, p.key, value)

    candidate.__name__ = "wrong_candidate" if p is None else f"wrong_{p.kind}_{p.key}"
    return candidate


# -- gradcheck: the VJP test's directions, and modules whose backward is wrong in one gradient ---------


def vjp_directions(shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """The directions v ~ N(0, 1) that ``check_vjp(..., seed=seed)`` draws, one per array in order."""
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s) for k, s in shapes.items()}


def vjp_wrong_value(p: Perturbation, truth: np.ndarray, v: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """``truth`` perturbed for the inner-product test: above/below move <truth, v> by ``factor`` times the
    test's bound atol + rtol * |<truth, v>|, spread over the place in proportion to v (zero elsewhere)."""
    if p.kind not in ("above", "below"):
        return wrong_value(p, truth)
    a = np.array(truth, dtype=np.float64, copy=True)
    mask = np.zeros(a.shape, dtype=bool)
    mask[p.index] = True
    w = np.where(mask, v, 0.0)
    target = p.sign * p.factor * (atol + rtol * abs(float(np.vdot(truth, v))))
    return a + w * (target / float(np.vdot(w, w)))


def check_names(grads: Mapping[str, Any]) -> dict[str, Any]:
    """A reference backward's result in gradcheck's names: "input", "hx[k]", the parameters."""
    out = {"input": grads["input"]}
    hx = grads["hx"] if isinstance(grads["hx"], tuple) else (grads["hx"],)
    out.update((f"hx[{k}]", h) for k, h in enumerate(hx))
    out.update((k, v) for k, v in grads.items() if k not in ("input", "hx", "carries"))
    return out


def from_check_names(flat: Mapping[str, Any], pair: bool) -> dict[str, Any]:
    """The inverse of :func:`check_names`."""
    out = {k: v for k, v in flat.items() if not k.startswith("hx[")}
    hx = tuple(flat[f"hx[{k}]"] for k in range(2 if pair else 1))
    out["hx"] = hx if pair else hx[0]
    return out


def wrong_backward(cls: type, p: Perturbation, *, method: str = "finite differences", seed: int = 0,
                   rtol: float = 1e-6, atol: float = 1e-8) -> type:
    """A subclass of the reference module ``cls`` whose backward returns one gradient perturbed by ``p``.

    The bound follows ``check_module_gradients``'s method: element-wise on the
    gradient for finite differences, on <gradient, v> for the VJP test.
    """

    class Wrong(cls):  # type: ignore[misc, valid-type]
        def backward(self, tape, *args, **kwargs):
            grads = check_names(super().backward(tape, *args, **kwargs))
            truth = np.asarray(grads[p.key], dtype=np.float64)
            if method == "vjp":
                shapes = {k: np.shape(grads[k]) for k in ("input", *(k for k in grads if k.startswith("hx[")))}
                shapes.update((k, np.shape(v)) for k, v in self.state_dict().items())
                grads[p.key] = vjp_wrong_value(p, truth, vjp_directions(shapes, seed)[p.key], rtol, atol)
            else:
                grads[p.key] = wrong_value(p, truth, rtol, atol, "elementwise")
            return from_check_names(grads, "hx[1]" in grads)

    Wrong.__name__ = Wrong.__qualname__ = f"{cls.__name__}Wrong_{p.kind}_{p.key}"
    return Wrong


def ignores_initial_state(cls: type) -> type:
    """A subclass of a reference cell or layer whose backward differentiates the run from a zero initial state:
    right whenever hx is zero, wrong in every hx path otherwise."""

    class ZeroStateTape(cls):  # type: ignore[misc, valid-type]
        def forward(self, input, hx=None, **kwargs):
            result = super().forward(input, hx, **kwargs)
            return (*result[:-1], super().forward(input, None, **kwargs)[-1])

    ZeroStateTape.__name__ = ZeroStateTape.__qualname__ = f"{cls.__name__}ZeroStateTape"
    return ZeroStateTape
