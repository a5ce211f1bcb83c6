"""Weight layouts (reference.verify.layouts): each foreign layout against its framework's own equations
(written here in that layout) and torch, exact round trips, and every bad key and shape refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference.verify import layouts
from torch_impl import load_into

FOREIGN = [("keras", "LSTM"), ("keras", "GRU"), ("keras", "RNN"), ("onnx", "LSTM"), ("onnx", "GRU"), ("onnx", "RNN"),
           ("ifog", "LSTM")]
sig = lambda a: 1 / (1 + np.exp(-a))
G = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _torch_like(mode, I, H, rng):
    g = G[mode]
    return {"weight_ih": rng.uniform(-0.5, 0.5, (g * H, I)), "weight_hh": rng.uniform(-0.5, 0.5, (g * H, H)),
            "bias_ih": rng.uniform(-0.5, 0.5, g * H), "bias_hh": rng.uniform(-0.5, 0.5, g * H)}


def _foreign_forward(layout, mode, w, x, h, c):
    """The foreign framework's own equations, written in its own layout (batch rows, time loop)."""
    H = h.shape[-1]
    split = lambda a, n: [a[..., k * H:(k + 1) * H] for k in range(n)]
    outs = []
    for x_t in x:
        if layout == "onnx":
            g = G[mode]
            Wb, Rb = w["B"][:g * H], w["B"][g * H:]
            xa, ha = x_t @ w["W"].T + Wb, h @ w["R"].T  # gates i, o, f, c  /  z, r, h  /  one
        else:
            kx, kh = (w["kernel"], w["recurrent_kernel"]) if layout == "keras" else (w["Wx"], w["Wh"])
            b = w["bias" if layout == "keras" else "b"]
            xa, ha = x_t @ kx, h @ kh
            if mode == "GRU":  # keras reset_after: bias (2, 3H)
                xa, ha = xa + b[0], ha + b[1]
            else:
                xa = xa + b
            Rb = None
        if mode == "RNN":
            h = np.tanh(xa + ha + (Rb if layout == "onnx" else 0))
        elif mode == "LSTM":
            a = xa + ha + (Rb if layout == "onnx" else 0)
            order = {"keras": "ifgo", "onnx": "iofg", "ifog": "ifog"}[layout]
            gates = dict(zip(order, split(a, 4), strict=True))
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
    w = layouts.export_weights(layout, mode, _torch_like(mode, I, H, rng))  # any values in the foreign shapes
    m = getattr(torch.nn, mode)(I, H).double()
    load_into(m, {f"{k}_l0": v for k, v in layouts.import_weights(layout, mode, w).items()})
    x, h0, c0 = rng.uniform(-1, 1, (T, B, I)), rng.uniform(-1, 1, (1, B, H)), rng.uniform(-1, 1, (1, B, H))
    hx = (torch.tensor(h0), torch.tensor(c0)) if mode == "LSTM" else torch.tensor(h0)
    out, _ = m(torch.tensor(x), hx)
    np.testing.assert_allclose(out.detach().numpy(), _foreign_forward(layout, mode, w, x, h0[0], c0[0]),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layout,mode", FOREIGN)
def test_layout_round_trips(layout, mode):
    rng = np.random.default_rng(2)
    w = layouts.export_weights(layout, mode, _torch_like(mode, 3, 4, rng))
    back = layouts.export_weights(layout, mode, layouts.import_weights(layout, mode, w))
    assert set(back) == set(w) and all(np.array_equal(back[k], w[k]) for k in w)
    t = _torch_like(mode, 3, 4, rng)
    again = layouts.import_weights(layout, mode, layouts.export_weights(layout, mode, t))
    merged = layouts.layout_format(layout, mode).bias_kind == "merged"
    for k in ("weight_ih", "weight_hh"):
        assert np.array_equal(again[k], t[k])
    if merged:  # one bias: comes back as (b_ih + b_hh, 0), the same function
        assert np.array_equal(again["bias_ih"], t["bias_ih"] + t["bias_hh"]) and not again["bias_hh"].any()
    else:
        assert np.array_equal(again["bias_ih"], t["bias_ih"]) and np.array_equal(again["bias_hh"], t["bias_hh"])


def test_keras_gru_paper_form_has_one_merged_bias():
    rng = np.random.default_rng(3)
    t = _torch_like("GRU", 3, 4, rng)
    w = layouts.export_weights("keras", "GRU", t, reset_after=False)
    assert w["bias"].shape == (12,)
    back = layouts.import_weights("keras", "GRU", w, reset_after=False)
    np.testing.assert_array_equal(back["bias_ih"], t["bias_ih"] + t["bias_hh"])
    with pytest.raises(ValueError, match="reset_after=False GRU; torch's form"):
        layouts.import_weights("keras", "GRU", w)


def test_onnx_direction_axis():
    rng = np.random.default_rng(4)
    fwd, rev = (layouts.export_weights("onnx", "LSTM", _torch_like("LSTM", 3, 4, rng)) for _ in range(2))
    one = {k: v[None] for k, v in fwd.items()}  # W (1, 4H, I): accepted
    assert all(np.array_equal(layouts.import_weights("onnx", "LSTM", one)[k],
                              layouts.import_weights("onnx", "LSTM", fwd)[k]) for k in ("weight_ih", "bias_hh"))
    both = {k: np.stack([fwd[k], rev[k]]) for k in fwd}  # W (2, 4H, I): explained, and split by import_state_dict
    with pytest.raises(ValueError, match=r"W: shape \(2, 16, 3\) carries 2 directions.*import_state_dict"):
        layouts.import_weights("onnx", "LSTM", both)
    state = layouts.import_state_dict("onnx", "LSTM", {"l0": both})
    assert np.array_equal(state["weight_hh_l0_reverse"], layouts.import_weights("onnx", "LSTM", rev)["weight_hh"])


@pytest.mark.parametrize("layout,mode,weights,message", [
    ("onnx", "LSTM", {"W": np.zeros((16, 3)), "R": np.zeros((16, 4)), "B": np.zeros(16)}, r"B: expected shape \(32,\)"),
    ("onnx", "LSTM", {"W": np.zeros((16, 3)), "R": np.zeros((16, 4)), "P": np.zeros(12)}, "peephole"),
    ("keras", "LSTM", {"kernel": np.zeros((3, 16)), "recurrent_kernel": np.zeros((4, 16)), "gamma": 1},
     r"unknown keys \['gamma'\]"),
    ("keras", "LSTM", {"kernel": np.zeros((3, 16))}, "missing 'recurrent_kernel'"),
    ("ifog", "LSTM", {"Wx": np.zeros((3, 16)), "Wh": np.zeros((4, 12))}, "Wh: expected 4 gate blocks"),
    ("ifog", "LSTM", {"Wx": np.zeros((3, 12)), "Wh": np.zeros((4, 16))}, "Wx: expected 16 gate rows"),
    ("torch", "GRU", {"weight_ih": np.zeros((12, 3)), "weight_hh": np.zeros((12, 4)), "bias_ih": np.zeros(12)},
     "both bias_ih and bias_hh"),
    ("ifog", "GRU", {}, "no GRU layout"),
    ("caffe", "LSTM", {}, "layout: expected one of"),
])
def test_every_bad_key_and_shape_is_named(layout, mode, weights, message):
    with pytest.raises(ValueError, match=message):
        layouts.import_weights(layout, mode, weights)


def test_reorder_gates_and_detect_layout():
    assert np.array_equal(layouts.reorder_gates(np.arange(4), "iofg", "ifgo"), [0, 2, 3, 1])
    assert layouts.detect_layout(["W", "R", "B"]) == "onnx" and layouts.detect_layout(["Wx", "Wh"]) == "ifog"
    with pytest.raises(ValueError, match="cannot tell the layout"):
        layouts.detect_layout(["w1", "w2"])
