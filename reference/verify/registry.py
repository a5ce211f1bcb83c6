"""One registry of adapters: what carries an object, or a model file, to a :class:`~.candidates.Candidate`.

Each entry says whether it accepts an object from the object's classes alone (their modules and
names: nothing is imported to ask), and names the module that builds the candidate, imported only
once the entry accepts, as a plugin registry finds a plugin. So ``import reference.verify`` imports
no framework, no adapter imports another, and torch's adapter can live with everything torch in
``torch_impl`` without ``reference`` importing it.

===========  ================================================  ======================================  =========
adapter      accepts                                           module (``candidate``, ``load``)        files
===========  ================================================  ======================================  =========
keras        a Keras layer or model                            ``reference.verify.adapters.keras``     .keras
flax         a linen ``(module, params)`` pair, an nnx module  ``reference.verify.adapters.flax``
equinox      an Equinox module                                 ``reference.verify.adapters.equinox``
torch        a ``torch.nn.Module``                             ``torch_impl.compare``                  .pt .pth
                                                                                                       .pkl .bin
                                                                                                       .npz
reference    a reference module (``reference.RNN``, ...)        ``reference.verify.adapters``
                                                               ``.reference_module``
function     any other callable: the function protocol         ``reference.verify.adapters.function``
onnx         (files only)                                      ``reference.verify.adapters.onnx``      .onnx
===========  ================================================  ======================================  =========

The first entry that accepts builds the candidate, so order matters where an object is two things:
a Keras layer on the torch backend is also a torch Module, and Keras is asked first. A module's
``candidate(obj, *, layout, dtype, factory, mode)`` builds the candidate of an object it accepts;
its ``load(path, *, mode, layout, trust_pickle, inputs)`` reads a file of its suffixes.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .candidates import Candidate
from .modules import is_reference_module, is_torch_module


def _never(obj: Any) -> bool:
    return False


def _classes_from(*packages: str, pairs: bool = False) -> Callable[[Any], bool]:
    """Accepts an object one of whose classes is defined in one of ``packages`` (or, with ``pairs``, the first
    of a (module, params) pair)."""

    def accepts(obj: Any) -> bool:
        target = obj[0] if pairs and isinstance(obj, tuple) and len(obj) == 2 else obj
        return any(c.__module__ == p or c.__module__.startswith(p + ".") for c in type(target).__mro__
                   for p in packages)

    return accepts


def _function(obj: Any) -> bool:
    return callable(obj) and not isinstance(obj, type)


@dataclass(frozen=True)
class Adapter:
    """One entry: its name, what it accepts, the module that builds its candidates and the files it reads."""

    name: str
    module: str  # imported only once the entry accepts an object or a file
    accepts: Callable[[Any], bool] = _never  # the object's classes only: nothing imported to ask
    suffixes: tuple[str, ...] = ()  # model files its module's load() reads
    own_weights: str = ""  # why layout= does not apply to its candidates (empty: it takes a layout)
    needs: str = ""  # what a file needs installed, for the message when its module cannot be imported

    def plugin(self) -> ModuleType:
        return importlib.import_module(self.module)

    def load(self, path: str, **options: Any) -> Candidate:
        """The candidate of the model file ``path`` (one of this entry's suffixes)."""
        try:
            plugin = self.plugin()
        except ImportError as e:
            raise ImportError(f"model: {os.path.basename(path)} needs {self.needs}: {e}") from e
        return plugin.load(path, **options)


ADAPTERS: tuple[Adapter, ...] = (
    Adapter("keras", "reference.verify.adapters.keras", _classes_from("keras"), (".keras",),
            own_weights="Keras candidates hold their own weights"),
    Adapter("flax", "reference.verify.adapters.flax", _classes_from("flax.linen", "flax.nnx", pairs=True),
            own_weights="Flax and Equinox candidates hold their own weights"),
    Adapter("equinox", "reference.verify.adapters.equinox", _classes_from("equinox", pairs=True),
            own_weights="Flax and Equinox candidates hold their own weights"),
    Adapter("torch", "torch_impl.compare", is_torch_module, (".pt", ".pth", ".pkl", ".bin", ".npz"),
            own_weights="torch module candidates use torch's layout", needs="torch to run (pip install torch)"),
    Adapter("reference", "reference.verify.adapters.reference_module", is_reference_module),
    Adapter("function", "reference.verify.adapters.function", _function),
    Adapter("onnx", "reference.verify.adapters.onnx", suffixes=(".onnx",)),
)


def as_candidate(obj: Any, *, layout: str = "torch", dtype: Any = None, factory: Callable | None = None,
                 mode: str | None = None) -> Candidate:
    """A :class:`Candidate` from a Candidate, a Keras layer or model, a Flax or Equinox module (a linen one as
    (module, params)), a torch module, a reference module or a :class:`~.candidates.CandidateFn`."""
    if isinstance(obj, Candidate):
        return obj
    for adapter in ADAPTERS:
        if adapter.accepts(obj):
            if layout != "torch" and adapter.own_weights:
                raise ValueError(f"layout: {adapter.own_weights}; layout= is for function candidates")
            return adapter.plugin().candidate(obj, layout=layout, dtype=dtype, factory=factory, mode=mode)
    raise TypeError(f"candidate: expected a torch module, a reference module, a Keras layer or model, a Flax or "
                    f"Equinox module, a model file's candidate or a "
                    f"function fn(spec, params, input, hx, grad_output, grad_hidden, *, lengths, dropout_masks); "
                    f"got {type(obj).__name__}")


def file_adapter(path: str) -> Adapter | None:
    """The entry that reads files named like ``path`` (by suffix), or None."""
    return next((a for a in ADAPTERS if a.suffixes and path.endswith(a.suffixes)), None)
