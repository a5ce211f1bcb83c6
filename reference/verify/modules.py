"""torch.nn-like modules, read without importing torch: what they are, and the configuration they hold."""

from __future__ import annotations

from typing import Any

import numpy as np

from .candidates import CandidateError, to_numpy
from .spec import Spec


def spec_of_module(module: Any, mode: str | None = None, **overrides: Any) -> Spec:
    """The configuration of a torch.nn-like module: from its parameter shapes, checked against its attributes.

    ``mode`` is needed only where neither an attribute ``.mode`` nor torch's class
    (LSTM, GRU, RNN) says it, and the shapes cannot (a one-gate RNN: tanh or relu).
    """
    state = {k: to_numpy(v) for k, v in module.state_dict().items()}
    mode = _declared_mode(module) or mode
    try:
        spec = Spec.from_state_dict(state, mode, dropout=float(getattr(module, "dropout", 0.0) or 0.0),
                                    training=bool(getattr(module, "training", False)), **overrides)
    except ValueError as e:
        raise CandidateError(f"{type(module).__name__}: expected a recurrent module with torch's parameter names "
                             f"(weight_ih_l0, weight_hh_l0, ...), got parameters {sorted(state)[:8]}: {e}") from None
    declared = {"input_size": spec.input_size, "hidden_size": spec.hidden_size, "num_layers": spec.num_layers,
                "bias": spec.bias, "bidirectional": spec.bidirectional, "proj_size": spec.proj_size}
    wrong = [f"{k}={getattr(module, k)!r} but its weights say {v!r}" for k, v in declared.items()
             if isinstance(getattr(module, k, None), (bool, int, np.integer)) and getattr(module, k) != v]
    if wrong:
        raise CandidateError(f"{type(module).__name__}: its attributes disagree with its parameter shapes: "
                             + "; ".join(wrong))
    return spec


def _declared_mode(module: Any) -> str | None:
    mode = getattr(module, "mode", None)
    if isinstance(mode, str) and mode in ("RNN_TANH", "RNN_RELU", "GRU", "LSTM"):
        return mode
    cls = type(module)
    if cls.__module__.startswith("torch.nn") and cls.__name__ in ("RNN", "GRU", "LSTM"):
        if cls.__name__ == "RNN":
            return "RNN_TANH" if getattr(module, "nonlinearity", "tanh") == "tanh" else "RNN_RELU"
        return cls.__name__
    nonlinearity = getattr(module, "nonlinearity", None)
    if nonlinearity in ("tanh", "relu"):
        return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
    return None


def is_torch_module(obj: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(obj).__mro__)


def is_reference_module(obj: Any) -> bool:
    return any(c.__module__.startswith("reference.") and c.__name__ == "RNNBase" for c in type(obj).__mro__)

