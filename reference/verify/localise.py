"""Where a candidate first goes wrong: (layer, direction, time step, gate or quantity).

Runs only when a comparison fails, on sub-problems posed from the reference's
own tape (``tape.layer_input``, ``tape.steps``, backward's ``carries``), so an
upstream error cannot hide a downstream one.

Forward, layer by layer:

1. *isolated layer*: the layer alone on the input the reference gave it; the
   first (direction, time step) whose output differs, in each row's own
   processing order (a reverse row starts at its own last valid step).
2. *teacher-forced steps*: T=1 runs from the reference's state before each step.
   A step that differs means the cell equations are wrong ("step"); if every step
   agrees, the chaining is ("sequence": order, lengths, state carry; "lengths"
   when the layer agrees once lengths are dropped).
3. *isolation* of a wrong step, on that step:
   GRU's other form (reset before W_hn) and RNN's other nonlinearity are tried
   whole; each bias is zeroed, its blocks moved into the other bias where the
   two share a sum, so every pre-activation stays (a step that then agrees
   names the bias, and its gate blocks); then every gate is pinned to the same
   value (the input reads x_0 = 1, a pinned gate's W_ih row is (asinh 1, 0, ...),
   its other rows and biases 0, so sigmoid = tanh = 1/sqrt 2 and a permutation
   of gates cannot show). A pinned cell that still differs is named at one gate
   when one wrong value of that gate alone reproduces it (tried with each gate
   moved to a second pinned value too), so a wrong activation is named where it
   is, not where its value goes; else at the combination (c, h, or W_hr when h'
   is not W_hr times the unprojected state read through selecting W_hr's).
   A pinned cell that agrees names the gates whose own rows alone reproduce the
   error (GRU's r keeps W_hn and b_hn, through which it acts, and where r and n
   both reproduce it, r is named when one value of r explains it; LSTM's i and
   g are tried from c = 0, where f cannot matter, and i, f, g count only where c
   differs, since they reach h through c).
4. truncated stacks find the first layer boundary that goes wrong ("dropout"
   when dropout is active, else "stacking").

Backward (when the forward agrees), layers top-down as BPTT runs:

1. each layer alone, given the reference's gradient at its output;
2. teacher-forced single steps given the reference's incoming gradient at the
   state after the step (``carries``), in BPTT order per row; the per-gate row
   blocks of the weight gradients name the gate (without weight gradients, the
   input gradient with one gate's W_ih rows kept; one gate's rows of one weight
   gradient, all else right, name that gate; a bias gradient alone, that bias);
   a step whose gate blocks agree names the carry (h, c) or the input gradient;
3. if every step agrees, runs that start at each step find the first state
   whose incoming gradient differs ("gradient sequence").

When a sub-problem cannot run (the candidate refuses another shape), the
report keeps the mismatch and says where and why localisation stopped.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from reference.tolerances import compare_arrays

from .candidates import CandidateError, Problem, Session
from .deadline import set_phase
from .report import CompareReport, Divergence
from .spec import Spec, direction_name, layer_params, split_name

PIN = math.asinh(1.0)  # sigmoid(asinh 1) = tanh(asinh 1) = 1/sqrt(2)
MOVED = -PIN / 2  # a second pinned value: the other sign (sigmoid and tanh are not even) and another size (so
#                   an odd function of the pre-activation, tanh(1.25 a), is no scale of tanh there)
_EQ_H = {"LSTM": "h' = o * tanh(c')", "GRU": "h' = (1 - z) * n + z * h", "RNN_TANH": "h' = tanh(W_ih x + b_ih + W_hh h + b_hh)",
         "RNN_RELU": "h' = relu(W_ih x + b_ih + W_hh h + b_hh)"}


class _Stage:
    """What localisation is running now, for the report when a sub-problem cannot run (and a time limit's
    message: each probe is named as it starts)."""

    _text = "starting"

    @property
    def text(self) -> str:
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        self._text = value
        set_phase(f"localisation ({value})")


def localise(report: CompareReport, session: Session, pb: Problem, ftol, gtol) -> None:
    """Fill ``report.forward`` or ``report.gradient`` (and ``step_errors``); ``report.stopped`` on failure."""
    stage = _Stage()
    curves: dict[str, np.ndarray] = {}
    try:
        if any(not t.passed for t in report.tensors if t.kind == "forward"):
            report.forward = _forward(session, pb, ftol, stage, curves)
        else:
            report.gradient = _gradient(session, pb, gtol, stage, curves)
    except CandidateError as e:
        report.stopped = f"while {stage.text}: {e}"
    except Exception as e:  # noqa: BLE001 -- the mismatch stands; say why its place could not be found
        report.stopped = f"while {stage.text}: {type(e).__name__}: {e}"
    report.step_errors.update(curves)


# -- small helpers ---------------------------------------------------------------------------


def _valid(lengths, T: int, B: int) -> np.ndarray:
    """(T, B) bool: True on valid steps."""
    if lengths is None:
        return np.ones((T, B), dtype=bool)
    return np.arange(T)[:, None] < np.asarray(lengths)[None, :]


def _err(actual, desired, tol, d: int | None = None, rows=None) -> tuple[bool, float]:
    """(ok, max abs error) under the one rule; ``d`` selects axis 0, ``rows`` axis -2."""
    if actual is None:
        return True, 0.0
    a, r = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    if a.shape != r.shape:
        return False, math.inf
    if d is not None:
        a, r = a[d:d + 1], r[d:d + 1]
    if rows is not None:
        a, r = a[..., rows, :], r[..., rows, :]
    if a.size == 0:
        return True, 0.0
    if not np.isfinite(a).all():
        return False, math.inf
    ok, max_abs, _ = compare_arrays(a, r, *tol)
    return bool(ok), float(max_abs)


class _States:
    """The reference's states before each step of one layer, both directions, from ``tape.steps``."""

    def __init__(self, tape, layer: int, D: int, lstm: bool):
        recs = [{r.t: r for r in tape.steps(layer, d)} for d in range(D)]
        self.recs, self.D, self.lstm = recs, D, lstm

    def at(self, t: int) -> tuple:
        """((D, B, P),) or (.., (D, B, H)): the states before step t."""
        hs = np.stack([np.asarray(self.recs[d][t].h_prev) for d in range(self.D)])
        if not self.lstm:
            return (hs,)
        return hs, np.stack([np.asarray(self.recs[d][t].c_prev) for d in range(self.D)])


def _processing_index(t: int, d: int, n: int) -> int:
    return t if d == 0 else n - 1 - t


def _first_output_divergence(cand_out, ref_out, lengths, D: int, P: int, tol):
    """(direction, time, batch row, error) of the first differing output, in each row's processing order
    (padding positions, which must be zero, count after every valid step)."""
    a, r = np.asarray(cand_out, np.float64), np.asarray(ref_out, np.float64)
    if a.shape != r.shape:
        return 0, 0, 0, math.inf
    T = a.shape[0]
    rtol, atol = tol
    best = None  # (processing index, direction, row, time, error)
    for d in range(D):
        sl = slice(d * P, (d + 1) * P)
        diff = np.abs(a[..., sl] - r[..., sl]).max(axis=-1)  # (T, B)
        bad = (diff > atol + rtol * np.abs(r[..., sl]).max(initial=0.0)) | ~np.isfinite(diff)
        for b, t in zip(*np.nonzero(bad.T), strict=True):
            n = int(lengths[b]) if lengths is not None else T
            k = _processing_index(int(t), d, n) if t < n else T + int(t)
            cand = (k, d, int(b), int(t), float(diff[t, b]))
            if best is None or cand[:3] < best[:3]:
                best = cand
    return None if best is None else (best[1], best[3], best[2], best[4])


def _blocks(a: np.ndarray, G: int) -> list[np.ndarray]:
    return np.split(np.asarray(a), G, axis=0)


def _with(params: dict, **arrays: np.ndarray) -> dict:
    out = dict(params)
    out.update(arrays)
    return out


# -- forward ---------------------------------------------------------------------------------


def _forward(S: Session, pb: Problem, tol, stage: _Stage, curves: dict) -> Divergence | None:
    spec = pb.spec
    T, B = pb.x.shape[:2]
    D, P = spec.D, spec.P
    _, tape, _ = S.reference(pb)
    valid = _valid(pb.lengths, T, B)
    for layer in range(spec.num_layers):
        sub, lp = spec.layer(layer), layer_params(pb.params, layer)
        x_l = np.asarray(tape.layer_input(layer))  # (T, B, I_l), after the previous layer's dropout
        hx_l = tuple(h[layer * D:(layer + 1) * D] for h in pb.hx)
        iso = Problem(sub, lp, x_l, hx_l, pb.lengths)
        stage.text = f"running layer {layer} alone ({sub}, T={T}, B={B})"
        c_iso, r_iso = S.candidate(iso)[0], S.reference(iso)[0]
        seq = _first_output_divergence(c_iso["output"], r_iso["output"], pb.lengths, D, P, tol)
        final_bad = None
        if seq is None:
            final_bad = next(((d, name, e) for k, name in enumerate(("h_n", "c_n")[:len(hx_l)]) for d in range(D)
                              for ok, e in [_err(c_iso["hidden"][k], r_iso["hidden"][k], tol, d)] if not ok), None)
            if final_bad is None:
                continue
        stage.text = f"running teacher-forced steps of layer {layer} (T=1)"
        states = _States(tape, layer, D, spec.lstm)
        first, step_err = None, np.zeros((D, T))
        for t in range(T):
            probe = Problem(sub, lp, x_l[t:t + 1], states.at(t))
            c_p, r_p = S.candidate(probe)[0], S.reference(probe)[0]
            for d in range(D):
                rows = valid[t]
                errs = [_err(ca, ra, tol, d, rows) for ca, ra in zip(c_p["hidden"], r_p["hidden"], strict=True)]
                step_err[d, t] = max(e for _, e in errs)
                if all(ok for ok, _ in errs):
                    continue
                bad_rows = [b for b in np.flatnonzero(rows) if not all(
                    _err(ca, ra, tol, d, np.arange(B) == b)[0] for ca, ra in zip(c_p["hidden"], r_p["hidden"], strict=True))]
                n = lambda b: int(pb.lengths[b]) if pb.lengths is not None else T
                b = min(bad_rows, key=lambda b: _processing_index(t, d, n(b))) if bad_rows else None
                key = (_processing_index(t, d, n(b)) if b is not None else T, d)
                if first is None or key < first[0]:
                    first = (key, d, t, b)
        for d in range(D):
            curves[f"h,c step l{layer} {'rev' if d else 'fwd'} (teacher-forced)"] = step_err[d]
        if first is not None:
            _, d, t, b = first
            stage.text = f"isolating the gate at layer {layer}, {direction_name(d)} direction, time step {t}"
            probe = Problem(sub, lp, x_l[t:t + 1], states.at(t))
            gate, how = _isolate(S, probe, d, valid[t], tol)
            return Divergence("step", layer, d, t, gate, None if b is None else int(b), float(step_err[d, t]),
                              f"one step from the reference's state differs (error {step_err[d, t]:.2e}); {how}")
        if seq is not None:
            d, t, b, e = seq
            if pb.lengths is not None:
                stage.text = f"running layer {layer} alone without lengths"
                full = replace(iso, lengths=None)
                if _first_output_divergence(S.candidate(full)[0]["output"], S.reference(full)[0]["output"], None, D,
                                            P, tol) is None:
                    return Divergence("sequence", layer, d, t, "lengths", b, e,
                                      f"every step is right, and the layer agrees without lengths; with lengths "
                                      f"row {b} (length {int(pb.lengths[b])}) first differs here (error {e:.2e}): "
                                      "check where each row starts and stops (the reverse direction starts at "
                                      "t = length - 1) and that padding carries the state and outputs zeros")
            return Divergence("sequence", layer, d, t, "h", b, e,
                              f"every step is right from the reference's state (teacher-forced), but the layer run "
                              f"over the sequence differs here (error {e:.2e}): check the step order and the state "
                              "carried from one step to the next")
        assert final_bad is not None  # seq is None here, so final_bad is set (a layer with neither was skipped)
        d, name, e = final_bad
        return Divergence("final state", layer, d, None, name, None, e,
                          f"outputs agree but the returned {name} differs (error {e:.2e})")
    return _forward_stack(S, pb, tol, stage, valid)


def _forward_stack(S: Session, pb: Problem, tol, stage: _Stage, valid) -> Divergence | None:
    spec, D, P = pb.spec, pb.spec.D, pb.spec.P
    for depth in range(2, spec.num_layers + 1):
        sub = replace(spec, num_layers=depth)
        params = {k: v for k, v in pb.params.items() if split_name(k)[1] < depth}
        probe = Problem(sub, params, pb.x, tuple(h[:depth * D] for h in pb.hx), pb.lengths,
                        None if pb.masks is None else pb.masks[:depth - 1])
        stage.text = f"running the first {depth} layers"
        seq = _first_output_divergence(S.candidate(probe)[0]["output"], S.reference(probe)[0]["output"], pb.lengths,
                                       D, P, tol)
        if seq is not None:
            d, t, b, e = seq
            drop = spec.dropout_active
            return Divergence("dropout" if drop else "stacking", depth - 1, d, t, "dropout" if drop else "input", b,
                              e, f"layers {depth - 2} and {depth - 1} are right alone; layer {depth - 1}'s input "
                              f"(layer {depth - 2}'s output{' after dropout, scaled by 1/(1-p)' if drop else ''}) is "
                              f"not (error {e:.2e})")
    stage.text = "running the whole stack forward"
    c_full = S.candidate(pb.forward_only())[0]
    r_full = S.reference(pb.forward_only())[0]
    for k, name in enumerate(("h_n", "c_n")[:len(pb.hx)]):
        for idx in range(spec.num_layers * D):
            ok, e = _err(c_full["hidden"][k][idx:idx + 1], r_full["hidden"][k][idx:idx + 1], tol)
            if not ok:
                return Divergence("final state", idx // D, idx % D, None, name, None, e,
                                  f"every output agrees but {name}[{idx}] differs (error {e:.2e}): check the order of "
                                  f"layers and directions in {name} (index = layer * D + direction)")
    return None


# -- isolating the gate of a wrong forward step ---------------------------------------------------


def _isolate(S: Session, probe: Problem, d: int, rows, tol) -> tuple[str, str]:
    spec = probe.spec

    def differs(p: Problem) -> tuple[bool, bool]:
        c, r = S.candidate(p)[0], S.reference(p)[0]
        bad = [not _err(ca, ra, tol, d, rows)[0] for ca, ra in zip(c["hidden"], r["hidden"], strict=True)]
        return bad[0], (bad[1] if len(bad) > 1 else False)

    form = _other_form(S, probe, d, rows, tol)
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
        return "h", f"check {_EQ_H[spec.mode]}"
    pinned = _pinned(probe, d, keep=None)
    h_bad, c_bad = differs(pinned)
    if h_bad or c_bad:
        one = _one_gate_value(S, probe, d, rows, tol)
        if one is not None:
            return one
        if spec.proj_size and not c_bad and _projection_wrong(S, pinned, d, rows, tol):
            return "W_hr", ("with every gate pinned the cell differs in h, and h' is not W_hr times the unprojected "
                            "state o * tanh(c') the candidate returns through selecting W_hr's: check the projection, "
                            "h' = W_hr (o * tanh(c'))")
        q = "c" if c_bad else "h"
        eq = "c' = f * c + i * g" if q == "c" else _EQ_H[spec.mode] + (" then h' = W_hr h'" if spec.proj_size else "")
        return q, f"with every gate pinned to the same value the cell still differs in {q}: check {eq}"
    hits = []
    for g in spec.gates:
        p = _pinned(probe, d, keep=g)
        if spec.lstm and g in "ig":  # with c = 0, f cannot matter: i and g are seen alone
            p = replace(p, hx=(p.hx[0], np.where(np.arange(spec.D)[:, None, None] == d, 0.0, p.hx[1])))
        h_bad, c_bad = differs(p)
        if c_bad if spec.lstm and g in "ifg" else (h_bad or c_bad):  # i, f, g reach h only through c
            hits.append(g)
    if spec.mode == "GRU" and {"r", "n"} <= set(hits):  # r acts through n: either one shows in both runs
        hits = [g for g in hits if g != ("n" if _reset_value_explains(S, probe, d, rows, tol) else "r")]
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
    b, o = _blocks(probe.params[key], G), [np.array(blk, dtype=np.float64) for blk in _blocks(probe.params[other], G)]
    inside_reset = spec.mode == "GRU" and spec.reset_after
    for j in range(G):
        if j not in keep and not (inside_reset and j == 2):
            o[j] = o[j] + b[j]
    moved = [blk if j in keep else np.zeros_like(blk) for j, blk in enumerate(b)]
    return replace(probe, params=_with(probe.params, **{key: np.concatenate(moved), other: np.concatenate(o)}))


def _other_form(S: Session, probe: Problem, d: int, rows, tol) -> tuple[str, str] | None:
    """Does the candidate compute GRU's other form, or RNN's other nonlinearity?"""
    spec = probe.spec
    if spec.mode == "GRU":
        other = replace(spec, reset_after=not spec.reset_after)
    elif spec.mode in ("RNN_TANH", "RNN_RELU"):
        other = replace(spec, mode="RNN_RELU" if spec.mode == "RNN_TANH" else "RNN_TANH")
    else:
        return None
    c = S.candidate(probe)[0]
    r = S.reference(replace(probe, spec=other))[0]
    if not all(_err(ca, ra, tol, d, rows)[0] for ca, ra in zip(c["hidden"], r["hidden"], strict=True)):
        return None
    if spec.mode == "GRU":
        if spec.reset_after:
            return "r", ("reset applied before W_hn: the candidate computes n = tanh(W_in x + b_in + W_hn (r * h) + "
                         "b_hn), the paper's form (ONNX linear_before_reset=0, Keras reset_after=False), where "
                         "torch's is r * (W_hn h + b_hn); if that form is meant, check it with reset_after=False")
        return "r", ("reset applied after W_hn: the candidate computes torch's form n = tanh(W_in x + b_in + "
                     "r * (W_hn h + b_hn)), where the paper's form (reset_after=False) was asked")
    return "h", f"the candidate applies {other.mode[4:].lower()} where {spec.mode[4:].lower()} was asked"


def _pinned(probe: Problem, d: int, keep: str | None, moved: str | None = None,
            hidden_real: set | None = None) -> Problem:
    """Direction d's gates pinned to sigmoid = tanh = 1/sqrt(2) (input x_0 = 1), except gate ``keep``;
    gate ``moved`` pinned at MOVED instead; the W_hh and b_hh blocks in ``hidden_real`` kept."""
    spec = probe.spec
    sfx, G, H = ("_reverse" if d else ""), spec.G, spec.hidden_size
    real = set() if keep is None else {spec.gates.index(keep)}
    hidden_real = set(real) | (hidden_real or set())
    if keep == "r":
        hidden_real.add(2)  # r acts only through W_hn h + b_hn: keep them
    params = dict(probe.params)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        key = f"{name}_l0{sfx}"
        if key not in params:
            continue
        w = np.array(params[key], dtype=np.float64)
        for j in range(G):
            if j in (hidden_real if name in ("weight_hh", "bias_hh") else real):
                continue
            w[j * H:(j + 1) * H] = 0.0
            if name == "weight_ih":
                w[j * H:(j + 1) * H, 0] = MOVED if moved is not None and j == spec.gates.index(moved) else PIN
        params[key] = w
    x = np.array(probe.x, dtype=np.float64)
    x[..., 0] = 1.0
    return replace(probe, params=params, x=x)


def _side(arrays, d: int, rows) -> list[np.ndarray]:
    """Direction d's entries, on the valid rows, of (D, B, .) arrays."""
    return [np.asarray(a, np.float64)[d][rows] for a in arrays]


def _pinned_cell(spec: Spec, gate: dict, h_prev, c_prev, w_hr) -> tuple:
    """(h', c') of a pinned step from its gates' values (W_hn h + b_hn is zero there, so r has no effect)."""
    if spec.mode == "GRU":
        return (1 - gate["z"]) * gate["n"] + gate["z"] * h_prev, None
    c = gate["f"] * c_prev + gate["i"] * gate["g"]  # (b, H)
    m = gate["o"] * np.tanh(c)
    return (m if w_hr is None else m @ w_hr.T), c


def _fit_gate(spec: Spec, j: str, gate_sets: list[dict], observed: list, which: int, h_prev, c_prev, w_hr
              ) -> list[tuple]:
    """(h', c') of pinned steps (``gate_sets``: each one's gate values) with gate j's value the one v that best
    fits ``observed`` (output ``which`` of each step, linear in j: y = y0 + v dy, least squares)."""
    cell = lambda gates, v: _pinned_cell(spec, {**gates, j: v}, h_prev, c_prev, w_hr)
    y0 = np.concatenate([np.ravel(cell(g, 0.0)[which]) for g in gate_sets])
    dy = np.concatenate([np.ravel(cell(g, 1.0)[which]) for g in gate_sets]) - y0
    y = np.concatenate([np.ravel(o) for o in observed])
    v = float(np.dot(y - y0, dy) / np.dot(dy, dy)) if np.dot(dy, dy) > 0 else 0.0
    return [cell(g, v) for g in gate_sets]


def _one_gate_value(S: Session, probe: Problem, d: int, rows, tol) -> tuple[str, str] | None:
    """Does one gate's value alone explain a pinned step that differs?

    Pinned at asinh 1 every gate has one value, so a gate whose pre-activation, activation or output
    is wrong has one wrong value v there. Hypothesis "gate j": the reference's cell with gate j's value
    replaced by the v that fits best (least squares on c', or on h' for o and GRU's gates; the cell is
    linear in each gate there) reproduces the candidate's h' and c'. It is tried on the all-pinned step
    and on one step per gate k with k pinned at MOVED (j then takes another value there, fitted
    apart), so i and g, which meet as i * g, are told apart unless the error is a scale of either.
    """
    spec, sfx = probe.spec, "_reverse" if d else ""
    s = 2 ** -0.5
    acting = [g for g in spec.gates if g != "r"]  # r acts through W_hn h + b_hn, zero in a pinned step
    moved = {"sigmoid": 1 / (1 + math.exp(-MOVED)), "tanh": math.tanh(MOVED)}
    value = lambda g, m: moved["sigmoid" if g in "ifoz" else "tanh"] if m else s
    h_prev, c_prev = (_side(probe.hx, d, rows) + [None])[:2]
    w_hr = probe.params.get(f"weight_hr_l0{sfx}")
    cands = {k: _side(S.candidate(_pinned(probe, d, None, moved=k))[0]["hidden"], d, rows) for k in [None, *acting]}
    fits = []
    for j in acting:
        observed = 0 if (spec.mode == "GRU" or j == "o") else 1  # h' or c', linear in gate j
        predictions: dict = {}
        for moved_j in (False, True):  # one value of j where it sits at asinh 1, another where at MOVED
            keys = [k for k in cands if (k == j) == moved_j]
            gate_sets = [{g: value(g, g == k) for g in acting} for k in keys]
            fitted = _fit_gate(spec, j, gate_sets, [cands[k][observed] for k in keys], observed, h_prev, c_prev,
                               w_hr)
            predictions.update(zip(keys, fitted, strict=True))
        if all(_err(ca, pr, tol)[0] for k in cands for ca, pr in zip(cands[k], predictions[k], strict=False)
               if pr is not None):
            fits.append(j)
    if len(fits) == 1:
        j = fits[0]
        return j, (f"with every gate pinned the step differs, and one wrong value of gate {j} alone reproduces it "
                   f"(the other gates' right): check gate {j}'s pre-activation, its activation and its scale")
    if set(fits) == {"i", "g"}:
        return "i, g", ("with every gate pinned the step differs in c', by a scale of i or of g: the cell sees them "
                        "only as i * g, so one cannot be told from the other: check both")
    return None


def _projection_wrong(S: Session, pinned: Problem, d: int, rows, tol) -> bool:
    """Is h' not W_hr times the candidate's own unprojected state? That state, m = o * tanh(c'), is read
    P units at a time through W_hr's that select units kP, kP + 1, ... (mod H): a projection that is
    right returns them, the same unit the same from every selection, and W_hr m under the real W_hr."""
    key = f"weight_hr_l0{'_reverse' if d else ''}"
    w_hr = np.asarray(pinned.params[key], np.float64)
    P, H = w_hr.shape
    m, seen = None, np.zeros(H, dtype=bool)
    for k in range(-(-H // P)):
        units = (k * P + np.arange(P)) % H
        select = np.zeros((P, H))
        select[np.arange(P), units] = 1.0
        h = _side(S.candidate(replace(pinned, params=_with(pinned.params, **{key: select})))[0]["hidden"], d, rows)[0]
        if m is None:
            m = np.zeros((h.shape[0], H))
        again = seen[units]
        if again.any() and not _err(h[:, again], m[:, units[again]], tol)[0]:
            return True
        m[:, units], seen[units] = h, True
    assert m is not None  # H >= 1, so one selection ran
    return not _err(_side(S.candidate(pinned)[0]["hidden"], d, rows)[0], m @ w_hr.T, tol)[0]


def _reset_value_explains(S: Session, probe: Problem, d: int, rows, tol) -> bool:
    """GRU, r and n both reproduce the error: is it r's value? Every gate pinned, W_hn and b_hn kept, so
    n = tanh(asinh 1 + r u) (u = W_hn h + b_hn; the paper's form: tanh(asinh 1 + r W_hn h + b_hn)) with one
    value of r: the r that fits n (read from h' = (1 - z) n + z h) must reproduce h'; a wrong W_hn or b_hn
    does not reduce to one value of r."""
    spec, sfx, s = probe.spec, "_reverse" if d else "", 2 ** -0.5
    H = spec.hidden_size
    p = _pinned(probe, d, None, hidden_real={2})
    (h,) = _side(probe.hx, d, rows)
    (h_new,) = _side(S.candidate(p)[0]["hidden"], d, rows)
    w_hn = np.asarray(p.params[f"weight_hh_l0{sfx}"], np.float64)[2 * H:]
    b_hn = np.asarray(p.params[f"bias_hh_l0{sfx}"], np.float64)[2 * H:] if spec.bias else np.zeros(H)
    u, off = (h @ w_hn.T + b_hn, 0.0) if spec.reset_after else (h @ w_hn.T, b_hn)  # (b, H)
    n = np.clip((h_new - s * h) / (1 - s), -1 + 1e-15, 1 - 1e-15)
    y = np.arctanh(n) - PIN - off
    v = float(np.sum(y * u) / np.sum(u * u)) if np.sum(u * u) > 0 else 0.0
    return _err(h_new, (1 - s) * np.tanh(PIN + off + v * u) + s * h, tol)[0]


# -- backward ------------------------------------------------------------------------------------


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


def _gradient(S: Session, pb: Problem, tol, stage: _Stage, curves: dict) -> Divergence | None:
    spec = pb.spec
    T, B = pb.x.shape[:2]
    D = spec.D
    _, tape, _ = S.reference(pb)
    valid = _valid(pb.lengths, T, B)
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
        iso = Problem(sub, lp, x_l, hx_l, pb.lengths, None, douts[layer], gh_l)
        stage.text = f"running layer {layer} alone, backward ({sub}, T={T}, B={B})"
        c_iso = S.candidate(iso)[0]
        r_iso, iso_tape, r_grads = S.reference(iso, carries=True)
        if not _grad_differs(S, c_iso, r_iso, lp, tol):
            continue
        carries = r_grads["carries"][0]  # [direction][t] -> (dh_t,) or (dh_t, dc_t)
        stage.text = f"running teacher-forced backward steps of layer {layer} (T=1)"
        found = _gradient_steps(S, sub, lp, x_l, iso_tape, carries, valid, pb.lengths, tol, layer, curves)
        if found is not None:
            return found
        stage.text = f"running layer {layer} backward from each step"
        return _gradient_sequence(S, iso, iso_tape, valid, tol, layer, c_iso, r_iso)
    return Divergence("gradient stacking", spec.num_layers - 1, None, None,
                      "dropout" if spec.dropout_active else "input", None, math.nan,
                      "every layer's gradients are right alone; the gradient passed from one layer to the one below "
                      + ("(through the dropout mask, scaled by 1/(1-p)) " if spec.dropout_active else "") + "is not")


def _grad_differs(S: Session, c: dict, r: dict, params: dict, tol, d: int | None = None, rows=None) -> list[str]:
    """Names of the provided gradients that differ (``d``: only direction d's hx and parameters)."""
    bad = []
    if S.expect.input and not _err(c.get("input"), r["input"], tol, None, rows)[0]:
        bad.append("input")
    for k, name in enumerate(("h", "c")[:len(r["hx"])]):
        if S.expect.hx[k] and c.get("hx") is not None and not _err(c["hx"][k], r["hx"][k], tol, d, rows)[0]:
            bad.append(f"d{name}_prev")
    for n in _grad_names(S, params):
        if d is not None and split_name(n)[2] != d:
            continue
        if not _err(c[n], r[n], tol)[0]:
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


def _gradient_steps(S: Session, sub: Spec, lp: dict, x_l, tape, carries, valid, lengths, tol, layer: int,
                    curves: dict) -> Divergence | None:
    T, B = x_l.shape[:2]
    D = sub.D
    first = None
    errs = np.zeros((D, T))
    states = _States(tape, 0, D, sub.lstm)
    for d in range(D):
        for t in range(T):
            rows = valid[t]
            if not rows.any():
                continue
            g_out, g_hid = _probe_cotangents(S, sub, carries[d][t], d, rows, B)
            probe = Problem(sub, lp, x_l[t:t + 1], states.at(t), None, None, g_out, g_hid)
            c, r = S.candidate(probe)[0], S.reference(probe)[0]
            bad = _grad_differs(S, c, r, lp, tol, d, rows)
            errs[d, t] = max([_err(c.get("input"), r["input"], tol, None, rows)[1]] +
                             [_err(ca, ra, tol, d, rows)[1] for ca, ra in zip(c.get("hx") or (), r["hx"], strict=False)])  # no hx from the candidate: nothing to compare
            if not bad:
                continue
            n = lambda b: int(lengths[b]) if lengths is not None else T
            one = lambda b: np.arange(B) == b
            bad_rows = [b for b in np.flatnonzero(rows)
                        if not _err(c.get("input"), r["input"], tol, None, one(b))[0] or any(
                            not _err(ca, ra, tol, d, one(b))[0] for ca, ra in zip(c.get("hx") or (), r["hx"], strict=False))]  # no hx: nothing to compare
            # BPTT order, per row: the last processed step first (forward: t = n-1 down; reverse: t = 0 up)
            k, row = min(((n(b) - 1 - t if d == 0 else t), b) for b in (bad_rows or np.flatnonzero(rows)))
            if first is None or (k, d) < first[0]:
                first = ((k, d), d, t, int(row) if bad_rows else None, probe, c, r, bad)
    for d in range(D):
        curves[f"gradient step l{layer} {'rev' if d else 'fwd'} (teacher-forced)"] = errs[d]
    if first is None:
        return None
    _, d, t, b, probe, c, r, bad = first
    gate, how = _gradient_gate(S, probe, c, r, bad, d, valid[t], tol)
    return Divergence("gradient step", layer, d, t, gate, b, float(errs[d, t]),
                      f"backward through this one step, given the reference's incoming gradient, differs in "
                      f"{', '.join(_pretty(n, layer) for n in bad)}; {how}")


def _pretty(name: str, layer: int) -> str:
    if name.endswith(("_l0", "_l0_reverse")):
        return name.replace("_l0", f"_l{layer}")
    return {"input": "dx"}.get(name, name)


def _bad_blocks(S: Session, probe: Problem, c: dict, r: dict, d: int, tol) -> tuple[list[int], bool]:
    """(gate blocks whose weight or bias gradient rows differ, whether any gate-blocked gradient is provided)."""
    spec, sfx = probe.spec, "_reverse" if d else ""
    G = spec.G
    bad, any_provided = set(), False
    for base in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        key = f"{base}_l0{sfx}"
        if key not in c:
            continue
        any_provided = True
        for j, (cb, rb) in enumerate(zip(_blocks(c[key], G), _blocks(r[key], G), strict=True)):
            if not _err(cb, rb, tol)[0]:
                bad.add(j)
    return sorted(bad), any_provided


def _bad_blocks_by_input(S: Session, probe: Problem, d: int, rows, tol) -> list[int]:
    """Without weight gradients: gate j is bad when dx differs with only its W_ih rows kept."""
    spec, key = probe.spec, f"weight_ih_l0{'_reverse' if d else ''}"
    G, out = spec.G, []
    for j in range(G):
        w = np.concatenate([blk if k == j else np.zeros_like(blk) for k, blk in enumerate(_blocks(probe.params[key], G))])
        p = replace(probe, params=_with(probe.params, **{key: w}))
        if not _err(S.candidate(p)[0].get("input"), S.reference(p)[0]["input"], tol, None, rows)[0]:
            out.append(j)
    return out


def _gradient_gate(S: Session, probe: Problem, c: dict, r: dict, bad: list[str], d: int, rows, tol) -> tuple[str, str]:
    spec = probe.spec
    letters = spec.gates or ("h",)
    blocks, provided = _bad_blocks(S, probe, c, r, d, tol)
    if not provided and S.expect.input:
        blocks = _bad_blocks_by_input(S, probe, d, rows, tol)
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
        return "h", f"check dpre = dh * act'(pre) ({_EQ_H[spec.mode]})"
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


def _gradient_sequence(S: Session, iso: Problem, tape, valid, tol, layer: int, c_iso: dict, r_iso: dict
                       ) -> Divergence:
    spec = iso.spec
    T = iso.x.shape[0]
    D, P = spec.D, spec.P
    if iso.lengths is not None:
        full = replace(iso, lengths=None)
        if not _grad_differs(S, S.candidate(full)[0], S.reference(full)[0], iso.params, tol):
            return Divergence("gradient sequence", layer, None, None, "lengths", None, math.nan,
                              "every step's backward is right, and the layer's gradients agree without lengths: "
                              "check where the backward pass of each row starts and stops, and that padded steps "
                              "pass the gradient straight through")
    first = None
    states = _States(tape, 0, D, spec.lstm)
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
            probe = Problem(spec, iso.params, iso.x[window], hx, sub_len, None, g_out, g_hid)
            c, r = S.candidate(probe)[0], S.reference(probe)[0]
            rows = valid[t]
            for k, q in enumerate(("h", "c")[:len(r["hx"])]):
                if not S.expect.hx[k] or c.get("hx") is None:
                    continue
                ok, e = _err(c["hx"][k], r["hx"][k], tol, d, rows)
                if not ok:
                    order = (T - 1 - t) if d == 0 else t
                    if first is None or (order, d) < first[0]:
                        first = ((order, d), d, t, q, e)
    if first is None:
        bad = _grad_differs(S, c_iso, r_iso, iso.params, tol)
        return Divergence("gradient sequence", layer, None, None, ", ".join(_pretty(n, layer) for n in bad), None,
                          math.nan, "every step's backward is right and every carry agrees, but these gradients of "
                          "the whole layer differ: check how they are summed over steps")
    _, d, t, q, e = first
    return Divergence("gradient sequence", layer, d, t, q, None, e,
                      f"every step's backward is right alone, but the gradient reaching the state before this step "
                      f"(d{q}, error {e:.2e}) differs: check how the carry is passed from one step to the next")
