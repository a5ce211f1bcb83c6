"""compare()'s arguments, resolved: the reference side, the configuration, the dtype, the weights, and the
drawn or given data (states, lengths, dropout masks, cotangents, the gradients expected).

Each function checks one argument and raises ValueError or TypeError naming it, with what was expected
and what was given; nothing here runs a candidate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .candidates import Candidate, Expect, to_numpy
from .modules import is_reference_module, is_torch_module, spec_of_module
from .precision import dtype_name, judged_dtype, narrow_format
from .spec import Spec

WEIGHTS = ("candidate", "reference", "draw")
PARAM_BASES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def reference_side(ref: Any, mode: str | None) -> tuple[Spec | None, dict | None]:
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


def resolve_spec(cand: Candidate, ref_spec: Spec | None) -> Spec:
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


def resolve_dtype(cand: Candidate, dtype: Any) -> tuple[np.dtype, str | None]:
    """(the dtype the candidate's arrays are exchanged in, its narrow storage format or None).

    A candidate storing bfloat16 or float16 exchanges float32 arrays, which hold those formats' values
    exactly, and is judged against the rounding envelope."""
    own = cand.storage or (None if cand.dtype is None else cand.dtype.name)
    if dtype is None:
        return cand.dtype or np.dtype(np.float64), cand.storage
    asked = narrow_format(dtype) or dtype_name(dtype)
    if own is not None and cand.own_params is not None and asked != own:
        raise ValueError(f"dtype: {cand.name} computes in {own} (its weights' dtype); asked {asked}: convert it "
                         "first, or leave dtype unset")
    if narrow_format(dtype):
        return np.dtype(np.float32), narrow_format(dtype)
    return judged_dtype(dtype, "dtype"), None


def resolve_weights(weights: str | None, cand: Candidate, spec: Spec, ref_params: dict | None, seed: int):
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


def default_size(cand: Candidate, axis: int, value: int) -> int:
    fixed = cand.fixed_shape[axis]
    return value if fixed is None else fixed


def initial_states(hx: Any, cand: Candidate, spec: Spec, shapes, rng) -> tuple[tuple, str]:
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


def checked_lengths(lengths: Any, cand: Candidate, T: int, B: int) -> np.ndarray | None:
    if lengths is None:
        return None
    if not cand.takes_lengths:
        raise ValueError(f"lengths: {cand.name} takes no lengths (an exported model runs whole sequences)")
    a = np.asarray(lengths)
    if a.shape != (B,) or a.dtype.kind not in "iu" or a.min(initial=1) < 1 or a.max(initial=1) > T:
        raise ValueError(f"lengths: expected {B} ints in [1, {T}] (one per batch row), got {list(np.ravel(a))}")
    return a.astype(np.int64)


def dropout_masks_for(masks: Any, spec: Spec, rng, T: int, B: int) -> list | None:
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


def cotangent_names(cotangents: Iterable[str] | None, spec: Spec) -> list[str]:
    names = ["output", "h_n", "c_n"][:3 if spec.lstm else 2]
    if cotangents is None:
        return names
    cots = [cotangents] if isinstance(cotangents, str) else list(cotangents)
    bad = [c for c in cots if c not in names]
    if bad or not cots:
        raise ValueError(f"cotangents: expected a non-empty subset of {names}, got {cots}")
    return [n for n in names if n in cots]


def expected_gradients(gradients: Any, cand: Candidate, spec: Spec) -> Expect | None:
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
