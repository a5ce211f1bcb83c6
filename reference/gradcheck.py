"""Numeric gradient checks (NumPy only): finite differences and the VJP test.

Three tools, from general to specific:

* ``numerical_gradient(fn, arrays, cotangents)`` -- central differences of
  L = sum_k <cotangent_k, fn(arrays)_k> for any function of arrays, in float64.
* ``check_vjp(fn, arrays, analytic, cotangents)`` -- the inner-product test
  <dL/dx, v> = (L(x + eps v) - L(x - eps v)) / (2 eps) for a random direction v,
  one tensor at a time: two evaluations per tensor, so it scales to big shapes.
* ``check_module_gradients(module, input, hx)`` -- every gradient of a reference
  cell or layer (input, initial state, every parameter) against finite
  differences, with random upstream gradients on every output.

Each returns a ``GradcheckReport``: per tensor, the max absolute and relative
error and the worst index, printable as a table; truthy when all pass.

Arguments are validated as everywhere else: arrays must hold real floats
(TypeError otherwise), ``eps`` must be positive and ``rtol``/``atol``
non-negative (ValueError), and every array needs an analytic gradient of its
own shape (ValueError), of real floats (TypeError), with no gradient for an
array not given (ValueError). The caller's arrays and modules are never written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._checks import as_float_array, check_real
from .module import ParameterModule
from .recurrent import RNNBase

Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class TensorCheck:
    """One tensor's check: its analytic gradient a against the numeric one n (both shaped like
    the tensor), passed when every element has |a - n| <= atol + rtol |n|; the VJP test
    compares the scalars <a, v> and (L(x + eps v) - L(x - eps v)) / (2 eps) the same way."""

    name: str
    max_abs_err: float
    max_rel_err: float  # |analytic - numeric| / max(|numeric|, atol / rtol), elementwise
    worst_index: tuple[int, ...] | None  # where the tolerance is most exceeded (None for the VJP test)
    passed: bool


@dataclass(frozen=True)
class GradcheckReport:
    """Every tensor's ``TensorCheck`` under one rule, |a - n| <= atol + rtol |n| elementwise;
    truthy when all pass, printable as a table, indexable by tensor name."""

    checks: tuple[TensorCheck, ...]
    rtol: float
    atol: float
    method: str

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    def __bool__(self) -> bool:
        return self.ok

    def __getitem__(self, name: str) -> TensorCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def __str__(self) -> str:
        width = max([len(c.name) for c in self.checks] + [6])
        lines = [f"{self.method}: {'PASS' if self.ok else 'FAIL'} (rtol={self.rtol:g}, atol={self.atol:g})",
                 f"  {'tensor':<{width}}  {'max abs err':>11}  {'max rel err':>11}  worst index  status"]
        for c in self.checks:
            idx = "-" if c.worst_index is None else str(c.worst_index)
            lines.append(f"  {c.name:<{width}}  {c.max_abs_err:11.3e}  {c.max_rel_err:11.3e}  {idx:<11}  "
                         f"{'ok' if c.passed else 'FAIL'}")
        return "\n".join(lines)


def _loss(outputs: Any, cotangents: Any) -> float:
    """sum_k <cotangent_k, output_k>, over matching (nested) structures; None cotangents are zero."""
    if cotangents is None:
        return 0.0
    if isinstance(outputs, (tuple, list)):
        if not isinstance(cotangents, (tuple, list)) or len(cotangents) != len(outputs):
            raise ValueError(f"cotangents: expected a sequence of {len(outputs)} (one per output of fn), got "
                             f"{type(cotangents).__name__}")
        return sum(_loss(o, c) for o, c in zip(outputs, cotangents, strict=True))
    out = np.asarray(outputs, dtype=np.float64)
    cot = np.asarray(cotangents, dtype=np.float64)
    if cot.shape != out.shape:
        raise ValueError(f"cotangents: expected shape {out.shape} (the output of fn), got {cot.shape}")
    return float(np.vdot(cot, out))


def _check_args(arrays: Any, analytic: Any = None, eps: Any = 1e-6, rtol: Any = 0.0, atol: Any = 0.0,
                fn: Any = len) -> dict[str, np.ndarray]:
    """Validate the shared arguments; returns float64 copies of ``arrays``."""
    if not callable(fn):
        raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
    if not isinstance(arrays, Mapping):
        raise TypeError(f"arrays: expected a mapping of names to arrays, got {type(arrays).__name__}")
    check_real("eps", eps, positive=True)
    for name, value in (("rtol", rtol), ("atol", atol)):
        if check_real(name, value) < 0:
            raise ValueError(f"{name}: expected a non-negative number, got {value}")
    point = {k: np.array(as_float_array(f"arrays[{k!r}]", v, np.dtype(np.float64))) for k, v in arrays.items()}
    if analytic is not None:
        if not isinstance(analytic, Mapping):
            raise TypeError(f"analytic: expected a mapping keyed like arrays, got {type(analytic).__name__}")
        missing = [k for k in point if k not in analytic]
        if missing:
            raise ValueError(f"analytic: expected a gradient for every array, missing {missing}")
        extra = [k for k in analytic if k not in point]
        if extra:  # a gradient with no array to check it against would be reported as nothing
            raise ValueError(f"analytic: unexpected keys {extra}; expected the keys of arrays {list(point)}")
    return point


def numerical_gradient(fn: Callable[..., Any], arrays: Arrays, cotangents: Any, eps: float = 1e-6) -> dict[str, np.ndarray]:
    """Central differences of L = <cotangents, fn(**arrays)> with respect to each array.

    ``fn`` takes the arrays as keyword arguments and returns an array or a
    (nested) tuple of arrays matching ``cotangents``. Arrays are copied to
    float64 first; the caller's arrays are never written.
    """
    point = _check_args(arrays, eps=eps, fn=fn)
    grads = {}
    for name, x in point.items():
        g = np.empty_like(x)
        for idx in np.ndindex(x.shape):
            orig = x[idx]
            x[idx] = orig + eps
            up = _loss(fn(**point), cotangents)
            x[idx] = orig - eps
            down = _loss(fn(**point), cotangents)
            x[idx] = orig
            g[idx] = (up - down) / (2 * eps)
        grads[name] = g
    return grads


def _analytic(name: str, value: Any) -> np.ndarray:
    """A float64 copy of one analytic gradient: real floats only (a complex part would be dropped silently)."""
    return as_float_array(f"analytic[{name!r}]", value, np.dtype(np.float64))


def _compare(name: str, analytic: np.ndarray, numeric: np.ndarray, rtol: float, atol: float) -> TensorCheck:
    analytic = _analytic(name, analytic)
    if analytic.shape != numeric.shape:
        raise ValueError(f"analytic[{name!r}]: expected shape {numeric.shape}, got {analytic.shape}")
    err = np.abs(analytic - numeric)
    if err.size == 0:
        return TensorCheck(name, 0.0, 0.0, None, True)
    ratio = err / (atol + rtol * np.abs(numeric))
    worst = np.unravel_index(int(np.nanargmax(np.where(np.isnan(ratio), np.inf, ratio))), err.shape)
    rel = err / np.maximum(np.abs(numeric), atol / rtol)
    passed = bool(np.all(err <= atol + rtol * np.abs(numeric)))
    return TensorCheck(name, float(err.max()), float(rel.max()), tuple(int(i) for i in worst), passed)


def check_gradients(fn: Callable[..., Any], arrays: Arrays, analytic: Mapping[str, np.ndarray], cotangents: Any,
                    *, eps: float = 1e-6, rtol: float = 1e-6, atol: float = 1e-8) -> GradcheckReport:
    """Compare analytic gradients (keyed like ``arrays``) with central differences."""
    _check_args(arrays, analytic, eps, rtol, atol, fn)
    numeric = numerical_gradient(fn, arrays, cotangents, eps)
    checks = tuple(_compare(k, analytic[k], numeric[k], rtol, atol) for k in arrays)
    return GradcheckReport(checks, rtol, atol, "finite differences")


def check_vjp(fn: Callable[..., Any], arrays: Arrays, analytic: Mapping[str, np.ndarray], cotangents: Any,
              *, eps: float = 1e-6, rtol: float = 1e-6, atol: float = 1e-8, seed: int = 0) -> GradcheckReport:
    """The inner-product test per tensor: <analytic, v> against the directional
    difference (L(x + eps v) - L(x - eps v)) / (2 eps), v ~ N(0, 1)."""
    point = _check_args(arrays, analytic, eps, rtol, atol, fn)
    rng = np.random.default_rng(_check_seed(seed))
    checks = []
    for name, x in point.items():
        v = rng.standard_normal(x.shape)
        a = _analytic(name, analytic[name])
        if a.shape != x.shape:
            raise ValueError(f"analytic[{name!r}]: expected shape {x.shape}, got {a.shape}")
        up = _loss(fn(**{**point, name: x + eps * v}), cotangents)
        down = _loss(fn(**{**point, name: x - eps * v}), cotangents)
        numeric, exact = (up - down) / (2 * eps), float(np.vdot(a, v))
        err = abs(exact - numeric)
        passed = err <= atol + rtol * abs(numeric)
        checks.append(TensorCheck(name, err, err / max(abs(numeric), atol / rtol), None, passed))
    return GradcheckReport(tuple(checks), rtol, atol, "inner-product (VJP) test")


def _check_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed}")
    return int(seed)


def _structure_like(value: Any, rng: np.random.Generator) -> Any:
    if isinstance(value, tuple):
        return tuple(_structure_like(v, rng) for v in value)
    return rng.standard_normal(np.shape(value))


def check_module_gradients(module: Any, input: Any, hx: Any = None, *, lengths: Any = None, seed: int = 0,
                           method: str = "finite differences", eps: float = 1e-6, rtol: float = 1e-6,
                           atol: float = 1e-8) -> GradcheckReport:
    """Check every gradient of a reference cell or layer against float64 numerics.

    A float64 copy of ``module`` is used (the module itself is not touched), hx
    defaults to a random state so its gradient is exercised, and the upstream
    gradient of every output is random. In training mode with dropout, one set of
    keep masks is drawn and held fixed. ``method`` is "finite differences" (every
    element) or "vjp" (the inner-product test, for big shapes).
    """
    if not isinstance(module, ParameterModule):
        raise TypeError(f"module: expected a reference cell or RNN/GRU/LSTM, got {type(module).__name__}")
    if method not in ("finite differences", "vjp"):
        raise ValueError(f"method: expected 'finite differences' or 'vjp', got {method!r}")
    _check_args({}, None, eps, rtol, atol)
    rng = np.random.default_rng(_check_seed(seed))
    is_cell = not isinstance(module, RNNBase)
    clone = module.astype(np.float64)  # its own float64 storage, generator and tapes
    x = as_float_array("input", input, np.dtype(np.float64))
    if isinstance(hx, list):
        hx = tuple(hx)
    kwargs: dict[str, Any] = {}
    if not is_cell:
        kwargs["lengths"] = lengths
        if clone.training and clone.dropout > 0 and clone.num_layers > 1:
            out_shape = clone.forward(x, hx, lengths=lengths)[0].shape
            kwargs["dropout_masks"] = [(rng.random(out_shape) >= clone.dropout).astype(np.float64)
                                       for _ in range(clone.num_layers - 1)]
    if hx is None:  # a random initial state, so that its gradient means something
        hidden = clone.forward(x, **kwargs)[-2 if not is_cell else 0]
        hx = _structure_like(hidden, rng)
    hx_parts = hx if isinstance(hx, tuple) else (hx,)
    arrays = {"input": x, **{f"hx[{k}]": as_float_array(f"hx[{k}]", h, np.dtype(np.float64))
                             for k, h in enumerate(hx_parts)},
              **clone.state_dict()}
    pair = isinstance(hx, tuple) or module.config.mode == "LSTM"

    def run(**a):
        clone.load_state_dict({k: a[k] for k in clone.state_dict()})
        state = tuple(a[f"hx[{k}]"] for k in range(len(hx_parts)))
        result = clone.forward(a["input"], state if pair else state[0], **kwargs)
        return result[:-1]  # drop the tape: (hidden,) for cells, (output, hidden) for layers

    outputs = run(**arrays)
    cotangents = _structure_like(tuple(outputs), rng)
    clone.load_state_dict({k: arrays[k] for k in clone.state_dict()})  # run() left the last perturbation's values
    tape = clone.forward(x, hx, **kwargs)[-1]
    grads = clone.backward(tape, cotangents[0]) if is_cell else clone.backward(tape, *cotangents)
    dhx = grads["hx"] if isinstance(grads["hx"], tuple) else (grads["hx"],)
    analytic = {"input": grads["input"], **{f"hx[{k}]": d for k, d in enumerate(dhx)},
                **{k: grads[k] for k in clone.state_dict()}}
    if method == "vjp":
        return check_vjp(run, arrays, analytic, cotangents, eps=eps, rtol=rtol, atol=atol, seed=seed)
    return check_gradients(run, arrays, analytic, cotangents, eps=eps, rtol=rtol, atol=atol)
