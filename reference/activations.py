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

from typing import Any, NamedTuple


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


# -- ONNX's activation functions (the operators' ``activations`` attribute) ------------------------
#
# ONNX's LSTM, GRU and RNN operators name their gate functions f, g (and h) from this list,
# each with an optional alpha and beta. Their backward needs the input x as well as the output
# y (for the piecewise ones the output alone cannot tell which piece was taken), so the general
# cells keep both. At a kink the derivative is that of the piece the forward's comparison picks:
#
#     Relu(x)            max(0, x)                       1 if x > 0 else 0       (torch's: 0 at x = 0)
#     Tanh(x)            tanh(x)                          1 - y^2
#     Sigmoid(x)         1 / (1 + e^-x)                   y (1 - y)
#     Affine(x)          alpha x + beta                   alpha
#     LeakyRelu(x)       x if x >= 0 else alpha x         1 if x >= 0 else alpha
#     ThresholdedRelu(x) x if x >= alpha else 0           1 if x >= alpha else 0  (the jump at alpha has no
#                                                                                   derivative: the pieces' are used)
#                        (the RNN operators' text; ONNX's ThresholdedRelu operator and ONNX Runtime take x > alpha:
#                        they differ at x = alpha alone, which a clip equal to alpha makes reachable)
#     ScaledTanh(x)      alpha tanh(beta x)               alpha beta (1 - tanh(beta x)^2)
#     HardSigmoid(x)     min(max(alpha x + beta, 0), 1)   alpha if 0 < alpha x + beta < 1 else 0 (0 at the corners,
#                                                                                   as torch's hardsigmoid)
#     Elu(x)             x if x >= 0 else alpha (e^x - 1) 1 if x >= 0 else y + alpha
#     Softsign(x)        x / (1 + |x|)                    1 / (1 + |x|)^2
#     Softplus(x)        log(1 + e^x)                     sigmoid(x) = 1 - e^-y
#
# Defaults (ONNX: "the same as of the corresponding ONNX operators"): Affine alpha 1, beta 0;
# LeakyRelu alpha 0.01; ThresholdedRelu alpha 1; HardSigmoid alpha 0.2, beta 0.5; Elu alpha 1.
# ScaledTanh has no default in the specs (ONNX Runtime takes 0, 0: a constant 0), so it needs both.

ONNX_ACTIVATIONS = ("Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid",
                    "Elu", "Softsign", "Softplus")
# name -> (alpha default, beta default); None: the function takes no such argument; NaN: it must be given
ONNX_ARGUMENT_DEFAULTS: dict[str, tuple[float | None, float | None]] = {
    "Relu": (None, None), "Tanh": (None, None), "Sigmoid": (None, None), "Affine": (1.0, 0.0),
    "LeakyRelu": (0.01, None), "ThresholdedRelu": (1.0, None), "ScaledTanh": (float("nan"), float("nan")),
    "HardSigmoid": (0.2, 0.5), "Elu": (1.0, None), "Softsign": (None, None), "Softplus": (None, None)}


class Activation(NamedTuple):
    """One of ONNX's activation functions with its alpha and beta (0 where the function takes none)."""

    name: str
    alpha: float = 0.0
    beta: float = 0.0

    def __call__(self, xp: Any, x: Any) -> Any:
        """y = act(x)."""
        return _ONNX_FORWARD[self.name](xp, x, self.alpha, self.beta)

    def derivative(self, xp: Any, x: Any, y: Any) -> Any:
        """act'(x), given x and y = act(x), as an array of x's dtype."""
        return _ONNX_DERIVATIVE[self.name](xp, x, y, self.alpha, self.beta)


def _zero(xp: Any, x: Any) -> Any:
    return xp.zeros((), dtype=x.dtype, device=getattr(x, "device", None))


def _full(xp: Any, x: Any, value: float) -> Any:
    return xp.full(x.shape, value, dtype=x.dtype, device=getattr(x, "device", None))


def _where(xp: Any, keep: Any, a: Any, b: Any) -> Any:
    """a where keep, else b (b may be a Python number)."""
    if isinstance(b, (int, float)):
        b = xp.asarray(b, dtype=a.dtype, device=getattr(a, "device", None))
    return xp.where(keep, a, b)


def _indicator(xp: Any, keep: Any, like: Any) -> Any:
    """1.0 where keep, else 0.0, in like's dtype."""
    return xp.astype(keep, like.dtype)


_ONNX_FORWARD: dict[str, Any] = {
    "Relu": lambda xp, x, a, b: relu(xp, x),
    "Tanh": lambda xp, x, a, b: xp.tanh(x),
    "Sigmoid": lambda xp, x, a, b: sigmoid(xp, x),
    "Affine": lambda xp, x, a, b: a * x + b,
    "LeakyRelu": lambda xp, x, a, b: _where(xp, x >= 0, x, a * x),
    "ThresholdedRelu": lambda xp, x, a, b: _where(xp, x >= a, x, 0.0),
    "ScaledTanh": lambda xp, x, a, b: a * xp.tanh(b * x),
    "HardSigmoid": lambda xp, x, a, b: xp.clip(a * x + b, 0.0, 1.0),
    "Elu": lambda xp, x, a, b: _where(xp, x >= 0, x, a * xp.expm1(xp.minimum(x, _zero(xp, x)))),
    "Softsign": lambda xp, x, a, b: x / (1 + xp.abs(x)),
    "Softplus": lambda xp, x, a, b: xp.logaddexp(_zero(xp, x), x),
}

_ONNX_DERIVATIVE: dict[str, Any] = {
    "Relu": lambda xp, x, y, a, b: _indicator(xp, x > 0, x),
    "Tanh": lambda xp, x, y, a, b: tanh_derivative(y),
    "Sigmoid": lambda xp, x, y, a, b: sigmoid_derivative(y),
    "Affine": lambda xp, x, y, a, b: _full(xp, x, a),
    "LeakyRelu": lambda xp, x, y, a, b: _where(xp, x >= 0, _full(xp, x, 1.0), a),
    "ThresholdedRelu": lambda xp, x, y, a, b: _indicator(xp, x >= a, x),
    "ScaledTanh": lambda xp, x, y, a, b: a * b * tanh_derivative(xp.tanh(b * x)),
    "HardSigmoid": lambda xp, x, y, a, b: a * _indicator(xp, (a * x + b > 0) & (a * x + b < 1), x),
    "Elu": lambda xp, x, y, a, b: _where(xp, x >= 0, _full(xp, x, 1.0), y + a),
    "Softsign": lambda xp, x, y, a, b: 1 / ((1 + xp.abs(x)) * (1 + xp.abs(x))),
    "Softplus": lambda xp, x, y, a, b: sigmoid(xp, x),
}


def clip_input(xp: Any, a: Any, clip: float | None) -> tuple[Any, Any]:
    """ONNX's cell clip: (min(max(a, -clip), clip), d/da of it), the derivative 1 on the closed
    interval [-clip, clip] (torch.clamp's convention) and 0 outside. clip None: (a, None)."""
    if clip is None:
        return a, None
    return xp.clip(a, -clip, clip), _indicator(xp, (a >= -clip) & (a <= clip), a)
