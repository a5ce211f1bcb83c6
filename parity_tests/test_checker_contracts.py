"""Contracts of the tools that give verdicts, and of the module boundary they rely on.

Each test states one behaviour a checker must have and includes inputs on which it
must say FAIL: gradcheck judges every element, NaN included, from a random initial
state and random upstream gradients; the tolerance table stays near the errors it
was measured by; ``compare`` checks every tensor a candidate returns, its shape and
its dtype in both directions, from random initial states and cotangents, and names
the right place; the layouts and the weight diff know GRU's two forms; the torch
adapter refuses tensors changed in place; the reference keeps none of the caller's
arrays, changes none of their flags and differentiates with the configuration its
tape recorded; the study tools keep their documented defaults.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference
from reference.tolerances import compare_arrays, tol
from reference.verify import Divergence, Spec, compare, diff_weights, export_state_dict, import_state_dict
from reference.verify.session import reference_run
from reference.verify.testing import assert_matches_reference

# -- gradcheck -----------------------------------------------------------------------------------

SCALE = np.array([10.0, 1.0, 0.1])
POINT = {"a": np.array([0.5, -0.3, 0.8])}
COT = np.array([1.0, -2.0, 0.5])
EXACT = SCALE * COT  # d<COT, SCALE * a>/da


def _scaled(a):
    return a * SCALE  # (3,)


def test_check_gradients_judges_every_element_against_its_own_value():
    """Pass rule: |analytic - numeric| <= atol + rtol * |numeric| element by element, never against the
    largest gradient; the worst index is where that rule is most exceeded, not the largest error."""
    assert reference.check_gradients(_scaled, POINT, {"a": EXACT}, COT).ok
    # element 0: 2e-6 off, within its own 1e-8 + 1e-6 * 10; element 2: 1e-6 off, 20x its own 5e-8 budget
    wrong = {"a": EXACT + np.array([2e-6, 0.0, 1e-6])}
    report = reference.check_gradients(_scaled, POINT, wrong, COT)
    assert not report.ok and not report["a"].passed, str(report)
    assert report["a"].worst_index == (2,), str(report)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_gradcheck_fails_a_non_finite_gradient(bad):
    """A NaN or infinite analytic gradient where the truth is finite fails, in both checks."""
    wrong = EXACT.copy()
    wrong[1] = bad
    assert not reference.check_gradients(_scaled, POINT, {"a": wrong}, COT).ok
    assert not reference.check_vjp(_scaled, POINT, {"a": wrong}, COT).ok


def test_check_vjp_probes_a_random_direction():
    """The inner-product test's direction is random: a gradient with its entries permuted (same sum,
    same norm) fails."""
    assert reference.check_vjp(_scaled, POINT, {"a": EXACT}, COT).ok
    assert not reference.check_vjp(_scaled, POINT, {"a": EXACT[::-1].copy()}, COT).ok


class DropsWeightHhGradient(reference.GRU):
    def backward(self, tape, grad_output=None, grad_hidden=None, **kwargs):
        g = super().backward(tape, grad_output, grad_hidden, **kwargs)
        return {**g, "weight_hh_l0": np.zeros_like(g["weight_hh_l0"])}


class ReadsGradOutputRowsReversed(reference.GRU):
    def backward(self, tape, grad_output=None, grad_hidden=None, **kwargs):
        flipped = None if grad_output is None else grad_output[:, ::-1]
        return super().backward(tape, flipped, grad_hidden, **kwargs)


def test_check_module_gradients_starts_from_a_random_initial_state():
    """hx=None is a random state, not zeros: at T = 1, dW_hh = dgates^T h_0 is zero from a zero state, so
    a backward that drops dW_hh would pass there."""
    x = np.random.default_rng(0).standard_normal((1, 2, 2))  # (T=1, B, I)
    assert reference.check_module_gradients(reference.GRU(2, 3, seed=0), x).ok
    report = reference.check_module_gradients(DropsWeightHhGradient(2, 3, seed=0), x)
    assert not report.ok and not report["weight_hh_l0"].passed, str(report)


def test_check_module_gradients_uses_random_upstream_gradients():
    """The cotangent of every output is random, never ones (``.sum()``): a backward that reads
    grad_output with its batch rows reversed fails."""
    x = np.random.default_rng(1).standard_normal((3, 2, 2))  # (T, B=2, I)
    assert not reference.check_module_gradients(ReadsGradOutputRowsReversed(2, 3, seed=0), x).ok


# -- the tolerance table and its rule ------------------------------------------------------------

# The float64 CPU gradient entry (rtol 1e-12) was set from a measured 2.6e-14 over 600 draws; the three
# fixed draws below measure 8.7e-16 (1150x below the entry: a few float64 roundings). An entry more than
# this factor above them no longer describes the error (a 10x loosening already exceeds it).
FLOAT64_GRADIENT_FACTOR = 10_000


def test_float64_gradient_entry_stays_near_the_error_it_was_measured_by():
    """torch.nn in float64 against the reference: every gradient within the entry, and the entry within
    FLOAT64_GRADIENT_FACTOR of the largest norm-wise error measured."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rtol, _ = tol("float64", "cpu", "gradient")
    worst = 0.0
    for m in (torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2), torch.nn.GRU(3, 4, num_layers=2),
              torch.nn.RNN(3, 4, bidirectional=True)):
        report = compare(m.double(), seq_len=8, batch=3, localise=False)
        assert report.passed, str(report)
        worst = max([worst] + [t.rel for t in report.tensors if t.kind == "gradient"])
    assert worst <= rtol
    assert rtol <= FLOAT64_GRADIENT_FACTOR * worst, (
        f"float64 gradient rtol {rtol:.1e} is {rtol / worst:.0f}x the measured {worst:.1e} "
        f"(stated factor {FLOAT64_GRADIENT_FACTOR})")


@pytest.mark.parametrize("actual,desired,ok", [
    ([0.0, 1.0], [np.inf, 1.0], False),  # finite where the truth is inf
    ([0.0, 1.0], [np.nan, 1.0], False),  # finite where the truth is NaN
    ([-np.inf, 1.0], [np.inf, 1.0], False),  # the other infinity
    ([np.nan, 1.0], [1.0, 1.0], False),  # NaN where the truth is finite
    ([np.inf, 1.0], [np.inf, 1.0], True),
    ([np.nan, 1.0], [np.nan, 1.0], True),
])
def test_compare_arrays_requires_non_finite_values_in_the_same_places(actual, desired, ok):
    """The one rule: non-finite entries agree exactly (NaN where NaN, the same infinity), and the finite
    entries are within tolerance."""
    assert compare_arrays(np.array(actual), np.array(desired), 1e-12, 1e-15)[0] is ok


# -- compare: what a candidate returns -----------------------------------------------------------

LSTM1 = Spec("LSTM", 2, 3)


def _candidate(change=None):
    """A correct function candidate (the reference itself); ``change(spec, result)`` edits its result."""
    def fn(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        res = dict(reference_run(spec.reference(params), spec, input, hx, grad_output, grad_hidden, lengths,
                                 dropout_masks)[0])
        return res if change is None else change(spec, res)
    return fn


def _bump(a):
    return np.asarray(a) + 1e-6 * (1.0 + np.abs(np.asarray(a)))  # far above float64's tolerance


def _change_tuple(key, k):
    def change(spec, res):
        parts = list(res[key])
        parts[k] = _bump(parts[k])
        return {**res, key: tuple(parts)}
    return change


RETURNED = [  # (how the candidate's result is wrong, the tensor the report must fail)
    (lambda s, r: {**r, "output": _bump(r["output"])}, "output"),
    (_change_tuple("hidden", 0), "h_n"),
    (_change_tuple("hidden", 1), "c_n"),
    (lambda s, r: {**r, "input": _bump(r["input"])}, "grad input"),
    (_change_tuple("hx", 0), "grad h_0"),
    (_change_tuple("hx", 1), "grad c_0"),
    (lambda s, r: {**r, "weight_hh_l0": _bump(r["weight_hh_l0"])}, "grad weight_hh_l0"),
    (lambda s, r: {**r, "bias_hh_l0": _bump(r["bias_hh_l0"])}, "grad bias_hh_l0"),
]


@pytest.mark.parametrize("change,name", RETURNED, ids=[n for _, n in RETURNED])
def test_compare_checks_every_tensor_the_candidate_returns(change, name):
    """A candidate wrong in exactly one returned tensor MISMATCHes, and that tensor alone fails."""
    assert compare(_candidate(), LSTM1, localise=False).passed
    report = compare(_candidate(change), LSTM1, localise=False)
    assert not report.passed and [t.name for t in report.failures()] == [name], str(report)


def _ignores_hx(spec, params, input, hx, grad_output, grad_hidden, **kw):
    zeros = tuple(np.zeros_like(h) for h in hx)
    return _candidate()(spec, params, input, zeros, grad_output, grad_hidden, **kw)


def test_compare_draws_random_initial_states_by_default():
    """hx defaults to random states: a candidate that ignores hx MISMATCHes (it agrees only from zeros)."""
    assert compare(_ignores_hx, LSTM1, hx=None, localise=False).passed
    assert not compare(_ignores_hx, LSTM1, localise=False).passed


def _reads_grad_output_rows_reversed(spec, params, input, hx, grad_output, grad_hidden, **kw):
    flipped = None if grad_output is None else grad_output[:, ::-1]
    return _candidate()(spec, params, input, hx, flipped, grad_hidden, **kw)


def test_compare_draws_random_cotangents():
    """The cotangent on output is random, never ones: a candidate that reads it with its batch rows
    reversed MISMATCHes."""
    report = compare(_reads_grad_output_rows_reversed, LSTM1, batch=3, localise=False)
    assert not report.passed, str(report)


@pytest.mark.parametrize("reshape", [lambda o: o[None], lambda o: np.ascontiguousarray(np.swapaxes(o, 0, 1))],
                         ids=["extra axis", "batch-major"])
def test_a_wrongly_shaped_output_is_a_mismatch_naming_both_shapes(reshape):
    """An output of another shape fails as a shape mismatch, even when it holds the right values."""
    report = compare(_candidate(lambda s, r: {**r, "output": reshape(np.asarray(r["output"]))}), LSTM1,
                     seq_len=4, batch=3, gradients=False, localise=False)
    out = report.tensors[0]
    assert not report.passed and out.name == "output" and not out.passed
    assert "shape" in out.note and "(4, 3, 3)" in out.note, out.note


def test_a_dtype_other_than_asked_is_a_mismatch_in_both_directions():
    """Asked for float32, a float64 answer (more exact, within every tolerance) is a dtype mismatch, as a
    float32 answer to a float64 question is; assert_matches_reference raises on it though it is not
    localised."""
    as32 = lambda s, r: {k: (tuple(np.float32(p) for p in v) if isinstance(v, tuple) else np.float32(v))
                         for k, v in r.items()}
    wider = compare(_candidate(), LSTM1, dtype="float32")
    assert not wider.passed and "the candidate returned output is float64" in wider.dtype_problem, str(wider)
    assert all(t.passed for t in wider.tensors)  # only the dtype is wrong
    narrower = compare(_candidate(as32), LSTM1)
    assert not narrower.passed and "the candidate returned output is float32" in narrower.dtype_problem
    assert compare(_candidate(as32), LSTM1, dtype="float32").passed
    with pytest.raises(AssertionError, match="DTYPE MISMATCH"):
        assert_matches_reference(_candidate(), LSTM1, dtype="float32")


# -- compare: where it says the candidate goes wrong ---------------------------------------------


def test_a_place_at_index_zero_is_named():
    """Layer 0, the forward direction and time step 0 are places like any other, named in the text."""
    assert Divergence("step", 0, 0, 0, "f").where() == "layer 0, forward direction, time step 0"


def test_a_final_state_wrong_in_a_deep_bidirectional_stack_names_its_layer_and_direction():
    """h_n[l * D + d] is layer l, direction d: a candidate whose stacked h_n is wrong at index 4 of a
    3-layer bidirectional GRU (every output right) is named at layer 2, forward direction."""
    spec = Spec("GRU", 2, 3, num_layers=3, bidirectional=True)

    def h_n_4_wrong(s, r):
        if s.num_layers != 3:
            return r
        h = np.array(r["hidden"][0])
        h[4] += 1e-3
        return {**r, "hidden": (h,)}

    report = compare(_candidate(h_n_4_wrong), spec, seq_len=3, batch=2, gradients=False)
    div = report.forward
    assert not report.passed and div is not None, str(report)
    assert (div.kind, div.layer, div.direction, div.gate) == ("final state", 2, 0, "h_n"), str(report)


# -- layouts and the weight diff: GRU's two forms -------------------------------------------------

PAPER_GRU = Spec("GRU", 2, 3, reset_after=False)


def _keras_paper_gru(spec, params, input, hx, grad_output, grad_hidden, **kw):
    """A paper-form GRU taking Keras weights (one merged bias) and returning Keras gradients."""
    torch_params = import_state_dict("keras", spec, params)
    res = dict(reference_run(spec.reference(torch_params), spec, input, hx, grad_output, grad_hidden,
                             kw.get("lengths"), kw.get("dropout_masks"))[0])
    if grad_output is None and grad_hidden is None:
        return res
    grads = {k: res.pop(k) for k in list(res) if k not in ("output", "hidden", "input", "hx")}
    # the merged bias enters where b_ih does: its gradient is dL/db_ih, not dL/db_ih + dL/db_hh
    grads = {k: np.zeros_like(v) if k.startswith("bias_hh") else v for k, v in grads.items()}
    return {**res, **export_state_dict("keras", spec, grads)}


def test_a_paper_form_gru_in_the_keras_layout_matches_with_every_bias_gradient():
    """Keras's paper-form GRU has one merged bias: its gradient is torch's dL/db_ih = dL/db_hh, so a correct
    candidate in that layout MATCHes, both bias gradients checked."""
    report = compare(_keras_paper_gru, PAPER_GRU, layout="keras", localise=False)
    assert report.passed, str(report)
    assert {"grad bias_ih_l0", "grad bias_hh_l0"} <= {t.name for t in report.tensors}


def _gru_state(rng):
    return {"weight_ih_l0": rng.standard_normal((9, 2)), "weight_hh_l0": rng.standard_normal((9, 3)),
            "bias_ih_l0": rng.standard_normal(9), "bias_hh_l0": rng.standard_normal(9)}


def _moved(state, block, G=3, H=3):
    """The same sum b_ih + b_hh, merged into b_ih in one gate block (exactly, as a merged layout imports it)."""
    rows = slice(block * H, (block + 1) * H)
    out = {k: v.copy() for k, v in state.items()}
    out["bias_ih_l0"][rows] += out["bias_hh_l0"][rows]
    out["bias_hh_l0"][rows] = 0.0
    return out


def test_weight_diff_reports_a_bias_change_exactly_when_it_changes_the_function():
    """Where only b_ih + b_hh enters the maths (every block of the paper-form GRU, torch-form r and z), a new
    split of the same sum is no difference; torch-form n (b_hn inside the reset product) and a changed sum
    are."""
    rng = np.random.default_rng(4)
    a = _gru_state(rng)
    assert diff_weights(a, _moved(a, 0), mode="GRU") == []
    n_moved = diff_weights(a, _moved(a, 2), mode="GRU")
    assert n_moved and all(d.gates == ("n",) for d in n_moved), n_moved
    assert diff_weights(a, _moved(a, 2), mode="GRU", reset_after=False) == []
    changed = {**a, "bias_ih_l0": a["bias_ih_l0"] + np.r_[np.zeros(3), 0.1 * np.ones(3), np.zeros(3)]}
    for form in (True, False):
        diffs = diff_weights(a, changed, mode="GRU", reset_after=form)
        assert [d.gates for d in diffs] == [("z",)], diffs


def test_weight_diff_of_float64_sets_is_exact():
    """Two float64 weight sets are the same only when equal: one element off by 1e-9 relative is named."""
    a = _gru_state(np.random.default_rng(5))
    b = {k: v.copy() for k, v in a.items()}
    b["weight_hh_l0"][4, 1] *= 1 + 1e-9
    diffs = diff_weights(a, b, mode="GRU")
    assert [(d.tensor, d.gates) for d in diffs] == [("weight_hh", ("z",))], diffs


# -- the torch adapter ---------------------------------------------------------------------------


def test_rnn_bptt_refuses_backward_after_a_saved_tensor_is_modified_in_place():
    """The hand-written backward reads what forward saw: an input or initial state written in place after
    forward is an error at backward, as in torch's own functions (torch refuses in-place writes into the
    output, a view of the tape, at once)."""
    torch = pytest.importorskip("torch")
    from torch_impl import rnn_bptt

    torch.manual_seed(0)
    params = {k: v.detach().requires_grad_() for k, v in torch.nn.GRU(2, 3).double().named_parameters()}
    for written in (0, 1):
        leaves = (torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True),
                  torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True))
        x, h0 = (a * 1.0 for a in leaves)
        out, _ = rnn_bptt("GRU", x, h0, params)
        (x, h0)[written].add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            torch.autograd.grad(out, leaves, torch.randn_like(out))


def test_a_batch_first_torch_module_is_compared_in_its_own_layout():
    """A torch module candidate with batch_first=True is fed (B, T, I) and read back as such: it MATCHes."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    report = compare(torch.nn.GRU(3, 4, batch_first=True).double(), seq_len=5, batch=3, localise=False)
    assert report.passed, str(report)


@pytest.mark.parametrize("p", [0.2, 0.7])
def test_drawn_dropout_masks_keep_each_unit_with_probability_one_minus_p(p):
    """Drawn keep masks are Bernoulli(1 - p), scaled by 1 / (1 - p), in the reference and in torch_impl:
    the kept fraction of 3000 draws is within 5 standard deviations of 1 - p."""
    m = reference.LSTM(2, 3, num_layers=2, dropout=p, seed=0)  # training mode
    x = np.zeros((50, 20, 2))  # (T, B, I)
    masks = [np.asarray(m.forward(x)[2].dropout_masks[0])]  # (T, B, P)
    torch = pytest.importorskip("torch")
    from torch_impl.bptt import prepare

    torch.manual_seed(0)
    params = dict(torch.nn.LSTM(2, 3, num_layers=2).double().named_parameters())
    masks.append(prepare("LSTM", torch.zeros(50, 20, 2, dtype=torch.float64), None, params, num_layers=2,
                         dropout=p, training=True).dropout[0].numpy())
    sd = 5 * np.sqrt(p * (1 - p) / masks[0].size)
    for mask in masks:
        kept = mask != 0
        assert abs(kept.mean() - (1 - p)) <= sd, (p, kept.mean())
        np.testing.assert_allclose(mask[kept], 1 / (1 - p), rtol=1e-15, atol=0)


# -- the module boundary -------------------------------------------------------------------------


def test_backward_follows_the_configuration_its_tape_recorded():
    """batch_first changed between forward and backward: backward still reads grad_output and returns the
    input gradient in the layout forward ran in."""
    m = reference.GRU(2, 3, batch_first=True, seed=0)
    rng = np.random.default_rng(0)
    x, g_out = rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 4, 3))  # (B, T, .)
    _, _, tape = m.forward(x)
    expected = m.backward(tape, g_out)
    m.batch_first = False
    got = m.backward(tape, g_out)
    for name, g in expected.items():
        np.testing.assert_array_equal(got[name], g, err_msg=name)


def test_forward_and_backward_leave_the_callers_arrays_and_their_flags_alone():
    """The caller's arrays stay as they were, writeable included, whether or not they were copied."""
    m = reference.LSTM(2, 3, seed=0)
    rng = np.random.default_rng(0)
    x, h0, c0 = rng.standard_normal((4, 2, 2)), rng.standard_normal((1, 2, 3)), rng.standard_normal((1, 2, 3))
    g_out, dh, dc = rng.standard_normal((4, 2, 3)), rng.standard_normal((1, 2, 3)), rng.standard_normal((1, 2, 3))
    before = [a.copy() for a in (x, h0, c0, g_out, dh, dc)]
    _, _, tape = m.forward(x, (h0, c0))
    m.backward(tape, g_out, (dh, dc))
    for k, (a, b) in enumerate(zip((x, h0, c0, g_out, dh, dc), before, strict=True)):
        assert a.flags.writeable and np.array_equal(a, b), k


def test_a_torch_input_written_after_forward_changes_no_gradient():
    """forward copies the torch tensors a tape keeps (input, hx): writing into them afterwards changes
    nothing backward returns."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    m = reference.GRU(2, 3, seed=0)
    x, h0 = torch.randn(4, 2, 2, dtype=torch.float64), torch.randn(1, 2, 3, dtype=torch.float64)
    out, _, tape = m.forward(x, h0)
    g = torch.randn_like(out)
    expected = m.backward(tape, g)
    x.add_(1.0)
    h0.add_(1.0)
    got = m.backward(tape, g)
    for name, v in expected.items():
        assert torch.equal(got[name], v), name


# -- the study tools' defaults -------------------------------------------------------------------


def test_hidden_gradient_norms_default_to_the_top_layer_forward_direction():
    """As documented: layer=None is the top layer, direction 0."""
    m = reference.LSTM(2, 3, num_layers=2, bidirectional=True, seed=0)
    rng = np.random.default_rng(0)
    x, go = rng.standard_normal((5, 2, 2)), rng.standard_normal((5, 2, 6))
    default = reference.hidden_gradient_norms(m, x, grad_output=go)
    np.testing.assert_array_equal(default, reference.hidden_gradient_norms(m, x, grad_output=go, layer=1, direction=0))
    assert not np.array_equal(default, reference.hidden_gradient_norms(m, x, grad_output=go, layer=0))
