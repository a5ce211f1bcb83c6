"""The verdicts are checked: every verdict function of the project FAILs every kind of wrong answer, names the
quantity (and, where it localises, the place), and PASSes a change just below its tolerance.

The wrong answers come from ``wrong_answers.py``: a correct result with exactly one quantity perturbed (above or
below the tolerance, NaN, an infinity, a finite value where the truth is not, another dtype, another shape, a
missing key); hypothesis draws the quantity, the place and the kind.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import reference
from parity_tests import wrong_answers as wa
from reference.gradcheck import check_gradients, check_module_gradients, check_vjp
from reference.recurrent import RNNBase
from reference.tolerances import TOLERANCES, compare_arrays
from reference.verify import CandidateError, Spec, compare
from reference.verify.testing import assert_matches_reference

# -- compare_arrays: the one rule ----------------------------------------------------------------


@st.composite
def truths(draw, nonfinite: bool = True):
    """An array of values at several scales, sometimes with NaN and infinities at drawn places."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    a = rng.uniform(-1, 1, shape) * 10.0 ** draw(st.integers(-6, 3))
    if nonfinite and draw(st.booleans()) and a.size > 1:
        for value in draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), min_size=1, max_size=a.size - 1)):
            a[np.unravel_index(int(rng.integers(a.size)), shape)] = value
    return a


@settings(max_examples=120)
@given(truth=truths(), entry=st.sampled_from(sorted(TOLERANCES)), data=st.data())
def test_compare_arrays_fails_every_wrong_answer_and_passes_just_below(truth, entry, data):
    rtol, atol = TOLERANCES[entry]
    assert compare_arrays(truth, truth, rtol, atol)[0]  # NaN where NaN, the same infinities: equal
    p = data.draw(wa.perturbations({"a": truth}, ("above", "below", "nan", "inf", "finite", "shape")))
    wrong = wa.wrong_value(p, truth, rtol, atol)
    if p.kind == "shape":
        with pytest.raises(ValueError, match="compare_arrays: shapes differ"):
            compare_arrays(wrong, truth, rtol, atol)
        return
    ok, max_abs, _ = compare_arrays(wrong, truth, rtol, atol)
    assert ok == (not p.wrong), (p, max_abs)


@pytest.mark.parametrize("actual,desired", [([1.0, -np.inf], [1.0, np.inf]), ([1.0, np.nan], [1.0, np.inf]),
                                            ([1.0, 5.0], [1.0, np.nan]), ([np.nan, 1.0], [np.inf, 1.0])])
def test_compare_arrays_fails_any_other_non_finite_value(actual, desired):
    assert not compare_arrays(np.array(actual), np.array(desired), 1e-5, 1e-7)[0]


# -- gradcheck: check_gradients and check_vjp on a cell's gradients --------------------------------

CELLS = {"RNNCell": dict(nonlinearity="tanh"), "GRUCell": {}, "LSTMCell": {}}


def cell_problem(kind: str, I: int, H: int, B: int, seed: int):
    """(fn, arrays, analytic, cotangents) of a reference cell in float64: its backward is the truth."""
    cell = getattr(reference, kind)(I, H, dtype=np.float64, seed=seed, **CELLS[kind])
    rng = np.random.default_rng(seed)
    pair = kind == "LSTMCell"
    arrays = {"input": rng.uniform(-1, 1, (B, I)), **{f"hx[{k}]": rng.uniform(-1, 1, (B, H)) for k in range(1 + pair)},
              **{k: np.asarray(v) for k, v in cell.state_dict().items()}}
    cot = tuple(rng.standard_normal((B, H)) for _ in range(1 + pair))

    def fn(**a):
        cell.load_state_dict({k: a[k] for k in cell.state_dict()})
        hidden, _ = cell.forward(a["input"], (a["hx[0]"], a["hx[1]"]) if pair else a["hx[0]"])
        return tuple(hidden) if pair else (hidden,)

    fn(**arrays)
    _, tape = cell.forward(arrays["input"], (arrays["hx[0]"], arrays["hx[1]"]) if pair else arrays["hx[0]"])
    analytic = wa.check_names(cell.backward(tape, cot if pair else cot[0]))
    return fn, arrays, analytic, cot


@st.composite
def cell_problems(draw):
    return cell_problem(draw(st.sampled_from(sorted(CELLS))), draw(st.integers(1, 3)), draw(st.integers(1, 3)),
                        draw(st.integers(1, 2)), draw(st.integers(0, 2**16)))


def _assert_names(report, p):
    bad = [c.name for c in report.checks if not c.passed]
    if p.wrong:
        assert not report.ok and bad == [p.key], (p, str(report))
    else:
        assert report.ok, (p, str(report))


# Finite differences carry their own error (about 1e-9 here, against a bound of 1e-8 + 1e-6 |g|): the margins
# below and above the bound keep the verdict clear of it.
GC_ABOVE, GC_BELOW = (1.5, 4.0), (0.05, 0.5)


@settings(max_examples=40)
@given(problem=cell_problems(), data=st.data())
def test_check_gradients_fails_one_wrong_gradient_element_wise_and_names_it(problem, data):
    fn, arrays, analytic, cot = problem
    rtol, atol = 1e-6, 1e-8
    assert check_gradients(fn, arrays, analytic, cot, rtol=rtol, atol=atol).ok
    p = data.draw(wa.perturbations(analytic, ("above", "below", "nan", "inf"), above=GC_ABOVE, below=GC_BELOW))
    wrong = wa.perturb(analytic, p, rtol, atol, "elementwise")
    report = check_gradients(fn, arrays, wrong, cot, rtol=rtol, atol=atol)
    _assert_names(report, p)
    if p.wrong and p.element:
        assert report[p.key].worst_index == p.index, (p, str(report))


def test_check_gradients_is_element_wise_where_a_norm_wise_rule_passes():
    """One small element wrong by 3x its own bound, far below atol + rtol * max|g|: element-wise, it fails."""
    fn, arrays, analytic, cot = cell_problem("LSTMCell", 3, 3, 2, 7)
    key = "weight_ih"
    g = analytic[key]
    index = tuple(int(i) for i in np.unravel_index(int(np.argmin(np.abs(g))), g.shape))
    p = wa.Perturbation("above", key, index, factor=3.0)
    wrong = wa.perturb(analytic, p, 1e-6, 1e-8, "elementwise")
    assert np.abs(wrong[key] - g).max() < 1e-8 + 1e-6 * np.abs(g).max()  # a norm-wise rule would pass it
    report = check_gradients(fn, arrays, wrong, cot)
    assert not report.ok and not report[key].passed and report[key].worst_index == index


@settings(max_examples=40)
@given(problem=cell_problems(), seed=st.integers(0, 2**16), data=st.data())
def test_check_vjp_fails_one_wrong_gradient_and_names_it(problem, seed, data):
    fn, arrays, analytic, cot = problem
    rtol, atol = 1e-6, 1e-8
    assert check_vjp(fn, arrays, analytic, cot, rtol=rtol, atol=atol, seed=seed).ok
    p = data.draw(wa.perturbations(analytic, ("above", "below", "nan", "inf"), above=GC_ABOVE, below=GC_BELOW))
    v = wa.vjp_directions({k: a.shape for k, a in arrays.items()}, seed)[p.key]
    if p.kind in ("above", "below") and not np.any(v[p.index]):
        return
    wrong = wa.replaced(analytic, p.key, wa.vjp_wrong_value(p, analytic[p.key], v, rtol, atol))
    _assert_names(check_vjp(fn, arrays, wrong, cot, rtol=rtol, atol=atol, seed=seed), p)


@pytest.mark.parametrize("check", [check_gradients, check_vjp])
@given(problem=cell_problems(), data=st.data())
@settings(max_examples=10)
def test_gradcheck_refuses_a_malformed_gradient_by_name(check, problem, data):
    fn, arrays, analytic, cot = problem
    key = data.draw(st.sampled_from(sorted(analytic)))
    kind = data.draw(st.sampled_from(["shape", "drop", "complex", "int", "extra"]))
    if kind == "shape":
        wrong = wa.perturb(analytic, wa.Perturbation("shape", key, variant=data.draw(st.integers(0, 2))))
        error, message = ValueError, rf"analytic\['{re.escape(key)}'\]: expected shape"
    elif kind == "drop":
        wrong = {k: v for k, v in analytic.items() if k != key}
        error, message = ValueError, rf"analytic: expected a gradient for every array, missing \['{re.escape(key)}'\]"
    elif kind == "extra":
        wrong = {**analytic, key + "_extra": analytic[key]}
        error, message = ValueError, rf"analytic: unexpected keys \['{re.escape(key)}_extra'\]"
    else:
        value = analytic[key] * (1 + 1j) if kind == "complex" else np.round(analytic[key]).astype(np.int64)
        wrong = {**analytic, key: value}
        error, message = TypeError, rf"analytic\['{re.escape(key)}'\]: expected real floating values"
    with pytest.raises(error, match=message):
        check(fn, arrays, wrong, cot)


# -- check_module_gradients: modules whose backward is wrong in one gradient ----------------------------

MODULES = [  # (class, constructor keywords, input shape, hx)
    (reference.RNNCell, dict(input_size=2, hidden_size=2, nonlinearity="relu"), (3, 2)),
    (reference.GRUCell, dict(input_size=2, hidden_size=2), (2, 2)),
    (reference.LSTMCell, dict(input_size=2, hidden_size=2), (2, 2)),
    (reference.RNN, dict(input_size=2, hidden_size=2, nonlinearity="tanh", num_layers=2), (3, 1, 2)),
    (reference.GRU, dict(input_size=2, hidden_size=2, reset_after=False), (3, 2, 2)),
    (reference.GRU, dict(input_size=1, hidden_size=2, bidirectional=True), (2, 1, 1)),
    (reference.LSTM, dict(input_size=2, hidden_size=2, proj_size=1, num_layers=2, bidirectional=True), (2, 1, 2)),
]


def _module_truth(cls, kw, shape, seed):
    m = cls(**kw, dtype=np.float64, seed=seed)
    x = np.random.default_rng(seed).uniform(-1, 1, shape)
    out = m.forward(x)
    rng = np.random.default_rng(seed + 1)
    if isinstance(m, RNNBase):
        grads = m.backward(out[-1], rng.standard_normal(np.shape(out[0])),
                           tuple(rng.standard_normal(np.shape(h)) for h in out[1]) if isinstance(out[1], tuple)
                           else rng.standard_normal(np.shape(out[1])))
    else:
        grads = m.backward(out[-1], tuple(rng.standard_normal(np.shape(h)) for h in out[0])
                           if isinstance(out[0], tuple) else rng.standard_normal(np.shape(out[0])))
    return m, x, wa.check_names(grads)


@settings(max_examples=30)
@given(which=st.integers(0, len(MODULES) - 1), method=st.sampled_from(["finite differences", "vjp"]),
       seed=st.integers(0, 2**10), data=st.data())
@example(which=6, method="finite differences", seed=0, data=None).via("the deepest module, every key")
def test_check_module_gradients_fails_one_wrong_gradient_and_names_it(which, method, seed, data):
    cls, kw, shape = MODULES[which]
    m, x, truth = _module_truth(cls, kw, shape, seed)
    if data is None:  # the pinned example: the weight of the last layer's reverse direction, just above
        key = max(k for k in truth if k.startswith("weight_hh"))
        p = wa.Perturbation("above", key, (0, 0), factor=GC_ABOVE[0])
    else:
        p = data.draw(wa.perturbations(truth, ("above", "below", "nan", "inf"), above=GC_ABOVE, below=GC_BELOW,
                                       use_regions=method != "vjp"))
    wrong = wa.wrong_backward(cls, p, method=method, seed=seed)(**kw, dtype=np.float64, seed=seed)
    wrong.load_state_dict(m.state_dict())
    if method == "vjp" and p.kind in ("above", "below"):
        shapes = {"input": x.shape, **{k: np.shape(v) for k, v in truth.items() if k.startswith("hx[")},
                  **{k: np.shape(v) for k, v in m.state_dict().items()}}
        if not np.any(wa.vjp_directions(shapes, seed)[p.key][p.index]):
            return
    _assert_names(check_module_gradients(wrong, x, seed=seed, method=method), p)


@pytest.mark.parametrize("method", ["finite differences", "vjp"])
@pytest.mark.parametrize("cls,kw,shape", [(reference.LSTMCell, dict(input_size=2, hidden_size=2), (2, 2)),
                                          (reference.GRU, dict(input_size=2, hidden_size=2, num_layers=2), (2, 1, 2)),
                                          (reference.LSTM, dict(input_size=2, hidden_size=3, proj_size=2), (2, 2, 2))])
def test_check_module_gradients_draws_a_random_initial_state_by_default(cls, kw, shape, method):
    """A backward that differentiates the run from a zero state is right exactly when hx is zero: the default
    hx must be random, or every bug in the hx paths passes."""
    m = wa.ignores_initial_state(cls)(**kw, dtype=np.float64, seed=3)
    x = np.random.default_rng(3).uniform(-1, 1, shape)
    report = check_module_gradients(m, x, method=method)
    assert not report.ok, str(report)
    zeros = m.forward(x)[-2 if isinstance(m, RNNBase) else 0]
    zeros = tuple(np.zeros_like(z) for z in zeros) if isinstance(zeros, tuple) else np.zeros_like(zeros)
    assert check_module_gradients(m, x, zeros, method=method).ok  # the same bug, hidden by a zero state


# -- reference.verify.compare and assert_matches_reference: function candidates wrong in one quantity ----------



@st.composite
def problems(draw, max_layers: int = 2):
    """(spec, T, B, seed, dtype) of a small comparison: every mode, GRU in both forms, LSTM with projection."""
    mode = draw(st.sampled_from(["RNN_TANH", "RNN_RELU", "GRU", "GRU paper", "LSTM", "LSTM proj"]))
    H = draw(st.integers(2, 3))
    kw = {"reset_after": False} if mode == "GRU paper" else {"proj_size": H - 1} if mode == "LSTM proj" else {}
    spec = Spec(mode.split()[0], draw(st.integers(1, 3)), H, draw(st.integers(1, max_layers)),
                bidirectional=draw(st.booleans()), **kw)
    return spec, draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 2**16)), \
        draw(st.sampled_from([np.float64, np.float32]))


def truth_of(spec: Spec, T: int, B: int, seed: int) -> dict:
    """A correct backward result of ``spec`` on drawn data: the quantities and shapes compare will see."""
    rng = np.random.default_rng(seed)
    params = spec.reference(seed=seed).state_dict()
    hx = tuple(rng.uniform(-1, 1, s) for s in spec.state_shapes(B))
    return wa.reference_result(spec, params, rng.uniform(-1, 1, (T, B, spec.input_size)), hx,
                               rng.standard_normal((T, B, spec.D * spec.P)),
                               tuple(rng.standard_normal(s) for s in spec.state_shapes(B)))


def _assert_verdict(p: wa.Perturbation, run):
    """Run ``run()`` (a compare or assert_matches_reference) on a candidate wrong by ``p``; check the verdict."""
    name = wa.report_name(p.key)
    if p.kind == "drop":
        with pytest.raises(CandidateError, match=wa.drop_message(p.key)):
            run()
        return None
    report = run()
    if not p.wrong:
        assert report.passed, (p, str(report))
        return report
    assert not report.passed, (p, str(report))
    if p.kind == "dtype":
        other = "float32" if report.dtype == "float64" else "float64"
        assert f"{p.key} is {other}" in report.dtype_problem, (p, str(report))
    else:
        assert [t.name for t in report.failures()] == [name], (p, str(report))
        if p.kind == "shape":
            assert "shape" in report.failures()[0].note
    return report


@settings(max_examples=60)
@given(problem=problems(), data=st.data())
def test_compare_fails_one_wrong_quantity_names_it_and_passes_just_below(problem, data):
    spec, T, B, seed, dtype = problem
    p = data.draw(wa.perturbations(truth_of(spec, T, B, seed), wa.KINDS, spec=spec))
    cand = wa.wrong_candidate(p, spec, T, B)
    report = _assert_verdict(p, lambda: compare(cand, spec, seq_len=T, batch=B, seed=seed, dtype=dtype,
                                                localise=False))
    if report is not None:  # every quantity is compared: none is left out of the report
        expected = {wa.report_name(k) for k in wa.flatten(truth_of(spec, T, B, seed))}
        assert {t.name for t in report.tensors} == expected and not report.unchecked


@settings(max_examples=25)
@given(problem=problems(max_layers=3), data=st.data())
@example(problem=(Spec("LSTM", 2, 2, 3, bidirectional=True), 3, 1, 0, np.float64),
         data=None).via("layer 1 forward of a deep bidirectional stack: index 2, which a swap names layer 0 reverse")
def test_compare_localises_a_wrong_final_state_at_its_layer_and_direction(problem, data):
    spec, T, B, seed, dtype = problem
    truth = truth_of(spec, T, B, seed)
    if data is None:
        p = wa.Perturbation("above", "hidden[0]", (2, 0, 0), 1.5)
    else:
        key = data.draw(st.sampled_from([k for k in wa.flatten(truth) if k.startswith("hidden")]))
        p = wa.Perturbation("above", key, data.draw(wa.indices(key, truth[key[:-3]][int(key[-2])], "above",
                                                               use_regions=False)), data.draw(st.floats(1.05, 2)))
    if T == 1:
        return  # with one step, h_n is the step's state: a wrong one is a wrong step
    report = compare(wa.wrong_candidate(p, spec, T, B), spec, seq_len=T, batch=B, seed=seed, dtype=dtype)
    where = wa.place(p.key, p.index, spec)
    div = report.forward
    assert div is not None and not report.stopped, str(report)
    assert (div.kind, div.layer, div.direction, div.gate) == \
        ("final state", where["layer"], where["direction"], wa.report_name(p.key)), str(report)


@settings(max_examples=25)
@given(problem=problems(max_layers=1), data=st.data())
def test_compare_localises_a_wrong_output_at_its_direction_time_and_batch_row(problem, data):
    spec, T, B, seed, dtype = problem
    truth = truth_of(spec, T, B, seed)
    p = wa.Perturbation("above", "output", data.draw(wa.indices("output", truth["output"], "above",
                                                                use_regions=False)), data.draw(st.floats(1.05, 2)))
    report = compare(wa.wrong_candidate(p, spec, T, B), spec, seq_len=T, batch=B, seed=seed, dtype=dtype)
    where, div = wa.place("output", p.index, spec), report.forward
    assert div is not None and not report.stopped, str(report)
    assert (div.layer, div.direction, div.time, div.batch) == (0, where["direction"], where["time"],
                                                               where["batch"]), str(report)


@settings(max_examples=20)
@given(problem=problems(), data=st.data())
def test_assert_matches_reference_raises_on_one_wrong_quantity_with_the_report(problem, data):
    spec, T, B, seed, dtype = problem
    p = data.draw(wa.perturbations(truth_of(spec, T, B, seed), ("above", "below", "nan", "dtype"), spec=spec))
    cand = wa.wrong_candidate(p, spec, T, B)
    run = lambda: assert_matches_reference(cand, spec, seq_len=T, batch=B, seed=seed, dtype=dtype, localise=False)
    if not p.wrong:
        assert run().passed
        return
    with pytest.raises(AssertionError, match="does not match the reference") as info:
        run()
    message = str(info.value)
    assert "RESULT: MISMATCH" in message
    if p.kind == "dtype":
        assert "DTYPE MISMATCH" in message and p.key in message
    else:
        assert re.search(rf"^  {re.escape(wa.report_name(p.key))} .*FAIL", message, re.MULTILINE), message
