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
    one = _one(xp, x)
    return one / (one + xp.exp(-x))


_ONES: dict = {}


def _one(xp: Any, x: Any) -> Any:
    """1 as a 0-d array of x's dtype on x's device, made once. The same arithmetic as
    the Python literal, but NumPy converts a literal on every call: two of them made
    up a quarter of a small LSTM step's time (B = 1, H = 8)."""
    key = (x.dtype, getattr(x, "device", None))
    one = _ONES.get(key)
    if one is None:
        one = _ONES[key] = xp.asarray(1, dtype=x.dtype, device=key[1])
    return one


def tanh(xp: Any, x: Any) -> Any:
    """tanh(x); saturates to +-1 for infinite x."""
    return xp.tanh(x)


def relu(xp: Any, x: Any) -> Any:
    """max(x, 0). NaN propagates (maximum keeps NaN), as in torch."""
    return xp.maximum(x, xp.zeros((), dtype=x.dtype, device=getattr(x, "device", None)))


def sigmoid_derivative(y: Any) -> Any:
    """sigma'(x) from y = sigmoid(x): y (1 - y)."""
    return y * (1 - y)


def tanh_derivative(y: Any) -> Any:
    """tanh'(x) from y = tanh(x): 1 - y^2."""
    return 1 - y * y


def relu_derivative(y: Any) -> Any:
    """relu'(x) from y = relu(x), as a bool: y > 0 (torch's choice at x = 0 is 0)."""
    return y > 0


def tanh_backward(dy: Any, y: Any) -> Any:
    """dL/dx for y = tanh(x)."""
    return dy * tanh_derivative(y)


def relu_backward(xp: Any, dy: Any, y: Any) -> Any:
    """dL/dx for y = relu(x)."""
    return masked(xp, relu_derivative(y), dy)


def masked(xp: Any, keep: Any, dy: Any) -> Any:
    """dy where ``keep``, else 0: a select, not a product by 0 or 1, so an infinite or
    NaN dy stays out of the entries relu switched off, as in torch."""
    return xp.where(keep, dy, xp.zeros((), dtype=dy.dtype, device=getattr(dy, "device", None)))
