"""The verification toolkit: compare(), its localisation, the layout adapters and the CLI.

Every broken candidate in broken_candidates.py must be detected *and* localised
to the right (kind, layer, direction, time step, gate); correct candidates must pass.
"""

from __future__ import annotations

import os
import subprocess
import sys

import broken_candidates as bc
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torch_impl import layouts
from torch_impl.compare import _PIN, CandidateError, Spec, compare, plot_errors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENGTHS = [6, 4, 3]  # T = 6; rows 1 and 2 are shorter


def test_pinned_value_makes_sigmoid_equal_tanh():
    s = 1 / (1 + np.exp(-_PIN))
    assert s == pytest.approx(np.tanh(_PIN), abs=1e-15) and s == pytest.approx(2 ** -0.5)


# -- correct candidates pass ---------------------------------------------------

CONFIGS = [
    ("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 2}),
    ("GRU", {"num_layers": 2, "bidirectional": True}),
    ("RNN", {"num_layers": 2, "bidirectional": True, "nonlinearity": "relu"}),
]


@pytest.mark.parametrize("mode,kw", CONFIGS)
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_torch_nn_passes(mode, kw, lengths):
    torch.manual_seed(0)
    m = getattr(torch.nn, mode)(3, 4, **kw).double()
    report = compare(m, lengths=lengths, seq_len=6)
    assert report.passed, str(report)
    assert report.forward is None and report.gradient is None
    assert "MATCH" in str(report)


@pytest.mark.parametrize("cls,kw", [(bc.HandLSTM, CONFIGS[0][1]), (bc.HandGRU, CONFIGS[1][1]),
                                    (bc.HandRNNTanh, {"num_layers": 2, "bidirectional": True})])
def test_hand_written_passes(cls, kw):
    m = cls(3, 4, **kw).double()
    assert compare(m, lengths=LENGTHS, seq_len=6).passed


def test_float32_candidate_passes_against_float64_reference():
    m = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    report = compare(m, lengths=LENGTHS, seq_len=6)
    assert report.dtype == "float32" and report.passed, str(report)


def test_numpy_function_candidate_in_foreign_layout_passes():
    report = compare(bc.numpy_lstm, Spec("LSTM", 3, 4), layout="ifog", seq_len=6)
    assert report.passed, str(report)


def test_candidate_module_is_left_unchanged():
    m = torch.nn.GRU(3, 4).double()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    compare(m, {"mode": "GRU", "input_size": 3, "hidden_size": 4})  # loads the reference's weights into a copy
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


@settings(max_examples=12)
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
        assert not report.passed
        div = report.forward
        assert (div.kind, div.layer, div.direction, div.time) == ("step", 0, 0, 0), str(report)
        assert div.gate == {"LSTM": "i", "GRU": "r"}[mode], str(report)


# -- broken candidates are detected and localised --------------------------------

BROKEN = [
    # (candidate class, constructor kwargs, lengths, expected (kind, layer, direction, time, gate))
    (bc.SwappedGatesLSTM, {"num_layers": 2, "bidirectional": True}, None, ("step", 0, 0, 0, "i")),
    (bc.ReverseSwappedGatesLSTM, {"num_layers": 2, "bidirectional": True}, None, ("step", 0, 1, 5, "g")),
    (bc.SwappedGatesGRU, {"num_layers": 2}, None, ("step", 0, 0, 0, "r")),
    (bc.PaperResetGRU, {"num_layers": 2, "bidirectional": True}, LENGTHS, ("step", 0, 0, 0, "n")),
    (bc.MergedBiasGRU, {"bidirectional": True}, None, ("step", 0, 0, 0, "n")),
    (bc.NoCellTanhLSTM, {"num_layers": 2}, None, ("step", 0, 0, 0, "h")),
    (bc.ProjOnCellLSTM, {"proj_size": 2, "bidirectional": True}, None, ("step", 0, 0, 0, "h")),
]


@pytest.mark.parametrize("cls,kw,lengths,expected", BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_broken_candidate_is_localised(cls, kw, lengths, expected):
    m = cls(3, 4, **kw).double()
    report = compare(m, lengths=lengths, seq_len=6)
    assert not report.passed
    div = report.forward
    assert div is not None, str(report)
    assert (div.kind, div.layer, div.direction, div.time, div.gate) == expected, str(report)
    assert "first forward divergence" in str(report)


def test_reverse_off_by_one_with_lengths_is_localised_to_the_first_reverse_step():
    m = bc.ReverseOffByOneLSTM(3, 4, num_layers=2, bidirectional=True).double()
    report = compare(m, lengths=LENGTHS, seq_len=6)
    div = report.forward
    assert (div.kind, div.layer, div.direction, div.gate) == ("sequence", 0, 1, "h"), str(report)
    # the first valid step of a shorter row, which the candidate reaches one step late
    assert LENGTHS[div.batch] < 6 and div.time == LENGTHS[div.batch] - 1, str(report)


def test_reverse_off_by_one_is_invisible_without_lengths():
    assert compare(bc.ReverseOffByOneLSTM(3, 4, bidirectional=True).double(), seq_len=6).passed


def test_wrong_dropout_scaling_is_localised_to_the_layer_boundary():
    m = bc.DropoutScaleLSTM(3, 4, num_layers=3, dropout=0.3).double()
    report = compare(m, seq_len=6)
    div = report.forward
    assert (div.kind, div.layer, div.direction, div.time, div.gate) == ("dropout", 1, 0, 0, "dropout"), str(report)
    assert compare(bc.HandLSTM(3, 4, num_layers=3, dropout=0.3).double(), seq_len=6).passed


def test_gradient_bug_is_localised_to_the_first_bptt_step():
    report = compare(bc.numpy_lstm_forget_carry_bug, Spec("LSTM", 3, 4), layout="ifog", seq_len=6)
    assert [t.name for t in report.tensors if not t.passed and t.kind == "forward"] == []
    div = report.gradient
    assert (div.kind, div.layer, div.direction, div.time, div.gate) == ("gradient", 0, 0, 5, "dc"), str(report)


def test_torch_nn_with_dropout_in_training_mode_is_a_clear_error():
    with pytest.raises(CandidateError, match="eval mode"):
        compare(torch.nn.LSTM(3, 4, num_layers=2, dropout=0.5).double())


def test_plot(tmp_path):
    report = compare(bc.NoCellTanhLSTM(3, 4).double(), seq_len=6)
    path = plot_errors(report, str(tmp_path / "err.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "output" in report.step_errors and len(report.step_errors["output"]) == 6


# -- layouts ---------------------------------------------------------------------

FOREIGN = [("keras", "LSTM"), ("keras", "GRU"), ("onnx", "LSTM"), ("onnx", "GRU"), ("ifog", "LSTM")]
sig = lambda a: 1 / (1 + np.exp(-a))


def _foreign_weights(layout, mode, I, H, rng):
    G = 4 if mode == "LSTM" else 3
    torch_like = {"weight_ih": rng.uniform(-0.5, 0.5, (G * H, I)), "weight_hh": rng.uniform(-0.5, 0.5, (G * H, H)),
                  "bias_ih": rng.uniform(-0.5, 0.5, G * H), "bias_hh": rng.uniform(-0.5, 0.5, G * H)}
    return layouts.export_weights(layout, mode, torch_like)  # any values in the foreign shapes


def _foreign_forward(layout, mode, w, x, h, c):
    """The foreign framework's own equations, written in its own layout."""
    H = h.shape[-1]
    split = lambda a, n: [a[..., k * H:(k + 1) * H] for k in range(n)]
    outs = []
    for x_t in x:
        if layout == "onnx":
            G = 4 if mode == "LSTM" else 3
            Wb, Rb = w["B"][:G * H], w["B"][G * H:]
            xa, ha = x_t @ w["W"].T + Wb, h @ w["R"].T  # gates i, o, f, c  /  z, r, h
        else:
            kx, kh = (w["kernel"], w["recurrent_kernel"]) if layout == "keras" else (w["Wx"], w["Wh"])
            b = w["bias" if layout == "keras" else "b"]
            xa, ha = x_t @ kx, h @ kh
            if mode == "GRU":  # keras reset_after: bias (2, 3H)
                xa, ha = xa + b[0], ha + b[1]
            else:
                xa = xa + b
            Rb = None
        if mode == "LSTM":
            a = xa + ha + (Rb if layout == "onnx" else 0)
            order = {"keras": "ifgo", "onnx": "iofg", "ifog": "ifog"}[layout]
            gates = dict(zip(order, split(a, 4)))
            i, f, o, g = sig(gates["i"]), sig(gates["f"]), sig(gates["o"]), np.tanh(gates["g"])
            c = f * c + i * g
            h = o * np.tanh(c)
        else:  # z, r, h order in both keras and onnx
            (xz, xr, xh), (hz, hr, hh) = split(xa, 3), split(ha, 3)
            if layout == "onnx":
                rz, rr, rh = split(Rb, 3)
                hz, hr, hh = hz + rz, hr + rr, hh + rh  # linear_before_reset=1
            z, r = sig(xz + hz), sig(xr + hr)
            n = np.tanh(xh + r * hh)
            h = z * h + (1 - z) * n
        outs.append(h)
    return np.stack(outs)


@pytest.mark.parametrize("layout,mode", FOREIGN)
def test_layout_against_torch(layout, mode):
    rng = np.random.default_rng(1)
    I, H, T, B = 3, 4, 5, 2
    w = _foreign_weights(layout, mode, I, H, rng)
    m = getattr(torch.nn, mode)(I, H).double()
    state = {f"{k}_l0": v for k, v in layouts.import_weights(layout, mode, w).items()}
    from torch_impl import load_into

    load_into(m, state)
    x, h0, c0 = rng.uniform(-1, 1, (T, B, I)), rng.uniform(-1, 1, (1, B, H)), rng.uniform(-1, 1, (1, B, H))
    hx = (torch.tensor(h0), torch.tensor(c0)) if mode == "LSTM" else torch.tensor(h0)
    out, _ = m(torch.tensor(x), hx)
    np.testing.assert_allclose(out.detach().numpy(), _foreign_forward(layout, mode, w, x, h0[0], c0[0]),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layout,mode", FOREIGN)
def test_layout_round_trips(layout, mode):
    rng = np.random.default_rng(2)
    w = _foreign_weights(layout, mode, 3, 4, rng)
    back = layouts.export_weights(layout, mode, layouts.import_weights(layout, mode, w))
    assert set(back) == set(w) and all(np.array_equal(back[k], w[k]) for k in w)
    G = 4 if mode == "LSTM" else 3
    t = {"weight_ih": rng.standard_normal((G * 4, 3)), "weight_hh": rng.standard_normal((G * 4, 4)),
         "bias_ih": rng.standard_normal(G * 4), "bias_hh": rng.standard_normal(G * 4)}
    again = layouts.import_weights(layout, mode, layouts.export_weights(layout, mode, t))
    merged = (layout, mode) in (("keras", "LSTM"), ("ifog", "LSTM"))
    for k in ("weight_ih", "weight_hh"):
        assert np.array_equal(again[k], t[k])
    if merged:  # one bias: comes back as (b_ih + b_hh, 0), the same function
        assert np.array_equal(again["bias_ih"], t["bias_ih"] + t["bias_hh"]) and not again["bias_hh"].any()
    else:
        assert np.array_equal(again["bias_ih"], t["bias_ih"]) and np.array_equal(again["bias_hh"], t["bias_hh"])


def test_layout_errors():
    with pytest.raises(ValueError, match="no GRU layout"):
        layouts.import_weights("ifog", "GRU", {})
    with pytest.raises(ValueError, match="layout"):
        layouts.export_weights("caffe", "LSTM", {})
    assert np.array_equal(layouts.reorder_gates(np.arange(4), "iofg", "ifgo"), [0, 2, 3, 1])


# -- the CLI ---------------------------------------------------------------------


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "torch_impl.check", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


BASE = ["--mode", "LSTM", "--input-size", "3", "--hidden-size", "4"]


def test_cli_match_exits_0():
    r = _cli("--candidate", "torch.nn:LSTM", *BASE, "--num-layers", "2", "--bidirectional", "--lengths", "5,3,4")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "RESULT: MATCH" in r.stdout


def test_cli_mismatch_exits_1_and_plots(tmp_path):
    png = tmp_path / "err.png"
    r = _cli("--candidate", "parity_tests.broken_candidates:broken_factory", *BASE, "--plot", str(png))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "MISMATCH" in r.stdout and "time step 0" in r.stdout and ", i:" in r.stdout
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_usage_error_exits_2():
    r = _cli("--candidate", "no_such_module:factory", *BASE)  # cannot import
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no_such_module" in r.stderr


@pytest.mark.parametrize("args", [
    ["--candidate", "torch.nn:LSTM", *BASE, "--proj-size", "9"],  # invalid configuration
    ["--candidate", "torch.nn", *BASE],  # not module:factory
    ["--candidate", "torch.nn:NoSuchThing", *BASE],  # no such factory
    ["--candidate", "torch.nn:LSTM", *BASE, "--num-layers", "2", "--dropout", "0.5", "--train"],  # torch.nn + masks
    ["--candidate", "torch.nn:LSTM", "--mode", "LSTM"],  # missing arguments (argparse)
])
def test_cli_usage_errors_exit_2_in_process(args, capsys):
    from torch_impl.check import main

    try:
        code = main(args)
    except SystemExit as e:  # argparse
        code = e.code
    assert code == 2
    assert "error" in capsys.readouterr().err
