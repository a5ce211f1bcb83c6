"""Forward localisation: each layer alone, then teacher-forced steps, then the stack's layer boundaries."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..candidates import Problem
from ..report import Divergence
from ..session import Session
from ..spec import direction_name, layer_params, split_name
from .common import Stage, States, first_output_divergence, judge, processing_index, valid_steps
from .gates import isolate


def forward(S: Session, pb: Problem, rule, stage: Stage, curves: dict) -> Divergence | None:
    spec = pb.spec
    T, B = pb.x.shape[:2]
    D, P = spec.D, spec.P
    _, tape, _ = S.reference(pb)
    valid = valid_steps(pb.lengths, T, B)
    for layer in range(spec.num_layers):
        sub, lp = spec.layer(layer), layer_params(pb.params, layer)
        x_l = np.asarray(tape.layer_input(layer))  # (T, B, I_l), after the previous layer's dropout
        hx_l = tuple(h[layer * D:(layer + 1) * D] for h in pb.hx)
        iso = Problem(sub, lp, x_l, hx_l, pb.lengths, layers=(layer, layer + 1))
        stage.text = f"running layer {layer} alone ({sub}, T={T}, B={B})"
        c_iso, r_iso, b_iso = S.candidate(iso)[0], S.reference(iso)[0], rule.bounds(S, iso)
        seq = first_output_divergence(c_iso["output"], r_iso["output"], pb.lengths, D, P, b_iso("output"))
        final_bad = None
        if seq is None:
            final_bad = next(((d, name, e) for k, name in enumerate(("h_n", "c_n")[:len(hx_l)]) for d in range(D)
                              for ok, e in [judge(c_iso["hidden"][k], r_iso["hidden"][k], b_iso("hidden", k), d)]
                              if not ok), None)
            if final_bad is None:
                continue
        stage.text = f"running teacher-forced steps of layer {layer} (T=1)"
        states = States(tape, layer, D, spec.lstm)
        first, step_err = None, np.zeros((D, T))
        for t in range(T):
            probe = Problem(sub, lp, x_l[t:t + 1], states.at(t), layers=(layer, layer + 1))
            c_p, r_p, b_p = S.candidate(probe)[0], S.reference(probe)[0], rule.bounds(S, probe)
            hidden = list(zip(c_p["hidden"], r_p["hidden"], [b_p("hidden", k) for k in range(len(r_p["hidden"]))],
                              strict=True))
            for d in range(D):
                rows = valid[t]
                sl = slice(d * P, (d + 1) * P)
                errs = [judge(ca, ra, bd, d, rows) for ca, ra, bd in hidden]
                out = (c_p["output"][0][None, :, sl], r_p["output"][0][None, :, sl], b_p("output")[0][None, :, sl])
                out_ok, out_err = judge(*out, 0, rows)
                step_err[d, t] = max([e for _, e in errs] + [out_err])
                if all(ok for ok, _ in errs) and out_ok:
                    continue
                what = "state" if not all(ok for ok, _ in errs) else "output"
                triples = hidden if what == "state" else [out]
                dd = d if what == "state" else 0
                bad_rows = [b for b in np.flatnonzero(rows)
                            if not all(judge(ca, ra, bd, dd, np.arange(B) == b)[0] for ca, ra, bd in triples)]
                n = lambda b: int(pb.lengths[b]) if pb.lengths is not None else T
                b = min(bad_rows, key=lambda b: processing_index(t, d, n(b))) if bad_rows else None
                key = (processing_index(t, d, n(b)) if b is not None else T, d)
                if first is None or key < first[0]:
                    first = (key, d, t, b, what)
        for d in range(D):
            curves[f"h,c step l{layer} {'rev' if d else 'fwd'} (teacher-forced)"] = step_err[d]
        if first is not None:
            _, d, t, b, what = first
            if what == "output":
                return Divergence("step", layer, d, t, "output", None if b is None else int(b), float(step_err[d, t]),
                                  f"one step from the reference's state gives the right state h' but another output "
                                  f"(error {step_err[d, t]:.2e}): a recurrent layer's output at a step is its h' "
                                  "(check what is returned as the output, apart from the state carried)")
            stage.text = f"isolating the gate at layer {layer}, {direction_name(d)} direction, time step {t}"
            probe = Problem(sub, lp, x_l[t:t + 1], states.at(t), layers=(layer, layer + 1))
            gate, how = isolate(S, probe, d, valid[t], rule)
            return Divergence("step", layer, d, t, gate, None if b is None else int(b), float(step_err[d, t]),
                              f"one step from the reference's state differs (error {step_err[d, t]:.2e}); {how}")
        if seq is not None:
            d, t, b, e = seq
            if pb.lengths is not None:
                stage.text = f"running layer {layer} alone without lengths"
                full = replace(iso, lengths=None)
                if first_output_divergence(S.candidate(full)[0]["output"], S.reference(full)[0]["output"], None, D,
                                            P, rule.bounds(S, full)("output")) is None:
                    return Divergence("sequence", layer, d, t, "lengths", b, e,
                                      f"every step is right, and the layer agrees without lengths; with lengths "
                                      f"row {b} (length {int(pb.lengths[b])}) first differs here (error {e:.2e}): "
                                      "check where each row starts and stops (the reverse direction starts at "
                                      "t = length - 1) and that padding carries the state and outputs zeros")
            stage.text = f"running layer {layer} over the steps up to time step {t}"
            found = _step_in_its_sequence(S, iso, states, seq, valid, rule, layer)
            if found is not None:
                return found
            return Divergence("sequence", layer, d, t, "h", b, e,
                              f"every step is right from the reference's state (teacher-forced), but the layer run "
                              f"over the sequence differs here (error {e:.2e}): check the step order and the state "
                              "carried from one step to the next")
        assert final_bad is not None  # seq is None here, so final_bad is set (a layer with neither was skipped)
        d, name, e = final_bad
        return Divergence("final state", layer, d, None, name, None, e,
                          f"outputs agree but the returned {name} differs (error {e:.2e})")
    return _forward_stack(S, pb, rule, stage, valid)


def _window(iso: Problem, d: int, first: int, last: int, hx: tuple) -> Problem:
    """The layer ``iso`` poses over the steps direction d processes from ``first`` to ``last`` (time indices; the
    reverse direction runs first > last), from states ``hx``, each row keeping its own length: its final state
    in direction d is the state after step ``last``."""
    lo, hi = (first, last) if d == 0 else (last, first)
    lengths = None
    if iso.lengths is not None:
        ln = np.asarray(iso.lengths)
        lengths = np.clip(ln - lo, 1, hi - lo + 1)
    return replace(iso, x=iso.x[lo:hi + 1], hx=hx, lengths=lengths)


def _step_in_its_sequence(S: Session, iso: Problem, states: States, seq, valid, rule, layer: int
                          ) -> Divergence | None:
    """Every step is right alone (T=1, from the reference's state), yet the layer first differs at step t of
    direction d. A step and the one before it, from the reference's state, that still differ: the carry between
    them is wrong (None: the caller names the sequence). If they agree but the steps from the first up to t do
    not, step t is wrong where it runs as the step it is (it depends on its place: its index, the first or last
    step): a "step", its gate isolated on that run, every probe reading the state before step t from the
    reference's tape."""
    d, t, b, e = seq
    rows, T = valid[t], iso.x.shape[0]
    start = 0 if d == 0 else T - 1
    differs = lambda p: not all(judge(ca, ra, rule.bounds(S, p)("hidden", k), d, rows)[0] for k, (ca, ra) in
                                enumerate(zip(S.candidate(p)[0]["hidden"], S.reference(p)[0]["hidden"], strict=True)))
    before = t - 1 if d == 0 else t + 1
    if t != start and differs(_window(iso, d, before, t, states.at(before))):
        return None
    prefix = _window(iso, d, start, t, iso.hx)
    if not differs(prefix):
        return None
    gate, how = isolate(S, prefix, d, rows, rule)
    return Divergence("step", layer, d, t, gate, b, e,
                      f"every step is right alone and after the step before it, but this one is wrong where it runs "
                      f"as step {t} of its sequence (error {e:.2e}): it depends on its place; {how}")


def _forward_stack(S: Session, pb: Problem, rule, stage: Stage, valid) -> Divergence | None:
    spec, D, P = pb.spec, pb.spec.D, pb.spec.P
    for depth in range(2, spec.num_layers + 1):
        sub = spec.layers(0, depth)
        params = {k: v for k, v in pb.params.items() if split_name(k)[1] < depth}
        probe = Problem(sub, params, pb.x, tuple(h[:depth * D] for h in pb.hx), pb.lengths,
                        None if pb.masks is None else pb.masks[:depth - 1], layers=(0, depth))
        stage.text = f"running the first {depth} layers"
        seq = first_output_divergence(S.candidate(probe)[0]["output"], S.reference(probe)[0]["output"], pb.lengths,
                                       D, P, rule.bounds(S, probe)("output"))
        if seq is not None:
            d, t, b, e = seq
            drop = spec.dropout_active
            return Divergence("dropout" if drop else "stacking", depth - 1, d, t, "dropout" if drop else "input", b,
                              e, f"layers {depth - 2} and {depth - 1} are right alone; layer {depth - 1}'s input "
                              f"(layer {depth - 2}'s output{' after dropout, scaled by 1/(1-p)' if drop else ''}) is "
                              f"not (error {e:.2e})")
    stage.text = "running the whole stack forward"
    whole = pb.forward_only()
    c_full, r_full, b_full = S.candidate(whole)[0], S.reference(whole)[0], rule.bounds(S, whole)
    for k, name in enumerate(("h_n", "c_n")[:len(pb.hx)]):
        for idx in range(spec.num_layers * D):
            ok, e = judge(c_full["hidden"][k], r_full["hidden"][k], b_full("hidden", k), idx)
            if not ok:
                return Divergence("final state", idx // D, idx % D, None, name, None, e,
                                  f"every output agrees but {name}[{idx}] differs (error {e:.2e}): check the order of "
                                  f"layers and directions in {name} (index = layer * D + direction)")
    return None
