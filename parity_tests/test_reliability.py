"""No silent wrong results: assigned parameters, stale tapes, concurrent loads, aliasing, float32 sums.

Each test is a trap a user once fell into (or could): the module must either do
the right thing or raise an error that says what happened.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import assert_close

import reference
from reference.train import SGD

MODULES = {
    "RNN": lambda: reference.RNN(3, 4, num_layers=2, seed=0),
    "GRU": lambda: reference.GRU(3, 4, bidirectional=True, seed=0),
    "LSTM": lambda: reference.LSTM(3, 4, proj_size=2, seed=0),
    "LSTMCell": lambda: reference.LSTMCell(3, 4, seed=0),
}


def _data(m, rng):
    cell = isinstance(m, reference.LSTMCell)
    x = rng.standard_normal((2, 3) if cell else (5, 2, 3))
    return x


def _run(m, x):
    """(first output, gradients for random cotangents drawn from a fixed seed)."""
    rng = np.random.default_rng(7)
    if isinstance(m, reference.LSTMCell):
        (h, c), tape = m.forward(x)
        return h, m.backward(tape, (rng.standard_normal(h.shape), rng.standard_normal(c.shape)))
    out, _, tape = m.forward(x)
    return out, m.backward(tape, rng.standard_normal(out.shape))


# -- parameters: assignable everywhere, or an error --------------------------------------

@pytest.mark.parametrize("kind", list(MODULES))
def test_an_assigned_parameter_is_used_by_forward_backward_and_state_dict(kind):
    m, ref = MODULES[kind](), MODULES[kind]()
    rng = np.random.default_rng(0)
    name = next(n for n in m.state_dict() if n.startswith("weight_hh"))
    new = rng.uniform(-0.5, 0.5, m.state_dict()[name].shape)
    m.__setattr__(name, new)  # m.weight_hh_l0 = new
    assert np.array_equal(m.state_dict()[name], new) and np.array_equal(getattr(m, name), new)
    ref.load_state_dict({**ref.state_dict(), name: new})
    x = _data(m, rng)
    out, grads = _run(m, x)
    want_out, want = _run(ref, x)
    assert np.array_equal(out, want_out)
    for key in want:
        if key != "hx":
            assert np.array_equal(grads[key], want[key]), key


def test_assignment_is_checked_like_load_state_dict_and_changes_nothing_on_error():
    m = reference.GRU(3, 4, seed=0)
    before = m.state_dict()
    with pytest.raises(ValueError, match=r"weight_hh_l0: expected shape \(12, 4\), got \(4, 12\)"):
        m.weight_hh_l0 = np.zeros((4, 12))
    with pytest.raises(TypeError, match="bias_ih_l0: expected real numbers, got dtype bool"):
        m.bias_ih_l0 = np.zeros(12, dtype=bool)
    with pytest.raises(ValueError, match="bias_hh_l0: cannot be set to None.*bias=False.*load_state_dict"):
        m.bias_hh_l0 = None
    with pytest.raises(ValueError, match="weight_hh_l1: not a parameter of this GRU.*load_state_dict"):
        m.weight_hh_l1 = np.zeros((12, 4))
    with pytest.raises(ValueError, match="weight_hr_l0: not a parameter"):
        m.weight_hr_l0 = np.zeros((2, 4))
    with pytest.raises(ValueError, match="cannot be deleted"):
        del m.weight_ih_l0
    for k, v in m.state_dict().items():
        assert np.array_equal(v, before[k]), k
    m.some_other_attribute = 3  # ordinary attributes stay ordinary
    assert m.some_other_attribute == 3


def test_sizes_cannot_be_reassigned_behind_the_parameters_back():
    m = reference.LSTM(3, 4)
    with pytest.raises(AttributeError):
        m.hidden_size = 5


def test_load_state_dict_takes_the_keys_in_any_order():
    m, ref = reference.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, seed=0), reference.LSTM(
        3, 4, num_layers=2, bidirectional=True, proj_size=2, seed=1)
    state = ref.state_dict()
    shuffled = {k: state[k] for k in np.random.default_rng(0).permutation(list(state))}
    assert list(shuffled) != list(state)
    m.load_state_dict(shuffled)
    assert list(m.state_dict()) == list(state)  # torch's order, whatever order came in
    x = np.random.default_rng(1).standard_normal((4, 2, 3))
    assert np.array_equal(m(x)[0], ref(x)[0])


# -- tapes know their weights -----------------------------------------------------------

def _stale(m, change):
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    out, _, tape = m.forward(x)
    change(m)
    with pytest.raises(ValueError, match="weights have changed since this tape was recorded"):
        m.backward(tape, np.ones_like(out))


def test_a_tape_after_load_state_dict_is_refused():
    _stale(reference.GRU(3, 4, seed=0), lambda m: m.load_state_dict(m.state_dict()))


def test_a_tape_after_a_parameter_assignment_is_refused():
    _stale(reference.LSTM(3, 4, seed=0), lambda m: setattr(m, "bias_ih_l0", np.zeros(16)))


def test_a_tape_after_an_optimizer_step_is_refused():
    def step(m):
        x = np.random.default_rng(1).standard_normal((4, 2, 3))
        out, _, tape = m.forward(x)
        grads = m.backward(tape, np.ones_like(out))
        m.load_state_dict(SGD(lr=0.1).step(m.parameters(), grads))

    _stale(reference.RNN(3, 4, seed=0), step)


def test_a_cell_tape_after_load_state_dict_is_refused():
    m = reference.GRUCell(3, 4, seed=0)
    h, tape = m.forward(np.zeros((2, 3)))
    m.load_state_dict(m.state_dict())
    with pytest.raises(ValueError, match="weights have changed"):
        m.backward(tape, np.ones_like(h))


def test_forward_never_mixes_weights_under_a_concurrent_load():
    """One thread alternates load_state_dict between two weight sets; forwards in another thread
    must each see one set whole (forward reads the parameters once, not once per layer)."""
    a = reference.LSTM(3, 4, num_layers=4, seed=0)
    b_state = reference.LSTM(3, 4, num_layers=4, seed=1).state_dict()
    a_state = a.state_dict()
    x = np.random.default_rng(0).standard_normal((3, 2, 3))
    want = {}
    for name, state in (("a", a_state), ("b", b_state)):
        a.load_state_dict(state)
        want[name] = a(x)[0].copy()
    stop = threading.Event()

    def flip():
        k = 0
        while not stop.is_set():
            a.load_state_dict((a_state, b_state)[k % 2])
            k += 1

    loader = threading.Thread(target=flip)
    loader.start()
    try:
        for _ in range(200):
            out = a(x)[0]
            assert np.array_equal(out, want["a"]) or np.array_equal(out, want["b"]), "forward mixed two weight sets"
    finally:
        stop.set()
        loader.join()


# -- aliasing ----------------------------------------------------------------------------

def test_backward_twice_keeps_the_first_results():
    """Results of one backward are the caller's: a second backward with other cotangents must
    not write into them (the first result, read after the second call, still equals torch's)."""
    torch = pytest.importorskip("torch")
    from torch_oracle import run_layer

    m = reference.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 3))
    out, (h_n, c_n), tape = m.forward(x)
    g1, g2 = rng.standard_normal(out.shape), rng.standard_normal(out.shape)
    gh1 = (rng.standard_normal(h_n.shape), rng.standard_normal(c_n.shape))
    first = m.backward(tape, g1, gh1)
    m.backward(tape, g2, (rng.standard_normal(h_n.shape), None))
    want = run_layer(m, x, None, None, g1, gh1)
    assert torch.is_tensor(torch.zeros(1))
    for name in m.state_dict():
        assert_close(name, first[name], want[name], 1e-12, 1e-15)
    assert_close("input", first["input"], want["input"], 1e-12, 1e-15)


# -- float32 sums over T * B rows ------------------------------------------------------

def test_float32_bias_gradients_are_summed_as_accurately_as_torch():
    """T = 5000, B = 8: a row-by-row column sum in float32 drifts like T*B; pairwise does not.
    The reference's float32 bias gradient error (against its own float64) is at most 2x torch's."""
    torch = pytest.importorskip("torch")
    T, B, H = 5000, 8, 16
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, H))
    g = rng.standard_normal((T, B, H))
    m64 = reference.GRU(H, H, seed=0)
    _, _, tape = m64.forward(x)
    truth = m64.backward(tape, g)
    m32 = reference.GRU(H, H, dtype=np.float32, seed=0)
    m32.load_state_dict(m64.state_dict())
    _, _, tape32 = m32.forward(x.astype(np.float32))
    ours = m32.backward(tape32, g.astype(np.float32))
    tm = torch.nn.GRU(H, H)
    tm.load_state_dict({k: torch.tensor(v, dtype=torch.float32) for k, v in m64.state_dict().items()})
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 5000 tiny steps: on a busy machine torch's thread pool spins 30x slower
    try:
        tm(xt)[0].backward(torch.tensor(g, dtype=torch.float32))
    finally:
        torch.set_num_threads(threads)
    for name in ("bias_ih_l0", "bias_hh_l0"):
        scale = np.abs(truth[name]).max()
        err_ours = np.abs(ours[name] - truth[name]).max() / scale
        err_torch = np.abs(getattr(tm, name).grad.numpy() - truth[name]).max() / scale
        assert err_ours <= 2 * err_torch + 1e-7, f"{name}: reference {err_ours:.2e} vs torch {err_torch:.2e}"


def test_pairwise_row_sum_is_exact_on_integers_and_handles_every_length():
    from reference._linear import sum_rows

    for n in [0, 1, 2, 3, 5, 8, 13, 100]:
        a = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
        assert np.array_equal(sum_rows(np, a), a.sum(axis=0)), n
