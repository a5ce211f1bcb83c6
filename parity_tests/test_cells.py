"""Reference cells vs torch.nn.RNNCell / GRUCell / LSTMCell on the CPU: forward and every gradient."""

import numpy as np
import pytest
from helpers import assert_close, in_dtype
from hypothesis import example, given
from strategies import CellConfig, cell_configs
from tolerances import tol

torch = pytest.importorskip("torch")
from torch_oracle import run_cell


def _pairs(value):
    return value if isinstance(value, tuple) else (value,)


def check_cell_against_torch(cfg: CellConfig) -> None:
    cell = cfg.build()
    x, hx, cot = cfg.data()
    x, hx = in_dtype(cell.dtype, x, hx)  # the cell's own dtype, as torch's cells ask
    hidden, tape = cell.forward(x, hx)
    grads = cell.backward(tape, cot)
    want = run_cell(cell, x, hx, cot)
    fwd, grad = tol(cfg.dtype, "cpu", "forward"), tol(cfg.dtype, "cpu", "gradient")
    ctx = dict(config=cfg, repro=cfg.repro())
    for k, (a, d) in enumerate(zip(_pairs(hidden), _pairs(want["hidden"]), strict=True)):
        assert_close(f"hidden[{k}]", a, d, *fwd, **ctx)
    assert_close("input", grads["input"], want["input"], *grad, **ctx)
    for k, (a, d) in enumerate(zip(_pairs(grads["hx"]), _pairs(want["hx"]), strict=True)):
        assert_close(f"hx[{k}]", a, d, *grad, **ctx)
    for name in cell.state_dict():
        assert_close(name, grads[name], want[name], *grad, **ctx)


@given(cell_configs())
@example(CellConfig("LSTMCell", 1, 1, True, "tanh", 1, True, "float64", 0))
@example(CellConfig("GRUCell", 1, 1, True, "tanh", None, True, "float64", 1))
@example(CellConfig("RNNCell", 6, 6, False, "relu", 6, False, "float32", 2))
def test_cell_matches_torch(cfg):
    check_cell_against_torch(cfg)


@pytest.mark.parametrize("kind", ["RNNCell", "GRUCell", "LSTMCell"])
def test_state_dict_keys_order_and_shapes_match_torch(kind):
    cfg = CellConfig(kind, 3, 5, True, "tanh", 2, True, "float64", 0)
    ref = cfg.build().state_dict()
    want = getattr(torch.nn, kind)(3, 5).state_dict()
    assert list(ref) == list(want)
    assert [v.shape for v in ref.values()] == [tuple(v.shape) for v in want.values()]
    no_bias = getattr(torch.nn, kind)(3, 5, bias=False).state_dict()
    assert list(CellConfig(kind, 3, 5, False, "tanh", 2, True, "float64", 0).build().state_dict()) == list(no_bias)


@pytest.mark.parametrize("kind", ["RNNCell", "GRUCell", "LSTMCell"])
def test_init_is_uniform_in_torch_bound(kind):
    H = 16
    params = CellConfig(kind, 8, H, True, "tanh", 2, True, "float64", 3).build().state_dict()
    flat = np.concatenate([v.ravel() for v in params.values()])
    bound = 1 / np.sqrt(H)
    assert np.abs(flat).max() <= bound
    assert np.abs(flat).max() > 0.9 * bound  # spread over the whole range, not a narrower one
