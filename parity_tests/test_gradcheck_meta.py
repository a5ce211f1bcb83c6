"""The gradient checker itself must fail a wrong backward (a checker that passes everything proves nothing)."""

from __future__ import annotations

import numpy as np
import pytest

import reference


class IgnoresGradHidden(reference.LSTM):
    def backward(self, tape, grad_output=None, grad_hidden=None, **kwargs):
        return super().backward(tape, grad_output, None, **kwargs)


class IgnoresGradOutput(reference.GRU):
    def backward(self, tape, grad_output=None, grad_hidden=None, **kwargs):
        return super().backward(tape, None, grad_hidden, **kwargs)


class IgnoresCellGradC(reference.LSTMCell):
    def backward(self, tape, grad_hidden=None):
        return super().backward(tape, (grad_hidden[0], None))


@pytest.mark.parametrize("method", ["finite differences", "vjp"])
@pytest.mark.parametrize("cls", [IgnoresGradHidden, IgnoresGradOutput])
def test_check_module_gradients_fails_a_backward_that_drops_a_cotangent(cls, method):
    m = cls(2, 3, num_layers=2, seed=0)
    x = np.random.default_rng(0).standard_normal((3, 2, 2))
    report = reference.check_module_gradients(m, x, method=method)
    assert not report.ok, f"{cls.__name__} passed the gradient check"
    correct = reference.check_module_gradients(cls.__mro__[1](2, 3, num_layers=2, seed=0), x, method=method)
    assert correct.ok, correct


def test_check_module_gradients_fails_a_cell_that_drops_dc():
    x = np.random.default_rng(0).standard_normal((2, 2))
    assert not reference.check_module_gradients(IgnoresCellGradC(2, 3, seed=0), x).ok
    assert reference.check_module_gradients(reference.LSTMCell(2, 3, seed=0), x).ok
