"""Tests the planted-bug catalogue (``parity_tests/mutants``) showed missing.

Each test closes one gap: a realistic bug in the core that the rest of the suite
let through. The catalogue entry each one kills is named in its docstring.
Everything here runs without torch except where a test says it compares to
torch (those skip cleanly without it).

Shapes: T time, B batch, I input, H hidden, P output (proj_size or H), D directions.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close
from tolerances import tol

import reference

F64 = tol("float64", "cpu", "gradient")


def _parts(value):
    return value if isinstance(value, tuple) else (value,)


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


# -- carries: the total gradient at each state, against torch ------------------------------------

@pytest.mark.parametrize("lengths", [None, [4, 2, 1]], ids=["full", "packed"])
@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_carries_are_the_gradient_at_each_state_as_torch_computes_it(mode, lengths):
    """carries[0][d][t] is dL/d(state after step t), both directions: torch's cells unrolled by
    hand, with retain_grad on a clone of every state as the next step, the output and h_n read
    it. For LSTM, dc_t is then the gradient through c_{t+1} and c_n only: the path through
    h_t = o * tanh(c_t) is inside the step that made c_t. With lengths, a padded step carries
    the state (and so the gradient) and its output is a constant 0, whose random cotangent must
    reach nothing. Kills ``carries_one_step_early`` and ``padded_output_gradient_leaks``."""
    torch = pytest.importorskip("torch")
    T, B, I, H = 4, 3, 3, 5
    m = getattr(reference, mode)(I, H, bidirectional=True, seed=1)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (T, B, I))
    g_out = rng.standard_normal((T, B, 2 * H))
    n_states = 2 if mode == "LSTM" else 1
    g_hid = tuple(rng.standard_normal((2, B, H)) for _ in range(n_states))
    _, _, tape = m.forward(x, lengths=lengths)
    carries = m.backward(tape, g_out, g_hid if mode == "LSTM" else g_hid[0], carries=True)["carries"]

    sd = {k: torch.tensor(v) for k, v in m.state_dict().items()}
    cell_type = getattr(torch.nn, "RNNCell" if mode == "RNN" else f"{mode}Cell")
    xt = torch.tensor(x)
    valid = torch.tensor(np.arange(T)[:, None] < np.asarray(lengths if lengths else [T] * B)[None, :])  # (T, B)
    loss = torch.zeros((), dtype=torch.float64)
    history = []
    for d, sfx in enumerate(("", "_reverse")):
        cell = cell_type(I, H).double()
        cell.load_state_dict({k: sd[f"{k}_l0{sfx}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
        state = tuple(torch.zeros(B, H, dtype=torch.float64) for _ in range(n_states))
        states = {}
        for t in (range(T - 1, -1, -1) if d else range(T)):
            new = _parts(cell(xt[t], state if mode == "LSTM" else state[0]))
            keep = valid[t][:, None]  # (B, 1): padded rows keep their state
            # a clone: the state as the rest of the sequence reads it
            state = tuple(torch.where(keep, n, s).clone() for n, s in zip(new, state, strict=True))
            for s in state:
                s.retain_grad()
            states[t] = state
            out_t = torch.where(keep, state[0], torch.zeros_like(state[0]))  # (B, H) zero past each length
            loss = loss + (out_t * torch.tensor(g_out[t, :, d * H : (d + 1) * H])).sum()
        loss = loss + sum((s * torch.tensor(g[d])).sum() for s, g in zip(state, g_hid, strict=True))
        history.append(states)
    loss.backward()
    for d in range(2):
        for t in range(T):
            for k, (got, s) in enumerate(zip(carries[0][d][t], history[d][t], strict=True)):
                assert_close(f"carries[0][{d}][{t}][{k}]", got, s.grad, *F64)


# -- backward where a library's rows are copies ------------------------------------------------

@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_backward_without_row_views_copies_each_step(mode, monkeypatch):
    """Each backward step writes its dhw over its share of the block's partials, and the loop
    keeps the block with one copy, where rows from ``unstack`` are views (NumPy, torch,
    array-api-strict). A library whose rows are copies gets a copy per step instead: made to
    take that path here, NumPy gives the same gradients to the bit, over several blocks,
    both directions and lengths. Kills ``per_step_gradients_dropped_without_views``."""
    monkeypatch.setattr(reference.blocks, "PARTIALS_ELEMENTS", 1 << 12)  # blocks of 2 (GRU, LSTM) or 8 (RNN) steps
    kw = {"proj_size": 2} if mode == "LSTM" else {}
    m = getattr(reference, mode)(3, 4, num_layers=2, bidirectional=True, seed=0, **kw)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (24, 128, 3))  # (T, B, I)
    lengths = rng.integers(1, 25, 128)
    out, _, tape = m.forward(x, lengths=lengths)
    g_out = rng.standard_normal(out.shape)
    expected = m.backward(tape, g_out)
    monkeypatch.setitem(reference._namespace._ROWS_ARE_VIEWS, "numpy", False)
    got = m.backward(tape, g_out)
    for name, value in expected.items():
        for k, (a, b) in enumerate(zip(*(v if isinstance(v, tuple) else (v,) for v in (got[name], value)),
                                       strict=True)):
            assert np.array_equal(a, b), f"{name}[{k}] differs on the copy-per-step path"


# -- long sequences: several input-projection blocks ---------------------------------------------

@pytest.mark.parametrize("mode", ["GRU", "LSTM"])
def test_sequences_long_enough_for_several_projection_blocks_match_torch(mode, monkeypatch):
    """T * B large enough that the loop cuts time into blocks, forward and backward alike
    (T = 24, B = 128: forward's projections eight blocks of three steps; backward's partials,
    given 2^13 numbers a block here, blocks of seven (GRU) or five (LSTM) steps), both directions,
    with lengths. The rest of the suite draws T * B <= 48: one block. Kills
    ``reverse_blocks_in_forward_order`` and ``block_input_grad_of_first_block_only``."""
    pytest.importorskip("torch")
    from strategies import LayerConfig
    from test_layers import check_layer_against_torch

    monkeypatch.setattr(reference.blocks, "PARTIALS_ELEMENTS", 1 << 13)

    check_layer_against_torch(LayerConfig(mode, 2, 3, 1, True, False, True, "tanh", 0, 24, 128, True, True,
                                          "float64", 5))


# -- the tape's public gate values, against torch's equations in torch's row order ---------------

@pytest.mark.parametrize("mode", ["GRU", "LSTM"])
def test_tape_steps_hold_each_gate_under_its_torch_letter(mode):
    """StepRecord.gates recomputed from the state_dict (torch's row order: LSTM i, f, g, o;
    GRU r, z, n) and each step's h_prev, both directions. Kills ``lstm_tape_gates_g_and_o_swapped``."""
    kw = dict(proj_size=2) if mode == "LSTM" else {}
    m = getattr(reference, mode)(3, 4, bidirectional=True, seed=6, **kw)
    x = np.random.default_rng(7).uniform(-1, 1, (5, 2, 3))
    _, _, tape = m.forward(x)
    sd, H = m.state_dict(), 4
    for d, sfx in enumerate(("", "_reverse")):
        w_ih, w_hh, b_ih, b_hh = (sd[f"{k}_l0{sfx}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        steps = tape.steps(0, d)
        assert [s.t for s in steps] == (list(range(4, -1, -1)) if d else list(range(5)))
        for s in steps:
            xw = x[s.t] @ w_ih.T + b_ih  # (B, G*H)
            hw = s.h_prev @ w_hh.T + b_hh  # (B, G*H)
            chunk = lambda a, k: a[:, k * H : (k + 1) * H]  # torch's gate k
            if mode == "LSTM":
                a = xw + hw
                want = {"i": _sigmoid(chunk(a, 0)), "f": _sigmoid(chunk(a, 1)), "g": np.tanh(chunk(a, 2)),
                        "o": _sigmoid(chunk(a, 3))}
                assert_close(f"c[{d}][{s.t}]", s.c, want["f"] * s.c_prev + want["i"] * want["g"], *F64)
            else:
                r = _sigmoid(chunk(xw, 0) + chunk(hw, 0))
                want = {"r": r, "z": _sigmoid(chunk(xw, 1) + chunk(hw, 1)), "hn": chunk(hw, 2),
                        "n": np.tanh(chunk(xw, 2) + r * chunk(hw, 2))}
            assert sorted(s.gates) == sorted(want)
            for letter, value in want.items():
                assert_close(f"gates[{letter!r}] of direction {d}, t = {s.t}", s.gates[letter], value, *F64)


# -- aliasing: what backward returns ----------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: reference.RNN(3, 4, num_layers=2, seed=0),
                                  lambda: reference.GRU(3, 4, bidirectional=True, seed=0),
                                  lambda: reference.LSTM(3, 4, proj_size=2, seed=0),
                                  lambda: reference.LSTMCell(3, 4, seed=0)], ids=["RNN", "GRU", "LSTM", "LSTMCell"])
def test_every_gradient_is_its_own_array(make):
    """No two arrays backward returns share memory: writing into one (an optimiser's in-place
    update, say) must not change another. Kills ``bias_gradients_share_memory``."""
    m = make()
    rng = np.random.default_rng(0)
    if isinstance(m, reference.LSTMCell):
        (h, c), tape = m.forward(rng.standard_normal((2, 3)))
        grads = m.backward(tape, (rng.standard_normal(h.shape), rng.standard_normal(c.shape)))
    else:
        out, _, tape = m.forward(rng.standard_normal((5, 2, 3)))
        grads = m.backward(tape, rng.standard_normal(out.shape))
    arrays = [(f"{k}[{i}]", a) for k, v in grads.items() for i, a in enumerate(_parts(v))]
    for i, (name_a, a) in enumerate(arrays):
        for name_b, b in arrays[i + 1 :]:
            assert not np.shares_memory(a, b), f"{name_a} and {name_b} share memory"


# -- dtype: dropout masks drawn in training mode -------------------------------------------------

@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_float32_training_with_drawn_dropout_stays_float32(mode):
    """Kills ``drawn_dropout_masks_float64``."""
    m = getattr(reference, mode)(3, 4, num_layers=3, dropout=0.5, dtype=np.float32, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 2, 3)).astype(np.float32)
    out, hidden, tape = m.forward(x)
    assert out.dtype == np.float32 and all(h.dtype == np.float32 for h in _parts(hidden))
    grads = m.backward(tape, np.ones_like(out))
    for name, value in grads.items():
        assert all(a.dtype == np.float32 for a in _parts(value)), name
