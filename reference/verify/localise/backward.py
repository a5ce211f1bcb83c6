"""Backward localisation: each layer alone (top-down, as BPTT runs), then teacher-forced single steps given
the reference's incoming gradient, then runs that start at each step."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..candidates import CandidateError, Problem
from ..report import Divergence
from ..session import Session
from ..spec import Spec, layer_params, split_name
from .backward_gates import gradient_gate
from .bounds import Bounds
from .common import Stage, States, judge, valid_steps


def _layer_douts(S: Session, pb: Problem, tape) -> list:
    """The reference's gradient at each layer's output (T, B, D*P), from the stack above it."""
    spec, D, L = pb.spec, pb.spec.D, pb.spec.num_layers
    douts: list = [None] * L
    douts[L - 1] = pb.grad_output
    masks = tape.dropout_masks  # scaled keep masks, or None
    for layer in range(L - 1):
        upper = replace(spec, input_size=D * spec.P, num_layers=L - layer - 1)
        params = {}
        for k, v in pb.params.items():
            base, lay, d = split_name(k)
            if lay > layer:
                params[f"{base}_l{lay - layer - 1}{'_reverse' if d else ''}"] = v
        # the stack above keeps the masks between its own layers; one layer alone applies no dropout
        above_masks = pb.masks[layer + 1:] if pb.masks is not None and upper.dropout_active else None
        above = Problem(upper, params, np.asarray(tape.layer_input(layer + 1)),
                        tuple(h[(layer + 1) * D:] for h in pb.hx), pb.lengths, above_masks, pb.grad_output,
                        None if pb.grad_hidden is None else tuple(None if g is None else g[(layer + 1) * D:]
                                                                  for g in pb.grad_hidden))
        dx = S.reference(above)[0]["input"]  # (T, B, D*P)
        mask = masks[layer] if layer < len(masks) else None
        douts[layer] = dx if mask is None else dx * np.asarray(mask)
    return douts


def _grad_names(S: Session, params: dict) -> list[str]:
    return S.expect.param_names(params)


def gradient(S: Session, pb: Problem, rule, stage: Stage, curves: dict) -> Divergence | None:
    spec = pb.spec
    T, B = pb.x.shape[:2]
    D = spec.D
    _, tape, _ = S.reference(pb)
    valid = valid_steps(pb.lengths, T, B)
    if spec.num_layers > 1 and "output" not in S.cotangents:
        raise CandidateError("a layer below the top one cannot be posed alone: the candidate takes no cotangent on "
                             "output (cotangents=...)")
    stage.text = "computing the reference's gradient at each layer's output"
    douts = _layer_douts(S, pb, tape)
    for layer in reversed(range(spec.num_layers)):  # BPTT order: the top layer first
        sub, lp = spec.layer(layer), layer_params(pb.params, layer)
        x_l = np.asarray(tape.layer_input(layer))
        hx_l = tuple(h[layer * D:(layer + 1) * D] for h in pb.hx)
        gh_l = None if pb.grad_hidden is None else tuple(None if g is None else g[layer * D:(layer + 1) * D]
                                                         for g in pb.grad_hidden)
        iso = Problem(sub, lp, x_l, hx_l, pb.lengths, None, douts[layer], gh_l, layers=(layer, layer + 1))
        stage.text = f"running layer {layer} alone, backward ({sub}, T={T}, B={B})"
        c_iso = S.candidate(iso)[0]
        r_iso, iso_tape, r_grads = S.reference(iso, carries=True)
        if not _grad_differs(S, c_iso, r_iso, lp, rule.bounds(S, iso)):
            continue
        carries = r_grads["carries"][0]  # [direction][t] -> (dh_t,) or (dh_t, dc_t)
        stage.text = f"running teacher-forced backward steps of layer {layer} (T=1)"
        found = _gradient_steps(S, sub, lp, x_l, iso_tape, carries, valid, pb.lengths, rule, layer, curves)
        if found is not None:
            return found
        stage.text = f"running layer {layer} backward from each step"
        return _gradient_sequence(S, iso, iso_tape, valid, rule, layer, c_iso, r_iso)
    return Divergence("gradient stacking", spec.num_layers - 1, None, None,
                      "dropout" if spec.dropout_active else "input", None, math.nan,
                      "every layer's gradients are right alone; the gradient passed from one layer to the one below "
                      + ("(through the dropout mask, scaled by 1/(1-p)) " if spec.dropout_active else "") + "is not")


def _grad_differs(S: Session, c: dict, r: dict, params: dict, bounds: Bounds, d: int | None = None, rows=None
                  ) -> list[str]:
    """Names of the provided gradients that differ (``d``: only direction d's hx and parameters)."""
    bad = []
    if S.expect.input and not judge(c.get("input"), r["input"], bounds("input"), None, rows)[0]:
        bad.append("input")
    for k, name in enumerate(("h", "c")[:len(r["hx"])]):
        if S.expect.hx[k] and c.get("hx") is not None and not judge(c["hx"][k], r["hx"][k], bounds("hx", k), d,
                                                                     rows)[0]:
            bad.append(f"d{name}_prev")
    for n in _grad_names(S, params):
        if d is not None and split_name(n)[2] != d:
            continue
        if not judge(c[n], r[n], bounds(n))[0]:
            bad.append(n)
    return bad


def _probe_cotangents(S: Session, spec: Spec, carry: tuple, d: int, rows, B: int):
    """(grad_output, grad_hidden) of a T=1 probe carrying ``carry`` = (dh_t[, dc_t]) on direction d only."""
    D, P = spec.D, spec.P
    dh = np.where(rows[:, None], np.asarray(carry[0]), 0.0)  # (B, P); padded rows: no step, no gradient
    g_out, g_h = None, None
    if "h_n" in S.cotangents:
        g_h = np.zeros((D, B, P))
        g_h[d] = dh
        if "output" in S.cotangents:
            g_out = np.zeros((1, B, D * P))
    elif "output" in S.cotangents:
        g_out = np.zeros((1, B, D * P))
        g_out[0, :, d * P:(d + 1) * P] = dh
    else:
        raise CandidateError("a single step cannot be given its incoming gradient: the candidate takes no cotangent "
                             "on output or h_n")
    g_c = None
    if spec.lstm and "c_n" in S.cotangents:
        g_c = np.zeros((D, B, spec.hidden_size))
        g_c[d] = np.where(rows[:, None], np.asarray(carry[1]), 0.0)
    return g_out, ((g_h, g_c) if spec.lstm else (g_h,))


def _gradient_steps(S: Session, sub: Spec, lp: dict, x_l, tape, carries, valid, lengths, rule, layer: int,
                    curves: dict) -> Divergence | None:
    T, B = x_l.shape[:2]
    D = sub.D
    first = None
    errs = np.zeros((D, T))
    states = States(tape, 0, D, sub.lstm)
    for d in range(D):
        for t in range(T):
            rows = valid[t]
            if not rows.any():
                continue
            g_out, g_hid = _probe_cotangents(S, sub, carries[d][t], d, rows, B)
            probe = Problem(sub, lp, x_l[t:t + 1], states.at(t), None, None, g_out, g_hid, layers=(layer, layer + 1))
            c, r, bounds = S.candidate(probe)[0], S.reference(probe)[0], rule.bounds(S, probe)
            bad = _grad_differs(S, c, r, lp, bounds, d, rows)
            carried = [(ca, ra, bounds("hx", k)) for k, (ca, ra) in  # no hx from the candidate: nothing to compare
                       enumerate(zip(c.get("hx") or (), r["hx"], strict=False))]
            errs[d, t] = max([judge(c.get("input"), r["input"], bounds("input"), None, rows)[1]] +
                             [judge(ca, ra, bd, d, rows)[1] for ca, ra, bd in carried])
            if not bad:
                continue
            n = lambda b: int(lengths[b]) if lengths is not None else T
            one = lambda b: np.arange(B) == b
            bad_rows = [b for b in np.flatnonzero(rows)
                        if not judge(c.get("input"), r["input"], bounds("input"), None, one(b))[0] or any(
                            not judge(ca, ra, bd, d, one(b))[0] for ca, ra, bd in carried)]
            # BPTT order, per row: the last processed step first (forward: t = n-1 down; reverse: t = 0 up)
            k, row = min(((n(b) - 1 - t if d == 0 else t), b) for b in (bad_rows or np.flatnonzero(rows)))
            if first is None or (k, d) < first[0]:
                first = ((k, d), d, t, int(row) if bad_rows else None, probe, c, r, bounds, bad)
    for d in range(D):
        curves[f"gradient step l{layer} {'rev' if d else 'fwd'} (teacher-forced)"] = errs[d]
    if first is None:
        return None
    _, d, t, b, probe, c, r, bounds, bad = first
    gate, how = gradient_gate(S, probe, (c, r, bounds), bad, d, valid[t], rule)
    return Divergence("gradient step", layer, d, t, gate, b, float(errs[d, t]),
                      f"backward through this one step, given the reference's incoming gradient, differs in "
                      f"{', '.join(_pretty(n, layer) for n in bad)}; {how}")


def _pretty(name: str, layer: int) -> str:
    if name.endswith(("_l0", "_l0_reverse")):
        return name.replace("_l0", f"_l{layer}")
    return {"input": "dx"}.get(name, name)


def _gradient_sequence(S: Session, iso: Problem, tape, valid, rule, layer: int, c_iso: dict, r_iso: dict
                       ) -> Divergence:
    spec = iso.spec
    T = iso.x.shape[0]
    D, P = spec.D, spec.P
    if iso.lengths is not None:
        full = replace(iso, lengths=None)
        if not _grad_differs(S, S.candidate(full)[0], S.reference(full)[0], iso.params, rule.bounds(S, full)):
            return Divergence("gradient sequence", layer, None, None, "lengths", None, math.nan,
                              "every step's backward is right, and the layer's gradients agree without lengths: "
                              "check where the backward pass of each row starts and stops, and that padded steps "
                              "pass the gradient straight through")
    first = None
    states = States(tape, 0, D, spec.lstm)
    for d in range(D):
        for t in range(T):
            window = slice(t, T) if d == 0 else slice(0, t + 1)
            sub_len = None
            if iso.lengths is not None:
                ln = np.asarray(iso.lengths)
                sub_len = np.clip(ln - t, 1, None) if d == 0 else np.minimum(ln, t + 1)
            starts = states.at(t)
            hx = tuple(np.stack([starts[s][dd] if dd == d else iso.hx[s][dd] for dd in range(D)])
                       for s in range(len(iso.hx)))
            g_out = None
            if iso.grad_output is not None:
                g_out = np.zeros_like(iso.grad_output[window])
                g_out[..., d * P:(d + 1) * P] = iso.grad_output[window][..., d * P:(d + 1) * P]
            g_hid = None if iso.grad_hidden is None else tuple(
                None if g is None else np.stack([g[dd] if dd == d else np.zeros_like(g[dd]) for dd in range(D)])
                for g in iso.grad_hidden)
            probe = Problem(spec, iso.params, iso.x[window], hx, sub_len, None, g_out, g_hid, layers=iso.layers)
            c, r, bounds = S.candidate(probe)[0], S.reference(probe)[0], rule.bounds(S, probe)
            rows = valid[t]
            for k, q in enumerate(("h", "c")[:len(r["hx"])]):
                if not S.expect.hx[k] or c.get("hx") is None:
                    continue
                ok, e = judge(c["hx"][k], r["hx"][k], bounds("hx", k), d, rows)
                if not ok:
                    order = (T - 1 - t) if d == 0 else t
                    if first is None or (order, d) < first[0]:
                        first = ((order, d), d, t, q, e)
    if first is None:
        bad = _grad_differs(S, c_iso, r_iso, iso.params, rule.bounds(S, iso))
        return Divergence("gradient sequence", layer, None, None, ", ".join(_pretty(n, layer) for n in bad), None,
                          math.nan, "every step's backward is right and every carry agrees, but these gradients of "
                          "the whole layer differ: check how they are summed over steps")
    _, d, t, q, e = first
    return Divergence("gradient sequence", layer, d, t, q, None, e,
                      f"every step's backward is right alone, but the gradient reaching the state before this step "
                      f"(d{q}, error {e:.2e}) differs: check how the carry is passed from one step to the next")
