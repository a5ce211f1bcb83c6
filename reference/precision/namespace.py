"""An array namespace that rounds like low-precision hardware, for the unchanged core.

The core (``reference.stack`` and the cells) is written once against the array API:
every function takes ``xp`` and uses its functions and the arrays' operators. Given
arrays of this namespace, that same code runs at an emulated precision: each
operation computes in the carrier dtype -- the arithmetic a kernel at that storage
runs natively: float32 for bfloat16, float16, TF32 and float32, float64 for float64
(longdouble for a float64 truth) -- and rounds its result where a :class:`Rounding`
says a kernel would::

    entry      asarray / astype (weights, inputs, states, cotangents)  -> storage
    store      a[key] = v  (the core's histories: states, gate values, per-step gradients) -> store
    elementwise  +  -  *  /  exp  tanh  logaddexp  expm1  sum  ...    -> elementwise
    product    a @ b: operands -> operands, each partial sum -> accumulate, the result -> product

A format of None means no rounding beyond the carrier's own (so is a format the carrier
is). Exact operations (negation, abs, min, max, clip, where, reshapes, slicing,
concatenation) round nothing: a correct kernel cannot change their values. float32
and float64 arithmetic are NumPy's own, approximate exp and tanh included, as a real
kernel's are: rounding a float64 result to float32 instead would make every
transcendental correctly rounded, which torch's float32 kernels are not (their errors
measured 3x a correctly rounded model's).

Matrix products: an operand pair of bfloat16 or float16 values (8 and 11
significant bits) has an exact product in float32 (24), so a float32 BLAS product
of rounded operands is "exact products summed in float32", as tensor cores and
oneDNN compute. ``accumulate`` "float32" and "float64" are those BLAS products; a
narrower format, or ``one_by_one``, sums the K products one at a time, each partial
sum rounded to it (the worst order a kernel accumulating in that format can take).
``one_by_one`` also sums the rows of a bias gradient one at a time (the namespace's
``sum_rows``, which the core's ``_linear.sum_rows`` defers to), as a kernel that adds
each step's gradient into a storage-typed accumulator does (torch's autograd on
bfloat16 parameters).

An array of this namespace wraps a NumPy array of the carrier; slices are views,
so in-place operators on rows write through, as the core's backward expects. One
namespace object per rounding model: arrays from two namespaces never mix.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from .formats import FORMATS, check_format, round_mantissa, round_to


@dataclass(frozen=True)
class Rounding:
    """Where a kernel rounds, and to which format (names of ``formats.FORMATS``; None: not at all).

    Attributes:
        name: the rounding model's name ("every op", "stored values", ...).
        storage: the format of weights, inputs and results; fixes the carrier.
        elementwise: each elementwise result.
        operands: each matrix-product operand (TF32: "tf32").
        accumulate: each partial sum of a matrix product ("float32"/"float64": a BLAS product in that dtype).
        product: a matrix product's result.
        store: a value written into an array (``a[key] = v``).
        truncate_operands: operands cut to their format (toward zero) instead of rounded to nearest.
        one_by_one: a product's K terms summed one at a time, each partial sum rounded to ``accumulate``.
        carrier: the NumPy dtype arithmetic runs in ("" -> float64 for float64 storage, else float32).
    """

    name: str
    storage: str
    elementwise: str | None
    operands: str | None
    accumulate: str | None
    product: str | None
    store: str | None
    truncate_operands: bool = False
    one_by_one: bool = False
    carrier: str = ""

    def __post_init__(self):
        check_format(self.storage, "storage")
        if self.carrier not in ("", "float32", "float64", "longdouble"):
            raise ValueError(f"carrier: expected float32, float64 or longdouble, got {self.carrier!r}")
        for field in ("elementwise", "operands", "accumulate", "product", "store"):
            value = getattr(self, field)
            if value is not None:
                check_format(value, field)

    @property
    def dtype(self) -> np.dtype:
        """The carrier's NumPy dtype."""
        return np.dtype(self.carrier or ("float64" if self.storage == "float64" else "float32"))


def _rounder(fmt: str | None, carrier: np.dtype, toward_zero: bool = False):
    """x (a carrier array) -> x rounded to fmt, in the carrier; the identity for None and for the carrier's own."""
    if fmt is None or fmt in ("float32", "float64") and np.dtype(fmt) == carrier and not toward_zero:
        return lambda x: x
    if toward_zero:
        bits = FORMATS[fmt].mantissa_bits
        return lambda x: round_mantissa(x, bits, toward_zero=True).astype(carrier, copy=False)
    return lambda x: round_to(x, fmt).astype(carrier, copy=False)


def _blas_dtype(rounding: Rounding) -> np.dtype | None:
    """The dtype a matrix product sums in with BLAS; None where it sums one product at a time."""
    if rounding.accumulate is None:
        return rounding.dtype
    if rounding.accumulate in ("float32", "float64") and not rounding.one_by_one:
        return np.dtype(rounding.accumulate)
    return None


class RoundingNamespace:
    """The array API subset the core uses, rounding as ``rounding`` says.

    ``device`` names the namespace (its arrays' ``.device``): the core caches constants
    and prepared weights per (dtype, device), so each namespace has its own name."""

    def __init__(self, rounding: Rounding):
        self.rounding = rounding
        self.carrier = rounding.dtype
        self.float32 = self.float64 = self.carrier  # one floating dtype: whatever the core asks for
        self.bool = np.dtype(bool)
        self.device = "emulated " + ", ".join(f"{k}={v}" for k, v in vars(rounding).items() if v != "")  # one per model
        self.__name__ = f"reference.precision[{self.device}]"
        c = self.carrier
        self.to_storage = _rounder(rounding.storage, c)
        self.round_elementwise = _rounder(rounding.elementwise, c)
        self.round_operand = _rounder(rounding.operands, c, rounding.truncate_operands)
        self.round_product = _rounder(rounding.product, c)
        # Where every op and product already rounds to the store's format, so has every value a store sees.
        redundant = rounding.store == rounding.elementwise == rounding.product == rounding.storage
        self.round_store = _rounder(None if redundant else rounding.store, c)
        self.round_partial = _rounder(rounding.accumulate, c)
        self.blas = _blas_dtype(rounding)
        if rounding.one_by_one:
            self.sum_rows = self._sum_one_by_one

    def __repr__(self) -> str:
        return f"RoundingNamespace({self.rounding})"

    # -- moving values in and out -------------------------------------------------------------

    def wrap(self, data: np.ndarray) -> RoundedArray:
        return RoundedArray(data, self)

    def data(self, value: Any) -> Any:
        """The carrier value of an operand: an array of this namespace, or a Python or NumPy constant."""
        if isinstance(value, RoundedArray):
            if value.xp is not self:
                raise TypeError(f"arrays of two emulated precisions in one operation: {value.xp.device} and "
                                f"{self.device}")
            return value.a
        a = np.asarray(value)
        return a.astype(self.carrier) if a.dtype.kind == "f" or a.dtype.kind in "iu" and a.ndim == 0 else a

    def asarray(self, obj: Any, dtype: Any = None, device: Any = None, copy: bool | None = None) -> RoundedArray:
        """Any array or scalar in this namespace: floating values (and numbers cast to floating) rounded
        to the storage format, as weights and inputs enter a kernel; bool and int arrays kept."""
        if isinstance(obj, RoundedArray):
            a = self.data(obj)
            a = a.copy() if copy else a
            return self.wrap(a if dtype is None else self._cast(a, dtype))
        a = np.asarray(obj)
        if dtype is not None:
            return self.wrap(self._cast(a, dtype))
        if a.dtype.kind == "f":
            return self.wrap(self.to_storage(a.astype(self.carrier)))
        return self.wrap(a.copy() if copy else a)

    def _cast(self, a: np.ndarray, dtype: Any) -> np.ndarray:
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            return self.to_storage(a.astype(self.carrier))
        return a.astype(dtype)

    def astype(self, x: RoundedArray, dtype: Any, copy: bool = True) -> RoundedArray:
        a = self.data(x)
        if np.dtype(dtype).kind == "f" and a.dtype == self.carrier and not copy:
            return x
        return self.wrap(self._cast(a, dtype))

    def isdtype(self, dtype: Any, kind: str) -> bool:
        kinds = {"real floating": "f", "bool": "b", "integral": "iu", "numeric": "iuf"}
        return np.dtype(dtype).kind in kinds[kind]

    # -- creation ---------------------------------------------------------------------------------

    def _dtype(self, dtype: Any) -> np.dtype:
        return self.carrier if dtype is None or np.dtype(dtype).kind == "f" else np.dtype(dtype)

    def zeros(self, shape: Any, dtype: Any = None, device: Any = None) -> RoundedArray:
        return self.wrap(np.zeros(shape, dtype=self._dtype(dtype)))

    def empty(self, shape: Any, dtype: Any = None, device: Any = None) -> RoundedArray:
        return self.wrap(np.empty(shape, dtype=self._dtype(dtype)))

    def full(self, shape: Any, fill_value: Any, dtype: Any = None, device: Any = None) -> RoundedArray:
        a = np.full(shape, fill_value, dtype=self._dtype(dtype))
        return self.wrap(self.to_storage(a) if a.dtype.kind == "f" else a)

    def zeros_like(self, x: RoundedArray, dtype: Any = None, device: Any = None) -> RoundedArray:
        return self.wrap(np.zeros_like(self.data(x), dtype=None if dtype is None else self._dtype(dtype)))

    # -- values unchanged: shape, order, selection ------------------------------------------------

    def reshape(self, x: RoundedArray, shape: Any, copy: bool | None = None) -> RoundedArray:
        return self.wrap(np.reshape(self.data(x), shape))

    def expand_dims(self, x: RoundedArray, axis: int = 0) -> RoundedArray:
        return self.wrap(np.expand_dims(self.data(x), axis))

    def permute_dims(self, x: RoundedArray, axes: Any) -> RoundedArray:
        return self.wrap(np.transpose(self.data(x), axes))

    def concat(self, arrays: Any, axis: int = 0) -> RoundedArray:
        return self.wrap(np.concatenate([self.data(a) for a in arrays], axis=axis))

    def stack(self, arrays: Any, axis: int = 0) -> RoundedArray:
        return self.wrap(np.stack([self.data(a) for a in arrays], axis=axis))

    def unstack(self, x: RoundedArray, axis: int = 0) -> tuple:
        a = np.moveaxis(self.data(x), axis, 0)
        return tuple(self.wrap(row) for row in a)

    def where(self, condition: Any, x1: Any, x2: Any) -> RoundedArray:
        return self.wrap(np.where(self.data(condition), self.data(x1), self.data(x2)))

    def abs(self, x: RoundedArray) -> RoundedArray:
        return self.wrap(np.abs(self.data(x)))

    def minimum(self, x1: Any, x2: Any) -> RoundedArray:
        return self.wrap(np.minimum(self.data(x1), self.data(x2)))

    def maximum(self, x1: Any, x2: Any) -> RoundedArray:
        return self.wrap(np.maximum(self.data(x1), self.data(x2)))

    def clip(self, x: RoundedArray, min: Any = None, max: Any = None) -> RoundedArray:
        return self.wrap(np.clip(self.data(x), min, max))

    # -- arithmetic: rounded ----------------------------------------------------------------------

    def elementwise(self, result: np.ndarray) -> RoundedArray:
        return self.wrap(self.round_elementwise(result) if result.dtype.kind == "f" else result)

    def exp(self, x: RoundedArray) -> RoundedArray:
        return self.elementwise(np.exp(self.data(x)))

    def expm1(self, x: RoundedArray) -> RoundedArray:
        return self.elementwise(np.expm1(self.data(x)))

    def tanh(self, x: RoundedArray) -> RoundedArray:
        return self.elementwise(np.tanh(self.data(x)))

    def logaddexp(self, x1: Any, x2: Any) -> RoundedArray:
        return self.elementwise(np.logaddexp(self.data(x1), self.data(x2)))

    def sum(self, x: RoundedArray, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> RoundedArray:
        return self.elementwise(np.sum(self.data(x), axis=axis, keepdims=keepdims))

    def _sum_one_by_one(self, x: RoundedArray) -> RoundedArray:
        """The rows of x (N, M) added one at a time, each partial sum rounded to ``accumulate``: (M,)."""
        a = self.data(x)
        total = self.round_partial(a[0])  # (M,)
        for row in a[1:]:
            total = self.round_partial(total + row)
        return self.wrap(self.round_elementwise(total))

    def matmul(self, x1: Any, x2: Any) -> RoundedArray:
        """x1 @ x2: operands rounded, products exact, summed as ``accumulate`` says, the result rounded."""
        a, b = self.round_operand(self.data(x1)), self.round_operand(self.data(x2))
        if self.blas is not None:
            total = (a.astype(self.blas, copy=False) @ b.astype(self.blas, copy=False)).astype(self.carrier)
        else:
            total = self.round_partial(a[..., :, :1] * b[..., :1, :])  # (..., M, N)
            for k in range(1, a.shape[-1]):  # one product at a time, the sum rounded after each
                total = self.round_partial(total + a[..., :, k : k + 1] * b[..., k : k + 1, :])
        return self.wrap(self.round_product(total))


_BINARY: dict[str, Any] = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide}
_COMPARE: dict[str, Any] = {"gt": np.greater, "ge": np.greater_equal, "lt": np.less, "le": np.less_equal, "eq": np.equal,
            "ne": np.not_equal}
_LOGIC: dict[str, Any] = {"and": np.logical_and, "or": np.logical_or}


class RoundedArray:
    """An array of a :class:`RoundingNamespace`: a carrier NumPy array ``a`` (a view where the core
    sliced) whose every arithmetic result is rounded as the namespace says."""

    __array_ufunc__ = None  # NumPy defers to the reflected operators below: a constant op'd with us is ours
    __slots__ = ("a", "xp")

    def __init__(self, a: np.ndarray, xp: RoundingNamespace):
        self.a, self.xp = a, xp

    def __array_namespace__(self, api_version: str | None = None) -> RoundingNamespace:
        return self.xp

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.a if dtype is None else self.a.astype(dtype)

    def __repr__(self) -> str:
        return f"RoundedArray({self.a!r}, {self.xp.device})"

    shape = property(lambda self: self.a.shape)
    ndim = property(lambda self: self.a.ndim)
    dtype = property(lambda self: self.a.dtype)
    device = property(lambda self: self.xp.device)
    T = property(lambda self: self.xp.wrap(self.a.T))

    def __len__(self) -> int:
        return len(self.a)

    def __bool__(self) -> bool:
        return bool(self.a)

    def __float__(self) -> float:
        return float(self.a)

    def __getitem__(self, key: Any) -> RoundedArray:
        return self.xp.wrap(self.a[_key(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        v = self.xp.data(value)
        self.a[_key(key)] = self.xp.round_store(v) if self.a.dtype.kind == "f" else v

    def __neg__(self) -> RoundedArray:
        return self.xp.wrap(-self.a)

    def __pos__(self) -> RoundedArray:
        return self

    def __invert__(self) -> RoundedArray:
        return self.xp.wrap(~self.a)

    def __matmul__(self, other: Any) -> RoundedArray:
        return self.xp.matmul(self, other)

    def __rmatmul__(self, other: Any) -> RoundedArray:
        return self.xp.matmul(other, self)


def _key(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(k.a if isinstance(k, RoundedArray) else k for k in key)
    return key.a if isinstance(key, RoundedArray) else key


def _binary(op):
    def forward(self, other):
        return self.xp.elementwise(op(self.a, self.xp.data(other)))

    def reflected(self, other):
        return self.xp.elementwise(op(self.xp.data(other), self.a))

    def in_place(self, other):  # writes into the wrapped array: a view writes through to what it views
        self.a[...] = self.xp.round_elementwise(op(self.a, self.xp.data(other)))
        return self

    return forward, reflected, in_place


def _plain(op, reflect: bool = False):
    if reflect:
        return lambda self, other: self.xp.wrap(op(self.xp.data(other), self.a))
    return lambda self, other: self.xp.wrap(op(self.a, self.xp.data(other)))


for _name, _op in _BINARY.items():
    _f, _r, _i = _binary(_op)
    setattr(RoundedArray, f"__{_name}__", _f)
    setattr(RoundedArray, f"__r{_name}__", _r)
    setattr(RoundedArray, f"__i{_name}__", _i)
for _name, _op in _COMPARE.items():
    setattr(RoundedArray, f"__{_name}__", _plain(_op))
for _name, _op in _LOGIC.items():
    setattr(RoundedArray, f"__{_name}__", _plain(_op))
    setattr(RoundedArray, f"__r{_name}__", _plain(_op, reflect=True))
RoundedArray.__hash__ = None  # type: ignore[assignment]  # == is elementwise

_NAMESPACES: dict[Rounding, RoundingNamespace] = {}
_LOCK = threading.Lock()


def namespace(rounding: Rounding) -> RoundingNamespace:
    """The one namespace of a rounding model (made once: its device name keys the core's caches)."""
    with _LOCK:
        if rounding not in _NAMESPACES:
            _NAMESPACES[rounding] = RoundingNamespace(rounding)
        return _NAMESPACES[rounding]
