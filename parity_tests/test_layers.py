"""Reference RNN / GRU / LSTM vs torch.nn on the CPU, over the whole option space.

Every option torch has -- layers, directions, batch_first, bias, relu, proj_size,
unbatched input, packed lengths, hx given or not, float64 and float32 -- with
random cotangents on output and on h_n / c_n.
"""

import numpy as np
import pytest
from helpers import assert_close, in_dtype
from hypothesis import example, given
from strategies import MAX_LAYERS, MAX_SIZE, MAX_T, LayerConfig, layer_configs
from tolerances import tol

torch = pytest.importorskip("torch")
from torch_oracle import run_layer


def _parts(value):
    return value if isinstance(value, tuple) else (value,)


def check_layer_against_torch(cfg: LayerConfig) -> None:
    module = cfg.build()
    x, hx, lengths, g_out, g_hid = cfg.data()
    x, hx = in_dtype(module.dtype, x, hx)  # the module's own dtype, as torch's modules ask
    output, hidden, tape = module.forward(x, hx, lengths=lengths)
    grads = module.backward(tape, g_out, g_hid)
    want = run_layer(module, x, hx, lengths, g_out, g_hid)
    fwd, grad = tol(cfg.dtype, "cpu", "forward"), tol(cfg.dtype, "cpu", "gradient")
    ctx = dict(config=cfg, repro=cfg.repro())
    assert_close("output", output, want["output"], *fwd, **ctx)
    for name, a, d in zip(("h_n", "c_n")[: len(_parts(hidden))], _parts(hidden), _parts(want["hidden"]), strict=True):
        assert_close(name, a, d, *fwd, **ctx)
    assert_close("input", grads["input"], want["input"], *grad, **ctx)
    for name, a, d in zip(("h_0", "c_0")[: len(_parts(grads["hx"]))], _parts(grads["hx"]), _parts(want["hx"]), strict=True):
        assert_close(name, a, d, *grad, **ctx)
    assert list(grads)[2:] == list(module.state_dict())
    for name in module.state_dict():
        assert_close(name, grads[name], want[name], *grad, **ctx)


S = MAX_SIZE


@given(layer_configs())
@example(LayerConfig("LSTM", 1, 1, 1, True, False, False, "tanh", 0, 1, 1, False, True, "float64", 0))
@example(LayerConfig("LSTM", 2, 2, 1, True, False, True, "tanh", 1, 3, 2, True, True, "float64", 1))
@example(LayerConfig("GRU", S, S, MAX_LAYERS, True, True, True, "tanh", 0, MAX_T, S, True, True, "float64", 2))
@example(LayerConfig("LSTM", S, S, MAX_LAYERS, True, False, True, "tanh", S - 1, MAX_T, S, True, True, "float64", 3))
@example(LayerConfig("RNN", 3, 4, 2, False, True, True, "relu", 0, 5, None, False, False, "float32", 4))
def test_layer_matches_torch(cfg):
    check_layer_against_torch(cfg)


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_state_dict_keys_order_and_shapes_match_torch(mode, bidirectional):
    kw = dict(num_layers=3, bidirectional=bidirectional)
    if mode == "LSTM":
        kw["proj_size"] = 2
    ref = LayerConfig(mode, 3, 5, 3, True, False, bidirectional, "tanh", kw.get("proj_size", 0), 2, 2, False,
                      False, "float64", 0).build().state_dict()
    want = getattr(torch.nn, mode)(3, 5, **kw).state_dict()
    assert list(ref) == list(want)
    assert [v.shape for v in ref.values()] == [tuple(v.shape) for v in want.values()]


def test_dropout_with_one_layer_warns_as_torch():
    import reference

    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        reference.LSTM(2, 3, dropout=0.5)


def test_float64_parity_is_near_machine_precision():
    """A record of the tightest claim: relative error <= 1e-12 on a deep, wide, packed, projected LSTM."""
    cfg = LayerConfig("LSTM", 6, 6, 3, True, True, True, "tanh", 3, 8, 6, True, True, "float64", 11)
    module = cfg.build()
    x, hx, lengths, g_out, g_hid = cfg.data()
    output, hidden, tape = module.forward(x, hx, lengths=lengths)
    grads = module.backward(tape, g_out, g_hid)
    want = run_layer(module, x, hx, lengths, g_out, g_hid)
    worst = max(assert_close(n, grads[n], want[n], 1e-12, 0.0) for n in module.state_dict())
    worst = max(worst, assert_close("output", output, want["output"], 1e-12, 0.0))
    for k, (h, h_want) in enumerate(zip(_parts(hidden), _parts(want["hidden"]), strict=True)):
        worst = max(worst, assert_close(f"hidden[{k}]", h, h_want, 1e-12, 0.0))
    assert worst < 1e-12
    assert np.isfinite(worst)
