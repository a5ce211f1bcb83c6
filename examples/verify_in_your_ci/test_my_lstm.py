"""Check your own LSTM against the float64 reference in your own test suite: copy this file.

Replace ``make_candidate`` with your implementation: a torch module with torch's
parameter names and call signature, or a function following
``reference.verify.candidates.CandidateFn`` (NumPy, JAX, a C extension, ...).

    pip install rnn-reference hypothesis pytest      # plus torch if your candidate is a torch module
    pytest test_my_lstm.py

On a mismatch the assertion message is the verifier's report: every tensor's
error, then where the candidate first goes wrong, e.g.
"first divergence (step): layer 0, forward direction, time step 0 (batch row 0),
in f". This project's CI runs
this file as it is (parity_tests/test_verify_example.py).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.verify import Spec
from reference.verify.testing import assert_matches_reference, check_arguments, specs


def make_candidate(spec: Spec) -> torch.nn.Module:
    """Your implementation, built for ``spec``. Here: torch.nn.LSTM itself, in float64."""
    return torch.nn.LSTM(spec.input_size, spec.hidden_size, **spec.torch_kwargs()).double()


@settings(max_examples=6, deadline=None)
@given(spec=specs(modes=["LSTM"], max_size=5), data=st.data())
def test_my_lstm_matches_the_reference(spec, data):
    # random weights, inputs, initial states, lengths and cotangents, for every drawn configuration
    assert_matches_reference(make_candidate(spec), spec, **data.draw(check_arguments(spec)))


# -- what a bug looks like: a hand-written LSTM, and a copy with one planted bug -------------------


class TinyLSTM(torch.nn.Module):
    """One-layer LSTM in explicit torch ops, with torch's parameter names and call signature."""

    forget_reads_input_gate = False  # the planted bug: f computed from the input gate's rows

    def __init__(self, input_size: int, hidden_size: int, **torch_kwargs):
        super().__init__()
        k = hidden_size ** -0.5
        draw = lambda *shape: torch.nn.Parameter(torch.empty(*shape).uniform_(-k, k))
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih_l0, self.weight_hh_l0 = draw(4 * hidden_size, input_size), draw(4 * hidden_size, hidden_size)
        self.bias_ih_l0, self.bias_hh_l0 = draw(4 * hidden_size), draw(4 * hidden_size)

    def forward(self, x, hx):
        h, c = hx[0][0], hx[1][0]  # (B, H)
        outputs = []
        for x_t in x:  # (B, I)
            pre = x_t @ self.weight_ih_l0.T + self.bias_ih_l0 + h @ self.weight_hh_l0.T + self.bias_hh_l0  # (B, 4H)
            i, f, g, o = pre.chunk(4, dim=1)
            if self.forget_reads_input_gate:
                f = i
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs), (h[None], c[None])


class TinyLSTMWithBug(TinyLSTM):
    forget_reads_input_gate = True


def test_tiny_lstm_matches():
    assert_matches_reference(TinyLSTM(3, 4).double(), Spec("LSTM", 3, 4), seq_len=6)


def test_a_planted_bug_fails_with_its_gate_named():
    with pytest.raises(AssertionError, match=r"layer 0, forward direction, time step 0 .*, in f\n"):
        assert_matches_reference(TinyLSTMWithBug(3, 4).double(), Spec("LSTM", 3, 4), seq_len=6)
