"""Hand-written BPTT vs float64 finite differences: no torch involved, so a torch
regression cannot mask a reference bug. Runs with torch uninstalled."""

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import cell_configs, layer_configs
from tolerances import tol

import reference

RTOL, ATOL = tol("float64", "numeric", "gradient")


@given(cell_configs(dtype=__import__("hypothesis").strategies.just("float64")))
def test_cell_gradients_match_finite_differences(cfg):
    x, hx, _ = cfg.data()
    report = reference.check_module_gradients(cfg.build(), x, hx, seed=cfg.seed, rtol=RTOL, atol=ATOL)
    assert report.ok, f"{cfg.repro()}\n{report}"


@settings(max_examples=10)
@given(layer_configs(dtype=__import__("hypothesis").strategies.just("float64"), max_layers=2))
def test_layer_gradients_match_finite_differences(cfg):
    x, hx, lengths, _, _ = cfg.data()
    report = reference.check_module_gradients(cfg.build(), x, hx, lengths=lengths, seed=cfg.seed, rtol=RTOL, atol=ATOL)
    assert report.ok, f"{cfg.repro()}\n{report}"


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_vjp_check_on_a_larger_layer(mode):
    kw = dict(proj_size=8) if mode == "LSTM" else {}
    m = getattr(reference, mode)(16, 24, num_layers=2, bidirectional=True, seed=0, **kw)
    x = np.random.default_rng(0).uniform(-1, 1, (12, 5, 16))
    report = reference.check_module_gradients(m, x, lengths=[12, 3, 7, 12, 1], method="vjp", rtol=RTOL, atol=ATOL)
    assert report.ok, str(report)


def test_dropout_gradients_match_finite_differences():
    m = reference.GRU(3, 4, num_layers=3, dropout=0.4, bidirectional=True, seed=5)
    x = np.random.default_rng(1).uniform(-1, 1, (4, 2, 3))
    report = reference.check_module_gradients(m, x, rtol=RTOL, atol=ATOL)
    assert report.ok, str(report)


# -- the checker itself must be able to fail -----------------------------------

def test_report_flags_a_wrong_gradient_and_names_it():
    fn = lambda a, b: a * b
    a, b = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    cot = np.array([1.0, 1.0])
    good = reference.check_gradients(fn, {"a": a, "b": b}, {"a": b * cot, "b": a * cot}, cot)
    bad = reference.check_gradients(fn, {"a": a, "b": b}, {"a": b * cot, "b": a * cot + [0, 1e-3]}, cot)
    assert good.ok and bad["a"].passed and not bad["b"].passed
    assert bad["b"].worst_index == (1,) and not bad
    assert "FAIL" in str(bad) and "b" in str(bad)


def test_vjp_report_flags_a_wrong_gradient():
    fn = lambda a: np.sin(a)
    a, cot = np.linspace(-1, 1, 5), np.ones(5)
    assert reference.check_vjp(fn, {"a": a}, {"a": np.cos(a)}, cot).ok
    assert not reference.check_vjp(fn, {"a": a}, {"a": np.cos(a) * 1.001}, cot).ok


def test_numerical_gradient_leaves_inputs_untouched():
    a = np.array([0.5, -0.25])
    before = a.copy()
    reference.numerical_gradient(lambda a: a**2, {"a": a}, np.ones(2))
    assert np.array_equal(a, before)
