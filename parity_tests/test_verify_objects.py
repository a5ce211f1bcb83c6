"""The verdict is about the object the user gave, and nothing compared is never a MATCH.

* compare runs the user's object itself: a torch module and a Keras layer are left as they were (weights,
  flags), an ONNX file's own graph runs on other weights too;
* a rebuilt object stands in for a part of the user's only past the fidelity gate: a rebuild that does
  not reproduce the user's object on the original problem stops localisation, by name, and the
  mismatch stands (a torch module whose forward reads an attribute set after construction, an ONNX
  graph that feeds its second layer the first layer's initial states);
* weights that are not finite, a truth that overflows, and weights that are not real numbers are errors
  naming the tensor, through compare, load_model, diff_weights and rnn-check.
"""

from __future__ import annotations

import re

import adapter_kit_onnx as ko
import numpy as np
import pytest
import torch
from adapter_kit_torch import ScaledLSTM, with_biases

from reference.verify import Spec, compare, diff_weights, load_model
from reference.verify.cli import main as rnn_check

I, H = 3, 4


# -- the user's object, as it was --------------------------------------------------------------------


def test_a_torch_module_is_left_as_it_was_after_a_localised_mismatch():
    """Other weights and training flags are set for a call and restored after it, bit for bit; no .grad."""
    m = with_biases(ScaledLSTM(I, H, num_layers=2)).train()
    before = {k: v.detach().clone() for k, v in m.state_dict().items()}
    report = compare(m, weights="draw", seed=2)
    assert not report.passed and report.forward is not None, str(report)
    assert m.training and all(p.grad is None for p in m.parameters())
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k


class ScaleSetLater(torch.nn.LSTM):
    """A module whose forward reads an attribute its constructor does not set: its class cannot rebuild it."""

    scale = 1.0

    def forward(self, input, hx=None):
        output, hidden = super().forward(input, hx)
        return output * self.scale, hidden


def test_a_rebuild_that_is_not_the_users_object_stops_localisation_by_name():
    m = with_biases(ScaleSetLater(I, H, num_layers=2))
    m.scale = 1 + 1e-3  # set after construction: type(m)(...) rebuilds it with scale 1
    report = compare(m, seed=1)
    assert not report.passed and report.divergence is None, str(report)
    assert "the rebuilt ScaleSetLater (whole, rebuilt by its factory) differs from yours by" in report.stopped
    assert "factory=" in report.stopped
    faithful = compare(m, seed=1, factory=lambda s: _scaled(ScaleSetLater(s.input_size, s.hidden_size,
                                                                          **s.torch_kwargs())))
    # past the gate, a part is the class built for that part: it scales its own output, as it does a stack's
    assert not faithful.stopped and faithful.forward is not None, str(faithful)
    assert (faithful.forward.kind, faithful.forward.gate) == ("step", "output"), str(faithful)


def _scaled(m):
    m.scale = 1 + 1e-3
    return m


def test_an_onnx_files_own_graph_runs_on_other_weights():
    """weights='draw' runs the file's graph with the drawn weights in it, not a rebuild of its node."""
    path = ko.chain("scaled_draw", scale=1 + 1e-3)
    assert not compare(path, weights="draw", seed=3).passed
    assert compare(ko.chain("plain_draw"), weights="draw", seed=3).passed


def test_an_onnx_stack_feeding_layer_1_the_first_layers_initial_states_is_caught():
    """One node per layer, chained, every layer given layer 0's slice of h_0 and c_0: MISMATCH, and the rebuilt
    nodes (each given its own slice) are not used: they differ from the file on the original problem."""
    assert compare(ko.chain("two_right", layers=2), seed=4).passed
    report = compare(ko.chain("two_wrong", layers=2, state_of=lambda layer: 0), seed=4)
    assert not report.passed and not all(t.passed for t in report.tensors if t.kind == "forward"), str(report)
    assert "the rebuilt two_wrong.onnx's nodes, rebuilt differs from yours by" in report.stopped, str(report)
    assert report.divergence is None


# -- nothing compared ----------------------------------------------------------------------------------


def _npz(tmp_path, name, state):
    path = tmp_path / name
    np.savez(path, **state)
    return str(path)


def _state(fill=None, dtype=np.float32, seed=0):
    spec = Spec("LSTM", I, H)
    state = {k: np.asarray(v, dtype=dtype) for k, v in spec.reference(seed=seed).state_dict().items()}
    if fill is not None:
        state["weight_ih_l0"] = np.full_like(state["weight_ih_l0"], fill)
    return state


@pytest.mark.parametrize("fill,says", [(np.nan, "48 NaN"), (np.inf, "48 inf")])
def test_weights_that_are_not_finite_are_an_error_naming_the_tensor(fill, says, tmp_path, capsys):
    path = _npz(tmp_path, "bad.npz", _state(fill))
    with pytest.raises(ValueError, match=rf"weights: weight_ih_l0 holds {says} \(of 48 values\)"):
        compare(path)
    assert rnn_check(["--model", path]) == 2
    out = capsys.readouterr()
    assert "weight_ih_l0 holds" in out.err and "RESULT" not in out.out


def test_a_truth_that_overflows_on_finite_values_is_an_error_naming_the_tensor():
    spec = Spec("RNN_RELU", I, H)
    state = {k: np.full_like(v, 1e200) for k, v in spec.reference().state_dict().items()}
    with pytest.raises(ValueError, match=r"the reference's output holds .* inf .* although every weight, input, "
                                         r"state and cotangent is finite: the recurrence overflows"):
        compare(_relu_module(state), seed=1)


def _relu_module(state):
    m = torch.nn.RNN(I, H, nonlinearity="relu").double()
    from torch_impl import load_into

    load_into(m, state)
    return m


@pytest.mark.parametrize("dtype", [np.complex64, np.bool_, np.str_])
def test_weights_that_are_not_real_numbers_are_a_type_error_naming_the_key(dtype, tmp_path, capsys):
    state = _state()
    state["weight_hh_l0"] = state["weight_hh_l0"].astype(dtype)
    bad, good = _npz(tmp_path, "bad.npz", state), _npz(tmp_path, "good.npz", _state())
    # complex and bool arrays are read and refused by name; strings already by the .npz reader, naming the member
    message = r"(state_dict: weight_hh_l0|member 'weight_hh_l0\.npy':) holds values of dtype .*; expected real numbers"
    for entry in (lambda: compare(bad), lambda: load_model(bad), lambda: diff_weights(bad, good),
                  lambda: diff_weights(good, bad)):
        with pytest.raises(TypeError, match=message):
            entry()
    assert rnn_check(["--diff-weights", bad, good]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_object_weights_in_a_mapping_are_a_type_error_naming_the_key():
    state = _state()
    state["bias_ih_l0"] = state["bias_ih_l0"].astype(object)
    with pytest.raises(TypeError, match=r"bias_ih_l0 holds values of dtype object"):
        diff_weights(state, _state())


@pytest.mark.filterwarnings("ignore:Complex modules are a new feature:UserWarning")
def test_a_complex_torch_module_is_a_type_error_naming_the_key():
    m = torch.nn.LSTM(I, H).to(torch.complex64)
    with pytest.raises(TypeError, match=r"weight_ih_l0 holds values of dtype torch.complex64"):
        compare(m)
