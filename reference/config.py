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
import math
import numbers
from typing import Any

import numpy as np

from .activations import ONNX_ACTIVATIONS, ONNX_ARGUMENT_DEFAULTS, Activation

MODES = ("RNN_TANH", "RNN_RELU", "GRU", "LSTM")
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}
GATE_NAMES = {"RNN_TANH": ("h",), "RNN_RELU": ("h",), "GRU": ("r", "z", "n"), "LSTM": ("i", "f", "g", "o")}
ACTIVATION_COUNT = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 2, "LSTM": 3}  # f (RNN); f, g (GRU); f, g, h (LSTM)
DEFAULT_ACTIVATIONS = {"RNN_TANH": ("Tanh",), "RNN_RELU": ("Relu",), "GRU": ("Sigmoid", "Tanh"),
                       "LSTM": ("Sigmoid", "Tanh", "Tanh")}
_ACTIVATION_NAMES = {name.lower(): name for name in ONNX_ACTIVATIONS}


_MODULE_CLASSES: dict[str, Any] = {}  # "RNN", "GRU", "LSTM" -> the classes RNNConfig.module builds


def register_module_classes(rnn: Any, gru: Any, lstm: Any) -> None:
    """Name the classes ``RNNConfig.module`` builds. ``reference.recurrent`` defines them on
    top of this module and calls this once, so that this module imports none of its users."""
    _MODULE_CLASSES.update(RNN=rnn, GRU=gru, LSTM=lstm)


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


def _tuple(value: Any) -> Any:
    return None if value is None else tuple(value)


def _clip(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"clip: expected a positive float or None, got {type(value).__name__} {value!r}")
    clip = float(value)
    if not clip > 0:  # NaN fails too
        raise ValueError(f"clip: expected a positive float (the gates' pre-activations are clipped to "
                         f"[-clip, clip]) or None, got {value}")
    return None if math.isinf(clip) else clip


def _numbers(name: str, value: Any, n: int) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(f"{name}: expected a tuple of {n} floats (one per activation) or None, "
                        f"got {type(value).__name__} {value!r}")
    if len(value) != n:
        raise ValueError(f"{name}: expected {n} floats, one per entry of activations, got {len(value)}: {tuple(value)}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name}: expected floats, got {type(v).__name__} {v!r} in {tuple(value)}")
        if not math.isfinite(float(v)):
            raise ValueError(f"{name}: expected finite floats, got {v} in {tuple(value)}")
    return tuple(float(v) for v in value)


def _activations(mode: str, D: int, activations: Any, alpha: Any, beta: Any) -> tuple:
    """Validated (mode, activations, activation_alpha, activation_beta); a mode's defaults become None."""
    if activations is None:
        for name, value in (("activation_alpha", alpha), ("activation_beta", beta)):
            if value is not None:
                raise ValueError(f"{name}: given without activations (the default functions take no {name[11:]}); "
                                 f"got {value!r}")
        return mode, None, None, None
    n = ACTIVATION_COUNT[mode] * D
    if isinstance(activations, (str, bytes)) or not isinstance(activations, (tuple, list)):
        raise TypeError(f"activations: expected a tuple of {n} names or None, got {type(activations).__name__} "
                        f"{activations!r}")
    if len(activations) != n:
        raise ValueError(f"activations: expected {n} names for {mode} ({ACTIVATION_COUNT[mode]} per direction, "
                         f"{D} direction{'s' if D > 1 else ''}), got {len(activations)}: {tuple(activations)}")
    names = []
    for a in activations:
        if not isinstance(a, str):
            raise TypeError(f"activations: expected names (str), got {type(a).__name__} {a!r}")
        if a.lower() not in _ACTIVATION_NAMES:
            raise ValueError(f"activations: {a!r} is not one of ONNX's activation functions "
                             f"({', '.join(ONNX_ACTIVATIONS)})")
        names.append(_ACTIVATION_NAMES[a.lower()])
    alpha = None if alpha is None else _numbers("activation_alpha", alpha, n)
    beta = None if beta is None else _numbers("activation_beta", beta, n)
    for k, name in enumerate(names):
        for label, given, default in (("activation_alpha", alpha, ONNX_ARGUMENT_DEFAULTS[name][0]),
                                      ("activation_beta", beta, ONNX_ARGUMENT_DEFAULTS[name][1])):
            if given is None and default is not None and math.isnan(default):
                raise ValueError(f"{label}: {name} (activations[{k}]) has no default in ONNX's specs; give "
                                 f"activation_alpha and activation_beta")
    if mode.startswith("RNN_") and len(set(names)) == 1 and names[0] in ("Tanh", "Relu"):
        return ("RNN_TANH" if names[0] == "Tanh" else "RNN_RELU"), None, None, None
    if tuple(names) == DEFAULT_ACTIVATIONS[mode] * D:
        return mode, None, None, None
    return mode, tuple(names), alpha, beta


def aligned_activation_arguments(activations: Any, alpha: Any = None, beta: Any = None) -> tuple:
    """ONNX's ``activation_alpha`` / ``activation_beta`` attributes -> RNNConfig's, one per activation.

    The attributes list values only for the functions that take them, in the order of
    ``activations`` (ONNX Runtime's reading; a function past the end of the list takes
    its default). Returns (alpha, beta) tuples aligned with ``activations``: a function's
    default where the list ran out, 0.0 where the function takes no such argument.
    """
    out = []
    for k, (values, name) in enumerate(((alpha, "activation_alpha"), (beta, "activation_beta"))):
        rest = list(values or ())
        aligned = []
        for act in activations:
            if str(act).lower() not in _ACTIVATION_NAMES:
                raise ValueError(f"activations: {act!r} is not one of ONNX's activation functions "
                                 f"({', '.join(ONNX_ACTIVATIONS)})")
            default = ONNX_ARGUMENT_DEFAULTS[_ACTIVATION_NAMES[str(act).lower()]][k]
            if default is None:
                aligned.append(0.0)
            elif rest:
                aligned.append(float(rest.pop(0)))
            elif math.isnan(default):
                raise ValueError(f"{name}: {act} takes a value and has no default in ONNX's specs; got {values!r}")
            else:
                aligned.append(default)
        if rest:
            raise ValueError(f"{name}: {len(rest)} value(s) more than {tuple(activations)} take: {values!r}")
        out.append(tuple(aligned))
    return out[0], out[1]


def compact_activation_arguments(activations: Any, alpha: Any = None, beta: Any = None) -> tuple[list, list]:
    """RNNConfig's ``activation_alpha`` / ``activation_beta`` (one per activation) -> ONNX's attributes, which
    list values only for the functions that take them (the inverse of :func:`aligned_activation_arguments`)."""
    out = []
    for k, values in enumerate((alpha, beta)):
        takes = [ONNX_ARGUMENT_DEFAULTS[_ACTIVATION_NAMES[str(a).lower()]][k] is not None for a in activations]
        out.append([] if values is None else [float(v) for v, t in zip(values, takes, strict=True) if t])
    return out[0], out[1]


@dataclasses.dataclass(frozen=True)
class RNNConfig:
    """torch.nn.RNN/GRU/LSTM's constructor arguments, validated, plus the mode.

    ``mode`` is torch's: "RNN_TANH", "RNN_RELU", "GRU" or "LSTM". ``reset_after``
    (GRU only) picks where the reset gate acts: True is torch's (and cuDNN's,
    ONNX ``linear_before_reset=1``, Keras ``reset_after=True``) form
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``; False is the form of the
    paper that introduced the GRU (ONNX's default, Keras ``reset_after=False``)
    ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``.

    The rest are ONNX's LSTM, GRU and RNN operators' options (every default is torch's):

    * ``reverse``: one direction, run from the last step to the first (ONNX
      ``direction="reverse"``); not with ``bidirectional``.
    * ``activations``: ONNX's names of the gate functions, f, g, h for LSTM (default
      Sigmoid, Tanh, Tanh), f, g for GRU (Sigmoid, Tanh), f for RNN (Tanh; Relu for
      RNN_RELU), one list per direction, concatenated as ONNX lists them. Names are
      matched case-insensitively and kept in the specs' case; lists that are a mode's
      defaults are stored as None (and Tanh or Relu everywhere as RNN_TANH or RNN_RELU).
    * ``activation_alpha``, ``activation_beta``: one number per entry of
      ``activations`` (ignored by the functions that take none); None gives each
      function ONNX's default (``reference.activations``). ONNX's attributes list
      only the functions that take them; ``aligned_activation_arguments`` converts.
    * ``clip``: each gate's pre-activation (the input of f and g; not LSTM's h(c))
      is clipped to [-clip, clip]; its derivative is 0 outside, 1 on the interval.
    * ``input_forget`` (LSTM): f = 1 - i; the forget gate's weights are unused.
    * ``peephole`` (LSTM): parameters ``weight_p_l{k}{sfx}`` (3H,) holding p_i, p_f,
      p_o: a_i += p_i * c_{t-1}, a_f += p_f * c_{t-1}, a_o += p_o * c_t.

    Any of activations, clip, input_forget or peephole selects the cells' general form
    (``general``); the default configuration runs torch's cells as they are.

    Shapes (``parameter_shapes``, ``state_shapes``; G = ``gates``: 1 RNN, 3 GRU, 4 LSTM; H
    hidden_size; P = ``output_size``: proj_size or H; I_l the input of layer l: input_size for
    l = 0, else D*P; L num_layers; D = ``num_directions``)::

        weight_ih_l{l}{sfx} (G*H, I_l)    weight_hh_l{l}{sfx} (G*H, P)    bias_ih, bias_hh (G*H,)
        weight_hr_l{l}{sfx} (P, H)        LSTM with proj_size:  h = (o * tanh(c)) W_hr^T
        weight_p_l{l}{sfx} (3H,)          LSTM with peephole:   p_i, p_f, p_o
        h_0 (L*D, B, P), c_0 (L*D, B, H)  sfx = "" or "_reverse"
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
    reverse: bool = False
    activations: tuple[str, ...] | None = None
    activation_alpha: tuple[float, ...] | None = None
    activation_beta: tuple[float, ...] | None = None
    clip: float | None = None
    input_forget: bool = False
    peephole: bool = False

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
        self._check_onnx_options()

    def _check_onnx_options(self) -> None:
        set_ = object.__setattr__
        for name in ("reverse", "input_forget", "peephole"):
            set_(self, name, _bool(name, getattr(self, name)))
        if self.reverse and self.bidirectional:
            raise ValueError("reverse: one direction run in reverse; got reverse=True with bidirectional=True "
                             "(which already runs a reverse direction)")
        for name in ("input_forget", "peephole"):
            if getattr(self, name) and self.mode != "LSTM":
                raise ValueError(f"{name}: only LSTM has it, got {name}=True for {self.mode}")
        set_(self, "clip", _clip(self.clip))
        mode, acts, alpha, beta = _activations(self.mode, self.num_directions, self.activations,
                                               self.activation_alpha, self.activation_beta)
        set_(self, "mode", mode)
        set_(self, "activations", acts)
        set_(self, "activation_alpha", alpha)
        set_(self, "activation_beta", beta)

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
    def general(self) -> bool:
        """Whether a layer needs the cells' general form (ONNX's activations, clip, input_forget, peepholes)."""
        return self.activations is not None or self.clip is not None or self.input_forget or self.peephole

    def gate_functions(self, direction: int = 0) -> tuple[Activation, ...]:
        """The gate functions of one direction with their alpha and beta: f, g, h (LSTM), f, g (GRU), f (RNN)."""
        n = ACTIVATION_COUNT[self.mode]
        names = self.activations[direction * n : (direction + 1) * n] if self.activations else DEFAULT_ACTIVATIONS[self.mode]
        out = []
        for k, name in enumerate(names, start=direction * n):
            a, b = ONNX_ARGUMENT_DEFAULTS[name]
            alpha = self.activation_alpha[k] if self.activation_alpha is not None and a is not None else a
            beta = self.activation_beta[k] if self.activation_beta is not None and b is not None else b
            out.append(Activation(name, 0.0 if alpha is None else alpha, 0.0 if beta is None else beta))
        return tuple(out)

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
                if self.peephole:
                    shapes[f"weight_p_{k}"] = (3 * H,)
        return shapes

    def state_shapes(self, batch: int) -> tuple[tuple[int, ...], ...]:
        """Shapes of hx: ((L*D, B, P),) or, for LSTM, ((L*D, B, P), (L*D, B, H))."""
        LD = self.num_layers * self.num_directions
        h = (LD, batch, self.output_size)
        return (h, (LD, batch, self.hidden_size)) if self.mode == "LSTM" else (h,)

    # -- construction ------------------------------------------------------

    def module(self, *, dtype: Any = None, seed: Any = None) -> Any:
        """The reference module (RNN, GRU or LSTM) with this configuration."""
        RNN, GRU, LSTM = (_MODULE_CLASSES[name] for name in ("RNN", "GRU", "LSTM"))
        kwargs = dict(num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first, dropout=self.dropout,
                      bidirectional=self.bidirectional, dtype=np.float64 if dtype is None else dtype, seed=seed,
                      reverse=self.reverse, activations=self.activations, activation_alpha=self.activation_alpha,
                      activation_beta=self.activation_beta, clip=self.clip)
        if self.mode == "LSTM":
            return LSTM(self.input_size, self.hidden_size, proj_size=self.proj_size, input_forget=self.input_forget,
                        peephole=self.peephole, **kwargs)
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
                   int(getattr(module, "proj_size", 0)), bool(getattr(module, "reset_after", True)),
                   bool(getattr(module, "reverse", False)), _tuple(getattr(module, "activations", None)),
                   _tuple(getattr(module, "activation_alpha", None)), _tuple(getattr(module, "activation_beta", None)),
                   getattr(module, "clip", None), bool(getattr(module, "input_forget", False)),
                   bool(getattr(module, "peephole", False)))
