"""Localisation at low precision: a bfloat16 or float16 candidate that leaves the envelope is placed at its layer,
direction, step and gate, each sub-problem (a layer alone, one step from the reference's state, a pinned cell)
judged against its own rounding envelope (reference/verify/localise/bounds.py).

Every check here can say FAIL: the bounds refuse an error just past the envelope and a wrong place is a miss
(the matrix's verdict rule, tested in test_localisation_matrix.py).
"""

from __future__ import annotations

import localisation_matrix as lm
import numpy as np
import pytest
import torch
from adapter_kit_torch import with_biases
from test_low_precision_compare import NARROW, B, ForgetBias, H, I, T, WeightGradScaled

from reference.precision import Precision
from reference.verify import Spec, compare
from reference.verify.candidates import Expect, Problem
from reference.verify.localise.bounds import Limit, Rounding, Rule, Table
from reference.verify.localise.common import judge
from reference.verify.session import Session, run_reference

Bug = lm.Bug
# Bugs of every cell in both passes, in layer 1 and the reverse direction too, so the correct layers and
# directions are judged on the way: each is placed exactly in bfloat16 and float16 (measured, with the other
# cases of the matrix, in docs/low_precision.md).
PLACED = [Bug("LSTM", "f", "bias", 1, 1, "forward", 0), Bug("LSTM", "c", "scale", 1, 0, "forward", 0),
          Bug("GRU", "z", "act", 1, 1, "backward", 0), Bug("LSTM_proj", "c", "carry", 1, 1, "backward", 0),
          Bug("RNN_TANH", "h", "preact", 1, 1, "forward", 0), Bug("GRU", "n", "rows", 1, 0, "backward", 0),
          Bug("LSTM", "g", "preact", 0, 1, "forward", 0), Bug("LSTM", "i", "act", 1, 0, "backward", 0)]


@pytest.mark.parametrize("storage", list(NARROW))
@pytest.mark.parametrize("bug", PLACED, ids=str)
def test_a_planted_bug_in_a_low_precision_kernel_is_placed(bug, storage):
    report = lm.run(bug, dtype=NARROW[storage])
    assert str(report.verdict).startswith(f"MISMATCH at {storage}"), str(report)
    assert lm.verdict(bug, report) == "", str(report)


def test_a_correct_low_precision_kernel_is_never_placed():
    """The same planted module without its bug: a MATCH, and nothing localised."""
    report = lm.run(None, "LSTM", dtype=torch.bfloat16)
    assert report.passed and report.divergence is None and not report.stopped, str(report)


def test_the_issue_s_forget_gate_bug_is_placed_at_the_gate():
    """float16: the forget-gate bias + 0.05 is named at gate f of the first step."""
    torch.manual_seed(0)
    report = compare(with_biases(ForgetBias(I, H)).to(torch.float16), seq_len=T, batch=B)
    div = report.forward
    assert div is not None and (div.kind, div.layer, div.direction, div.time, div.gate) == ("step", 0, 0, 0, "f"), \
        str(report)
    assert "first forward divergence  -> step: layer 0, forward direction, time step 0" in str(report)


def test_a_gradient_bug_is_placed_at_its_weight():
    """bfloat16: weight_hh_l0's gradient 1.5x too large is placed at that gradient, in BPTT's first step."""
    torch.manual_seed(0)
    report = compare(with_biases(WeightGradScaled(I, H)).to(torch.bfloat16), seq_len=T, batch=B)
    div = report.gradient
    assert report.forward is None and div is not None, str(report)
    assert (div.kind, div.layer, div.time, div.gate) == ("gradient step", 0, T - 1, "weight_hh"), str(report)


def _probe(spec: Spec, seed: int = 0) -> Problem:
    rng = np.random.default_rng(seed)
    params = {k: rng.uniform(-0.4, 0.4, s) for k, s in spec.parameter_shapes().items()}
    shapes = spec.state_shapes(3)
    return Problem(spec, params, rng.uniform(-1, 1, (4, 3, spec.input_size)), tuple(rng.uniform(-1, 1, s) for s in shapes),
                   None, None, rng.standard_normal((4, 3, spec.D * spec.P)), tuple(rng.standard_normal(s) for s in shapes))


def test_a_sub_problem_s_bounds_are_its_own_envelope_and_refuse_more():
    """The bound of each tensor of a sub-problem is its envelope's max per step: the truth rounded to storage
    passes, an error of 1.5 times the bound at one element of one step fails, at that step only."""
    spec = Spec("LSTM", 3, 4)
    precision = Precision("bfloat16", "bfloat16", "bfloat16")
    session = Session(object(), np.float32, Expect(True, (True, True), frozenset()), frozenset(), "bfloat16")
    pb = session.rounded(_probe(spec))
    bounds = Rounding(precision).bounds(session, pb)
    ref, _, _ = run_reference(pb)
    for key, k in (("output", None), ("hidden", 0), ("hidden", 1), ("input", None), ("hx", 1), ("weight_hh_l0", None)):
        truth = ref[key] if k is None else ref[key][k]
        bound = bounds(key, k)
        assert isinstance(bound, Limit) and bound.limit.shape == np.shape(truth) and (bound.limit > 0).all(), key
        assert judge(session.round(truth), truth, bound)[0], key
        wrong = np.array(truth, dtype=np.float64)
        wrong.reshape(-1)[-1] += 1.5 * bound.limit.reshape(-1)[-1]
        assert not judge(wrong, truth, bound)[0], key
    out = bounds("output")
    steps = np.abs(out.limit[:, 0, 0])  # one limit per step, growing as rounding gathers
    assert steps.shape == (4,) and (out.limit == steps[:, None, None]).all()
    wrong = np.array(ref["output"], dtype=np.float64)
    wrong[2, 1, 0] += 1.5 * steps[2]
    assert not judge(wrong, ref["output"], out, 2)[0]  # axis 0 selected: step 2 alone
    assert judge(wrong, ref["output"], out, 1)[0] and judge(wrong, ref["output"], out, 3)[0]


def test_the_table_rule_is_the_one_rule_on_every_slice():
    """Table: atol + rtol * max|reference| of the slice judged, forward for outputs and states, gradient else."""
    rule = Table((1e-6, 1e-9), (1e-5, 1e-8))
    bounds = rule.bounds(None, None)
    assert (bounds("output").rtol, bounds("hidden", 1).rtol, bounds("input").rtol, bounds("bias_ih_l0").rtol) == \
        (1e-6, 1e-6, 1e-5, 1e-5)
    r = np.array([[1.0, 2.0], [100.0, 200.0]])
    a = r + np.array([[3e-6, 0.0], [0.0, 0.0]])
    assert not judge(a, r, Rule(1e-6, 0.0), rows=np.array([True, False]))[0]  # row 0 alone: 3e-6 > 2e-6
    assert judge(a, r, Rule(1e-6, 0.0))[0]  # the whole: 3e-6 <= 2e-4


@pytest.mark.parametrize("storage", list(NARROW))
def test_a_low_precision_session_rounds_every_sub_problem_to_its_storage(storage):
    """Both sides of every sub-problem read the values the kernel reads: states from the reference's tape and
    pinned biases (asinh 1) included, each a value of the storage format; a float32 session rounds to float32."""
    from reference.precision import round_to

    pb = _probe(Spec("GRU", 3, 4))
    narrow = Session(object(), np.float32, Expect(False, (False,), frozenset()), frozenset(), storage).rounded(pb)
    wide = Session(object(), np.float32, Expect(False, (False,), frozenset()), frozenset()).rounded(pb)
    for name, a in [("x", narrow.x), ("h_0", narrow.hx[0]), *narrow.params.items()]:
        assert np.array_equal(np.asarray(round_to(a, storage), np.float64), a), name
    assert not np.array_equal(np.asarray(round_to(wide.x, storage), np.float64), wide.x)
    assert np.array_equal(wide.x, pb.x.astype(np.float32))
