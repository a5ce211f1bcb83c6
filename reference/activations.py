"""Elementwise nonlinearities, written so that backward needs none of them.

Each derivative is expressed through the function's *output*, which the forward
pass keeps anyway:

    sigmoid'(x) = s * (1 - s)      with s = sigmoid(x)
    tanh'(x)    = 1 - t * t        with t = tanh(x)
    relu'(x)    = [y > 0]          with y = relu(x)

Every function takes the array namespace ``xp`` of its arguments (NumPy, torch,
array-api-strict, ...).
"""

from __future__ import annotations

from typing import Any


def sigmoid(xp: Any, x: Any) -> Any:
    """sigma(x) = 1 / (1 + exp(-x)), torch's formula. For very negative x, exp(-x)
    overflows to inf and 1 / (1 + inf) = 0 is the correctly rounded limit (callers
    silence NumPy's overflow warning). Relative precision is full everywhere,
    deep in the saturated tails too (unlike 0.5 * (1 + tanh(x / 2)), which cancels)."""
    return 1 / (1 + xp.exp(-x))


def tanh(xp: Any, x: Any) -> Any:
    """tanh(x); saturates to +-1 for infinite x."""
    return xp.tanh(x)


def relu(xp: Any, x: Any) -> Any:
    """max(x, 0). NaN propagates (maximum keeps NaN), as in torch."""
    return xp.maximum(x, xp.zeros((), dtype=x.dtype, device=getattr(x, "device", None)))


def sigmoid_backward(dy: Any, y: Any) -> Any:
    """dL/dx for y = sigmoid(x)."""
    return dy * y * (1 - y)


def tanh_backward(dy: Any, y: Any) -> Any:
    """dL/dx for y = tanh(x)."""
    return dy * (1 - y * y)


def relu_backward(xp: Any, dy: Any, y: Any) -> Any:
    """dL/dx for y = relu(x): dy where y > 0, else 0 (torch's choice at x = 0)."""
    return xp.where(y > 0, dy, xp.zeros((), dtype=dy.dtype, device=getattr(dy, "device", None)))
