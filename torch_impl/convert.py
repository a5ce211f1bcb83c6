"""Converters between reference modules and torch.nn modules (config and weights).

    ref = from_torch(torch_module)          # any of the six classes, any device/dtype
    tm = to_torch(ref, device="cuda")       # weights copied into torch's own parameters

Loading copies into the existing torch parameters, in place, so cuDNN's flat
weight buffer stays valid; ``flatten_parameters()`` is called where it applies.
A round trip is exact: the weights are copied, never recomputed.
"""

from __future__ import annotations

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


def from_torch(module: torch.nn.Module) -> reference.RNNBase:
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
    dtype = dtype or _TORCH_DTYPES[ref_module.dtype]
    if dtype not in _NP_DTYPES:
        raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        module = getattr(torch.nn, name)(ref_module.input_size, ref_module.hidden_size, **_config(ref_module, name))
    module = module.to(device=device, dtype=dtype)
    load_into(module, ref_module.state_dict())
    module.train(getattr(ref_module, "training", True))
    return module


def load_into(module: torch.nn.Module, state: dict[str, np.ndarray]) -> None:
    """Copy NumPy arrays into ``module``'s parameters in place (keeps cuDNN's flat buffer valid)."""
    params = dict(module.named_parameters())
    if set(params) != set(state):
        raise ValueError(f"state: keys differ from the module's: missing {sorted(set(params) - set(state))}, "
                         f"unexpected {sorted(set(state) - set(params))}")
    with torch.no_grad():
        for k, p in params.items():
            src = torch.as_tensor(np.asarray(state[k]))
            if src.shape != p.shape:
                raise ValueError(f"state[{k!r}]: expected shape {tuple(p.shape)}, got {tuple(src.shape)}")
            p.copy_(src)
    if hasattr(module, "flatten_parameters"):
        module.flatten_parameters()
