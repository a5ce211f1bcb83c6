"""Which array library a call runs in, and moving arrays into it.

The core is written against the Python array API standard: every function takes
``xp``, the namespace of the arrays it is given. NumPy (>= 2) is its own
namespace and the default; arrays that name their own namespace
(``__array_namespace__``: array-api-strict, JAX, CuPy, ...) use it; torch tensors
go through ``array_api_compat``, imported only when they arrive. So ``import
reference`` needs NumPy alone.

Rules for one call (``forward``, ``backward``):

* the arrays passed in (input, hx, cotangents, dropout masks) pick the library
  and the device; lists and scalars follow them (NumPy when there is no array);
* arrays from two libraries, or on two devices, are an error naming both;
* torch tensors that require grad are refused (the reference computes its own
  gradients; ``torch_impl.rnn_bptt`` is the autograd route).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import as_float_array

Namespace = Any  # an array API namespace: numpy, array_api_compat.torch, array_api_strict, ...


def library(value: Any) -> str | None:
    """"numpy", "torch", ... for an array; None for a list, scalar or None."""
    if isinstance(value, (np.ndarray, np.generic)):
        return "numpy"
    module = type(value).__module__.split(".")[0]
    if module == "torch" and hasattr(value, "device") or hasattr(value, "__array_namespace__"):
        return module
    return None


def device_name(value: Any) -> str:
    if isinstance(value, (np.ndarray, np.generic)):
        return "cpu"
    return str(value.device)


def _arrays(named: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, array) for every array among the values (tuples and lists are walked)."""
    found = []
    for name, value in named.items():
        if isinstance(value, (tuple, list)):
            found += _arrays({f"{name}[{k}]": v for k, v in enumerate(value)})
        elif library(value) is not None:
            found.append((name, value))
    return found


class Placement:
    """The library and device of one call: ``xp`` and ``device``."""

    def __init__(self, xp: Namespace, device: Any, lib: str):
        self.xp, self.device, self.library = xp, device, lib

    @property
    def is_numpy(self) -> bool:
        return self.library == "numpy"

    @property
    def key(self) -> tuple[str, str]:
        return self.library, str(self.device)

    def __repr__(self) -> str:
        return f"Placement({self.library}, {self.device})"


NUMPY = Placement(np, "cpu", "numpy")


def placement_of(**named: Any) -> Placement:
    """The one library and device of the arrays among ``named``; NumPy on the CPU when there is none."""
    arrays = _arrays(named)
    if not arrays:
        return NUMPY
    (first_name, first), libs = arrays[0], {library(a) for _, a in arrays}
    if len(libs) > 1:
        other_name, other = next((n, a) for n, a in arrays if library(a) != library(first))
        raise TypeError(f"{first_name} is a {library(first)} array but {other_name} is a {library(other)} array: "
                        "pass every array of one call from one library")
    lib = library(first)
    assert lib is not None  # _arrays keeps arrays only
    if lib == "numpy":
        return NUMPY
    devices = {n: device_name(a) for n, a in arrays}
    if len(set(devices.values())) > 1:
        other_name = next(n for n in devices if devices[n] != devices[first_name])
        raise ValueError(f"{first_name} is on {devices[first_name]} but {other_name} is on {devices[other_name]}: "
                         "pass every array of one call on one device")
    if lib == "torch":
        for name, a in arrays:
            if a.requires_grad:
                raise ValueError(f"{name}: a torch tensor that requires grad; the reference computes gradients with "
                                 "backward(), so pass it .detach()ed (torch_impl.rnn_bptt is the autograd route)")
    return Placement(namespace_of(first), first.device, lib)


def placement_matching(expected: Placement, **named: Any) -> Placement:
    """``expected``, checked: the arrays among ``named`` (cotangents for a tape) must come from
    its library and device; lists, scalars and None follow it."""
    place = placement_of(**named)
    if _arrays(named) and place.key != expected.key:
        raise TypeError(f"{'/'.join(named)}: arrays from {place.library} on {place.device}, but forward ran on "
                        f"{expected.library} on {expected.device}: pass gradients from the same library and device")
    return expected


def namespace_of(a: Any) -> Namespace:
    """The array API namespace of an array: its own ``__array_namespace__`` where it has one
    (array-api-strict, JAX, CuPy, ...), array_api_compat's wrapper for torch (imported only then)."""
    if hasattr(a, "__array_namespace__"):
        return a.__array_namespace__()
    import array_api_compat

    return array_api_compat.array_namespace(a)


def float_dtype(place: Placement, dtype: np.dtype) -> Any:
    """The namespace's dtype for a NumPy float dtype; a clear error where the device has none."""
    name = np.dtype(dtype).name
    if place.is_numpy:
        return np.dtype(dtype)
    info = getattr(place.xp, "__array_namespace_info__", None)
    if info is not None:
        try:
            available = info().dtypes(device=place.device, kind="real floating")
        except (TypeError, ValueError, RuntimeError, NotImplementedError):
            available = None
        if available is not None and name not in available:
            raise ValueError(f"dtype: this module is {name}, but {place.library} on {place.device} has no {name} "
                             "(build the module with dtype=numpy.float32)")
    if place.library == "torch" and str(place.device).startswith("mps") and name == "float64":
        raise ValueError(f"dtype: this module is float64, but torch on {place.device} has no float64 "
                         "(build the module with dtype=numpy.float32)")
    return getattr(place.xp, name)


def from_numpy(place: Placement, a: np.ndarray | None) -> Any:
    """A NumPy array moved into the call's library and device (the array itself for NumPy)."""
    if a is None or place.is_numpy:
        return a
    if place.library == "torch":
        import torch

        return torch.tensor(a, device=place.device)  # a copy: the parameters stay read-only
    return place.xp.asarray(a, device=place.device)


def to_numpy(a: Any) -> np.ndarray:
    """Any array back in NumPy (for checks that are cheap on small arrays: lengths, masks)."""
    if isinstance(a, np.ndarray):
        return a
    if library(a) == "torch":
        return a.detach().cpu().numpy()
    return np.asarray(a)


SAME_DTYPE = "same"  # the module's dtype only: torch refuses an input or h of any other
NOT_WIDER = "not wider"  # the module's or a narrower one: torch widens a narrower LSTM c, exactly


def as_float(place: Placement, name: str, value: Any, dtype: np.dtype, copy: bool = True, *,
             dtype_rule: str | None = None) -> Any:
    """A copy of ``value`` in the module's float dtype, in the call's library and device
    (``copy=False``: ``value`` itself where it already is one, for what no tape keeps).

    Rule: integer, bool, complex and object input raise TypeError. An array of another
    floating dtype raises TypeError under ``dtype_rule`` SAME_DTYPE, and under NOT_WIDER
    where it is wider than ``dtype`` (``check_dtype_rule``); without a rule it is cast.
    Lists and scalars have no dtype of their own and take ``dtype``. The copy means later
    changes to the caller's array cannot reach a tape, and the caller's array is never
    written.
    """
    if dtype_rule is not None:
        check_dtype_rule(place, name, value, dtype, dtype_rule)
    if place.is_numpy or library(value) is None:
        arr = as_float_array(name, value, dtype, copy)
        return arr if place.is_numpy else from_numpy(place, arr)
    xp = place.xp
    if not xp.isdtype(value.dtype, "real floating"):
        raise TypeError(f"{name}: expected real floating values, got a {place.library} array of dtype {value.dtype} "
                        f"and shape {tuple(value.shape)}")
    return xp.astype(value, float_dtype(place, dtype), copy=copy)


def check_dtype_rule(place: Placement, name: str, value: Any, dtype: np.dtype, rule: str) -> None:
    """TypeError, naming both dtypes and the two fixes, for an array of a floating dtype other
    than the module's ``dtype`` (SAME_DTYPE) or wider than it (NOT_WIDER), as torch refuses
    an input of another dtype instead of computing in the module's silently. Arrays of no
    floating dtype, lists and scalars pass (``as_float`` judges them)."""
    lib = library(value)
    if lib is None:
        return
    xp = np if lib == "numpy" else place.xp
    if not xp.isdtype(value.dtype, "real floating"):
        return
    want = np.dtype(dtype).name
    if value.dtype == float_dtype(place, dtype):
        return
    if rule == NOT_WIDER and xp.finfo(value.dtype).bits < np.finfo(dtype).bits:
        return
    got = str(value.dtype).removeprefix("torch.")
    to = {"numpy": f"{name}.astype(numpy.{want})", "torch": f"{name}.to(torch.{want})"}.get(lib, f"xp.astype({name}, xp.{want})")
    module = (f", or convert the module: module.astype(numpy.{got})" if got in ("float32", "float64")
              else " (a module computes in float32 or float64)")
    wider = " (a narrower one is widened exactly; a wider one would be rounded)" if rule == NOT_WIDER else ""
    raise TypeError(f"{name}: {lib} dtype {got} does not match the module's dtype {want}{wider}. "
                    f"Convert {name}: {to}{module}")


def contiguous(place: Placement, a: Any) -> Any:
    """``a`` laid out row-major (a copy when it is not already): views from transposes
    make every later product and elementwise pass slower."""
    if place.is_numpy:
        return np.ascontiguousarray(a)
    if place.library == "torch":
        return a.contiguous()
    return a


def row_major_transpose(place: Placement, w: Any) -> Any:
    """w^T as a row-major array. With OpenBLAS the per-step h @ W^T ran 5-19% faster
    given a row-major W^T than through the transposed view of a row-major W (B = 64,
    H = 256-1024, both dtypes, 2 threads); made once per weight version."""
    return contiguous(place, w.T)


def unstack(xp: Namespace, a: Any) -> list:
    """a[0], a[1], ... along the first axis, as views. NumPy's ``unstack`` goes through
    ``moveaxis`` and took 11 us for 16 rows where iterating the array takes 3 us: the
    backward loop does this once per block for every partial derivative."""
    return list(a) if isinstance(a, np.ndarray) else list(xp.unstack(a))


_ROWS_ARE_VIEWS: dict[str, bool] = {"numpy": True}


def rows_are_views(xp: Namespace) -> bool:
    """Whether an in-place operator on a row from ``unstack`` writes into the array the
    row came from. The standard leaves views to the library; NumPy, torch and
    array-api-strict all say yes. Backward's loop relies on it to turn a block of
    partials into a block of gradients without a copy per step, and copies each step
    where a library says no. Tried once per namespace."""
    key = getattr(xp, "__name__", repr(xp))
    if key not in _ROWS_ARE_VIEWS:
        a = xp.zeros((2, 2))
        row = unstack(xp, a)[1]
        row *= 0.0
        row += 1.0
        _ROWS_ARE_VIEWS[key] = bool(a[1, 0] == 1.0)
    return _ROWS_ARE_VIEWS[key]
