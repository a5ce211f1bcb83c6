"""The verifier (reference.verify.compare) on torch modules: trust, localisation, dtype, errors.

Every broken candidate in broken_candidates.py must be detected *and* localised to
the right (kind, layer, direction, time step, gate); correct candidates must pass;
a candidate is never replaced by something else and reported as a MATCH.
"""

from __future__ import annotations

import broken_candidates as bc
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from reference.verify import CandidateError, Spec, compare, plot_errors
from reference.verify.localise.pinned import PIN

LENGTHS = [6, 4, 3]  # T = 6; rows 1 and 2 are shorter


def where(div):
    return (div.kind, div.layer, div.direction, div.time, div.gate)


def test_pinned_value_makes_sigmoid_equal_tanh():
    s = 1 / (1 + np.exp(-PIN))
    assert s == pytest.approx(np.tanh(PIN), abs=1e-15) and s == pytest.approx(2 ** -0.5, rel=1e-15, abs=0)


def test_torch_impl_keeps_its_names():
    import torch_impl
    from torch_impl import layouts
    from torch_impl.compare import TorchCandidate

    assert torch_impl.compare is compare and torch_impl.CandidateError is CandidateError
    assert layouts.import_weights is reference.verify.import_weights and TorchCandidate is torch_impl.TorchCandidate


# -- correct candidates pass, run as they are --------------------------------------------------

CONFIGS = [
    ("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 2}),
    ("GRU", {"num_layers": 2, "bidirectional": True}),
    ("RNN", {"num_layers": 2, "bidirectional": True, "nonlinearity": "relu"}),
]


@pytest.mark.parametrize("mode,kw", CONFIGS)
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_torch_nn_passes_on_its_own_weights(mode, kw, lengths):
    torch.manual_seed(0)
    m = getattr(torch.nn, mode)(3, 4, **kw).double()
    report = compare(m, lengths=lengths, seq_len=6)
    assert report.passed, str(report)
    assert report.forward is None and report.gradient is None
    assert "RESULT: MATCH" in str(report) and "the candidate's own" in report.weights


@pytest.mark.parametrize("cls,kw", [(bc.HandLSTM, CONFIGS[0][1]), (bc.HandGRU, CONFIGS[1][1]),
                                    (bc.HandRNNTanh, {"num_layers": 2, "bidirectional": True})])
def test_hand_written_passes(cls, kw):
    assert compare(cls(3, 4, **kw).double(), lengths=LENGTHS, seq_len=6).passed


def test_float32_candidate_passes_against_float64_reference():
    report = compare(torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True), lengths=LENGTHS, seq_len=6)
    assert report.dtype == "float32" and report.passed, str(report)


def test_float32_reference_module_as_candidate_passes():
    report = compare(reference.GRU(3, 4, bidirectional=True, dtype=np.float32, seed=1), lengths=LENGTHS, seq_len=6)
    assert report.passed and report.dtype == "float32", str(report)


def test_candidate_is_run_as_it_is_and_left_unchanged():
    m = torch.nn.GRU(3, 4).double()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    report = compare(m)
    assert report.passed
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert all(p.grad is None for p in m.parameters())  # gradients come from autograd.grad, not .backward


def test_a_different_configuration_is_an_error_never_a_match():
    with pytest.raises(ValueError, match=r"hidden_size: 4 != 8"):
        compare(torch.nn.LSTM(3, 4), reference.LSTM(3, 8))
    with pytest.raises(ValueError, match=r"mode: 'LSTM' != 'GRU'"):
        compare(torch.nn.LSTM(3, 4), Spec("GRU", 3, 4))
    with pytest.raises(ValueError, match="reset_after"):  # torch.nn.GRU has torch's form only
        compare(torch.nn.GRU(3, 4), Spec("GRU", 3, 4, reset_after=False))


def test_weights_candidate_reference_and_draw():
    m = torch.nn.LSTM(3, 4).double()
    ref = reference.LSTM(3, 4, seed=5).eval()
    report = compare(m, ref)  # each its own: they differ, and the report says where
    assert not report.passed and report.weight_diff and report.forward.kind == "weights"
    assert "layer 0 forward: weight_ih blocks i, f, g, o differ" in report.weight_diff[0]
    loaded = compare(m, ref, weights="reference")
    assert loaded.passed and loaded.weights == "the reference module's"
    drawn = compare(m, weights="draw", seed=3)
    assert drawn.passed and drawn.weights == "drawn from seed 3 at torch's init scale"
    with pytest.raises(ValueError, match="weights: 'reference'"):
        compare(m, weights="reference")


def test_swapped_weights_are_named_by_the_diff():
    m = torch.nn.LSTM(3, 4, bidirectional=True).double()
    ref = reference.LSTM(3, 4, bidirectional=True).eval()
    state = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    w = state["weight_hh_l0_reverse"]
    state["weight_hh_l0_reverse"] = np.concatenate([w[:4], w[12:], w[8:12], w[4:8]])  # f and o swapped
    ref.load_state_dict(state)
    report = compare(m, ref)
    assert report.weight_diff == ["layer 0 reverse: weight_hh blocks f and o swapped"], str(report)
    assert where(report.forward) == ("weights", 0, 1, None, "f, o")


def test_user_class_without_mode_takes_the_reference_mode():
    m = bc.MyLSTM(3, 4).double()
    assert not hasattr(m, "mode")
    assert compare(m, {"mode": "LSTM", "input_size": 3, "hidden_size": 4}).passed
    assert compare(m).passed  # four gate blocks: an LSTM
    rnn = torch.nn.RNN(3, 4, nonlinearity="relu").double()
    assert compare(rnn).spec.mode == "RNN_RELU"


@settings(max_examples=8)
@given(mode=st.sampled_from(["LSTM", "GRU", "RNN_TANH"]), hidden=st.integers(2, 5), layers=st.integers(1, 2),
       bidirectional=st.booleans(), use_lengths=st.booleans(), seed=st.integers(0, 2**16))
def test_hand_written_passes_and_swapped_gates_localised(mode, hidden, layers, bidirectional, use_lengths, seed):
    T, B = 4, 3
    lengths = [T, 2, 1] if use_lengths else None
    cls = {"LSTM": bc.HandLSTM, "GRU": bc.HandGRU, "RNN_TANH": bc.HandRNNTanh}[mode]
    kw = {"num_layers": layers, "bidirectional": bidirectional}
    assert compare(cls(2, hidden, **kw).double(), lengths=lengths, seq_len=T, batch=B, seed=seed).passed
    if mode != "RNN_TANH":
        broken = {"LSTM": bc.SwappedGatesLSTM, "GRU": bc.SwappedGatesGRU}[mode](2, hidden, **kw).double()
        report = compare(broken, lengths=lengths, seq_len=T, batch=B, seed=seed)
        assert where(report.forward) == ("step", 0, 0, 0, {"LSTM": "i", "GRU": "r"}[mode]), str(report)


# -- broken candidates are detected and localised ------------------------------------------------

BROKEN = [
    # (candidate class, constructor kwargs, lengths, expected (kind, layer, direction, time, gate))
    (bc.SwappedGatesLSTM, {"num_layers": 2, "bidirectional": True}, None, ("step", 0, 0, 0, "i")),
    (bc.ReverseSwappedGatesLSTM, {"num_layers": 2, "bidirectional": True}, None, ("step", 0, 1, 5, "g")),
    (bc.SwappedGatesGRU, {"num_layers": 2}, None, ("step", 0, 0, 0, "r")),
    (bc.TanhResetGRU, {"bidirectional": True}, LENGTHS, ("step", 0, 0, 0, "r")),
    (bc.PaperResetGRU, {"num_layers": 2, "bidirectional": True}, LENGTHS, ("step", 0, 0, 0, "r")),
    (bc.MergedBiasGRU, {"bidirectional": True}, None, ("step", 0, 0, 0, "bias_hh")),
    (bc.NoBiasIhLSTM, {"num_layers": 2}, None, ("step", 0, 0, 0, "bias_ih")),
    (bc.NoBiasIhGRU, {"bidirectional": True}, LENGTHS, ("step", 0, 0, 0, "bias_ih")),
    (bc.NoCellTanhLSTM, {"num_layers": 2}, None, ("step", 0, 0, 0, "h")),
    (bc.ProjOnCellLSTM, {"proj_size": 2, "bidirectional": True}, None, ("step", 0, 0, 0, "W_hr")),
]


@pytest.mark.parametrize("cls,kw,lengths,expected", BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_broken_candidate_is_localised(cls, kw, lengths, expected):
    report = compare(cls(3, 4, **kw).double(), lengths=lengths, seq_len=6)
    assert not report.passed
    assert report.forward is not None, str(report)
    assert where(report.forward) == expected, str(report)
    assert "first forward divergence" in str(report)


def test_paper_reset_is_named_as_such_and_checks_against_reset_after_false():
    report = compare(bc.PaperResetGRU(3, 4).double(), seq_len=6)
    assert "reset applied before W_hn" in report.forward.detail
    assert compare(bc.PaperResetGRU(3, 4).double(), Spec("GRU", 3, 4, reset_after=False)).passed
    report = compare(bc.HandGRU(3, 4).double(), Spec("GRU", 3, 4, reset_after=False))
    assert where(report.forward)[-1] == "r" and "reset applied after W_hn" in report.forward.detail


def test_reverse_off_by_one_with_lengths_is_a_lengths_bug_at_the_row_s_first_reverse_step():
    report = compare(bc.ReverseOffByOneLSTM(3, 4, num_layers=2, bidirectional=True).double(), lengths=LENGTHS,
                     seq_len=6)
    div = report.forward
    assert (div.kind, div.layer, div.direction, div.gate) == ("sequence", 0, 1, "lengths"), str(report)
    # the first valid step of a shorter row (its own processing order), which the candidate reaches one step late
    assert LENGTHS[div.batch] < 6 and div.time == LENGTHS[div.batch] - 1, str(report)


def test_reverse_rows_are_ordered_from_their_own_length():
    # A reverse-only bug on a row of length 3 at t = 2 (its first reverse step) comes before a row of
    # length 6 at t = 4 (its second): processing order counts from each row's own last valid step.
    from reference.verify.localise.bounds import Rule
    from reference.verify.localise.common import first_output_divergence

    T, B, P = 6, 2, 1
    out = np.zeros((T, B, 2 * P))
    bad = out.copy()
    bad[4, 0, 1] = 1.0  # row 0 (length 6), reverse, t = 4: processing index 1
    bad[2, 1, 1] = 1.0  # row 1 (length 3), reverse, t = 2: processing index 0
    assert first_output_divergence(bad, out, [6, 3], 2, P, Rule(0.0, 1e-12))[:3] == (1, 2, 1)


def test_reverse_off_by_one_is_invisible_without_lengths():
    assert compare(bc.ReverseOffByOneLSTM(3, 4, bidirectional=True).double(), seq_len=6).passed


def test_wrong_dropout_scaling_is_localised_to_the_layer_boundary():
    report = compare(bc.DropoutScaleLSTM(3, 4, num_layers=3, dropout=0.3).double(), seq_len=6)
    assert where(report.forward) == ("dropout", 1, 0, 0, "dropout"), str(report)
    assert compare(bc.HandLSTM(3, 4, num_layers=3, dropout=0.3).double(), seq_len=6).passed


GRADIENT_BUGS = [
    # (candidate class, constructor kwargs, lengths, expected): BPTT order, top layer first; per row, the
    # last processed step first (forward: t = length - 1, reverse: t = 0)
    (bc.WrongUpdateGradGRU, {"num_layers": 2, "bidirectional": True}, None, ("gradient step", 1, 0, 5, "z")),
    (bc.WrongForgetGradLSTM, {"num_layers": 2, "proj_size": 2}, LENGTHS, ("gradient step", 1, 0, 2, "f")),  # row 2
    (bc.DetachedReverseLSTM, {"num_layers": 2, "bidirectional": True}, LENGTHS, ("gradient step", 1, 1, 0, "h")),
]


@pytest.mark.parametrize("cls,kw,lengths,expected", GRADIENT_BUGS, ids=[b[0].__name__ for b in GRADIENT_BUGS])
def test_backward_bug_is_localised_to_its_gate_layer_and_direction(cls, kw, lengths, expected):
    report = compare(cls(3, 4, **kw).double(), lengths=lengths, seq_len=6)
    assert all(t.passed for t in report.tensors if t.kind == "forward") and not report.passed
    assert where(report.gradient) == expected, str(report)
    if lengths is not None and expected[2] == 0:  # the forward direction's row of length 3 ends at t = 2
        assert LENGTHS[report.gradient.batch] - 1 == expected[3], str(report)


def test_gradient_bug_is_localised_to_the_cell_carry():
    report = compare(bc.numpy_lstm_forget_carry_bug, Spec("LSTM", 3, 4), layout="ifog", seq_len=6)
    assert not [t for t in report.tensors if not t.passed and t.kind == "forward"]
    assert where(report.gradient) == ("gradient step", 0, 0, 5, "c"), str(report)
    assert "dc_prev" in report.gradient.detail


def test_numpy_function_candidate_in_foreign_layout_passes():
    report = compare(bc.numpy_lstm, Spec("LSTM", 3, 4), layout="ifog", seq_len=6)
    assert report.passed and report.weights == "drawn from seed 0 at torch's init scale", str(report)


def test_localisation_that_cannot_run_keeps_the_mismatch():
    report = compare(bc.FixedLengthSwappedLSTM(3, 4).double(), seq_len=6)
    assert not report.passed and report.forward is None
    assert "6 steps only" in report.stopped and "teacher-forced steps of layer 0" in report.stopped
    assert "localisation stopped" in str(report)


# -- dtype and bad candidates -----------------------------------------------------------------------


def _float32_lstm(spec, params, input, hx, grad_output, grad_hidden, **kw):
    res = bc.numpy_lstm(spec, params, input, hx, grad_output, grad_hidden, **kw)
    return {k: (tuple(np.float32(a) for a in v) if isinstance(v, tuple) else
                {n: np.float32(a) for n, a in v.items()} if isinstance(v, dict) else np.float32(v))
            for k, v in res.items()}


def test_a_float32_answer_to_a_float64_question_is_a_dtype_mismatch_first():
    report = compare(_float32_lstm, Spec("LSTM", 3, 4), layout="ifog")
    assert not report.passed and report.forward is None and report.gradient is None
    assert "asked for float64, the candidate returned output is float32" in report.dtype_problem
    assert "DTYPE MISMATCH" in str(report)
    assert compare(_float32_lstm, Spec("LSTM", 3, 4), layout="ifog", dtype="float32").passed


def _returning(value):
    def fn(spec, params, input, hx, grad_output, grad_hidden, **kw):
        return value(spec, params, input, hx)
    return fn


GOOD = lambda spec, params, x, hx: spec.reference(params).forward(x, hx if spec.lstm else hx[0])[:2]


@pytest.mark.parametrize("fn,message", [
    (_returning(lambda *a: GOOD(*a)), "returned a tuple of 2; expected a mapping with 'output'"),
    (_returning(lambda *a: None), "returned None; expected a mapping"),
    (_returning(lambda *a: {"hidden": GOOD(*a)[1]}), "returned no 'output'"),
    (_returning(lambda *a: {"output": GOOD(*a)[0], "hidden": [1, 2, 3]}), "'hidden' as a list of 3"),
    (_returning(lambda *a: {"output": "text", "hidden": GOOD(*a)[1]}), "'output' as str"),
])
def test_candidate_protocol_mistakes_are_candidate_errors(fn, message):
    with pytest.raises(CandidateError, match=message):
        compare(fn, Spec("LSTM", 3, 4), gradients=False)


def test_unknown_and_missing_gradient_keys_are_candidate_errors():
    def with_extra(spec, params, input, hx, grad_output, grad_hidden, **kw):
        res = bc.numpy_lstm(spec, params, input, hx, grad_output, grad_hidden, **kw)
        res["l0"]["Wq"] = res["l0"]["Wx"]
        return res

    with pytest.raises(CandidateError, match=r"unknown keys \['Wq'\]"):
        compare(with_extra, Spec("LSTM", 3, 4), layout="ifog")

    def torch_named(spec, params, input, hx, grad_output, grad_hidden, **kw):
        out = spec.reference(params).forward(input, hx)
        return {"output": out[0], "hidden": out[1], "input": input, "hx": hx, "weight_xx_l0": 1.0}

    with pytest.raises(CandidateError, match=r"unknown gradient keys \['weight_xx_l0'\]"):
        compare(torch_named, Spec("LSTM", 3, 4))

    def no_dx(spec, params, input, hx, grad_output, grad_hidden, **kw):
        res = dict(bc.numpy_lstm(spec, params, input, hx, grad_output, grad_hidden, **kw))
        del res["input"]
        return res

    with pytest.raises(CandidateError, match="no gradient 'input'.*gradients="):
        compare(no_dx, Spec("LSTM", 3, 4), layout="ifog")
    assert compare(no_dx, Spec("LSTM", 3, 4), layout="ifog", gradients=("h_0", "c_0", "weights")).passed


def test_a_module_that_is_not_recurrent_is_a_candidate_error():
    with pytest.raises(CandidateError, match=r"Linear: expected a recurrent module .*\['bias', 'weight'\]"):
        compare(torch.nn.Linear(3, 4))


def test_a_candidate_that_raises_is_a_candidate_error_naming_the_run():
    def boom(spec, params, input, hx, grad_output, grad_hidden, **kw):
        raise NotImplementedError("no lengths here")

    with pytest.raises(CandidateError, match=r"boom raised NotImplementedError: no lengths here \(running LSTM"):
        compare(boom, Spec("LSTM", 3, 4), lengths=[5, 2, 1])


@pytest.mark.parametrize("kwargs,message", [
    ({"weights": "mine"}, "weights: expected one of"),
    ({"cotangents": ["output", "dx"]}, "cotangents: expected a non-empty subset"),
    ({"gradients": ["input", "dW"]}, "gradients: expected True, False or names"),
    ({"lengths": [7, 1, 1]}, r"lengths: expected 3 ints in \[1, 5\]"),
    ({"input": np.zeros((5, 3, 2))}, r"input: expected \(T, B, 3\)"),
    ({"hx": np.zeros((1, 3, 4))}, r"hx: expected \(h_0, c_0\)"),
    ({"dtype": "float16"}, "dtype: LSTM computes in float64"),
])
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        compare(torch.nn.LSTM(3, 4).double(), **kwargs)


def test_torch_nn_with_dropout_in_training_mode_is_a_clear_error():
    with pytest.raises(CandidateError, match="eval mode"):
        compare(torch.nn.LSTM(3, 4, num_layers=2, dropout=0.5).double())


def test_plot(tmp_path):
    report = compare(bc.NoCellTanhLSTM(3, 4).double(), seq_len=6)
    path = plot_errors(report, str(tmp_path / "err.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "output" in report.step_errors and len(report.step_errors["output"]) == 6


def test_a_candidate_returning_none_inside_hidden_is_a_candidate_error():
    def fn(spec, params, input, hx, grad_output, grad_hidden, **kw):
        ref = spec.reference(params)
        out, (h, _), _ = ref.forward(input, hx)
        return {"output": out, "hidden": (h, None)}

    with pytest.raises(CandidateError, match=r"'hidden'\[1\] as None"):
        compare(fn, Spec("LSTM", 3, 4), gradients=False)
