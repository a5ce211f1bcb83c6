"""The configuration a candidate is checked at: torch's constructor arguments plus training and GRU's form.

A :class:`Spec` is the project's ``RNNConfig`` (which validates it and derives
every shape) plus ``training``; it is what a function candidate receives (localisation varies it:
one layer alone, T=1 steps), what the report prints, and what builds the
float64 reference module, the truth every candidate is measured against.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from ..config import GATE_NAMES, RNNConfig

GATES = {mode: () if mode.startswith("RNN") else letters for mode, letters in GATE_NAMES.items()}  # gates to isolate
_NAME = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr|weight_p)_l(\d+)(_reverse)?$")
# RNNConfig's fields for ONNX's operator variants, with torch's behaviour as their defaults
ONNX_FIELDS: dict[str, Any] = {"reverse": False, "activations": None, "activation_alpha": None,
                               "activation_beta": None, "clip": None, "input_forget": False, "peephole": False}


def core_supports(name: str) -> bool:
    """Does the core's RNNConfig have the field ``name`` (one of :data:`ONNX_FIELDS`)?"""
    return name in {f.name for f in fields(RNNConfig)}


@dataclass(frozen=True)
class Spec:
    """A recurrent configuration in torch's terms (``mode`` as torch's ``RNNBase.mode``).

    ``reset_after=False`` is GRU's paper form, n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)
    (ONNX ``linear_before_reset=0``, Keras ``reset_after=False``); torch's form is the default.
    The fields after it are RNNConfig's for ONNX's operators (:data:`ONNX_FIELDS`, defaults
    torch's behaviour): a reverse-only direction, ONNX's activations with their alpha and beta,
    ``clip``, ``input_forget`` and peepholes (``weight_p_l{k}``, (3H,), rows i, f, o).
    """

    mode: str  # "RNN_TANH", "RNN_RELU", "GRU", "LSTM"
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    bidirectional: bool = False
    proj_size: int = 0
    dropout: float = 0.0
    training: bool = False
    reset_after: bool = True
    reverse: bool = False
    activations: tuple[str, ...] | None = None
    activation_alpha: tuple[float, ...] | None = None
    activation_beta: tuple[float, ...] | None = None
    clip: float | None = None
    input_forget: bool = False
    peephole: bool = False

    def __post_init__(self):
        if not isinstance(self.training, (bool, np.bool_)):
            raise TypeError(f"training: expected a bool, got {self.training!r}")
        config = self.config  # RNNConfig validates every layer field, with its messages
        for name in ("mode", *(k for k in ONNX_FIELDS if core_supports(k))):  # its normal form (a mode's default
            object.__setattr__(self, name, getattr(config, name))  # activations are None, names in the specs' case)

    # -- derived sizes -----------------------------------------------------------

    @property
    def D(self) -> int:
        return self.config.num_directions

    @property
    def P(self) -> int:
        """The size of h: proj_size when projecting, else hidden_size."""
        return self.config.output_size

    @property
    def G(self) -> int:
        return self.config.gates

    @property
    def gates(self) -> tuple[str, ...]:
        return GATES[self.mode]

    @property
    def lstm(self) -> bool:
        return self.mode == "LSTM"

    @property
    def dropout_active(self) -> bool:
        return self.training and self.dropout > 0 and self.num_layers > 1

    @property
    def torch_class(self) -> str:
        return {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(self.mode, self.mode)

    def torch_kwargs(self) -> dict[str, Any]:
        """Keywords of torch.nn.<torch_class>(input_size, hidden_size, **kw) (batch_first=False)."""
        kw: dict[str, Any] = {"num_layers": self.num_layers, "bias": self.bias, "batch_first": False,
                              "dropout": self.dropout, "bidirectional": self.bidirectional}
        if self.lstm:
            kw["proj_size"] = self.proj_size
        if self.torch_class == "RNN":
            kw["nonlinearity"] = "tanh" if self.mode == "RNN_TANH" else "relu"
        return kw

    def state_shapes(self, B: int) -> list[tuple[int, ...]]:
        """[h_0 (L*D, B, P)] or [h_0, c_0 (L*D, B, H)]."""
        return list(self.config.state_shapes(B))

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """state_dict name -> shape, in torch's order."""
        return self.config.parameter_shapes()

    def layer(self, layer: int) -> Spec:
        """Layer ``layer`` alone: one layer, both directions, no dropout."""
        return replace(self, input_size=self.input_size if layer == 0 else self.D * self.P, num_layers=1,
                       dropout=0.0, training=False)

    def layers(self, first: int, stop: int) -> Spec:
        """Layers ``first``..``stop``-1 alone: one is :meth:`layer`; several keep the dropout between them."""
        if stop - first == 1:
            return self.layer(first)
        return replace(self, input_size=self.input_size if first == 0 else self.D * self.P, num_layers=stop - first)

    def differences(self, other: Spec) -> list[str]:
        """'field: a != b' for every configuration field that differs (training excluded)."""
        return [f"{f.name}: {getattr(self, f.name)!r} != {getattr(other, f.name)!r}" for f in fields(self)
                if f.name != "training" and getattr(self, f.name) != getattr(other, f.name)]

    # -- the reference ---------------------------------------------------------------

    @property
    def config(self) -> RNNConfig:
        """The project's one configuration type for this layer (time-major); Spec adds ``training``."""
        extra = self.onnx_options()
        missing = sorted(k for k in extra if not core_supports(k))
        if missing:
            raise ValueError(f"spec: {', '.join(f'{k}={extra[k]!r}' for k in missing)}: the core's RNNConfig has no "
                             f"such field (it runs {', '.join(f'{k}={ONNX_FIELDS[k]!r}' for k in missing)} only)")
        return RNNConfig(self.mode, int(self.input_size), int(self.hidden_size), int(self.num_layers), bool(self.bias),
                         False, float(self.dropout), bool(self.bidirectional), int(self.proj_size),
                         bool(self.reset_after), **extra)

    def onnx_options(self) -> dict[str, Any]:
        """The ONNX fields (:data:`ONNX_FIELDS`) that differ from their defaults (torch's behaviour)."""
        return {k: getattr(self, k) for k, v in ONNX_FIELDS.items() if getattr(self, k) != v}

    def reference(self, params: Mapping[str, Any] | None = None, seed: Any = 0, dtype: Any = np.float64) -> Any:
        """A reference module of this configuration (weights from ``params``, else drawn at torch's scale)."""
        import warnings

        with warnings.catch_warnings():  # dropout with one layer: a warning, as torch gives
            warnings.simplefilter("ignore", UserWarning)
            m = self.config.module(dtype=dtype, seed=seed)
        if params is not None:
            m.load_state_dict(params)
        return m.train(self.training)

    # -- printing and construction -------------------------------------------------

    def __str__(self) -> str:
        s = f"{self.torch_class}({self.input_size}, {self.hidden_size}"
        defaults = {"num_layers": 1, "bias": True, "bidirectional": False, "proj_size": 0, "dropout": 0.0}
        for name, default in defaults.items():
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.reset_after:
            s += ", reset_after=False"
        s += "".join(f", {k}={v!r}" for k, v in self.onnx_options().items())
        return s + (", training)" if self.dropout_active else ")")

    @classmethod
    def coerce(cls, value: Any) -> Spec:
        """A Spec from a Spec, a dict of its fields, or anything with a ``.config`` / RNNConfig-like fields."""
        if isinstance(value, Spec):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {f.name for f in fields(cls)})
            if unknown:
                raise ValueError(f"spec: unknown fields {unknown}; expected some of {[f.name for f in fields(cls)]}")
            return cls(**value)
        config = getattr(value, "config", value)
        if all(hasattr(config, k) for k in ("mode", "input_size", "hidden_size", "num_layers")):
            return cls(config.mode, int(config.input_size), int(config.hidden_size), int(config.num_layers),
                       bool(getattr(config, "bias", True)), bool(getattr(config, "bidirectional", False)),
                       int(getattr(config, "proj_size", 0)), float(getattr(config, "dropout", 0.0)),
                       bool(getattr(value, "training", False)), bool(getattr(config, "reset_after", True)),
                       **{k: getattr(config, k) for k in ONNX_FIELDS if hasattr(config, k)})
        raise TypeError(f"spec: expected a Spec, a dict of Spec fields or an RNNConfig, got {type(value).__name__}")

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Any], mode: str | None = None, **overrides: Any) -> Spec:
        """The configuration that torch-named parameter shapes imply.

        ``mode`` is needed only where shapes cannot tell: a one-gate RNN is tanh
        unless ``mode="RNN_RELU"``. Other fields (``dropout``, ``training``,
        ``reset_after``) come from ``overrides``. Raises ValueError naming the
        key when the shapes are not those of one torch recurrent module.
        """
        check_real(state_dict, "state_dict")
        names = {}
        for key in state_dict:
            m = _NAME.match(key)
            if m is None:
                raise ValueError(f"state_dict: unexpected key {key!r}; expected torch's recurrent parameter names "
                                 "(weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, weight_hr_l0, ..._reverse)")
            names[key] = m.groups()
        shape = {k: tuple(np.shape(v)) for k, v in state_dict.items()}
        if "weight_ih_l0" not in shape or "weight_hh_l0" not in shape:
            raise ValueError(f"state_dict: expected weight_ih_l0 and weight_hh_l0, got keys {sorted(state_dict)}")
        num_layers = 1 + max(int(g[1]) for g in names.values())
        bidirectional = any(g[2] for g in names.values())
        GH, P = shape["weight_hh_l0"]
        hidden = shape["weight_hr_l0"][1] if "weight_hr_l0" in shape else P
        if GH % hidden:
            raise ValueError(f"state_dict: weight_hh_l0 has {GH} rows, not a multiple of hidden_size {hidden}")
        by_g = {1: "RNN_TANH", 3: "GRU", 4: "LSTM"}
        if mode is None:
            mode = by_g.get(GH // hidden)
            if mode is None:
                raise ValueError(f"state_dict: weight_hh_l0 has {GH // hidden} gate blocks of {hidden} rows; "
                                 "expected 1 (RNN), 3 (GRU) or 4 (LSTM)")
        mode = {"RNN": "RNN_TANH"}.get(mode, mode)
        spec = cls(mode, int(shape["weight_ih_l0"][1]), int(hidden), num_layers, "bias_ih_l0" in shape,
                   bidirectional, int(P if "weight_hr_l0" in shape else 0), **overrides)
        expected = spec.parameter_shapes()
        wrong = [f"{k}: expected {expected[k]}, got {shape.get(k)}" for k in expected if shape.get(k) != expected[k]]
        extra = sorted(set(shape) - set(expected))
        if wrong or extra:
            raise ValueError(f"state_dict: shapes do not form one {spec}: " + "; ".join(wrong + [f"unexpected {extra}"]
                                                                                           if extra else wrong))
        return spec


def check_real(arrays: Mapping[str, Any], what: str) -> None:
    """TypeError naming the first key whose values are not real numbers (complex, bool, objects, strings):
    a weight of such a dtype has no place in the equations, and casting it would change or drop values."""
    for key, value in arrays.items():
        dtype = getattr(value, "dtype", None)
        try:
            kind = np.dtype(dtype).kind if dtype is not None else np.asarray(value).dtype.kind
        except TypeError:  # a dtype NumPy does not know (torch's bfloat16): a float, judged where it is run
            kind = "f" if "float" in str(dtype) else "?"
        if kind not in "fiu":
            raise TypeError(f"{what}: {key} holds values of dtype {dtype or np.asarray(value).dtype!s}; expected "
                            "real numbers (float or integer arrays)")


def split_name(name: str) -> tuple[str, int, int]:
    """'weight_hh_l1_reverse' -> ('weight_hh', 1, 1): base name, layer, direction."""
    m = _NAME.match(name)
    if m is None:
        raise ValueError(f"parameter name: expected torch's recurrent names like 'weight_ih_l0', got {name!r}")
    return m.group(1), int(m.group(2)), 1 if m.group(3) else 0


def layer_params(params: Mapping[str, Any], layer: int) -> dict[str, Any]:
    """Layer ``layer``'s parameters, renamed to layer 0 (a one-layer problem's names)."""
    out = {}
    for k, v in params.items():
        base, lay, d = split_name(k)
        if lay == layer:
            out[f"{base}_l0{'_reverse' if d else ''}"] = v
    return out


def direction_name(d: int) -> str:
    return "reverse" if d else "forward"
