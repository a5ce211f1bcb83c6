"""Model files checked as they are: their weights, their configuration and their runtime.

============  ============================================================  ===================================
file          runtime (the candidate)                                       weights and configuration
============  ============================================================  ===================================
.onnx         ONNX Runtime (``pip install 'rnn-reference[verify]'``)        the LSTM/GRU/RNN nodes' W, R, B, P
.pt / .pth    torch: torch.nn.<mode> with a state_dict loaded                the state_dict's / the module's
              (configuration from the shapes), or, with trust_pickle=True,
              a pickled module as it is
.npz          torch.nn.<mode> (or a candidate you give) on these weights    arrays in the torch, keras, onnx or
                                                                            ifog layout (names tell which)
.keras        Keras 3, the saved model's own recurrent layers                the layers' own (loaded in Keras's
              (:mod:`.adapters.keras`)                                       safe mode)
============  ============================================================  ===================================

An .npz holds torch's names (``weight_ih_l0``, ...), or one layer's foreign
arrays (``W``, ``R``, ``B``), or several layers' as ``"l0/kernel"``,
``"l0_reverse/kernel"``, ``"l1/kernel"`` (ONNX arrays may keep their direction
axis under ``"l0/W"``).

Reading a file runs no code from it (:mod:`reference.verify.files`): a .pt/.pth
is read with torch's ``weights_only=True``, so a state_dict loads and a pickled
module is refused with a ValueError that says why, unless ``trust_pickle=True``
(``rnn-check --trust-pickle``) says the file is trusted: unpickling it then runs
whatever code it names, as you. An .npz is read with ``allow_pickle=False``; an
.onnx without external data from outside its directory. A missing, truncated,
mislabelled or oversized file is refused by name before anything is allocated.

Each kind of file is read by the adapter the registry (:mod:`reference.verify.registry`) names for its
suffix; ONNX models are described in :mod:`reference.verify.adapters.onnx`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .bounds import one_check
from .candidates import Candidate, CandidateError, to_numpy
from .files import TORCH_SUFFIXES, Limits, check_file
from .layouts import detect_layout, import_state_dict, mode_from_shapes, torch_mode
from .modules import is_reference_module, is_torch_module, spec_of_module
from .npz import read_npz
from .registry import file_adapter
from .spec import Spec


@one_check
def load_weights(source: Any, *, layout: str | None = None, mode: str | None = None,
                 reset_after: bool | None = None, trust_pickle: bool = False, limits: Limits | None = None
                 ) -> tuple[dict[str, np.ndarray], Spec, str]:
    """(torch state_dict of NumPy arrays, configuration, the layout it came in) from any weight source.

    ``source``: a file path (.onnx, .npz, .pt/.pth), a torch or reference module,
    a torch state_dict, ``{"l0": {...}, ...}`` in a foreign layout, or one
    layer's foreign arrays. ``trust_pickle``: let a .pt/.pth that is a pickled
    module load in full, which runs the code it names (see the module docstring).
    ``limits``: what may be read (:class:`~reference.verify.files.Limits`).
    """
    if isinstance(source, (str, os.PathLike)):
        path = check_file(source, "weights")
        if path.endswith(".onnx"):
            cand = load_model(path)
            assert cand.own_params is not None and cand.spec is not None  # a file's candidate holds both
            return cand.own_params, cand.spec, "onnx"
        if path.endswith(".npz"):
            arrays = read_npz(path, "weights")
            with naming(path, "weights"):
                return weights_from_mapping(arrays, layout=layout, mode=mode, reset_after=reset_after)
        if path.endswith(TORCH_SUFFIXES):
            model = load_model(path, mode=mode, trust_pickle=trust_pickle)
            assert model.own_params is not None and model.spec is not None  # a file's candidate holds both
            return model.own_params, model.spec, "torch"
        raise ValueError(f"weights: expected a .onnx, .npz, {', '.join(TORCH_SUFFIXES)} file, got {path!r}")
    if is_torch_module(source) or is_reference_module(source):
        state = {k: to_numpy(v) for k, v in source.state_dict().items()}
        ra = bool(getattr(source, "reset_after", True)) if reset_after is None else reset_after
        return state, spec_of_module(source, mode, reset_after=ra), "torch"
    if isinstance(source, Mapping):
        return weights_from_mapping(source, layout=layout, mode=mode, reset_after=reset_after)
    raise TypeError(f"weights: expected a file path, a module or a mapping of arrays, got {type(source).__name__}")


def weights_from_mapping(arrays: Mapping[str, Any], *, layout: str | None = None, mode: str | None = None,
                         reset_after: bool | None = None) -> tuple[dict[str, np.ndarray], Spec, str]:
    """See :func:`load_weights` (mappings and .npz contents)."""
    nested: dict[str, Any] = {}
    for key, value in arrays.items():
        if "/" in key:
            group, _, name = key.partition("/")
            nested.setdefault(group, {})[name] = value
        else:
            nested[key] = value
    if nested and all(isinstance(v, Mapping) for v in nested.values()):
        first = next(iter(nested.values()))
        layout = layout or detect_layout(first)
        if layout == "torch":
            raise ValueError("weights: torch's names are flat (weight_ih_l0, ...), not grouped by layer")
    else:
        if any(isinstance(v, Mapping) for v in nested.values()):
            raise ValueError(f"weights: mixes layer groups and arrays at the top level: {sorted(nested)}")
        layout = layout or detect_layout(nested)
        if layout == "torch":
            state = {k: to_numpy(v) for k, v in nested.items()}
            ra = True if reset_after is None else reset_after
            return state, Spec.from_state_dict(state, mode, reset_after=ra), "torch"
        nested = {"l0": nested}
    ra = True if reset_after is None else reset_after
    mode = mode or mode_from_shapes(layout, next(iter(nested.values())))
    state = import_state_dict(layout, torch_mode(mode), nested, reset_after=ra)
    spec_mode = mode if mode in ("RNN_TANH", "RNN_RELU") else {"RNN": "RNN_TANH"}.get(torch_mode(mode), mode)
    return state, Spec.from_state_dict(state, spec_mode, reset_after=ra), layout


@one_check
def load_model(path: str | os.PathLike[str], *, mode: str | None = None, layout: str | None = None,
               trust_pickle: bool = False, inputs: Any = None, limits: Limits | None = None) -> Candidate:
    """A candidate that runs the file's own runtime on the file's own weights (see the module docstring).

    ``trust_pickle``: let a .pt/.pth that is a pickled module load in full, which
    runs the code it names; by default only a state_dict (``weights_only=True``) loads.
    ``inputs`` (.onnx only): values of graph inputs that are not constants, see :func:`read_test_data`.
    ``limits``: what may be read, the model, its weights and test data together
    (:class:`~reference.verify.files.Limits`; default 2 GiB per file, 4 GiB in all).
    """
    path = check_file(path, "model")
    if inputs is not None and not path.endswith(".onnx"):
        raise ValueError(f"inputs: only an .onnx model takes graph input values, got {os.path.basename(path)!r}")
    adapter = file_adapter(path)
    if adapter is None:
        raise ValueError(f"model: expected a .onnx, .keras, .npz or {'/'.join(TORCH_SUFFIXES)} file, got {path!r}")
    with naming(path, "model"):
        return adapter.load(path, mode=mode, layout=layout, trust_pickle=trust_pickle, inputs=inputs)


@contextlib.contextmanager
def naming(path: str, what: str) -> Iterator[None]:
    """A refusal of a file's contents names the file (one raised deep inside a reader may name only a tensor)."""
    name = os.path.basename(path)
    try:
        yield
    except (ValueError, CandidateError) as e:
        if name in str(e):
            raise
        try:
            named = type(e)(f"{what}: {name}: {e}")
        except TypeError:  # an exception class that takes other arguments: keep it, and say the file in a ValueError
            named = ValueError(f"{what}: {name}: {e}")
        raise named from e
