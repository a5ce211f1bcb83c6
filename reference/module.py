"""Parameter storage shared by cells and layers: torch's names, order, shapes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._checks import check_dtype, make_rng


class ParameterModule:
    """Holds parameters in a dict keyed exactly like torch's ``state_dict``.

    Subclasses define ``_parameter_shapes()`` (name -> shape, in torch's order)
    and ``hidden_size``. Parameters are stored read-only: they change only by
    ``load_state_dict``, which swaps in new arrays, so a tape that refers to the
    old ones stays valid.
    """

    hidden_size: int

    def _init_parameters(self, dtype: Any, seed: Any) -> None:
        self.dtype = check_dtype(dtype)
        self._rng = make_rng(seed)
        self._owner = object()  # identifies tapes recorded by this module
        # torch: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), drawn in state_dict order.
        bound = 1.0 / np.sqrt(self.hidden_size)
        params = {}
        for name, shape in self._parameter_shapes().items():
            params[name] = self._rng.uniform(-bound, bound, size=shape).astype(self.dtype)
            params[name].flags.writeable = False
        self._params = params

    def _parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """A new dict of copies, with torch's keys in torch's order."""
        return {name: value.copy() for name, value in self._params.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Copy parameters in, strictly: every key present, no extra key, every
        shape exact. Values are cast to the module's dtype; anything
        ``np.asarray`` accepts works (CPU torch tensors included). On any error
        the module is left unchanged.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a mapping of names to arrays, got {type(state_dict).__name__}")
        shapes = self._parameter_shapes()
        missing = [k for k in shapes if k not in state_dict]
        extra = [k for k in state_dict if k not in shapes]
        if missing or extra:
            raise ValueError(f"state_dict: missing keys {missing}, unexpected keys {extra}")
        loaded = {}
        for name, shape in shapes.items():
            try:
                value = np.asarray(state_dict[name])
            except Exception:  # noqa: BLE001 -- any failure to convert is the caller's TypeError
                raise TypeError(f"state_dict[{name!r}]: expected an array-like, got {type(state_dict[name]).__name__}") from None
            if value.dtype.kind not in "fiu":
                raise TypeError(f"state_dict[{name!r}]: expected real numbers, got dtype {value.dtype}")
            if value.shape != shape:
                raise ValueError(f"state_dict[{name!r}]: expected shape {shape}, got {value.shape}")
            with np.errstate(over="ignore"):  # beyond float32's range becomes inf, as torch's copy_ does
                loaded[name] = np.array(value, dtype=self.dtype, copy=True)
            loaded[name].flags.writeable = False
        self._params = loaded

    def parameters(self) -> dict[str, np.ndarray]:
        """Read-only views of the parameters (no copy), keyed like state_dict."""
        return dict(self._params)

    def __getattr__(self, name: str) -> np.ndarray:
        params = self.__dict__.get("_params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
