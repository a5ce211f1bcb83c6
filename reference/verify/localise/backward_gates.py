"""Naming the gate of a wrong backward step: the per-gate row blocks of the weight gradients (or, without
them, of the input gradient), else the carry or the input gradient."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..candidates import Problem
from ..session import Session
from ..spec import split_name
from .bounds import Bounds
from .common import EQ_H, bound_blocks, gate_blocks, judge, with_arrays


def _bad_blocks(probe: Problem, c: dict, r: dict, bounds: Bounds, d: int) -> tuple[list[int], bool]:
    """(gate blocks whose weight or bias gradient rows differ, whether any gate-blocked gradient is provided)."""
    spec, sfx = probe.spec, "_reverse" if d else ""
    G = spec.G
    bad, any_provided = set(), False
    for base in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        key = f"{base}_l0{sfx}"
        if key not in c:
            continue
        any_provided = True
        blocks = zip(gate_blocks(c[key], G), gate_blocks(r[key], G), bound_blocks(bounds(key), len(r[key]), G),
                     strict=True)
        for j, (cb, rb, bb) in enumerate(blocks):
            if not judge(cb, rb, bb)[0]:
                bad.add(j)
    return sorted(bad), any_provided


def _bad_blocks_by_input(S: Session, probe: Problem, d: int, rows, rule) -> list[int]:
    """Without weight gradients: gate j is bad when dx differs with only its W_ih rows kept."""
    spec, key = probe.spec, f"weight_ih_l0{'_reverse' if d else ''}"
    G, out = spec.G, []
    for j in range(G):
        w = np.concatenate([blk if k == j else np.zeros_like(blk) for k, blk in enumerate(gate_blocks(probe.params[key], G))])
        p = replace(probe, params=with_arrays(probe.params, **{key: w}))
        if not judge(S.candidate(p)[0].get("input"), S.reference(p)[0]["input"], rule.bounds(S, p)("input"), None,
                     rows)[0]:
            out.append(j)
    return out


def gradient_gate(S: Session, probe: Problem, results: tuple, bad: list[str], d: int, rows, rule) -> tuple[str, str]:
    """``results``: the probe's (candidate's, reference's, bounds)."""
    spec = probe.spec
    letters = spec.gates or ("h",)
    c, r, bounds = results
    blocks, provided = _bad_blocks(probe, c, r, bounds, d)
    if not provided and S.expect.input:
        blocks = _bad_blocks_by_input(S, probe, d, rows, rule)
    tensors = sorted({split_name(n)[0] for n in bad if n.startswith(("weight_ih", "weight_hh", "bias"))})
    alone = len(tensors) == 1 and len(tensors) == len(bad)  # one gradient differs, every other agrees
    if alone and tensors[0].startswith("bias"):
        b = tensors[0]
        which = ("every block" if len(blocks) == len(letters) > 1 else
                 "block " + ", ".join(letters[j] for j in blocks)) if blocks else "its blocks together"
        return b, (f"only d{b} differs ({which}; the gates' gradients agree in the weights): check d{b} = sum "
                   "over steps and batch rows of dgates, once")
    if len(tensors) == 1 and tensors[0].startswith("weight"):  # one product's gradient, its neighbours right
        w = tensors[0]
        what = (f"d{w} = sum over steps of dgates^T {'x_t' if w == 'weight_ih' else 'h_{t-1}'}")
        if alone and len(blocks) == 1:
            return letters[blocks[0]], (f"only gate {letters[blocks[0]]}'s rows of d{w} differ (its other "
                                        f"gradients agree): check {what}, in that gate's rows")
        return w, f"only d{w} differs (the gates' gradients agree elsewhere): check {what}"
    names = [letters[j] for j in blocks]
    if len(names) == 1:
        g = names[0]
        if spec.gates:
            return g, (f"only gate {g}'s rows of the weight gradients differ: check d{g} (the derivative of "
                       f"gate {g}'s activation, written from its output, and what multiplies it)")
        return "h", f"check dpre = dh * act'(pre) ({EQ_H[spec.mode]})"
    if spec.lstm and set(names) == {"i", "f", "g"}:
        return "c", ("gates i, f and g differ, o agrees: the gradient reaching c' is wrong: check dc = dh * o * "
                     "(1 - tanh(c')^2) + dc' (the tanh derivative from its output)")
    if spec.mode == "GRU" and set(names) == {"r", "n"}:
        return "n", "gates n and r differ (r's gradient flows through n): check dn = dh * (1 - z) * (1 - n^2)"
    if len(names) > 1 and len(names) == len(letters):
        return "h", ("every gate's rows differ: the incoming dh is wrong for this step"
                     + (": check the projection, dm = dh' W_hr" if spec.proj_size else "") +
                     " (or how dh_n / the output gradient is added to the carry)")
    if names:
        return ", ".join(names), f"gates {', '.join(names)} differ: check their derivatives and the gate order"
    bad_set = set(bad)
    if "dh_prev" in bad_set:
        return "h", ("every gate's gradient agrees, but the gradient at h_prev (the carry to the step before) does "
                     "not: check dh_prev = dgates W_hh" + (" + z * dh" if spec.mode == "GRU" else "") +
                     " and that the carry is not detached")
    if "dc_prev" in bad_set:
        return "c", "every gate's gradient agrees, but dc_prev does not: check dc_prev = dc * f"
    if "input" in bad_set:
        return "input", "every gate's gradient agrees, but dx does not: check dx = dgates W_ih"
    hr = [n for n in bad if n.startswith("weight_hr")]
    if hr:
        return "W_hr", "check dW_hr = dh'^T (o * tanh(c'))"
    bias = [n for n in bad if n.startswith("bias")]
    if bias:
        return split_name(bias[0])[0], "its gate rows agree in the weights but not in the bias: check how it is summed"
    return ", ".join(bad), "check these gradients"
