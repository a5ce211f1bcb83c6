"""Two weight sets, in any supported layouts or files, compared per layer, direction and gate block.

    for d in diff_weights("exported.onnx", "trained.npz"):
        print(d)        # layer 1 reverse: R blocks f and o swapped

Both sides are imported to torch's names first (exactly: the importers only
permute and transpose), then every (G*H, ...) tensor is split into its gate
blocks. A block of one side found at another block's place on the other side is
named as a swap or a permutation; a block that is zero on one side only is
named as zeroed. Where only the sum b_ih + b_hh enters the maths (RNN, LSTM,
GRU's r and z blocks, every GRU block in the paper's form), a different split
of the same sum is the same function and is not reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .bounds import one_check
from .files import Limits
from .spec import Spec, direction_name, split_name

SUM_ULPS = 8  # two splits of one sum: each addition rounds by half an ulp of its parts

_LAYOUT_NAMES = {  # torch name -> the layout's own, for messages
    "keras": {"weight_ih": "kernel", "weight_hh": "recurrent_kernel", "bias_ih": "bias (input part)",
              "bias_hh": "bias (recurrent part)", "bias": "bias"},
    "onnx": {"weight_ih": "W", "weight_hh": "R", "bias_ih": "B (input half, Wb)", "bias_hh": "B (recurrent half, Rb)",
             "bias": "B (Wb + Rb)"},
    "ifog": {"weight_ih": "Wx", "weight_hh": "Wh", "bias_ih": "b", "bias_hh": "b", "bias": "b"},
}


@dataclass(frozen=True)
class WeightDifference:
    """One difference: where (layer, direction, tensor in torch's names), which gate blocks, and the sentence."""

    layer: int
    direction: int
    tensor: str  # weight_ih, weight_hh, bias_ih, bias_hh, weight_hr
    gates: tuple[str, ...]
    text: str

    def __str__(self) -> str:
        return self.text


@one_check
def diff_weights(a: Any, b: Any, *, layout_a: str | None = None, layout_b: str | None = None,
                 mode: str | None = None, reset_after: bool | None = None, rtol: float | None = None,
                 trust_pickle: bool = False, limits: Limits | None = None) -> list[WeightDifference]:
    """Where weight sets ``a`` and ``b`` differ (empty: the same function).

    Args:
        a, b: a torch state_dict, ``{"l0": {...}, "l0_reverse": {...}}`` in a
            foreign layout, one layer's foreign arrays, a reference or torch
            module, or a file path (.onnx, .npz, .pt/.pth).
        layout_a, layout_b: the layouts (default: told by the array names).
        mode: "LSTM", "GRU", "RNN_TANH", ... where shapes cannot tell.
        reset_after: GRU's form (default: torch's, or what a file says).
        rtol: blocks are equal when max|a - b| <= rtol * max|b| (default: 0 when
            both are float64, else 1e-6, a few float32 roundings).
        trust_pickle: let a .pt/.pth that is a pickled module load in full,
            which runs the code it names (default: state_dicts only, read with
            torch's weights_only=True; see :mod:`reference.verify.files`).
        limits: what may be read from both files together (:class:`~reference.verify.files.Limits`).
    """
    from .models import load_weights

    sa, spec_a, lay_a = load_weights(a, layout=layout_a, mode=mode, reset_after=reset_after, trust_pickle=trust_pickle)
    sb, spec_b, lay_b = load_weights(b, layout=layout_b, mode=mode or spec_a.mode, reset_after=reset_after,
                                     trust_pickle=trust_pickle)
    if spec_a.mode != spec_b.mode:
        raise ValueError(f"weights: A is {spec_a.mode}, B is {spec_b.mode}; they cannot compute the same function")
    names = _LAYOUT_NAMES.get(lay_a if lay_a != "torch" else lay_b, {})
    if rtol is None:
        exact = all(np.asarray(v).dtype == np.float64 for v in (*sa.values(), *sb.values()))
        rtol = 0.0 if exact else 1e-6
    merged = any(_merges_biases(lay, spec_a) for lay in (lay_a, lay_b))
    return state_dict_diff(sa, sb, spec_a, names=names, rtol=rtol, sums=merged)


def _merges_biases(layout: str, spec: Spec) -> bool:
    """Whether ``layout`` holds one bias b_ih + b_hh for ``spec`` (imported as (b, 0): its split means nothing)."""
    from .layouts import layout_format

    fmt = layout_format(layout, spec.mode)
    return fmt is not None and (fmt.bias_kind == "merged" or (fmt.bias_kind == "rows" and not spec.reset_after))


def state_dict_diff(a: Mapping[str, Any], b: Mapping[str, Any], spec: Spec, *, names: Mapping[str, str] | None = None,
                    rtol: float = 0.0, sums: bool = False) -> list[WeightDifference]:
    """Differences between two torch-named state_dicts of the configuration ``spec``.

    ``sums``: one side holds a merged bias (imported as (b_ih + b_hh, 0)), so the
    blocks where only the sum matters are compared, and named, as that sum (under
    ``bias_ih``, where the merged bias lives in torch's names), never per part.
    """
    names = names or {}
    out: list[WeightDifference] = []
    for key in sorted(set(a) ^ set(b)):
        base, layer, d = split_name(key)
        side = "A" if key in a else "B"
        out.append(WeightDifference(layer, d, base, (), f"layer {layer} {direction_name(d)}: "
                                    f"{names.get(base, base)} only in {side}"))
    groups = sorted({split_name(k)[1:] for k in set(a) & set(b)})
    for layer, d in groups:
        sfx = f"_l{layer}{'_reverse' if d else ''}"
        get = lambda side, base, sfx=sfx: (np.asarray(side[base + sfx], np.float64) if base + sfx in side else None)
        where = f"layer {layer} {direction_name(d)}"
        sum_only = _sum_only_blocks(spec)
        for base in ("weight_ih", "weight_hh", "weight_hr", "bias_ih", "bias_hh"):
            x, y = get(a, base), get(b, base)
            if x is None or y is None:
                continue
            label = names.get(base, base)
            if x.shape != y.shape:
                out.append(WeightDifference(layer, d, base, (), f"{where}: {label} shape {x.shape} in A, {y.shape} in B"))
                continue
            if base == "weight_hr":
                if not _close(x, y, rtol):
                    out.append(WeightDifference(layer, d, base, (), f"{where}: {label} differs "
                                                f"(max abs {np.abs(x - y).max():.2e})"))
                continue
            skip = set()
            if base.startswith("bias"):
                other = "bias_hh" if base == "bias_ih" else "bias_ih"
                xo, yo = get(a, other), get(b, other)
                if xo is not None and yo is not None:
                    same_sum = {j for j in sum_only if _sums_close(x, xo, y, yo, j, spec.G, rtol)}
                    if sums:
                        if base == "bias_ih":  # the sum, once, over the blocks where only it matters
                            out.extend(_block_differences(x + xo, y + yo, spec, rtol,
                                                          same_sum | (set(range(spec.G)) - sum_only), where,
                                                          names.get("bias", "bias_ih + bias_hh"), layer, d, base))
                        skip = sum_only
                    else:
                        skip = same_sum
            out.extend(_block_differences(x, y, spec, rtol, skip, where, label, layer, d, base))
    return out


def _sum_only_blocks(spec: Spec) -> set[int]:
    """Gate blocks whose biases enter one sum (so only b_ih + b_hh matters there)."""
    if spec.mode == "GRU" and spec.reset_after:
        return {0, 1}  # r, z; b_hn sits inside the reset product
    return set(range(spec.G))


def _block(a: np.ndarray, j: int, G: int) -> np.ndarray:
    n = a.shape[0] // G
    return a[j * n:(j + 1) * n]


def _sums_close(x, xo, y, yo, j: int, G: int, rtol: float) -> bool:
    """Block j of x + xo against y + yo: within rtol, plus the rounding of the two sums (a few ulps of their parts:
    two splits of one sum agree to that, not bit for bit)."""
    sx, sy = _block(x + xo, j, G), _block(y + yo, j, G)
    parts = max(float(np.abs(_block(p, j, G)).max(initial=0.0)) for p in (x, xo, y, yo))
    slack = SUM_ULPS * float(np.finfo(np.float64).eps) * parts
    return float(np.abs(sx - sy).max(initial=0.0)) <= rtol * float(np.abs(sy).max(initial=0.0)) + slack


def _close(x: np.ndarray, y: np.ndarray, rtol: float) -> bool:
    return x.shape == y.shape and float(np.abs(x - y).max(initial=0.0)) <= rtol * float(np.abs(y).max(initial=0.0))


def _block_differences(x, y, spec: Spec, rtol, skip, where, label, layer, d, base) -> list[WeightDifference]:
    G, letters = spec.G, spec.gates or ("h",)
    bad = [j for j in range(G) if j not in skip and not _close(_block(x, j, G), _block(y, j, G), rtol)]
    if not bad:
        return []
    out = []
    # Which of B's blocks does each differing block of A hold?
    holds = {j: next((k for k in range(G) if k != j and _close(_block(x, j, G), _block(y, k, G), rtol)), None)
             for j in bad}
    done: set[int] = set()
    for j in bad:
        k = holds[j]
        if j in done or k is None:
            continue
        if holds.get(k) == j:
            done |= {j, k}
            gates = (letters[j], letters[k])
            out.append(WeightDifference(layer, d, base, gates, f"{where}: {label} blocks {gates[0]} and {gates[1]} "
                                        "swapped"))
    cycle = {j: k for j, k in holds.items() if j not in done and k is not None}  # holds follows bad's order
    if cycle:
        done |= set(cycle)
        text = ", ".join(f"{letters[j]} holds B's {letters[k]}" for j, k in cycle.items())
        out.append(WeightDifference(layer, d, base, tuple(letters[j] for j in cycle),
                                    f"{where}: {label} blocks permuted: {text}"))
    rest = [j for j in bad if j not in done]
    zero_a = [j for j in rest if not _block(x, j, G).any() and _block(y, j, G).any()]
    zero_b = [j for j in rest if not _block(y, j, G).any() and _block(x, j, G).any()]
    for side, zs in (("A", zero_a), ("B", zero_b)):
        if zs:
            every = len(zs) == G
            blocks = "every block" if every else "block" + ("s " if len(zs) > 1 else " ") + \
                ", ".join(letters[j] for j in zs)
            out.append(WeightDifference(layer, d, base, tuple(letters[j] for j in zs),
                                        f"{where}: {label} {blocks} zero in {side} only"))
    other = [j for j in rest if j not in zero_a and j not in zero_b]
    if other:
        err = max(float(np.abs(_block(x, j, G) - _block(y, j, G)).max()) for j in other)
        out.append(WeightDifference(layer, d, base, tuple(letters[j] for j in other),
                                    f"{where}: {label} block{'s' if len(other) > 1 else ''} "
                                    f"{', '.join(letters[j] for j in other)} differ (max abs {err:.2e})"))
    return out

