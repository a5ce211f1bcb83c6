"""Every entry of the tolerance table is held near the error it was justified by.

For each (dtype, device, kind) entry the largest error is measured again, over a
fixed sweep of this suite's strategies, the way the entry's comment says it was
measured. The entry fails when the error exceeds it, or when it sits more than
its stated margin (``reference.tolerances.MARGINS``) above the error: a rtol
more than ``MARGINS[key][0]`` times the largest relative error, or an atol more
than ``MARGINS[key][1]`` times the largest absolute error. A loosened entry
therefore fails, and so does one tightened below the error (both are shown).

The sweeps are derandomized whatever the hypothesis profile, so every run
measures the same draws. The CUDA entries are measured only where CUDA is.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple
from unittest import mock

import numpy as np
import pytest
from helpers import in_dtype, to_numpy
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from strategies import MAX_LAYERS, MAX_SIZE, MAX_T, CellConfig, LayerConfig, cell_configs, layer_configs

import reference
from reference import gradcheck
from reference.tolerances import MARGINS, TOLERANCES

# Relative errors are taken against max(|desired|, REL_FLOOR): below it an error counts as absolute, as in
# gradcheck's own report (its atol / rtol for the numeric entry).
REL_FLOOR = 1e-2
N_CELLS, N_LAYERS, N_FD_LAYERS = 40, 40, 8
S = MAX_SIZE


class Errors(NamedTuple):
    """One row per comparison the entry governs: a named tensor (norm-wise rule) or an element (finite
    differences). err = max|actual - desired| there, scale = max|desired| there."""
    err: np.ndarray
    scale: np.ndarray


def check_entry(key: tuple[str, str, str], errors: Errors) -> str:
    """AssertionError unless TOLERANCES[key] covers every error and sits within MARGINS[key] of the largest.
    Returns the figures, for the record."""
    rtol, atol = TOLERANCES[key]
    rtol_margin, atol_margin = MARGINS[key]
    used = float(np.max(errors.err / (atol + rtol * errors.scale)))  # > 1: some error is outside the entry
    rel = float(np.max(errors.err / np.maximum(errors.scale, REL_FLOOR)))
    abs_err = float(np.max(errors.err))
    figures = (f"{key}: {len(errors.err)} comparisons, max relative error {rel:.2e}, max absolute error "
               f"{abs_err:.2e}; entry (rtol {rtol:g}, atol {atol:g}) used to {used:.1%}")
    assert used <= 1.0, f"{figures}: the measured error exceeds the entry"
    assert rtol <= rtol_margin * rel, (f"{figures}: rtol is {rtol / rel:.3g}x the largest relative error, more "
                                       f"than its margin {rtol_margin:g}x")
    assert atol <= atol_margin * abs_err, (f"{figures}: atol is {atol / abs_err:.3g}x the largest absolute error, "
                                           f"more than its margin {atol_margin:g}x")
    return figures


# -- sweeps -----------------------------------------------------------------------

def _sweep(strategy, n: int, pinned: list, measure) -> list:
    """measure(cfg) over n derandomized draws of strategy and the pinned corner cases, whatever the profile."""
    rows: list = []

    def run(cfg):
        rows.append(measure(cfg))

    run = given(strategy)(run)
    for cfg in pinned:
        run = example(cfg)(run)
    settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.explicit, Phase.generate],
             suppress_health_check=list(HealthCheck))(run)()
    return rows


def _pinned_cells(dtype: str) -> list:
    return [CellConfig(kind, S, S, True, "tanh", S, True, dtype, k)
            for k, kind in enumerate(["RNNCell", "GRUCell", "LSTMCell"])]


def _pinned_layers(dtype: str) -> list:  # the deepest configurations of test_layers
    return [LayerConfig("GRU", S, S, MAX_LAYERS, True, True, True, "tanh", 0, MAX_T, S, True, True, dtype, 2),
            LayerConfig("LSTM", S, S, MAX_LAYERS, True, False, True, "tanh", S - 1, MAX_T, S, True, True, dtype, 3),
            LayerConfig("RNN", S, S, MAX_LAYERS, True, False, True, "relu", 0, MAX_T, S, True, True, dtype, 4)]


def _parts(v):
    return v if isinstance(v, tuple) else (v,)


def _row(actual, desired) -> tuple[float, float]:
    a, d = to_numpy(actual).astype(np.float64), to_numpy(desired).astype(np.float64)
    return float(np.abs(a - d).max(initial=0.0)), float(np.abs(d).max(initial=0.0))


def _rows(got: dict, want: dict, names) -> dict[str, list]:
    """{"forward": rows, "gradient": rows} over the outputs and every gradient."""
    fwd = [_row(a, d) for k in ("output", "hidden") if k in want for a, d in
           zip(_parts(got[k]), _parts(want[k]), strict=True)]
    grad = [_row(a, d) for a, d in zip(_parts(got["hx"]), _parts(want["hx"]), strict=True)]
    grad += [_row(got[n], want[n]) for n in ("input", *names)]
    return {"forward": fwd, "gradient": grad}


def _ordered(reference_result: dict, torch_result: dict, names, trusted: str) -> dict[str, list]:
    if trusted == "torch":
        return _rows(reference_result, torch_result, names)
    return _rows(torch_result, reference_result, names)


def _reference_cell(cell, cfg: CellConfig) -> tuple[dict, tuple]:
    x, hx, cot = cfg.data()
    hidden, tape = cell.forward(*in_dtype(cell.dtype, x, hx))  # the oracle reads x, hx unrounded
    return {"hidden": hidden, **cell.backward(tape, cot)}, (x, hx, cot)


def _reference_layer(m, cfg: LayerConfig) -> tuple[dict, tuple]:
    x, hx, lengths, g_out, g_hid = cfg.data()
    output, hidden, tape = m.forward(*in_dtype(m.dtype, x, hx), lengths=lengths)  # the oracle reads x, hx unrounded
    return {"output": output, "hidden": hidden, **m.backward(tape, g_out, g_hid)}, (x, hx, lengths, g_out, g_hid)


def _against_torch(dtype: str, device: str, oracle_dtype: str, trusted: str = "torch") -> dict[str, Errors]:
    """The reference in ``dtype`` (CPU) against torch.nn in ``oracle_dtype`` on ``device``, same weights;
    ``trusted`` names the desired side (the scale of each relative error)."""
    pytest.importorskip("torch")
    from torch_oracle import run_cell, run_layer

    def cell(cfg):
        got, data = _reference_cell(cfg.build(dtype), cfg)
        oracle = cfg.build(oracle_dtype)
        return _ordered(got, run_cell(oracle, *data, device=device), oracle.state_dict(), trusted)

    def layer(cfg):
        got, data = _reference_layer(cfg.build(dtype), cfg)
        oracle = cfg.build(oracle_dtype)
        return _ordered(got, run_layer(oracle, *data, device=device), oracle.state_dict(), trusted)

    rows = (_sweep(cell_configs(dtype=st.just(oracle_dtype)), N_CELLS, _pinned_cells(oracle_dtype), cell)
            + _sweep(layer_configs(dtype=st.just(oracle_dtype)), N_LAYERS, _pinned_layers(oracle_dtype), layer))
    return {kind: Errors(*np.array([r for row in rows for r in row[kind]]).T) for kind in ("forward", "gradient")}


def _float32_against_float64() -> dict[str, Errors]:
    """The float32 reference against the float64 reference, same weights and inputs (layers)."""

    def layer(cfg):
        got, _ = _reference_layer(cfg.build("float32"), cfg)
        want, _ = _reference_layer(cfg.build("float64"), cfg)
        return _rows(got, want, cfg.build("float64").state_dict())

    rows = _sweep(layer_configs(dtype=st.just("float32")), N_CELLS + N_LAYERS, _pinned_layers("float32"), layer)
    return {kind: Errors(*np.array([r for row in rows for r in row[kind]]).T) for kind in ("forward", "gradient")}


def _finite_differences() -> dict[str, Errors]:
    """check_module_gradients (float64, eps 1e-6) on cells, layers and the comment's 2-layer bidirectional
    projected LSTM with lengths and dropout; every element's |analytic - numeric| against |numeric|."""
    err: list[np.ndarray] = []
    scale: list[np.ndarray] = []
    compare = gradcheck._compare

    def record(name, analytic, numeric, rtol, atol):
        err.append(np.abs(np.asarray(analytic, dtype=np.float64) - numeric).ravel())
        scale.append(np.abs(numeric).ravel())
        return compare(name, analytic, numeric, rtol, atol)

    def cell(cfg):
        x, hx, _ = cfg.data()
        reference.check_module_gradients(cfg.build(), x, hx, seed=cfg.seed)

    def layer(cfg):
        x, hx, lengths, _, _ = cfg.data()
        reference.check_module_gradients(cfg.build(), x, hx, lengths=lengths, seed=cfg.seed)

    with mock.patch.object(gradcheck, "_compare", record):
        _sweep(cell_configs(dtype=st.just("float64")), N_CELLS, [], cell)
        _sweep(layer_configs(dtype=st.just("float64"), max_layers=2), N_FD_LAYERS, [], layer)
        lstm = reference.LSTM(3, 4, num_layers=2, proj_size=2, bidirectional=True, dropout=0.3, seed=7)
        x = np.random.default_rng(7).uniform(-1, 1, (5, 3, 3))  # (T, B, I)
        reference.check_module_gradients(lstm, x, lengths=[5, 2, 4], seed=7)
    return {"gradient": Errors(np.concatenate(err), np.concatenate(scale))}


@functools.cache
def _measured(group: tuple[str, str]) -> dict[str, Errors]:
    dtype, device = group
    if device == "numeric":
        return _finite_differences()
    if dtype == "float32-vs-float64" and device == "cpu":
        return _float32_against_float64()
    if dtype == "float32-vs-float64":  # a float32 torch candidate against the float64 reference
        return _against_torch("float64", device, "float32", trusted="reference")
    return _against_torch(dtype, device, dtype)


def measured(key: tuple[str, str, str]) -> Errors:
    return _measured(key[:2])[key[2]]


def _params(keys) -> list[Any]:
    return [pytest.param(k, id="-".join(k), marks=[pytest.mark.cuda] if k[1] == "cuda" else []) for k in keys]


ENTRIES = _params(TOLERANCES)


@pytest.fixture
def on_device(request):
    if request.node.callspec.params["key"][1] == "cuda":
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")


# -- the entries --------------------------------------------------------------------

def test_every_entry_has_a_margin():
    assert list(MARGINS) == list(TOLERANCES)
    assert all(r > 1 and a > 1 for r, a in MARGINS.values())


@pytest.mark.parametrize("key", ENTRIES)
def test_entry_covers_the_measured_error_within_its_margin(key, on_device, record_property):
    record_property("figures", check_entry(key, measured(key)))


@pytest.mark.parametrize("key", ENTRIES)
def test_a_drifted_entry_fails(key, on_device, monkeypatch):
    """The check above, on the same measurement, with the entry loosened 1000x (rtol, then atol) and
    tightened 1000x: each must fail, naming what is wrong."""
    errors, (rtol, atol) = measured(key), TOLERANCES[key]
    for drifted, why in [((rtol * 1e3, atol), "rtol is"), ((rtol, atol * 1e3), "atol is"),
                         ((rtol * 1e-3, atol * 1e-3), "exceeds the entry")]:
        monkeypatch.setitem(TOLERANCES, key, drifted)
        with pytest.raises(AssertionError, match=why):
            check_entry(key, errors)
