"""Converters between reference modules and torch.nn modules (config and weights).

    ref = from_torch(torch_module)          # any of the six classes, any device/dtype
    tm = to_torch(ref, device="cuda")       # weights copied into torch's own parameters

Loading copies into the existing torch parameters, in place, so cuDNN's flat
weight buffer stays valid; ``flatten_parameters()`` is called where it applies.
A round trip is exact: the weights are copied, never recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

import reference

_CLASSES = ("RNN", "GRU", "LSTM", "RNNCell", "GRUCell", "LSTMCell")
_NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def _class_name(module: Any, package: str) -> str:
    name = type(module).__name__
    if name not in _CLASSES:
        raise TypeError(f"module: expected a {package} RNN, GRU, LSTM, RNNCell, GRUCell or LSTMCell, got {name}")
    return name


def _config(module: Any, name: str) -> dict[str, Any]:
    if name.endswith("Cell"):
        kw: dict[str, Any] = {"bias": module.bias}
    else:
        kw = dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                  dropout=float(module.dropout), bidirectional=module.bidirectional)
        if name == "LSTM":
            kw["proj_size"] = module.proj_size
    if name in ("RNN", "RNNCell"):
        kw["nonlinearity"] = module.nonlinearity
    return kw


def from_torch(module: torch.nn.Module) -> reference.module.ParameterModule:
    """The reference module with ``module``'s configuration, training mode and weights.

    The reference's dtype is the torch module's (float32 or float64); weights
    are copied to the CPU.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    name = _class_name(module, "torch.nn")
    dtype = next(module.parameters()).dtype
    if dtype not in _NP_DTYPES:
        raise TypeError(f"module: expected float32 or float64 parameters, got {dtype}")
    import warnings

    with warnings.catch_warnings():  # torch already warned about dropout with one layer
        warnings.simplefilter("ignore", UserWarning)
        ref = getattr(reference, name)(module.input_size, module.hidden_size, **_config(module, name),
                                       dtype=_NP_DTYPES[dtype])
    ref.load_state_dict({k: v.detach().cpu().numpy() for k, v in module.state_dict().items()})
    if hasattr(ref, "train"):
        ref.train(module.training)
    return ref


def to_torch(ref_module: Any, device: Any = None, dtype: torch.dtype | None = None) -> torch.nn.Module:
    """The torch.nn module with ``ref_module``'s configuration, training mode and weights.

    ``dtype`` defaults to the reference's dtype, ``device`` to the CPU.
    """
    name = _class_name(ref_module, "reference")
    if not isinstance(ref_module, getattr(reference, name)):
        raise TypeError(f"ref_module: expected a reference module, got {type(ref_module).__module__}.{name}")
    dtype = _TORCH_DTYPES[ref_module.dtype] if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or dtype not in _NP_DTYPES:
        raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype!r}")
    device = _device(device)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        module = getattr(torch.nn, name)(ref_module.input_size, ref_module.hidden_size, **_config(ref_module, name))
    module = module.to(device=device, dtype=dtype)
    load_into(module, ref_module.state_dict())
    module.train(getattr(ref_module, "training", True))
    return module


def _device(device: Any) -> torch.device:
    """``device`` as a torch.device (None: the CPU); ValueError if unknown or unavailable here."""
    if device is None:
        return torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device: expected a str or torch.device, got {type(device).__name__}")
    try:
        resolved = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device: expected a device such as 'cpu' or 'cuda', got {device!r} ({e})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: expected an available device, got {device!r} but CUDA is not available")
    return resolved


def load_into(module: torch.nn.Module, state: Mapping[str, Any]) -> None:
    """Copy NumPy arrays into ``module``'s parameters in place (keeps cuDNN's flat buffer valid).

    Every key, shape and dtype (real numbers) is checked before anything is
    copied, so on error the module is unchanged.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(state, Mapping):
        raise TypeError(f"state: expected a mapping of names to arrays, got {type(state).__name__}")
    params = dict(module.named_parameters())
    if set(params) != set(state):
        raise ValueError(f"state: keys differ from the module's: missing {sorted(set(params) - set(state))}, "
                         f"unexpected {sorted(map(str, set(state) - set(params)))}")
    sources = {}
    for k, p in params.items():
        try:
            value = np.asarray(state[k])
        except Exception:  # noqa: BLE001 -- whatever NumPy cannot convert is the wrong type
            raise TypeError(f"state[{k!r}]: expected an array-like, got {type(state[k]).__name__}") from None
        if value.dtype.kind not in "fiu":
            raise TypeError(f"state[{k!r}]: expected real numbers, got dtype {value.dtype}")
        if value.shape != tuple(p.shape):
            raise ValueError(f"state[{k!r}]: expected shape {tuple(p.shape)}, got {value.shape}")
        sources[k] = torch.as_tensor(value.astype(value.dtype.newbyteorder("="), copy=False))  # big-endian: native
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(sources[k])
    flatten = getattr(module, "flatten_parameters", None)
    if flatten is not None:
        flatten()
