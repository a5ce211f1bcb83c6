"""Parameter storage shared by cells and layers: torch's names, order, shapes; versions.

Parameters are NumPy arrays in the module's dtype, stored read-only and replaced
whole -- by ``load_state_dict`` or by assigning one (``m.weight_hh_l0 = w``) --
never written in place. Every replacement takes a new *version*:

* a tape records the version it was made with, and ``backward`` refuses a tape
  whose weights have changed since (torch: "modified by an inplace operation");
* ``forward`` reads the (version, parameters) pair once, at its start, so a
  ``load_state_dict`` in another thread never mixes old and new weights;
* the weights moved to another array library or device (torch tensors on a GPU,
  say) are kept per library and device, and made again only for a new version.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ._checks import check_dtype, check_tape, make_rng
from ._namespace import Placement, from_numpy
from .config import RNNConfig
from .memory import check_memory, parameters_estimate
from .stack import prepare_stack

_versions = itertools.count(1)  # shared by every module: a version is never reused
_PARAMETER_NAME = re.compile(r"(weight|bias)_(ih|hh|hr|p)(_l\d+(_reverse)?)?")


class Weights(NamedTuple):
    """One consistent snapshot of a module's parameters."""

    version: int
    params: dict  # name -> read-only np.ndarray, torch's order


class ParameterModule:
    """Holds parameters in a dict keyed exactly like torch's ``state_dict``.

    Subclasses set ``config`` (an ``RNNConfig``) and define ``_stack_names``:
    their own parameter name -> the name the core's stack uses (cells have no
    ``_l0`` suffix; layers use torch's names as they are).
    """

    config: RNNConfig

    def _init_parameters(self, dtype: Any, seed: Any) -> None:
        set_ = object.__setattr__
        set_(self, "dtype", check_dtype(dtype))
        check_memory(parameters_estimate(self.config, self.dtype), "building the parameters")  # before drawing them
        set_(self, "_rng", make_rng(seed))
        set_(self, "_owner", object())  # identifies tapes recorded by this module
        set_(self, "_prepared", {})  # (library, device) -> (version, stack weights)
        set_(self, "_lock", threading.Lock())  # serialises parameter replacement
        # torch: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), drawn in state_dict order.
        bound = 1.0 / np.sqrt(self.config.hidden_size)
        params = {}
        for name, shape in self._parameter_shapes().items():
            params[name] = self._rng.uniform(-bound, bound, size=shape).astype(self.dtype)
            params[name].flags.writeable = False
        set_(self, "_weights", Weights(next(_versions), params))

    def _parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = self.config.parameter_shapes()
        return {own: shapes[stack] for own, stack in self._stack_names().items()}

    def _stack_names(self) -> dict[str, str]:
        return {name: name for name in self.config.parameter_shapes()}

    # -- reading ---------------------------------------------------------------

    @property
    def weights_version(self) -> int:
        """Changes whenever any parameter is replaced; tapes record it."""
        return self._weights.version

    def state_dict(self) -> dict[str, np.ndarray]:
        """A new dict of copies, with torch's keys in torch's order."""
        return {name: value.copy() for name, value in self._weights.params.items()}

    def parameters(self) -> dict[str, np.ndarray]:
        """Read-only views of the parameters (no copy), keyed like state_dict."""
        return dict(self._weights.params)

    def __getattr__(self, name: str) -> Any:
        weights = self.__dict__.get("_weights")
        if weights is not None and name in weights.params:
            return weights.params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- replacing -------------------------------------------------------------

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Copy parameters in, strictly: every key present (in any order), no extra
        key, every shape exact. Values are cast to the module's dtype; NumPy arrays,
        lists and torch tensors (any device) work. On any error the module is left
        unchanged; on success the weights version changes."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a mapping of names to arrays, got {type(state_dict).__name__}")
        shapes = self._parameter_shapes()
        missing = [k for k in shapes if k not in state_dict]
        extra = [k for k in state_dict if k not in shapes]
        if missing or extra:
            raise ValueError(f"state_dict: missing keys {missing}, unexpected keys {extra}")
        loaded = {name: self._checked(f"state_dict[{name!r}]", state_dict[name], shape) for name, shape in shapes.items()}
        with self._lock:
            object.__setattr__(self, "_weights", Weights(next(_versions), loaded))

    def __setattr__(self, name: str, value: Any) -> None:
        weights = self.__dict__.get("_weights")
        if weights is not None and name in weights.params:
            self._assign(name, value)
        elif weights is not None and _PARAMETER_NAME.fullmatch(name):
            raise ValueError(f"{name}: not a parameter of this {type(self).__name__}; its parameters are "
                             f"{', '.join(weights.params)} (load_state_dict replaces them)")
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__.get("_weights", Weights(0, {})).params:
            raise ValueError(f"{name}: parameters cannot be deleted; build the module with bias=False for no biases")
        object.__delattr__(self, name)

    def _assign(self, name: str, value: Any) -> None:
        """``m.<parameter> = value``: checked like load_state_dict, then used everywhere."""
        if value is None:
            raise ValueError(f"{name}: cannot be set to None; build the module with bias=False for no biases, "
                             "or use load_state_dict to replace parameters")
        shape = self._parameter_shapes()[name]
        new = self._checked(name, value, shape)
        with self._lock:
            params = dict(self._weights.params)
            params[name] = new
            object.__setattr__(self, "_weights", Weights(next(_versions), params))

    def _checked(self, label: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
        if type(value).__module__.split(".")[0] == "torch" and hasattr(value, "detach"):
            value = value.detach().cpu().numpy()  # a parameter is data: any device, grad or not
        try:
            arr = np.asarray(value)
        except Exception:  # noqa: BLE001 -- any failure to convert is the caller's TypeError
            raise TypeError(f"{label}: expected an array-like, got {type(value).__name__}") from None
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{label}: expected real numbers, got dtype {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(f"{label}: expected shape {shape}, got {arr.shape}")
        with np.errstate(over="ignore"):  # beyond float32's range becomes inf, as torch's copy_ does
            out = np.array(arr, dtype=self.dtype, copy=True)
        out.flags.writeable = False
        return out

    # -- the weights a call runs on ----------------------------------------------

    def _snapshot(self, place: Placement) -> tuple[int, list]:
        """(version, the core's stack weights in the call's library and device), from one read of the parameters."""
        weights = self._weights  # one read: the version and the arrays belong together
        cached = self._prepared.get(place.key)
        if cached is not None and cached[0] == weights.version:
            return cached
        params = {stack: from_numpy(place, weights.params[own]) for own, stack in self._stack_names().items()}
        prepared = (weights.version, prepare_stack(place, self.config, params))
        self._prepared[place.key] = prepared
        return prepared

    def _check_tape(self, tape: Any, tape_type: type) -> None:
        """A tape ``backward`` may use: this module's, made with its current weights, its shared
        output unchanged."""
        check_tape(tape, self._owner, tape_type)
        if tape.version != self.weights_version:
            raise ValueError("tape: the module's weights have changed since this tape was recorded (load_state_dict "
                             "or a parameter assignment); its gradients would be for the old weights. Run forward "
                             "again.")
        guard = getattr(tape, "output_guard", None)
        if guard is not None and guard[0]._version != guard[1]:  # torch counts in-place writes per tensor
            raise ValueError("tape: forward's output was modified in place after forward, and the tape shares its "
                             "memory; clone the output before writing into it, and run forward again")

    # -- another dtype -----------------------------------------------------------------

    def astype(self, dtype: Any) -> Any:
        """A copy of this module computing in ``dtype`` (numpy.float32 or numpy.float64): its
        parameters cast, its configuration, training flag and generator state copied. The
        module itself is unchanged (torch's ``model.to(dtype)`` converts in place)."""
        dtype = check_dtype(dtype)
        state = self.__getstate__()
        state.update(dtype=dtype, _rng=copy.deepcopy(self._rng), _owner=object(), _prepared={})
        params = {}
        for name, value in self._weights.params.items():
            with np.errstate(over="ignore"):  # beyond float32's range becomes inf, as torch's .to() does
                params[name] = value.astype(dtype)  # a new array
            params[name].flags.writeable = False
        state["_weights"] = Weights(next(_versions), params)
        new = object.__new__(type(self))
        new.__setstate__(state)
        return new

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_lock")
        state["_prepared"] = {}  # device arrays are not pickled; they are made again on first use
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        object.__setattr__(self, "_lock", threading.Lock())
