"""One configuration object for every recurrent layer: what torch's constructor arguments say.

    cfg = RNNConfig("LSTM", input_size=8, hidden_size=16, num_layers=2, bidirectional=True, proj_size=4)
    cfg.parameter_shapes()        # {"weight_ih_l0": (64, 8), "weight_hh_l0": (64, 4), ...} in torch's order
    lstm = cfg.module(seed=0)     # reference.LSTM built from it
    RNNConfig.of(torch_lstm)      # read back from a torch.nn or reference module

The modules, the functional core (``reference.stack``), the verifier, the tests,
the benchmarks and the examples all describe a layer with this one type.

Shapes: G gates (1 RNN, 3 GRU, 4 LSTM), H hidden, P output size (proj_size or H),
I input, L layers, D directions.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

MODES = ("RNN_TANH", "RNN_RELU", "GRU", "LSTM")
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}
GATE_NAMES = {"RNN_TANH": ("h",), "RNN_RELU": ("h",), "GRU": ("r", "z", "n"), "LSTM": ("i", "f", "g", "o")}


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def _bool(name: str, value: Any) -> bool:
    if type(value).__name__ not in ("bool", "bool_"):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} {value!r}")
    return bool(value)


@dataclasses.dataclass(frozen=True)
class RNNConfig:
    """torch.nn.RNN/GRU/LSTM's constructor arguments, validated, plus the mode.

    ``mode`` is torch's: "RNN_TANH", "RNN_RELU", "GRU" or "LSTM". ``reset_after``
    (GRU only) picks where the reset gate acts: True is torch's (and cuDNN's,
    ONNX ``linear_before_reset=1``, Keras ``reset_after=True``) form
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``; False is the form of the
    paper that introduced the GRU (ONNX's default, Keras ``reset_after=False``)
    ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``.
    """

    mode: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    proj_size: int = 0
    reset_after: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("input_size", "hidden_size", "num_layers"):
            object.__setattr__(self, name, _int(name, getattr(self, name), 1))
        object.__setattr__(self, "proj_size", _int("proj_size", self.proj_size, 0))
        for name in ("bias", "batch_first", "bidirectional", "reset_after"):
            object.__setattr__(self, name, _bool(name, getattr(self, name)))
        p = self.dropout
        if isinstance(p, bool) or not isinstance(p, numbers.Real):
            raise TypeError(f"dropout: expected a float in [0, 1], got {type(p).__name__} {p!r}")
        if not 0 <= p <= 1:
            raise ValueError(f"dropout: expected a float in [0, 1], got {p}")
        object.__setattr__(self, "dropout", float(p))
        if self.proj_size and self.mode != "LSTM":
            raise ValueError(f"proj_size: only LSTM supports projections, got proj_size={self.proj_size} for {self.mode}")
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size: expected proj_size < hidden_size ({self.hidden_size}), got {self.proj_size}")
        if not self.reset_after and self.mode != "GRU":
            raise ValueError(f"reset_after: only GRU has a reset gate, got reset_after=False for {self.mode}")

    # -- derived sizes -----------------------------------------------------

    @property
    def gates(self) -> int:
        return GATES[self.mode]

    @property
    def gate_names(self) -> tuple[str, ...]:
        return GATE_NAMES[self.mode]

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """P: the size of h (proj_size when projecting, else hidden_size)."""
        return self.proj_size or self.hidden_size

    @property
    def nonlinearity(self) -> str:
        return "relu" if self.mode == "RNN_RELU" else "tanh"

    def suffixes(self) -> tuple[str, ...]:
        """Parameter-name suffix of each direction: "" and, bidirectional, "_reverse"."""
        return ("", "_reverse")[: self.num_directions]

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.num_directions * self.output_size

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """state_dict name -> shape, in torch's order (layer, direction, then ih, hh, biases, hr)."""
        GH, H, P = self.gates * self.hidden_size, self.hidden_size, self.output_size
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            for sfx in self.suffixes():
                k = f"l{layer}{sfx}"
                shapes[f"weight_ih_{k}"] = (GH, self.layer_input_size(layer))
                shapes[f"weight_hh_{k}"] = (GH, P)
                if self.bias:
                    shapes[f"bias_ih_{k}"] = (GH,)
                    shapes[f"bias_hh_{k}"] = (GH,)
                if self.proj_size:
                    shapes[f"weight_hr_{k}"] = (P, H)
        return shapes

    def state_shapes(self, batch: int) -> tuple[tuple[int, ...], ...]:
        """Shapes of hx: ((L*D, B, P),) or, for LSTM, ((L*D, B, P), (L*D, B, H))."""
        LD = self.num_layers * self.num_directions
        h = (LD, batch, self.output_size)
        return (h, (LD, batch, self.hidden_size)) if self.mode == "LSTM" else (h,)

    # -- construction ------------------------------------------------------

    def module(self, *, dtype: Any = None, seed: Any = None) -> Any:
        """The reference module (RNN, GRU or LSTM) with this configuration."""
        import numpy as np

        from .recurrent import GRU, LSTM, RNN

        kwargs = dict(num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first, dropout=self.dropout,
                      bidirectional=self.bidirectional, dtype=np.float64 if dtype is None else dtype, seed=seed)
        if self.mode == "LSTM":
            return LSTM(self.input_size, self.hidden_size, proj_size=self.proj_size, **kwargs)
        if self.mode == "GRU":
            return GRU(self.input_size, self.hidden_size, reset_after=self.reset_after, **kwargs)
        return RNN(self.input_size, self.hidden_size, nonlinearity=self.nonlinearity, **kwargs)

    def replace(self, **changes: Any) -> RNNConfig:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, module: Any) -> RNNConfig:
        """The configuration of a reference or torch.nn RNN/GRU/LSTM (or anything with the same attributes)."""
        cfg = getattr(module, "config", None)
        if isinstance(cfg, RNNConfig):
            return cfg
        mode = getattr(module, "mode", None)
        if mode is None:
            mode = {"LSTM": "LSTM", "GRU": "GRU"}.get(type(module).__name__)
        if mode == "RNN" or (mode is None and type(module).__name__ == "RNN"):
            mode = "RNN_RELU" if getattr(module, "nonlinearity", "tanh") == "relu" else "RNN_TANH"
        missing = [a for a in ("input_size", "hidden_size") if not hasattr(module, a)]
        if mode not in MODES or missing:
            raise TypeError(f"module: expected an RNN, GRU or LSTM (with mode, input_size, hidden_size), "
                            f"got {type(module).__name__}" + (f" without {', '.join(missing)}" if missing else ""))
        return cls(mode, module.input_size, module.hidden_size, getattr(module, "num_layers", 1),
                   bool(getattr(module, "bias", True)), bool(getattr(module, "batch_first", False)),
                   float(getattr(module, "dropout", 0.0)), bool(getattr(module, "bidirectional", False)),
                   int(getattr(module, "proj_size", 0)), bool(getattr(module, "reset_after", True)))
