"""Isolating the gate of a wrong forward step: the other form, each bias moved, every gate pinned
(:mod:`.pinned`), and the one gate whose wrong value explains a pinned step.

See the package docstring (step 3) for what each probe shows.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..candidates import Problem
from ..session import Session
from ..spec import Spec
from .common import EQ_H, gate_blocks, judge, with_arrays
from .pinned import MOVED, PIN, pinned_step, side, side_bounds, state_before


def isolate(S: Session, probe: Problem, d: int, rows, rule) -> tuple[str, str]:
    spec = probe.spec

    def differs(p: Problem) -> tuple[bool, bool]:
        c, r, bounds = S.candidate(p)[0], S.reference(p)[0], rule.bounds(S, p)
        bad = [not judge(ca, ra, bounds("hidden", k), d, rows)[0]
               for k, (ca, ra) in enumerate(zip(c["hidden"], r["hidden"], strict=True))]
        return bad[0], (bad[1] if len(bad) > 1 else False)

    form = _other_form(S, probe, d, rows, rule)
    if form:
        return form
    if spec.bias:
        for which in ("bias_ih", "bias_hh"):
            if not any(differs(_bias_moved(probe, d, which, keep=()))):
                G = spec.G
                involved = [j for j in range(G) if any(differs(_bias_moved(probe, d, which, keep=(j,))))]
                letters = spec.gates or ("h",)
                blocks = ("every block" if len(involved) == G and G > 1 else
                          "block " + ", ".join(letters[j] for j in involved)) if involved else "its blocks together"
                gru_n = spec.mode == "GRU" and which == "bias_hh" and involved == [2]
                hint = (": b_hn belongs inside the reset product, r * (W_hn h + b_hn)" if gru_n and spec.reset_after
                        else f": check that {which} is added, once, to its own gates' pre-activations")
                return which, (f"with {which} zero (moved into the other bias where they share a sum) the step "
                               f"agrees; {blocks} of it alone reproduces the error{hint}")
    if not spec.gates:
        return "h", f"check {EQ_H[spec.mode]}"
    pinned = pinned_step(probe, d, keep=None)
    h_bad, c_bad = differs(pinned)
    if h_bad or c_bad:
        one = _one_gate_value(S, probe, d, rows, rule)
        if one is not None:
            return one
        if spec.proj_size and not c_bad and _projection_wrong(S, pinned, d, rows, rule):
            return "W_hr", ("with every gate pinned the cell differs in h, and h' is not W_hr times the unprojected "
                            "state o * tanh(c') the candidate returns through selecting W_hr's: check the projection, "
                            "h' = W_hr (o * tanh(c'))")
        q = "c" if c_bad else "h"
        eq = "c' = f * c + i * g" if q == "c" else EQ_H[spec.mode] + (" then h' = W_hr h'" if spec.proj_size else "")
        return q, f"with every gate pinned to the same value the cell still differs in {q}: check {eq}"
    hits = []
    for g in spec.gates:
        p = pinned_step(probe, d, keep=g)
        if spec.lstm and g in "ig" and p.x.shape[0] == 1:  # with c = 0, f cannot matter: i and g alone
            p = replace(p, hx=(p.hx[0], np.where(np.arange(spec.D)[:, None, None] == d, 0.0, p.hx[1])))
        h_bad, c_bad = differs(p)
        if c_bad if spec.lstm and g in "ifg" else (h_bad or c_bad):  # i, f, g reach h only through c
            hits.append(g)
    if spec.mode == "GRU" and {"r", "n"} <= set(hits):  # r acts through n: either one shows in both runs
        hits = [g for g in hits if g != ("n" if _reset_value_explains(S, probe, d, rows, rule) else "r")]
    if len(hits) == 1:
        g = hits[0]
        return g, (f"with only gate {g}'s rows real (the others pinned) the step differs: check gate {g}: its "
                   "rows (gate order), its activation, its biases and where it enters the cell")
    if hits:
        return hits[0], (f"gates {' and '.join(hits)} each reproduce it with only their own rows real: check the "
                         "gate order (their rows read in each other's place) and their activations")
    return "h", "no single gate reproduces it (an interaction between gates)"


def _bias_moved(probe: Problem, d: int, which: str, keep: tuple) -> Problem:
    """Direction d's ``which`` bias zero outside blocks ``keep``, each zeroed block added to the other bias
    where the two sit in one sum (every block but torch-form GRU's n, whose b_hn is inside r * (...): that
    one is only zeroed). Every other pre-activation stays as it was, so a relu unit keeps its side of 0 and
    a gate bug still shows: only a candidate that mishandles ``which`` can agree."""
    spec, sfx = probe.spec, "_reverse" if d else ""
    key = f"{which}_l0{sfx}"
    other = f"{'bias_hh' if which == 'bias_ih' else 'bias_ih'}_l0{sfx}"
    G = spec.G
    b, o = gate_blocks(probe.params[key], G), [np.array(blk, dtype=np.float64) for blk in gate_blocks(probe.params[other], G)]
    inside_reset = spec.mode == "GRU" and spec.reset_after
    for j in range(G):
        if j not in keep and not (inside_reset and j == 2):
            o[j] = o[j] + b[j]
    moved = [blk if j in keep else np.zeros_like(blk) for j, blk in enumerate(b)]
    return replace(probe, params=with_arrays(probe.params, **{key: np.concatenate(moved), other: np.concatenate(o)}))


def _other_form(S: Session, probe: Problem, d: int, rows, rule) -> tuple[str, str] | None:
    """Does the candidate compute GRU's other form, or RNN's other nonlinearity?"""
    spec = probe.spec
    if spec.mode == "GRU":
        other = replace(spec, reset_after=not spec.reset_after)
    elif spec.mode in ("RNN_TANH", "RNN_RELU"):
        other = replace(spec, mode="RNN_RELU" if spec.mode == "RNN_TANH" else "RNN_TANH")
    else:
        return None
    c = S.candidate(probe)[0]
    asked = replace(probe, spec=other)
    r, bounds = S.reference(asked)[0], rule.bounds(S, asked)
    if not all(judge(ca, ra, bounds("hidden", k), d, rows)[0]
               for k, (ca, ra) in enumerate(zip(c["hidden"], r["hidden"], strict=True))):
        return None
    if spec.mode == "GRU":
        if spec.reset_after:
            return "r", ("reset applied before W_hn: the candidate computes n = tanh(W_in x + b_in + W_hn (r * h) + "
                         "b_hn), the paper's form (ONNX linear_before_reset=0, Keras reset_after=False), where "
                         "torch's is r * (W_hn h + b_hn); if that form is meant, check it with reset_after=False")
        return "r", ("reset applied after W_hn: the candidate computes torch's form n = tanh(W_in x + b_in + "
                     "r * (W_hn h + b_hn)), where the paper's form (reset_after=False) was asked")
    return "h", f"the candidate applies {other.mode[4:].lower()} where {spec.mode[4:].lower()} was asked"


def _sigmoid(a: float) -> float:
    return 1 / (1 + math.exp(-a))


def _affected(cand: list, ref: list, bounds: list) -> np.ndarray:
    """(b,) bool: the rows where a candidate's (h', c') differ from the reference's beyond their bounds."""
    bad = [bd.exceeded(c, r).any(axis=-1) for c, r, bd in zip(cand, ref, bounds, strict=True)]
    return np.logical_or.reduce(bad)


def _pinned_cell(spec: Spec, gate: dict, h_prev, c_prev, w_hr) -> tuple:
    """(h', c') of a pinned step from its gates' values (W_hn h + b_hn is zero there, so r has no effect)."""
    if spec.mode == "GRU":
        return (1 - gate["z"]) * gate["n"] + gate["z"] * h_prev, None
    c = gate["f"] * c_prev + gate["i"] * gate["g"]  # (b, H)
    m = gate["o"] * np.tanh(c)
    return (m if w_hr is None else m @ w_hr.T), c


def _fit_gate(spec: Spec, j: str, gate_sets: list[dict], observed: list, which: int, before: list, w_hr,
              affected: np.ndarray) -> list[tuple]:
    """(h', c') of pinned steps (``gate_sets``: each one's gate values; ``before``: each one's states) with gate j's
    value, on the ``affected`` rows, the one v that best fits ``observed`` (output ``which`` of each step, linear
    in j: y = y0 + v dy, least squares), its right (pinned) value on the others."""
    cell = lambda gates, v, prev: _pinned_cell(spec, {**gates, j: v}, prev[0], prev[1] if len(prev) > 1 else None,
                                               w_hr)
    rows = affected[:, None]  # (b, 1)
    y0 = np.concatenate([np.ravel(cell(g, 0.0, s)[which][affected]) for g, s in zip(gate_sets, before, strict=True)])
    dy = np.concatenate([np.ravel(cell(g, 1.0, s)[which][affected]) for g, s in zip(gate_sets, before, strict=True)]) - y0
    y = np.concatenate([np.ravel(o[affected]) for o in observed])
    v = float(np.dot(y - y0, dy) / np.dot(dy, dy)) if np.dot(dy, dy) > 0 else 0.0
    return [cell(g, np.where(rows, v, g[j]), s) for g, s in zip(gate_sets, before, strict=True)]


def _one_gate_value(S: Session, probe: Problem, d: int, rows, rule) -> tuple[str, str] | None:
    """Does one gate's value alone explain a pinned step that differs?

    Pinned at asinh 1 every gate has one value, so a gate whose pre-activation, activation or output
    is wrong has one wrong value v there, in every row the bug fires in (it may fire in some rows only:
    on the input's value, its sign, one batch row; the others keep the right value). Hypothesis "gate j":
    the reference's cell with gate j's value replaced, in those rows, by the v that fits best (least
    squares on c', or on h' for o and GRU's gates; the cell is linear in each gate there) reproduces the
    candidate's h' and c'. It is tried on the all-pinned step and on one step per gate k with k pinned at
    MOVED (j then takes another value there, fitted apart), so i and g, which meet as i * g, are told
    apart unless the error is a scale of either. Each step's state before it is its own (the reference's,
    from its tape, where the problem runs the steps up to it).
    """
    spec, sfx = probe.spec, "_reverse" if d else ""
    acting = [g for g in spec.gates if g != "r"]  # r acts through W_hn h + b_hn, zero in a pinned step
    pins = {False: float(S.round(PIN)), True: float(S.round(MOVED))}  # the pre-activations as the step reads them
    value = lambda g, m: _sigmoid(pins[m]) if g in "ifoz" else math.tanh(pins[m])
    w_hr = probe.params.get(f"weight_hr_l0{sfx}")
    variants = {k: pinned_step(probe, d, None, moved=k) for k in [None, *acting]}
    cands = {k: side(S.candidate(p)[0]["hidden"], d, rows) for k, p in variants.items()}
    refs = {k: side(S.reference(p)[0]["hidden"], d, rows) for k, p in variants.items()}
    bounds = {k: side_bounds(rule.bounds(S, p), len(refs[k]), d, rows) for k, p in variants.items()}
    before = {k: state_before(S, p, d, rows) for k, p in variants.items()}
    affected = np.logical_or.reduce([_affected(cands[k], refs[k], bounds[k]) for k in variants])
    fits = []
    for j in acting:
        observed = 0 if (spec.mode == "GRU" or j == "o") else 1  # h' or c', linear in gate j
        predictions: dict = {}
        for moved_j in (False, True):  # one value of j where it sits at asinh 1, another where at MOVED
            keys = [k for k in cands if (k == j) == moved_j]
            gate_sets = [{g: value(g, g == k) for g in acting} for k in keys]
            fitted = _fit_gate(spec, j, gate_sets, [cands[k][observed] for k in keys], observed,
                               [before[k] for k in keys], w_hr, affected)
            predictions.update(zip(keys, fitted, strict=True))
        if all(judge(ca, pr, bd)[0] for k in cands
               for ca, pr, bd in zip(cands[k], predictions[k], bounds[k], strict=False) if pr is not None):
            fits.append(j)
    some = "" if affected.all() else f" (in the rows it fires in: {np.flatnonzero(rows)[affected].tolist()})"
    if len(fits) == 1:
        j = fits[0]
        return j, (f"with every gate pinned the step differs, and one wrong value of gate {j} alone reproduces it"
                   f"{some} (the other gates' right): check gate {j}'s pre-activation, its activation and its scale")
    if set(fits) == {"i", "g"}:
        return "i, g", ("with every gate pinned the step differs in c', by a scale of i or of g: the cell sees them "
                        "only as i * g, so one cannot be told from the other: check both")
    return None


def _projection_wrong(S: Session, pinned: Problem, d: int, rows, rule) -> bool:
    """Is h' not W_hr times the candidate's own unprojected state? That state, m = o * tanh(c'), is read
    P units at a time through W_hr's that select units kP, kP + 1, ... (mod H): a projection that is
    right returns them, the same unit the same from every selection, and W_hr m under the real W_hr."""
    key = f"weight_hr_l0{'_reverse' if d else ''}"
    w_hr = np.asarray(pinned.params[key], np.float64)
    P, H = w_hr.shape
    (bound,) = side_bounds(rule.bounds(S, pinned), 1, d, rows)  # h's, on the valid rows: (b, P)
    m, seen = None, np.zeros(H, dtype=bool)
    for k in range(-(-H // P)):
        units = (k * P + np.arange(P)) % H
        select = np.zeros((P, H))
        select[np.arange(P), units] = 1.0
        h = side(S.candidate(replace(pinned, params=with_arrays(pinned.params, **{key: select})))[0]["hidden"], d, rows)[0]
        if m is None:
            m = np.zeros((h.shape[0], H))
        again = seen[units]
        if again.any() and not judge(h[:, again], m[:, units[again]], bound[:, again])[0]:
            return True
        m[:, units], seen[units] = h, True
    assert m is not None  # H >= 1, so one selection ran
    return not judge(side(S.candidate(pinned)[0]["hidden"], d, rows)[0], m @ w_hr.T, bound)[0]


def _reset_value_explains(S: Session, probe: Problem, d: int, rows, rule) -> bool:
    """GRU, r and n both reproduce the error: is it r's value? Every gate pinned, W_hn and b_hn kept, so
    n = tanh(asinh 1 + r u) (u = W_hn h + b_hn; the paper's form: tanh(asinh 1 + r W_hn h + b_hn)) with one
    value of r in the rows the error shows in: the r that fits n (read from h' = (1 - z) n + z h) must
    reproduce h'; a wrong W_hn or b_hn does not reduce to one value of r."""
    spec, sfx = probe.spec, "_reverse" if d else ""
    pin = float(S.round(PIN))  # as the step reads it
    s = _sigmoid(pin)  # z, pinned
    H = spec.hidden_size
    p = pinned_step(probe, d, None, hidden_real={2})
    (h,) = state_before(S, p, d, rows)
    (h_new,) = side(S.candidate(p)[0]["hidden"], d, rows)
    (h_ref,) = side(S.reference(p)[0]["hidden"], d, rows)
    (bound,) = side_bounds(rule.bounds(S, p), 1, d, rows)
    affected = _affected([h_new], [h_ref], [bound])
    w_hn = np.asarray(p.params[f"weight_hh_l0{sfx}"], np.float64)[2 * H:]
    b_hn = np.asarray(p.params[f"bias_hh_l0{sfx}"], np.float64)[2 * H:] if spec.bias else np.zeros(H)
    u, off = (h @ w_hn.T + b_hn, 0.0) if spec.reset_after else (h @ w_hn.T, b_hn)  # (b, H)
    n = np.clip((h_new - s * h) / (1 - s), -1 + 1e-15, 1 - 1e-15)
    y = np.arctanh(n) - pin - off
    ya, ua = y[affected], u[affected]
    v = float(np.sum(ya * ua) / np.sum(ua * ua)) if np.sum(ua * ua) > 0 else 0.0
    return judge(h_new, np.where(affected[:, None], (1 - s) * np.tanh(pin + off + v * u) + s * h, h_ref), bound)[0]
