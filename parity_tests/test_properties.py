"""Properties of the reference that need no torch: structure, invariances, tapes."""

import numpy as np
import pytest
from helpers import assert_close, in_dtype
from hypothesis import given
from hypothesis import strategies as st
from strategies import cell_configs, layer_configs
from tolerances import tol

import reference
from reference.activations import sigmoid

F64 = tol("float64", "cpu", "gradient")


def _parts(v):
    return v if isinstance(v, tuple) else (v,)


def _close_tree(name, a, b, rtol, atol, **kw):
    for k, (x, y) in enumerate(zip(_parts(a), _parts(b), strict=True)):
        assert_close(f"{name}[{k}]", x, y, rtol, atol, **kw)


@given(cell_configs(dtype=st.just("float64")))
def test_cell_unbatched_equals_batch_of_one(cfg):
    cell = cfg.build()
    x, hx, cot = cfg.data()
    if cfg.batch is not None:  # take the first row as the unbatched example
        x, hx, cot = x[0], (None if hx is None else tuple(h[0] for h in _parts(hx))), tuple(c[0] for c in _parts(cot))
        hx = hx if hx is None or len(hx) == 2 else hx[0]
        cot = cot if len(cot) == 2 else cot[0]
    add = lambda v: None if v is None else tuple(a[None] for a in _parts(v)) if isinstance(v, tuple) else v[None]
    h1, t1 = cell.forward(x, hx)
    hb, tb = cell.forward(x[None], add(hx))
    _close_tree("hidden", add(h1), hb, 0, 0)
    g1, gb = cell.backward(t1, cot), cell.backward(tb, add(cot))
    assert_close("input", g1["input"][None], gb["input"], 0, 0)
    for name in cell.state_dict():
        assert_close(name, g1[name], gb[name], 0, 0)


@given(layer_configs(dtype=st.just("float64")))
def test_layer_unbatched_equals_batch_of_one(cfg):
    m = cfg.build()
    x, hx, _lengths, g_out, g_hid = cfg.data()
    if cfg.batch is not None:
        return  # covered by the unbatched draws
    out1, hid1, t1 = m.forward(x, hx)
    bx = x[None] if cfg.batch_first else x[:, None]
    bhx = None if hx is None else tuple(h[:, None] for h in _parts(hx))
    bhx = bhx if bhx is None or len(bhx) == 2 else bhx[0]
    outb, hidb, tb = m.forward(bx, bhx)
    assert_close("output", out1, outb[0] if cfg.batch_first else outb[:, 0], 0, 0)
    _close_tree("hidden", hid1, tuple(h[:, 0] for h in _parts(hidb)), 0, 0)
    g1 = m.backward(t1, g_out, g_hid)
    bg_out = g_out[None] if cfg.batch_first else g_out[:, None]
    bg_hid = tuple(h[:, None] for h in _parts(g_hid))
    gb = m.backward(tb, bg_out, bg_hid if len(bg_hid) == 2 else bg_hid[0])
    for name in m.state_dict():
        assert_close(name, g1[name], gb[name], 0, 0)


@given(cell_configs(dtype=st.just("float64")).filter(lambda c: c.bias))
def test_bias_gradients_equal_except_gru_new_gate(cfg):
    cell = cfg.build()
    x, hx, cot = cfg.data()
    g = cell.backward(cell.forward(x, hx)[1], cot)
    H = cfg.hidden_size
    if cfg.kind == "GRUCell":
        assert_close("bias_hh[r,z]", g["bias_hh"][: 2 * H], g["bias_ih"][: 2 * H], 0, 0)
        # n rows: bias_hh's gradient carries the reset gate: d b_hn = r * d b_in (not equal unless r = 1)
        assert not np.allclose(g["bias_hh"][2 * H:], g["bias_ih"][2 * H:], rtol=1e-3, atol=0)
    else:
        assert_close("bias_hh", g["bias_hh"], g["bias_ih"], 0, 0)


@given(layer_configs(dtype=st.just("float32")))
def test_float32_is_within_table_of_float64(cfg):
    m32, m64 = cfg.build("float32"), cfg.build("float64")
    x, hx, lengths, g_out, g_hid = cfg.data()
    o32, h32, t32 = m32.forward(*in_dtype(np.float32, x, hx), lengths=lengths)
    o64, h64, t64 = m64.forward(x, hx, lengths=lengths)
    fwd, grad = tol("float32-vs-float64", "cpu", "forward"), tol("float32-vs-float64", "cpu", "gradient")
    assert_close("output", o32, o64, *fwd, check_dtype=False, repro=cfg.repro())
    _close_tree("hidden", h32, h64, *fwd, check_dtype=False, repro=cfg.repro())
    g32, g64 = m32.backward(t32, g_out, g_hid), m64.backward(t64, g_out, g_hid)
    for name in m64.state_dict():
        assert g32[name].dtype == np.float32
        assert_close(name, g32[name], g64[name], *grad, check_dtype=False, repro=cfg.repro())


# -- layers: structure ----------------------------------------------------------

def _modules(mode, I, H, **kw):
    return getattr(reference, mode)(I, H, seed=3, **kw)


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_stack_equals_chained_single_layers(mode):
    rng = np.random.default_rng(0)
    deep = _modules(mode, 3, 4, num_layers=3)
    x = rng.uniform(-1, 1, (5, 2, 3))
    out, hid, tape = deep.forward(x)
    sd = deep.state_dict()
    y, states, layers = x, [], []
    for layer in range(3):
        single = _modules(mode, 3 if layer == 0 else 4, 4)
        single.load_state_dict({k.replace(f"_l{layer}", "_l0"): v for k, v in sd.items() if f"_l{layer}" in k})
        y, h, t = single.forward(y)
        states.append(h)
        layers.append((single, t))
    assert_close("output", out, y, *F64)
    _close_tree("h_n", hid, tuple(np.concatenate([_parts(s)[k] for s in states]) for k in range(len(_parts(hid)))),
                *F64)
    g_out = rng.standard_normal(out.shape)
    deep_grads = deep.backward(tape, g_out)
    d = g_out
    for layer in reversed(range(3)):
        single, t = layers[layer]
        g = single.backward(t, d)
        for k in single.state_dict():
            assert_close(k.replace("_l0", f"_l{layer}"), deep_grads[k.replace("_l0", f"_l{layer}")], g[k], *F64)
        d = g["input"]
    assert_close("input", deep_grads["input"], d, *F64)


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_bidirectional_is_forward_and_reversed_pass(mode):
    rng = np.random.default_rng(1)
    bi = _modules(mode, 3, 4, bidirectional=True)
    x = rng.uniform(-1, 1, (6, 2, 3))
    out, _, _ = bi.forward(x)
    sd = bi.state_dict()
    fwd, bwd = _modules(mode, 3, 4), _modules(mode, 3, 4)
    fwd.load_state_dict({k: v for k, v in sd.items() if not k.endswith("_reverse")})
    bwd.load_state_dict({k[: -len("_reverse")]: v for k, v in sd.items() if k.endswith("_reverse")})
    assert_close("forward half", out[..., :4], fwd(x)[0], *F64)
    assert_close("reverse half", out[..., 4:], bwd(x[::-1])[0][::-1], *F64)


@given(layer_configs(dtype=st.just("float64")).filter(lambda c: c.use_lengths))
def test_packed_batch_equals_each_sequence_alone(cfg):
    m = cfg.build()
    x, hx, lengths, g_out, g_hid = cfg.data()
    out, hid, tape = m.forward(x, hx, lengths=lengths)
    grads = m.backward(tape, g_out, g_hid)
    bf = cfg.batch_first
    for b, n in enumerate(lengths):
        xb = x[b:b + 1, :n] if bf else x[:n, b:b + 1]
        hxb = None if hx is None else tuple(h[:, b:b + 1] for h in _parts(hx))
        hxb = hxb if hxb is None or len(hxb) == 2 else hxb[0]
        ob, hb, tb = m.forward(xb, hxb)
        assert_close(f"output[{b}]", out[b:b + 1, :n] if bf else out[:n, b:b + 1], ob, *F64)
        pad = out[b, n:] if bf else out[n:, b]
        assert not pad.any(), "output past the length must be zero"
        _close_tree(f"h_n[{b}]", tuple(h[:, b:b + 1] for h in _parts(hid)), hb, *F64)
        gb = m.backward(tb, g_out[b:b + 1, :n] if bf else g_out[:n, b:b + 1],
                        tuple(h[:, b:b + 1] for h in _parts(g_hid)) if cfg.mode == "LSTM" else g_hid[:, b:b + 1])
        gi = grads["input"][b:b + 1, :n] if bf else grads["input"][:n, b:b + 1]
        assert_close(f"input[{b}]", gi, gb["input"], *F64)
        assert not (grads["input"][b, n:] if bf else grads["input"][n:, b]).any()


def test_eval_mode_ignores_dropout():
    m = reference.LSTM(3, 4, num_layers=3, dropout=0.7, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 2, 3))
    assert m.eval() is m and not m.training
    a, b = m(x)[0], m(x)[0]
    m2 = reference.LSTM(3, 4, num_layers=3, dropout=0.0, seed=0)
    assert_close("eval output", a, m2(x)[0], 0, 0)
    assert_close("repeat", a, b, 0, 0)
    assert m.train() is m and m.training
    assert not np.array_equal(m(x)[0], a)


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("p", [0.3, 1.0])
def test_dropout_masks_equal_composition_of_layers_and_masks(mode, p):
    rng = np.random.default_rng(2)
    deep = _modules(mode, 3, 4, num_layers=2, dropout=p, bidirectional=True, batch_first=True)
    x = rng.uniform(-1, 1, (2, 5, 3))
    mask = (rng.random((2, 5, 8)) >= p).astype(np.float64)
    out, hid, tape = deep.forward(x, dropout_masks=[mask])
    sd = deep.state_dict()
    l0 = _modules(mode, 3, 4, bidirectional=True, batch_first=True)
    l1 = _modules(mode, 8, 4, bidirectional=True, batch_first=True)
    l0.load_state_dict({k.replace("_l0", "_l0"): v for k, v in sd.items() if "_l0" in k})
    l1.load_state_dict({k.replace("_l1", "_l0"): v for k, v in sd.items() if "_l1" in k})
    y0, h0, t0 = l0.forward(x)
    scale = 0.0 if p == 1 else 1 / (1 - p)
    y1, h1, t1 = l1.forward(y0 * mask * scale)
    assert_close("output", out, y1, *F64)
    for k, (h_deep, h_first, h_second) in enumerate(zip(_parts(hid), _parts(h0), _parts(h1), strict=True)):
        assert_close(f"hidden[{k}] of layer 0", h_deep[:2], h_first, *F64)
        assert_close(f"hidden[{k}] of layer 1", h_deep[2:], h_second, *F64)
    g_out = rng.standard_normal(out.shape)
    g = deep.backward(tape, g_out)
    g1 = l1.backward(t1, g_out)
    g0 = l0.backward(t0, g1["input"] * mask * scale)
    assert_close("input", g["input"], g0["input"], *F64)
    assert_close("weight_ih_l0", g["weight_ih_l0"], g0["weight_ih_l0"], *F64)


# -- tapes ----------------------------------------------------------------------

@given(layer_configs(dtype=st.just("float64"), max_layers=2))
def test_backward_is_repeatable_and_forward_changes_nothing(cfg):
    m = cfg.build()
    x, hx, lengths, g_out, g_hid = cfg.data()
    before = m.state_dict()
    x_before = x.copy()
    _, _, tape = m.forward(x, hx, lengths=lengths)
    g1, g2 = m.backward(tape, g_out, g_hid), m.backward(tape, g_out, g_hid)
    for name in g1:
        _close_tree(name, g1[name], g2[name], 0, 0)
    for k, v in m.state_dict().items():
        assert np.array_equal(v, before[k]), k
    assert np.array_equal(x, x_before)


@given(layer_configs(dtype=st.just("float64")))
def test_writing_into_the_outputs_leaves_the_tape_intact(cfg):
    # The output may be the tape's own state history (one layer, one direction, no padding): then
    # NumPy hands it out read-only, so `output += 1` raises instead of silently changing the next
    # backward. Every output that can be written is the caller's own array.
    m = cfg.build()
    x, hx, lengths, g_out, g_hid = cfg.data()
    out, hidden, tape = m.forward(x, hx, lengths=lengths)
    expected = m.backward(tape, g_out, g_hid)
    for arr in (out, *(hidden if isinstance(hidden, tuple) else (hidden,))):
        if arr.flags.writeable:
            arr += 1.0
        else:
            with pytest.raises(ValueError, match="read-only"):
                arr += 1.0
    got = m.backward(tape, g_out, g_hid)
    for name in expected:
        _close_tree(name, got[name], expected[name], 0, 0)


@given(layer_configs(dtype=st.just("float64")))
def test_writing_into_the_callers_arrays_afterwards_changes_no_result(cfg):
    # forward copies what the tape keeps (input, hx); backward reads grad_output where it lies
    # (no copy: a tape never keeps it), so nothing it returns may share grad_output's memory.
    m = cfg.build()
    x, hx, lengths, g_out, g_hid = cfg.data()
    _, _, tape = m.forward(x, hx, lengths=lengths)
    expected = m.backward(tape, g_out.copy(), g_hid)
    for arr in (x, *(() if hx is None else _parts(hx))):
        arr += 1.0  # the caller's input and initial state, written after forward
    got = m.backward(tape, g_out, g_hid)
    for name in expected:
        _close_tree(name, got[name], expected[name], 0, 0)
        for k, part in enumerate(_parts(got[name])):
            assert not np.shares_memory(part, g_out), f"{name}[{k}] shares memory with grad_output"


def test_torch_output_written_in_place_is_caught_at_backward():
    torch = pytest.importorskip("torch")
    m = reference.GRU(2, 3, seed=0)
    out, _, tape = m.forward(torch.zeros(4, 1, 2, dtype=torch.float64))
    out.add_(1.0)
    with pytest.raises(ValueError, match="modified in place"):
        m.backward(tape, torch.ones_like(out))


def test_tape_from_another_module_is_refused():
    a, b = reference.GRU(2, 3, seed=0), reference.GRU(2, 3, seed=0)
    x = np.zeros((2, 1, 2))
    with pytest.raises(ValueError, match="another module"):
        b.backward(a.forward(x)[2], np.zeros((2, 1, 3)))
    ca, cb = reference.LSTMCell(2, 3), reference.LSTMCell(2, 3)
    with pytest.raises(ValueError, match="another module"):
        cb.backward(ca.forward(np.zeros(2))[1], (None, None))


# -- activations ----------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_on_strided_gate_slices(dtype):
    # A gate slice of a (B, 4H) array with H = 1 is a single strided column: NumPy 2.4's in-place
    # float32 np.negative got it wrong, which once broke LSTMCell(1, 1) in float32.
    gates = np.arange(-4, 4, dtype=dtype).reshape(2, 4)
    want = 1 / (1 + np.exp(-gates[:, 3:].astype(np.float64)))
    assert_close("sigmoid", sigmoid(np, gates[:, 3:]), want.astype(dtype), *tol(dtype, "cpu", "forward"))


def test_sigmoid_saturates_without_warnings_or_nan():
    x = np.array([-np.inf, -1e4, -800.0, 0.0, 800.0, np.inf])
    # exp(-x) overflowing to inf is the correct limit (callers silence it); nothing else may warn
    with np.errstate(over="ignore", invalid="raise", divide="raise"):
        s = sigmoid(np, x.copy())
    assert np.array_equal(s, [0.0, 0.0, 0.0, 0.5, 1.0, 1.0])
