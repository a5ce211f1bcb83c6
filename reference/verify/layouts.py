"""Weight layouts people port from, to and from torch's (NumPy only).

One layer and one direction at a time; torch's side uses the cell names
``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``, ``bias_ih``, ``bias_hh (G*H,)``.

=========  ======  ===========================================================  ===========================
layout     mode    arrays (gate order along the G*H axis)                       biases
=========  ======  ===========================================================  ===========================
torch      all     weight_ih (GH, I), weight_hh (GH, P) [, weight_hr (P, H)]    bias_ih, bias_hh (GH,)
keras      LSTM    kernel (I, 4H), recurrent_kernel (H, 4H): i, f, c, o         bias (4H,)
keras      GRU     kernel (I, 3H), recurrent_kernel (H, 3H): z, r, h            (2, 3H); reset_after=False: (3H,)
keras      RNN     kernel (I, H), recurrent_kernel (H, H)  (SimpleRNN)          bias (H,)
onnx       LSTM    W (4H, I), R (4H, H): i, o, f, c                             B (8H,) = [Wb, Rb]
onnx       GRU     W (3H, I), R (3H, H): z, r, h                                B (6H,) = [Wb, Rb]
onnx       RNN     W (H, I), R (H, H)                                           B (2H,) = [Wb, Rb]
ifog       LSTM    Wx (I, 4H), Wh (H, 4H): i, f, o, g  (CS231n, many tutorials)  b (4H,)
=========  ======  ===========================================================  ===========================

ONNX keeps a leading direction axis (W (D, GH, I)): :func:`import_weights`
accepts it of length 1 and explains how to split length 2;
:func:`import_state_dict` splits it. ONNX peepholes (``P``) have no place in
torch's LSTM and are refused by name, as is any unknown key.

One merged bias (keras LSTM/RNN, ifog, keras GRU with reset_after=False) enters
the same sum as torch's two, so importing it puts it in ``bias_ih`` and zeros in
``bias_hh`` (``bias_split="half"`` splits it evenly); exporting sums them. A GRU
in torch's form (reset_after=True) cannot merge its biases: b_hn sits inside the
reset product. A round trip foreign -> torch -> foreign is exact; torch ->
foreign -> torch is exact except that a merged bias comes back as (b_ih + b_hh, 0).
Gradients import differently from weights where the bias is merged: torch's
dL/db_ih = dL/db_hh = dL/db.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

LAYOUTS = ("torch", "keras", "onnx", "ifog")
TORCH_ORDER = {"LSTM": "ifgo", "GRU": "rzn", "RNN": "h"}
TORCH_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


class Format(NamedTuple):
    order: str  # gate order in torch's letters
    w_in: str  # name of the input weights
    w_h: str  # name of the recurrent weights
    transposed: bool  # (in, G*H) rather than torch's (G*H, in)
    bias: str  # name of the bias array
    bias_kind: str  # "merged" (one sum), "rows" ((2, GH): input, recurrent), "concat" ((2GH,): input, recurrent)


_FORMATS: dict[tuple[str, str], Format] = {
    ("keras", "LSTM"): Format("ifgo", "kernel", "recurrent_kernel", True, "bias", "merged"),
    ("keras", "GRU"): Format("zrn", "kernel", "recurrent_kernel", True, "bias", "rows"),
    ("keras", "RNN"): Format("h", "kernel", "recurrent_kernel", True, "bias", "merged"),
    ("onnx", "LSTM"): Format("iofg", "W", "R", False, "B", "concat"),
    ("onnx", "GRU"): Format("zrn", "W", "R", False, "B", "concat"),
    ("onnx", "RNN"): Format("h", "W", "R", False, "B", "concat"),
    ("ifog", "LSTM"): Format("ifog", "Wx", "Wh", True, "b", "merged"),
}
_UNSUPPORTED = {"P": "P (ONNX peephole weights): torch's LSTM has no peepholes, so these weights cannot be checked"}


def torch_mode(mode: Any) -> str:
    """"LSTM", "GRU" or "RNN" from a mode name, a Spec or an RNNConfig."""
    mode = mode if isinstance(mode, str) else getattr(mode, "mode", mode)
    mode = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
    if mode not in TORCH_ORDER:
        raise ValueError(f"mode: expected 'LSTM', 'GRU', 'RNN', 'RNN_TANH' or 'RNN_RELU', got {mode!r}")
    return mode


def layout_format(layout: str, mode: str) -> Format | None:
    """The Format of ``layout`` for ``mode`` (None for torch's own)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    mode = torch_mode(mode)
    if layout == "torch":
        return None
    if (layout, mode) not in _FORMATS:
        raise ValueError(f"layout {layout!r}: no {mode} layout (it has "
                         f"{sorted(m for lay, m in _FORMATS if lay == layout)})")
    return _FORMATS[(layout, mode)]


def reorder_gates(a: np.ndarray, src: str, dst: str, axis: int = 0) -> np.ndarray:
    """Permute the gate blocks of ``a`` along ``axis`` from order ``src`` to ``dst`` (e.g. "iofg" -> "ifgo")."""
    if sorted(src) != sorted(dst):
        raise ValueError(f"gate orders {src!r} and {dst!r} name different gates")
    a = np.asarray(a)
    if a.shape[axis] % len(src):
        raise ValueError(f"gate blocks: axis {axis} of shape {a.shape} does not split into {len(src)} blocks")
    blocks = np.split(a, len(src), axis=axis)
    return np.concatenate([blocks[src.index(g)] for g in dst], axis=axis)


def _array(name: str, value: Any, ndim: int) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected real numbers, got dtype {a.dtype}")
    if a.ndim == ndim + 1 and a.shape[0] == 1:
        a = a[0]  # a direction axis of length 1 (ONNX's W[d])
    elif a.ndim == ndim + 1 and a.shape[0] == 2:
        raise ValueError(f"{name}: shape {a.shape} carries 2 directions on its first axis; this function takes one "
                         f"direction: pass {name}[0] (forward) and {name}[1] (reverse) separately, or use "
                         "import_state_dict, which splits the direction axis")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    return a


def _check_keys(weights: Mapping[str, Any], allowed: tuple[str, ...], layout: str, mode: str) -> None:
    for key in weights:
        if key in _UNSUPPORTED and layout == "onnx":
            raise ValueError(f"weights: {_UNSUPPORTED[key]}")
    unknown = [k for k in weights if k not in allowed]
    if unknown:
        raise ValueError(f"weights: unknown keys {unknown} for the {layout} {mode} layout; expected {list(allowed)}")


def import_weights(layout: str, mode: Any, weights: Mapping[str, Any], *, bias_split: str = "ih",
                   reset_after: bool = True) -> dict[str, np.ndarray]:
    """Weights of one layer and direction in ``layout`` -> torch's cell names and layout.

    Every key and shape is checked: unknown keys, peepholes, a bias of the wrong
    length and a two-direction axis raise ValueError naming the array.
    """
    if not isinstance(weights, Mapping):
        raise TypeError(f"weights: expected a mapping of array names to arrays, got {type(weights).__name__}")
    fmt, mode = layout_format(layout, mode), torch_mode(mode)
    if bias_split not in ("ih", "half"):
        raise ValueError(f"bias_split: expected 'ih' or 'half', got {bias_split!r}")
    if fmt is None:
        _check_keys(weights, TORCH_NAMES, layout, mode)
        out = {k: _array(k, v, 1 if k.startswith("bias") else 2) for k, v in weights.items()}
        _check_torch_cell(out, mode)
        return out
    _check_keys(weights, (fmt.w_in, fmt.w_h, fmt.bias), layout, mode)
    for key in (fmt.w_in, fmt.w_h):
        if key not in weights:
            raise ValueError(f"weights: missing {key!r} for the {layout} {mode} layout (got keys {list(weights)})")
    G = len(fmt.order)
    w_in, w_h = _array(fmt.w_in, weights[fmt.w_in], 2), _array(fmt.w_h, weights[fmt.w_h], 2)
    if fmt.transposed:
        w_in, w_h = w_in.T, w_h.T
    GH = w_h.shape[0]
    H = GH // G
    if GH % G or w_h.shape != (GH, H):
        raise ValueError(f"{fmt.w_h}: expected {G} gate blocks of a square (H, H) matrix, i.e. "
                         f"{'(H, ' + str(G) + 'H)' if fmt.transposed else '(' + str(G) + 'H, H)'}, "
                         f"got shape {np.shape(weights[fmt.w_h])}")
    if w_in.shape[0] != GH:
        raise ValueError(f"{fmt.w_in}: expected {GH} gate rows ({G} x H={H}) to match {fmt.w_h}, got shape "
                         f"{np.shape(weights[fmt.w_in])}")
    torch_order = TORCH_ORDER[mode]
    out = {"weight_ih": reorder_gates(w_in, fmt.order, torch_order),
           "weight_hh": reorder_gates(w_h, fmt.order, torch_order)}
    if fmt.bias in weights:
        b_ih, b_hh = _split_bias(fmt, mode, np.asarray(weights[fmt.bias]), GH, bias_split, reset_after)
        out["bias_ih"] = reorder_gates(b_ih, fmt.order, torch_order)
        out["bias_hh"] = reorder_gates(b_hh, fmt.order, torch_order)
    return out


def _split_bias(fmt: Format, mode: str, b: np.ndarray, GH: int, bias_split: str, reset_after: bool):
    name = fmt.bias
    if b.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected real numbers, got dtype {b.dtype}")
    if fmt.bias_kind == "concat":
        if b.ndim == 2 and b.shape[0] == 1:
            b = b[0]
        if b.shape != (2 * GH,):
            raise ValueError(f"{name}: expected shape ({2 * GH},) = [input bias, recurrent bias] of {GH} each, "
                             f"got {b.shape}")
        return b[:GH], b[GH:]
    if fmt.bias_kind == "rows" and b.shape == (2, GH):
        return b[0], b[1]
    if b.shape == (GH,) and (fmt.bias_kind == "merged" or not reset_after):
        return (b, np.zeros_like(b)) if bias_split == "ih" else (b / 2, b / 2)
    if fmt.bias_kind == "rows" and b.shape == (GH,):
        raise ValueError(f"{name}: a merged ({GH},) bias is Keras's reset_after=False GRU; torch's form "
                         "(reset_after=True) needs (2, GH) rows, because b_hn sits inside the reset product. "
                         "Pass reset_after=False to import the paper's form")
    want = f"(2, {GH})" if fmt.bias_kind == "rows" else f"({GH},)"
    raise ValueError(f"{name}: expected shape {want}, got {b.shape}")


def _check_torch_cell(w: dict[str, np.ndarray], mode: str) -> None:
    for key in ("weight_ih", "weight_hh"):
        if key not in w:
            raise ValueError(f"weights: missing {key!r} (got keys {list(w)})")
    G = len(TORCH_ORDER[mode])
    GH, P = w["weight_hh"].shape
    if GH % G:
        raise ValueError(f"weight_hh: expected {G} gate blocks along its rows, got shape {(GH, P)}")
    if w["weight_ih"].shape[0] != GH:
        raise ValueError(f"weight_ih: expected {GH} rows to match weight_hh, got shape {w['weight_ih'].shape}")
    if ("bias_ih" in w) != ("bias_hh" in w):
        raise ValueError("weights: expected both bias_ih and bias_hh, or neither")
    for key in ("bias_ih", "bias_hh"):
        if key in w and w[key].shape != (GH,):
            raise ValueError(f"{key}: expected shape ({GH},), got {w[key].shape}")
    if "weight_hr" in w and w["weight_hr"].shape != (P, GH // G):
        raise ValueError(f"weight_hr: expected shape {(P, GH // G)}, got {w['weight_hr'].shape}")


def export_weights(layout: str, mode: Any, weights: Mapping[str, Any], *, reset_after: bool = True
                   ) -> dict[str, np.ndarray]:
    """torch's cell weights (weight_ih, weight_hh[, bias_ih, bias_hh]) -> ``layout``."""
    fmt, mode = layout_format(layout, mode), torch_mode(mode)
    w = import_weights("torch", mode, weights)  # validates
    if fmt is None:
        return w
    if "weight_hr" in w:
        raise ValueError(f"layout {layout!r}: projections (weight_hr) have no place in this layout")
    torch_order = TORCH_ORDER[mode]
    t = (lambda a: np.ascontiguousarray(a.T)) if fmt.transposed else (lambda a: a)
    out = {fmt.w_in: t(reorder_gates(w["weight_ih"], torch_order, fmt.order)),
           fmt.w_h: t(reorder_gates(w["weight_hh"], torch_order, fmt.order))}
    if "bias_ih" in w:
        b_in = reorder_gates(w["bias_ih"], torch_order, fmt.order)
        b_h = reorder_gates(w["bias_hh"], torch_order, fmt.order)
        kind = "merged" if fmt.bias_kind == "rows" and not reset_after else fmt.bias_kind
        out[fmt.bias] = {"merged": lambda: b_in + b_h, "rows": lambda: np.stack([b_in, b_h]),
                         "concat": lambda: np.concatenate([b_in, b_h])}[kind]()
    return out


def _groups(state_dict: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    from .spec import split_name

    groups: dict[str, dict[str, Any]] = {}
    for name, value in state_dict.items():
        base, layer, d = split_name(name)
        groups.setdefault(f"l{layer}{'_reverse' if d else ''}", {})[base] = value
    return groups


def export_state_dict(layout: str, spec: Any, state_dict: Mapping[str, Any], *, reset_after: bool | None = None
                      ) -> dict[str, dict[str, np.ndarray]]:
    """A torch state_dict -> ``{"l0": weights in layout, "l0_reverse": ..., "l1": ...}``."""
    ra = getattr(spec, "reset_after", True) if reset_after is None else reset_after
    return {key: export_weights(layout, spec, g, reset_after=ra) for key, g in _groups(state_dict).items()}


def import_state_dict(layout: str, spec: Any, nested: Mapping[str, Mapping[str, Any]], *, bias_split: str = "ih",
                      reset_after: bool | None = None) -> dict[str, np.ndarray]:
    """``{"l0": weights in layout, "l0_reverse": ..., ...}`` -> a torch state_dict.

    A group "l<k>" whose ONNX arrays keep a direction axis of 2 (W (2, GH, I))
    is split into "l<k>" and "l<k>_reverse".
    """
    if not isinstance(nested, Mapping):
        raise TypeError(f"weights: expected {{'l0': {{...}}, 'l0_reverse': {{...}}}}, got {type(nested).__name__}")
    ra = getattr(spec, "reset_after", True) if reset_after is None else reset_after
    out: dict[str, np.ndarray] = {}
    for key, weights in _split_directions(nested).items():
        if not (key.startswith("l") and key[1:].removesuffix("_reverse").isdigit()):
            raise ValueError(f"weights: unexpected group {key!r}; expected 'l0', 'l0_reverse', 'l1', ...")
        if not isinstance(weights, Mapping):
            raise TypeError(f"weights[{key!r}]: expected a mapping of array names to arrays, got "
                            f"{type(weights).__name__}")
        try:
            cell = import_weights(layout, spec, weights, bias_split=bias_split, reset_after=ra)
        except (TypeError, ValueError) as e:
            raise type(e)(f"weights[{key!r}]: {e}") from None
        out.update((f"{name}_{key}", v) for name, v in cell.items())
    return out


def _split_directions(nested: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for key, weights in nested.items():
        if isinstance(weights, Mapping) and "W" in weights and np.ndim(weights["W"]) == 3 and \
                np.shape(weights["W"])[0] == 2:
            if key.endswith("_reverse") or f"{key}_reverse" in nested:
                raise ValueError(f"weights[{key!r}]: W carries 2 directions, and a group {key}_reverse exists too")
            out[key] = {k: np.asarray(v)[0] for k, v in weights.items()}
            out[f"{key}_reverse"] = {k: np.asarray(v)[1] for k, v in weights.items()}
        else:
            out[key] = weights
    return out


def import_gradients(layout: str, spec: Any, nested: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Weight gradients ``{"l0": {...}, "l0_reverse": {...}}`` in ``layout`` -> torch's state_dict names."""
    fmt = layout_format(layout, spec)
    out = import_state_dict(layout, spec, nested)
    merged = fmt is not None and (fmt.bias_kind == "merged" or (fmt.bias_kind == "rows" and
                                                                not getattr(spec, "reset_after", True)))
    if merged:
        for k in [k for k in out if k.startswith("bias_ih")]:
            out[k.replace("bias_ih", "bias_hh")] = out[k].copy()  # both torch biases enter the same sum
    return out


def detect_layout(names: Any) -> str:
    """The layout whose array names these are (a torch state_dict, or one layer's foreign arrays)."""
    names = set(names)
    if any(n.startswith("weight_ih") for n in names):
        return "torch"
    for layout in ("keras", "onnx", "ifog"):
        if any(f.w_in in names and f.w_h in names for (lay, _), f in _FORMATS.items() if lay == layout):
            return layout
    raise ValueError(f"weights: cannot tell the layout from the array names {sorted(names)}; expected torch's "
                     "(weight_ih_l0, ...), keras (kernel, recurrent_kernel, bias), onnx (W, R, B) or ifog (Wx, Wh, b)")


def mode_from_shapes(layout: str, weights: Mapping[str, Any]) -> str:
    """"LSTM", "GRU" or "RNN" from one layer's foreign arrays (the number of gate blocks)."""
    fmt = next(f for (lay, _), f in _FORMATS.items() if lay == layout)
    w_h = np.asarray(weights[fmt.w_h])
    if w_h.ndim == 3:
        w_h = w_h[0]
    H, GH = (w_h.shape if fmt.transposed else w_h.shape[::-1])
    G = GH // H if H else 0
    for mode in ("RNN", "GRU", "LSTM"):
        if len(TORCH_ORDER[mode]) == G and (layout, mode) in _FORMATS:
            return mode
    raise ValueError(f"{fmt.w_h}: shape {w_h.shape} is {G} gate blocks; the {layout} layout has "
                     f"{sorted(m for lay, m in _FORMATS if lay == layout)}")
