"""Weight layouts people port from, to and from torch's.

One layer and one direction at a time; torch's side uses the cell names
``weight_ih (G*H, I)``, ``weight_hh (G*H, P)``, ``bias_ih``, ``bias_hh (G*H,)``.

=========  ======  ================================================================  ==========
layout     mode    arrays (gate order along the G*H axis)                            biases
=========  ======  ================================================================  ==========
torch      LSTM    weight_ih (4H, I), weight_hh (4H, H): i, f, g, o                  two
torch      GRU     same, 3H: r, z, n (b_hn inside the reset product)                 two
keras      LSTM    kernel (I, 4H), recurrent_kernel (H, 4H): i, f, c, o              one (4H,)
keras      GRU     kernel (I, 3H), recurrent_kernel (H, 3H): z, r, h; reset_after    (2, 3H)
onnx       LSTM    W (4H, I), R (4H, H): i, o, f, c (one direction: W[d], R[d], B[d])  B (8H,)
onnx       GRU     W (3H, I), R (3H, H): z, r, h; linear_before_reset=1              B (6H,)
ifog       LSTM    Wx (I, 4H), Wh (H, 4H): i, f, o, g (CS231n and many tutorials)    one (4H,)
=========  ======  ================================================================  ==========

One merged bias (keras LSTM, ifog) enters the same sum as torch's two, so
importing it puts it in ``bias_ih`` and zeros in ``bias_hh`` (``bias_split="half"``
splits it evenly); exporting sums them. A round trip foreign -> torch -> foreign
is exact; torch -> foreign -> torch is exact except that a merged bias comes back
as (b_ih + b_hh, 0). Gradients import differently from weights where the bias is
merged: torch's dL/db_ih = dL/db_hh = dL/db. Keras GRU with ``reset_after=False``
and ONNX GRU with ``linear_before_reset=0`` put the reset gate in the paper's
position, which no torch weights can express: they are not supported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

LAYOUTS = ("torch", "keras", "onnx", "ifog")
_TORCH_ORDER = {"LSTM": "ifgo", "GRU": "rzn"}
# (gate order in torch's letters, input-weight name, transposed?, hidden-weight name, bias kind)
_FORMATS: dict[tuple[str, str], tuple[str, str, bool, str, str]] = {
    ("keras", "LSTM"): ("ifgo", "kernel", True, "recurrent_kernel", "merged"),
    ("keras", "GRU"): ("zrn", "kernel", True, "recurrent_kernel", "rows"),  # bias (2, 3H)
    ("onnx", "LSTM"): ("iofg", "W", False, "R", "concat"),  # B = [Wb, Rb]
    ("onnx", "GRU"): ("zrn", "W", False, "R", "concat"),
    ("ifog", "LSTM"): ("ifog", "Wx", True, "Wh", "merged"),
}
_BIAS_NAME = {"keras": "bias", "onnx": "B", "ifog": "b"}


def _format(layout: str, mode: str):
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    key = (layout, mode)
    if layout != "torch" and key not in _FORMATS:
        raise ValueError(f"layout {layout!r}: no {mode} layout (supported: "
                         f"{sorted(m for lay, m in _FORMATS if lay == layout)})")
    return _FORMATS.get(key)


def reorder_gates(a: np.ndarray, src: str, dst: str, axis: int = 0) -> np.ndarray:
    """Permute the gate blocks of ``a`` along ``axis`` from order ``src`` to ``dst`` (e.g. "iofg" -> "ifgo")."""
    if sorted(src) != sorted(dst):
        raise ValueError(f"gate orders {src!r} and {dst!r} name different gates")
    blocks = np.split(np.asarray(a), len(src), axis=axis)
    return np.concatenate([blocks[src.index(g)] for g in dst], axis=axis)


def import_weights(layout: str, mode: str, weights: Mapping[str, Any], *, bias_split: str = "ih") -> dict[str, np.ndarray]:
    """Weights of one layer and direction in ``layout`` -> torch's cell names and layout."""
    fmt = _format(layout, mode)
    if fmt is None:
        return {k: np.asarray(v) for k, v in weights.items()}
    order, w_in, transposed, w_h, bias_kind = fmt
    torch_order = _TORCH_ORDER[mode]
    t = (lambda a: np.asarray(a).T) if transposed else np.asarray
    out = {"weight_ih": reorder_gates(t(weights[w_in]), order, torch_order),
           "weight_hh": reorder_gates(t(weights[w_h]), order, torch_order)}
    b = weights.get(_BIAS_NAME[layout])
    if b is not None:
        b = np.asarray(b)
        if bias_kind == "merged":
            if bias_split not in ("ih", "half"):
                raise ValueError(f"bias_split: expected 'ih' or 'half', got {bias_split!r}")
            b = reorder_gates(b, order, torch_order)
            out["bias_ih"], out["bias_hh"] = (b, np.zeros_like(b)) if bias_split == "ih" else (b / 2, b / 2)
        else:
            b_in, b_h = (b[0], b[1]) if bias_kind == "rows" else np.split(b, 2)
            out["bias_ih"], out["bias_hh"] = reorder_gates(b_in, order, torch_order), reorder_gates(b_h, order, torch_order)
    return out


def export_weights(layout: str, mode: str, weights: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """torch's cell weights (weight_ih, weight_hh[, bias_ih, bias_hh]) -> ``layout``."""
    fmt = _format(layout, mode)
    if fmt is None:
        return {k: np.asarray(v) for k, v in weights.items()}
    order, w_in, transposed, w_h, bias_kind = fmt
    torch_order = _TORCH_ORDER[mode]
    t = (lambda a: np.ascontiguousarray(a.T)) if transposed else (lambda a: a)
    out = {w_in: t(reorder_gates(weights["weight_ih"], torch_order, order)),
           w_h: t(reorder_gates(weights["weight_hh"], torch_order, order))}
    if weights.get("bias_ih") is not None:
        b_in = reorder_gates(weights["bias_ih"], torch_order, order)
        b_h = reorder_gates(weights["bias_hh"], torch_order, order)
        out[_BIAS_NAME[layout]] = {"merged": lambda: b_in + b_h, "rows": lambda: np.stack([b_in, b_h]),
                                   "concat": lambda: np.concatenate([b_in, b_h])}[bias_kind]()
    return out


def import_gradients(layout: str, spec: Any, nested: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Weight gradients ``{"l0": {...}, "l0_reverse": {...}}`` in ``layout`` -> torch's state_dict names.

    ``spec`` is a ``torch_impl.compare.Spec`` (only ``mode`` is read)."""
    mode = _mode(spec)
    fmt = _format(layout, mode)
    out = {}
    for key, grads in nested.items():
        g = import_weights(layout, mode, grads)
        if fmt is not None and fmt[4] == "merged" and "bias_ih" in g:
            g["bias_hh"] = g["bias_ih"].copy()  # both torch biases enter the same sum as the merged one
        out.update((f"{name}_{key}", v) for name, v in g.items())
    return out


def export_state_dict(layout: str, spec: Any, state_dict: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """A torch state_dict -> ``{"l0": weights in layout, "l0_reverse": ..., "l1": ...}``."""
    mode = _mode(spec)
    groups: dict[str, dict[str, Any]] = {}
    for name, value in state_dict.items():
        base, _, key = name.partition("_l")
        groups.setdefault("l" + key, {})[base] = np.asarray(value)
    if layout != "torch" and any("weight_hr" in g for g in groups.values()):
        raise ValueError(f"layout {layout!r}: projections (weight_hr) have no place in this layout")
    return {key: export_weights(layout, mode, g) for key, g in groups.items()}


def import_state_dict(layout: str, spec: Any, nested: Mapping[str, Mapping[str, Any]], *,
                      bias_split: str = "ih") -> dict[str, np.ndarray]:
    """``{"l0": weights in layout, ...}`` -> a torch state_dict (load it with ``load_into``)."""
    mode = _mode(spec)
    out = {}
    for key, weights in nested.items():
        out.update((f"{name}_{key}", v) for name, v in import_weights(layout, mode, weights,
                                                                     bias_split=bias_split).items())
    return out


def _mode(spec: Any) -> str:
    mode = spec if isinstance(spec, str) else spec.mode
    return {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
