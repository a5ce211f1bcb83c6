"""GRU in the paper's form (reset before the product: ONNX linear_before_reset=0, Keras
reset_after=False), hand-written BPTT, against autograd through explicit torch equations."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close
from hypothesis import given
from hypothesis import strategies as st
from tolerances import tol

import reference

torch = pytest.importorskip("torch")
from torch_oracle import paper_gru


@given(num_layers=st.integers(1, 2), bidirectional=st.booleans(), bias=st.booleans(), use_lengths=st.booleans(),
       T=st.integers(1, 5), B=st.integers(1, 3), I=st.integers(1, 4), H=st.integers(1, 4), seed=st.integers(0, 99))
def test_paper_gru_matches_autograd_of_explicit_equations(num_layers, bidirectional, bias, use_lengths, T, B, I, H, seed):
    m = reference.GRU(I, H, num_layers=num_layers, bidirectional=bidirectional, bias=bias, reset_after=False, seed=seed)
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    x, h0 = rng.uniform(-1, 1, (T, B, I)), rng.uniform(-1, 1, (num_layers * D, B, H))
    lengths = rng.integers(1, T + 1, B).tolist() if use_lengths else None
    out, h_n, tape = m.forward(x, h0, lengths=lengths)
    g_out, g_h = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    grads = m.backward(tape, g_out, g_h)

    params = {k: torch.tensor(v, requires_grad=True) for k, v in m.state_dict().items()}
    xt, ht = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out_t, h_t = paper_gru(xt, ht, params, num_layers, bidirectional, lengths)
    torch.autograd.backward([out_t, h_t], [torch.tensor(g_out), torch.tensor(g_h)])
    fwd, grad = tol("float64", "cpu", "forward"), tol("float64", "cpu", "gradient")
    assert_close("output", out, out_t.detach().numpy(), *fwd)
    assert_close("h_n", h_n, h_t.detach().numpy(), *fwd)
    assert_close("input", grads["input"], xt.grad.numpy(), *grad)
    assert_close("hx", grads["hx"], ht.grad.numpy(), *grad)
    for name, p in params.items():
        assert_close(name, grads[name], p.grad.numpy(), *grad)


def test_the_two_gru_forms_differ_and_the_paper_form_refuses_other_modes():
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    a, b = reference.GRU(3, 5, seed=0), reference.GRU(3, 5, seed=0, reset_after=False)
    assert not np.allclose(a(x)[0], b(x)[0], rtol=1e-3, atol=0)  # apart by far more than rounding
    with pytest.raises(ValueError, match="reset_after"):
        reference.RNNConfig("LSTM", 3, 4, reset_after=False)
