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
from reference.tolerances import TOLERANCES, candidate_tol, compare_arrays
from reference.verify import CandidateError, Spec, compare, diff_weights, layouts
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


# -- CandidateError: every malformed result names what was expected and what came back ----------------------

MALFORMED = {  # name -> (how a correct result is broken, a regex naming what was expected and what came back)
    "a tuple": (lambda r: (r["output"], r["hidden"]), r"returned a tuple of 2; expected a mapping with 'output'"),
    "None": (lambda r: None, r"returned None; expected a mapping with 'output' \(T, B, D\*P\) and 'hidden'"),
    "no output": (lambda r: {k: v for k, v in r.items() if k != "output"},
                  r"returned no 'output' \(keys \[.*'hidden'.*\]\); expected 'output' and 'hidden'"),
    "no hidden": (lambda r: {k: v for k, v in r.items() if k != "hidden"},
                  r"returned no 'hidden' \(keys \['.*\]\); expected 'output' and 'hidden'"),
    "hidden too long": (lambda r: {**r, "hidden": (*r["hidden"], r["hidden"][0])},
                        r"returned 'hidden' as a tuple of \d; expected a tuple \(h_n"),
    "output as text": (lambda r: {**r, "output": "output"}, r"returned 'output' as str.*; expected a real array"),
    "output ragged": (lambda r: {**r, "output": [[1.0], [1.0, 2.0]]}, r"returned 'output' as list; expected an array"),
    "complex output": (lambda r: {**r, "output": r["output"] * 1j},
                       r"returned 'output' as ndarray of shape .* of dtype complex128; expected a real array"),
    "bool h_n": (lambda r: {**r, "hidden": (r["hidden"][0] > 0, *r["hidden"][1:])},
                 r"returned 'hidden'\[0\] as ndarray .* of dtype bool; expected a real array"),
    "unknown key": (lambda r: {**r, "weight_xx_l0": r["output"]},
                    r"returned unknown gradient keys \['weight_xx_l0'\]; expected 'output', 'hidden'"),
    "hx too short": (lambda r: {**r, "hx": r["hx"][:-1] or None},
                     r"returned 'hx' as (a tuple of \d|None); expected a tuple like hx \(\(dh_0"),
    "complex gradient": (lambda r: {**r, "weight_hh_l0": r["weight_hh_l0"] * 1j},
                         r"returned 'weight_hh_l0' as ndarray .* of dtype complex128; expected a real array"),
}


@settings(max_examples=30)
@given(problem=problems(), malformed=st.sampled_from(sorted(MALFORMED)))
def test_every_malformed_result_is_a_candidate_error_naming_expected_and_returned(problem, malformed):
    spec, T, B, seed, dtype = problem
    breaks, message = MALFORMED[malformed]

    def candidate(spec_, params, input, hx, grad_output, grad_hidden, **kw):
        return breaks(wa.reference_result(spec_, params, input, hx, grad_output, grad_hidden, **kw))

    with pytest.raises(CandidateError, match=message):
        compare(candidate, spec, seq_len=T, batch=B, seed=seed, dtype=dtype)


def test_a_candidate_that_raises_and_one_in_a_foreign_layout_that_returns_bad_gradients_are_named():
    spec = Spec("LSTM", 2, 3)

    def raises(*args, **kw):
        raise FloatingPointError("overflow in step 3")

    with pytest.raises(CandidateError, match=r"raises raised FloatingPointError: overflow in step 3 \(running LSTM"):
        compare(raises, spec)

    def keras(spec_, params, input, hx, grad_output, grad_hidden, **kw):
        res = wa.reference_result(spec_, layouts.import_state_dict("keras", spec_, params), input, hx, grad_output,
                                  grad_hidden, **kw)
        grads = layouts.export_state_dict("keras", spec_, {k: v for k, v in res.items() if k.startswith(("w", "b"))})
        grads["l0"]["kernel"] = grads["l0"]["kernel"].T  # (4H, I): the wrong orientation
        return {k: v for k, v in res.items() if not k.startswith(("w", "b"))} | grads

    with pytest.raises(CandidateError, match=r"weight gradients in the keras layout: weights\['l0'\]: kernel: "
                                             r"expected 12 gate rows"):
        compare(keras, spec, layout="keras")


# -- module candidates: a reference subclass and a torch module, wrong in one quantity -----------------------


def _wrong_reference_class(cls, p: wa.Perturbation):
    """A reference layer subclass whose forward (for output, h_n, c_n) or backward (for gradients) is wrong by p."""

    class Wrong(cls):
        def forward(self, input, hx=None, **kw):
            out, hidden, tape = super().forward(input, hx, **kw)
            res = {"output": out, "hidden": hidden if isinstance(hidden, tuple) else (hidden,)}
            if wa.kind_of(p.key) == "forward":
                res = wa.perturb(res, p, *candidate_tol(out.dtype, "cpu", "forward"))
            h = res["hidden"]
            return res["output"], h if isinstance(hidden, tuple) else h[0], tape

        def backward(self, tape, *args, **kw):
            grads = super().backward(tape, *args, **kw)
            if wa.kind_of(p.key) == "forward":
                return grads
            res = {**grads, "hx": grads["hx"] if isinstance(grads["hx"], tuple) else (grads["hx"],)}
            rtol, atol = candidate_tol(np.asarray(grads["input"]).dtype, "cpu", "gradient")
            res = wa.perturb(res, p, rtol, atol)
            return {**res, "hx": res["hx"] if isinstance(grads["hx"], tuple) else res["hx"][0]}

    return Wrong


REFERENCE_LAYERS = [(reference.LSTM, dict(proj_size=1, num_layers=2, bidirectional=True)),
                    (reference.GRU, dict(reset_after=False)), (reference.RNN, dict(nonlinearity="relu"))]


@settings(max_examples=20)
@given(which=st.integers(0, len(REFERENCE_LAYERS) - 1), seed=st.integers(0, 2**10), data=st.data())
def test_a_reference_subclass_is_checked_as_its_own_class(which, seed, data):
    """A subclass of a reference module is run as itself (not as the stock reference), wrong in one quantity."""
    cls, kw = REFERENCE_LAYERS[which]
    module = cls(2, 2, **kw, dtype=np.float64, seed=seed)
    spec = Spec.coerce(module)
    p = data.draw(wa.perturbations(truth_of(spec, 5, 3, seed), ("above", "below", "nan", "inf"), spec=spec))
    wrong = _wrong_reference_class(cls, p)(2, 2, **kw, dtype=np.float64, seed=seed)
    _assert_verdict(p, lambda: compare(wrong, localise=False, seed=seed))


# -- layouts: round trips, and one wrong gate block in a foreign layout is that gate's block in torch's ---------

LAYOUT_CASES = [(layout, mode, ra, proj) for layout in layouts.LAYOUTS for mode in ("RNN", "GRU", "LSTM")
                for ra in ((True, False) if mode == "GRU" else (True,)) for proj in ((0, 1) if mode == "LSTM" else (0,))
                if layout == "torch" or (layout, mode) in layouts._FORMATS]
SPEC_MODE = {"RNN": "RNN_TANH", "GRU": "GRU", "LSTM": "LSTM"}


def torch_cell(mode: str, I: int, H: int, proj: int, rng) -> dict:
    G, P = len(layouts.TORCH_ORDER[mode]), proj or H
    w = {"weight_ih": rng.uniform(-0.6, 0.6, (G * H, I)), "weight_hh": rng.uniform(-0.6, 0.6, (G * H, P)),
         "bias_ih": rng.uniform(-0.6, 0.6, G * H), "bias_hh": rng.uniform(-0.6, 0.6, G * H)}
    return w | ({"weight_hr": rng.uniform(-0.6, 0.6, (proj, H))} if proj else {})


def _merged(layout: str, mode: str, ra: bool) -> bool:
    fmt = layouts.layout_format(layout, mode)
    return fmt is not None and (fmt.bias_kind == "merged" or (fmt.bias_kind == "rows" and not ra))


def _run(mode, ra, proj, cell, x, seed):
    """The one-layer reference's output with these cell weights: the function the weights compute."""
    spec = Spec(SPEC_MODE[mode], x.shape[-1], cell["weight_hr" if proj else "weight_hh"].shape[-1 if proj else 1],
                reset_after=ra, proj_size=proj)
    m = spec.reference({f"{k}_l0": v for k, v in cell.items()})
    hx = tuple(np.random.default_rng(seed).uniform(-1, 1, s) for s in spec.state_shapes(x.shape[1]))
    return np.asarray(m.forward(x, hx if spec.lstm else hx[0])[0])


@pytest.mark.parametrize("case", LAYOUT_CASES, ids=lambda c: "-".join(map(str, c)))
@settings(max_examples=5)
@given(I=st.integers(1, 3), H=st.integers(2, 3), seed=st.integers(0, 2**16))
def test_every_layout_round_trips_and_keeps_the_function(case, I, H, seed):
    layout, mode, ra, proj = case
    rng = np.random.default_rng(seed)
    t = torch_cell(mode, I, H, proj, rng)
    if proj and layout != "torch":
        with pytest.raises(ValueError, match=r"projections \(weight_hr\) have no place"):
            layouts.export_weights(layout, mode, t, reset_after=ra)
        return
    w = layouts.export_weights(layout, mode, t, reset_after=ra)
    back = layouts.import_weights(layout, mode, w, reset_after=ra)
    again = layouts.export_weights(layout, mode, back, reset_after=ra)  # foreign -> torch -> foreign: exact
    assert set(again) == set(w) and all(np.array_equal(again[k], w[k]) for k in w)
    assert set(back) == set(t) and all(np.array_equal(back[k], t[k]) for k in t if not k.startswith("bias"))
    if _merged(layout, mode, ra):  # one bias: (b_ih + b_hh, 0)
        assert np.array_equal(back["bias_ih"], t["bias_ih"] + t["bias_hh"]) and not back["bias_hh"].any()
    else:
        assert np.array_equal(back["bias_ih"], t["bias_ih"]) and np.array_equal(back["bias_hh"], t["bias_hh"])
    x = rng.uniform(-1, 1, (3, 2, I))
    np.testing.assert_allclose(_run(mode, ra, proj, back, x, seed), _run(mode, ra, proj, t, x, seed),
                               rtol=1e-13, atol=1e-15)  # the same function, in either GRU form


def test_torch_form_gru_refuses_a_merged_bias():
    """b_hn sits inside the reset product: torch's GRU cannot merge its biases, in either direction."""
    t = torch_cell("GRU", 2, 3, 0, np.random.default_rng(0))
    w = layouts.export_weights("keras", "GRU", t)
    assert w["bias"].shape == (2, 9)
    merged = layouts.export_weights("keras", "GRU", t, reset_after=False)
    with pytest.raises(ValueError, match="reset_after=False GRU; torch's form"):
        layouts.import_weights("keras", "GRU", merged)


FOREIGN_CASES = [c for c in LAYOUT_CASES if c[0] != "torch" and not c[3]]


@st.composite
def foreign_block_perturbations(draw, case):
    """(layout, mode, reset_after, torch weights, foreign weights, the foreign array, its gate letter, part, the
    perturbed foreign weights): one gate block of one foreign array moved."""
    layout, mode, ra, _ = case
    fmt = layouts.layout_format(layout, mode)
    H = draw(st.integers(2, 3))
    t = torch_cell(mode, draw(st.integers(1, 3)), H, 0, np.random.default_rng(draw(st.integers(0, 2**16))))
    w = layouts.export_weights(layout, mode, t, reset_after=ra)
    name = draw(st.sampled_from([fmt.w_in, fmt.w_h, fmt.bias]))
    gate = draw(st.sampled_from(fmt.order))
    j, GH = fmt.order.index(gate), len(fmt.order) * H
    wrong = {k: np.array(v, copy=True) for k, v in w.items()}
    a = wrong[name]
    part = 0
    if name == fmt.bias and a.ndim == 2:  # keras GRU rows: (input, recurrent)
        part = draw(st.integers(0, 1))
        a[part, j * H:(j + 1) * H] += draw(st.sampled_from([0.5, -0.25]))
    elif name == fmt.bias and fmt.bias_kind == "concat":  # onnx [Wb, Rb]
        part = draw(st.integers(0, 1))
        a[part * GH + j * H:part * GH + (j + 1) * H] += draw(st.sampled_from([0.5, -0.25]))
    elif fmt.transposed and name != fmt.bias:
        a[:, j * H:(j + 1) * H] += draw(st.sampled_from([0.5, -0.25]))
    else:
        a[j * H:(j + 1) * H] += draw(st.sampled_from([0.5, -0.25]))
    return layout, mode, ra, t, w, name, gate, part, wrong


TORCH_OF = lambda fmt, name, part: ("weight_ih" if name == fmt.w_in else "weight_hh" if name == fmt.w_h
                                    else ("bias_ih", "bias_hh")[part])


@pytest.mark.parametrize("foreign", FOREIGN_CASES, ids=lambda c: "-".join(map(str, c[:3])))
@settings(max_examples=8)
@given(data=st.data())
def test_one_wrong_foreign_gate_block_is_that_gate_in_torch_and_in_the_weight_diff(foreign, data):
    layout, mode, ra, t, w, name, gate, part, wrong = data.draw(foreign_block_perturbations(foreign))
    fmt = layouts.layout_format(layout, mode)
    right, moved = (layouts.import_weights(layout, mode, v, reset_after=ra) for v in (w, wrong))
    target = TORCH_OF(fmt, name, part)
    j, G = layouts.TORCH_ORDER[mode].index(gate), len(fmt.order)
    for k in right:
        rows = np.abs(moved[k] - right[k]).reshape(G, -1).max(axis=1) > 0  # which gate blocks moved
        assert rows.tolist() == ([g == j for g in range(G)] if k == target else [False] * G), (k, target, gate)
    spec_mode = SPEC_MODE[mode]
    diffs = diff_weights({"l0": wrong}, {f"{k}_l0": v for k, v in t.items()}, layout_a=layout, mode=spec_mode,
                         reset_after=ra)
    assert [(d.layer, d.direction, d.tensor, d.gates) for d in diffs] == [(0, 0, target, (gate,) if G > 1 else ("h",))], \
        [d.text for d in diffs]
    assert diff_weights({"l0": w}, {f"{k}_l0": v for k, v in t.items()}, layout_a=layout, mode=spec_mode,
                        reset_after=ra) == []  # the same function: a merged bias is not a difference


@pytest.mark.parametrize("mode,block", [(m, j) for m, G in (("RNN_TANH", 1), ("GRU", 3), ("GRU paper", 3), ("LSTM", 4))
                                        for j in range(G)])
@settings(max_examples=4)
@given(amount=st.sampled_from([0.5, -0.3]), seed=st.integers(0, 2**16))
def test_the_weight_diff_reports_a_bias_split_exactly_where_it_changes_the_function(mode, block, amount, seed):
    """Moving an amount from b_hh to b_ih keeps b_ih + b_hh: the same function except in torch-form GRU's n
    block, where b_hn sits inside the reset product; paper-form GRU has no such block."""
    spec = Spec(mode.split()[0], 2, 3, reset_after=mode != "GRU paper")
    sd = {k: np.asarray(v) for k, v in spec.reference(seed=seed).state_dict().items()}
    moved = dict(sd, bias_ih_l0=sd["bias_ih_l0"].copy(), bias_hh_l0=sd["bias_hh_l0"].copy())
    moved["bias_ih_l0"][block * 3:(block + 1) * 3] += amount  # the parts grow, their sum stays (to rounding)
    moved["bias_hh_l0"][block * 3:(block + 1) * 3] -= amount
    x = np.random.default_rng(seed).uniform(-1, 1, (3, 2, 2))
    same = np.allclose(spec.reference(moved).forward(x)[0], spec.reference(sd).forward(x)[0], rtol=1e-13, atol=1e-15)
    diffs = diff_weights(moved, sd, mode=spec.mode, reset_after=spec.reset_after)
    gate = (spec.gates or ("h",))[block]
    assert same == (not diffs), ([d.text for d in diffs], same)
    assert same == (not (spec.mode == "GRU" and spec.reset_after and gate == "n"))
    if diffs:
        assert {(d.tensor, d.gates) for d in diffs} == {("bias_ih", ("n",)), ("bias_hh", ("n",))}


def _wrong_torch_module(torch, spec: Spec, p: wa.Perturbation):
    """torch.nn.<spec's class> (float64) wrong by ``p``: output and states in forward, a gradient through a hook
    (parameters) or an identity whose backward perturbs what arrives (input, initial states)."""
    tol = {k: candidate_tol(np.float64, "cpu", k) for k in ("forward", "gradient")}
    shift = lambda a: torch.as_tensor(wa.wrong_value(p, a.detach().numpy(), *tol[wa.kind_of(p.key)]))

    class WrongGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a.clone()

        @staticmethod
        def backward(ctx, g):
            return shift(g)

    class Wrong(getattr(torch.nn, spec.torch_class)):
        def forward(self, input, hx=None):
            parts = hx if isinstance(hx, tuple) else (hx,)
            if p.key == "input":
                input = WrongGrad.apply(input)
            elif p.key.startswith("hx["):
                k = int(p.key[3])
                parts = tuple(WrongGrad.apply(h) if j == k else h for j, h in enumerate(parts))
            out, hidden = super().forward(input, parts if spec.lstm else parts[0])
            if p.key == "output":
                out = out + (shift(out) - out.detach())
            elif p.key.startswith("hidden["):
                k, hs = int(p.key[7]), hidden if isinstance(hidden, tuple) else (hidden,)
                hs = tuple(h + (shift(h) - h.detach()) if j == k else h for j, h in enumerate(hs))
                hidden = hs if spec.lstm else hs[0]
            return out, hidden

    m = Wrong(spec.input_size, spec.hidden_size, **spec.torch_kwargs()).double().eval()
    if p.key in dict(m.named_parameters()):
        dict(m.named_parameters())[p.key].register_hook(shift)
    return m


@settings(max_examples=25)
@given(problem=problems(), data=st.data())
def test_a_torch_module_wrong_in_one_quantity_fails_by_name(problem, data):
    torch = pytest.importorskip("torch")
    spec, T, B, seed, _ = problem
    if not spec.reset_after:
        return  # torch.nn.GRU has torch's form only
    p = data.draw(wa.perturbations(truth_of(spec, T, B, seed), ("above", "below", "nan", "inf"), spec=spec,
                                   above=(1.25, 2.0), below=(0.5, 0.8)))
    torch.manual_seed(seed)
    module = _wrong_torch_module(torch, spec, p)
    _assert_verdict(p, lambda: compare(module, seq_len=T, batch=B, seed=seed, localise=False))


def _in_layout(layout: str, candidate):
    """``candidate`` (torch's names) behind a foreign layout: weights imported, weight gradients exported (a merged
    bias's gradient is dL/db = dL/db_ih = dL/db_hh, so b_hh's share is zeroed before the sum)."""

    def fn(spec_, params, input, hx, grad_output, grad_hidden, **kw):
        torch_params = layouts.import_state_dict(layout, spec_, params)
        res = candidate(spec_, torch_params, input, hx, grad_output, grad_hidden, **kw)
        grads = {k: v for k, v in res.items() if k in torch_params}
        if not grads:
            return res
        if _merged(layout, spec_.mode, spec_.reset_after):
            grads = {k: np.zeros_like(v) if k.startswith("bias_hh") else v for k, v in grads.items()}
        rest = {k: v for k, v in res.items() if k not in torch_params}
        return rest | layouts.export_state_dict(layout, spec_, grads)

    return fn


@pytest.mark.parametrize("case", FOREIGN_CASES, ids=lambda c: "-".join(map(str, c[:3])))
@settings(max_examples=4)
@given(seed=st.integers(0, 2**10), bidirectional=st.booleans(), data=st.data())
def test_a_candidate_in_a_foreign_layout_passes_and_fails_one_wrong_gradient_by_name(case, seed, bidirectional, data):
    layout, mode, ra, _ = case
    spec = Spec(SPEC_MODE[mode], 2, 2, 2, bidirectional=bidirectional, reset_after=ra)
    truth = truth_of(spec, 3, 2, seed)
    params = [k for k in wa.flatten(truth) if wa.kind_of(k) == "gradient" and k not in ("input",)
              and not k.startswith("hx[")]
    p = data.draw(wa.perturbations(truth, ("above", "below", "nan"), keys=params, spec=spec))
    assert compare(_in_layout(layout, wa.wrong_candidate(None, spec, 3, 2)), spec, seq_len=3, batch=2, seed=seed,
                   layout=layout, localise=False).passed
    cand = _in_layout(layout, wa.wrong_candidate(p, spec, 3, 2))
    base = p.key.split("_l")[0]
    if _merged(layout, mode, ra) and base.startswith("bias"):  # one foreign bias feeds both torch biases
        report = compare(cand, spec, seq_len=3, batch=2, seed=seed, layout=layout, localise=False)
        assert report.passed == (not p.wrong or base == "bias_hh"), str(report)  # b_hh's share is not exported
        if p.wrong and base == "bias_ih":
            assert {t.name for t in report.failures()} == {f"grad {p.key}", f"grad {p.key.replace('_ih', '_hh')}"}
        return
    _assert_verdict(p, lambda: compare(cand, spec, seq_len=3, batch=2, seed=seed, layout=layout, localise=False))


@settings(max_examples=20)
@given(mode=st.sampled_from(["RNN_RELU", "RNN_TANH", "LSTM"]), t=st.integers(0, 2), b=st.integers(0, 1),
       value=st.sampled_from([np.inf, -np.inf, np.nan]), seed=st.integers(0, 2**10), data=st.data())
def test_compare_fails_a_finite_answer_where_the_truth_is_not(mode, t, b, value, seed, data):
    """An infinite or NaN input makes the truth non-finite; a candidate finite there is wrong, the truth is not."""
    spec, T, B = Spec(mode, 1, 2), 3, 2
    x = np.random.default_rng(seed).uniform(-1, 1, (T, B, 1))
    x[t, b, 0] = value
    kw = dict(input=x, seed=seed, gradients=False, localise=False)
    assert compare(wa.wrong_candidate(None, spec, T, B), spec, **kw).passed
    truth = wa.reference_result(spec, spec.reference(seed=seed).state_dict(), x,
                                tuple(np.zeros(s) for s in spec.state_shapes(B)), None, None)
    try:
        p = data.draw(wa.perturbations(truth, ("finite",)))
    except ValueError:  # relu(-inf) = 0: nothing non-finite to replace
        return
    report = compare(wa.wrong_candidate(p, spec, T, B), spec, **kw)
    assert not report.passed and [r.name for r in report.failures()] == [wa.report_name(p.key)], (p, str(report))
