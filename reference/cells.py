"""RNNCell, GRUCell, LSTMCell: torch's single-step modules, with a backward.

    cell = LSTMCell(10, 20, seed=0)
    (h, c), tape = cell.forward(x, (h0, c0))      # x (B, 10) or unbatched (10,)
    grads = cell.backward(tape, (dh, dc))         # "input", "hx", "weight_ih", ...

``cell(x, hx)`` returns what torch's cell returns. A cell is one step of the
layer loop (``layer.py``) with T = 1: the maths lives in ``rnn_cell.py``,
``gru_cell.py`` and ``lstm_cell.py``; this module adds torch's argument handling
(unbatched input, ``hx=None``), parameters and validation. Like the layers, a
cell runs in the library and on the device of the arrays it is given.

The functions ``rnn_cell_forward`` / ``rnn_cell_backward`` (and GRU, LSTM) are
the same step without a module: weights passed in torch's layout, nothing
checked (call them with the shapes their docstrings give).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._checks import check_bool, check_nonlinearity
from ._namespace import NOT_WIDER, SAME_DTYPE, Placement, as_float, from_numpy, placement_matching, placement_of
from .config import RNNConfig
from .module import ParameterModule
from .stack import StackTape, prepare_stack, stack_backward, stack_forward


class CellTape(NamedTuple):
    """What a cell's forward recorded: read-only, reusable any number of times."""

    owner: object
    version: int
    placement: Any
    stack: StackTape
    batched: bool
    B: int


class _CellBase(ParameterModule):
    _mode: str

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, dtype: Any = np.float64,
                 seed: Any = None, nonlinearity: str = "tanh", **onnx: Any):
        mode = ("RNN_RELU" if nonlinearity == "relu" else "RNN_TANH") if self._mode == "RNN" else self._mode
        self.config = RNNConfig(mode, input_size, hidden_size, bias=check_bool("bias", bias), **onnx)
        self._init_parameters(dtype, seed)

    input_size = property(lambda self: self.config.input_size)
    hidden_size = property(lambda self: self.config.hidden_size)
    bias = property(lambda self: self.config.bias)
    _has_cell_state = property(lambda self: self.config.mode == "LSTM")
    # ONNX's options (RNNConfig documents them); torch's cells have none of them
    activations = property(lambda self: self.config.activations)
    activation_alpha = property(lambda self: self.config.activation_alpha)
    activation_beta = property(lambda self: self.config.activation_beta)
    clip = property(lambda self: self.config.clip)

    def _stack_names(self) -> dict[str, str]:
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
        names += ["weight_p"] if self.config.peephole else []
        return {name: f"{name}_l0" for name in names}

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        s = s if self.bias else s + ", bias=False"
        for name in ("activations", "activation_alpha", "activation_beta", "clip"):
            if getattr(self.config, name) is not None:
                s += f", {name}={getattr(self.config, name)!r}"
        return s + "".join(f", {name}=True" for name in ("input_forget", "peephole") if getattr(self.config, name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()}, dtype={self.dtype.name})"

    def __call__(self, input: Any, hx: Any = None):
        return self.forward(input, hx)[0]

    # -- argument handling -------------------------------------------------

    def _input(self, place: Placement, input: Any) -> tuple[Any, bool]:
        x = as_float(place, "input", input, self.dtype, dtype_rule=SAME_DTYPE)
        if x.ndim not in (1, 2):
            raise ValueError(f"input: expected 1-D (unbatched, I) or 2-D (batched, B x I) input, got a {x.ndim}-D "
                             f"array of shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input: expected {self.input_size} features (input_size) in the last dimension, "
                             f"got shape {tuple(x.shape)}")
        batched = x.ndim == 2
        return (x if batched else place.xp.expand_dims(x, axis=0)), batched  # (B, I)

    def _state(self, place: Placement, name: str, value: Any, B: int, batched: bool, rule: str | None = None) -> Any:
        shape = (B, self.hidden_size)
        if value is None:
            return from_numpy(place, np.zeros(shape, dtype=self.dtype))
        if isinstance(value, (tuple, list)):
            raise TypeError(f"{name}: expected an array, got a {type(value).__name__}")
        h = as_float(place, name, value, self.dtype, dtype_rule=rule)
        expected = shape if batched else shape[1:]
        if tuple(h.shape) != expected:
            raise ValueError(f"{name}: expected shape {expected} ({'batched' if batched else 'unbatched'} input), "
                             f"got {tuple(h.shape)}")
        return h if batched else place.xp.expand_dims(h, axis=0)

    def _pair(self, name: str, value: Any) -> tuple:
        if not self._has_cell_state:
            return (value,)
        if value is None:
            return (None, None)
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{name}: expected a pair (h, c) or None, got {type(value).__name__}"
                            + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""))
        return tuple(value)

    def _states(self, place: Placement, name: str, value: Any, B: int, batched: bool) -> tuple:
        parts = self._pair(name, value)
        if name == "hx" and any(v is None for v in parts) and not all(v is None for v in parts):
            raise TypeError("hx: expected both h and c, or hx=None; got one of them None")
        labels = [f"{name}[{k}]" for k in range(2)] if self._has_cell_state else [name]
        rules = (SAME_DTYPE, NOT_WIDER) if name == "hx" else (None, None)  # h as torch's; c: torch widens a narrower one
        return tuple(self._state(place, label, v, B, batched, rule)
                     for label, v, rule in zip(labels, parts, rules[: len(labels)], strict=True))

    def _unbatch(self, states: tuple, batched: bool):
        states = tuple(s if batched else s[0, ...] for s in states)
        return states if self._has_cell_state else states[0]

    # -- forward / backward ------------------------------------------------

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, CellTape]:
        """Returns (hidden, tape): hidden is h' (or (h', c') for LSTMCell), shaped as torch's.

        Args:
            input: (B, I) or unbatched (I,).
            hx: (B, H) -- for LSTMCell the pair (h, c) -- unbatched (H,); None means zeros.

        Arrays from NumPy, torch or any array API library; the call runs there.
        As in torch, an input or h of another floating dtype than the module's
        raises TypeError naming both and the two fixes (convert the array, or the
        module: ``module.astype(dtype)``); LSTMCell's c of a narrower one is
        widened (exactly), a wider one raises. Lists have no dtype and take the
        module's. Integer, bool, complex or object arrays raise TypeError. Bad shapes
        raise ValueError; the caller's arrays are never written.
        """
        place = placement_of(input=input, hx=hx)
        x, batched = self._input(place, input)  # (B, I)
        B = x.shape[0]
        states = self._states(place, "hx", hx, B, batched)  # ((B, H),) or ((B, H), (B, H))
        version, weights = self._snapshot(place)
        xp = place.xp
        with np.errstate(all="ignore"):  # Inf and NaN follow IEEE arithmetic, silently, as in torch
            _, finals, stack = stack_forward(place, self.config, weights, xp.expand_dims(x, axis=0),
                                             tuple(xp.expand_dims(s, axis=0) for s in states))
        hidden = tuple(f[0, ...] for f in finals)  # ((B, H),) or with c
        return self._unbatch(hidden, batched), CellTape(self._owner, version, place, stack, batched, B)

    def backward(self, tape: CellTape, grad_hidden: Any = None) -> dict[str, Any]:
        """Gradients given dL/d(what forward returned).

        Returns a dict with "input", "hx" (for LSTMCell a pair; present even when
        forward had hx=None) and one entry per state_dict key, shaped like them.
        """
        self._check_tape(tape, CellTape)
        place = placement_matching(tape.placement, grad_hidden=grad_hidden)
        if self._has_cell_state and grad_hidden is not None and (
                not isinstance(grad_hidden, (tuple, list)) or len(grad_hidden) != 2):
            raise TypeError(f"grad_hidden: expected a pair (dh, dc) whose items may be None, got "
                            f"{type(grad_hidden).__name__}"
                            + (f" of length {len(grad_hidden)}" if isinstance(grad_hidden, (tuple, list)) else ""))
        labels = ["grad_hidden[0]", "grad_hidden[1]"] if self._has_cell_state else ["grad_hidden"]
        parts = self._pair("grad_hidden", grad_hidden)
        dstates = tuple(self._state(place, label, v, tape.B, tape.batched) for label, v in zip(labels, parts, strict=True))
        xp = place.xp
        with np.errstate(all="ignore"):
            g = stack_backward(place, self.config, tape.stack, None, tuple(xp.expand_dims(d, axis=0) for d in dstates))
        dx = g.dx[0, ...]  # (B, I)
        grads: dict[str, Any] = {"input": dx if tape.batched else dx[0, ...],
                                 "hx": self._unbatch(tuple(d[0, ...] for d in g.dstates0), tape.batched)}
        grads.update((own, g.params[stack]) for own, stack in self._stack_names().items())
        return grads


class RNNCell(_CellBase):
    """torch.nn.RNNCell, one step of ``RNN``::

        h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)        act = tanh or relu

    Shapes (B batch, I input_size, H hidden_size)::

        input  (B, I), or unbatched (I,)
        hx, h' (B, H), or unbatched (H,)
        weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh (G*H,): G = 1 gate blocks of H rows

    ``forward(input, hx)`` returns (h', tape); ``backward(tape, grad_hidden)`` the gradients."""

    _mode = "RNN"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 *, dtype: Any = np.float64, seed: Any = None, activations: tuple[str, ...] | None = None,
                 activation_alpha: tuple[float, ...] | None = None, activation_beta: tuple[float, ...] | None = None,
                 clip: float | None = None):
        super().__init__(input_size, hidden_size, bias, dtype=dtype, seed=seed,
                         nonlinearity=check_nonlinearity(nonlinearity), activations=activations,
                         activation_alpha=activation_alpha, activation_beta=activation_beta, clip=clip)

    nonlinearity = property(lambda self: self.config.nonlinearity)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"


class GRUCell(_CellBase):
    """torch.nn.GRUCell, one step of ``GRU``::

        r  = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)          reset gate
        z  = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)          update gate
        n  = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))       new gate: b_hn inside the reset product
        h' = (1 - z) * n + z * h

    Shapes (B batch, I input_size, H hidden_size)::

        input  (B, I), or unbatched (I,)
        hx, h' (B, H), or unbatched (H,)
        weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh (G*H,): G = 3 gate blocks of H rows, r, z, n

    ``forward(input, hx)`` returns (h', tape); ``backward(tape, grad_hidden)`` the gradients."""

    _mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, dtype: Any = np.float64,
                 seed: Any = None, activations: tuple[str, ...] | None = None,
                 activation_alpha: tuple[float, ...] | None = None, activation_beta: tuple[float, ...] | None = None,
                 clip: float | None = None):
        super().__init__(input_size, hidden_size, bias, dtype=dtype, seed=seed, activations=activations,
                         activation_alpha=activation_alpha, activation_beta=activation_beta, clip=clip)


class LSTMCell(_CellBase):
    """torch.nn.LSTMCell, one step of ``LSTM``; hx is the pair (h, c)::

        i  = sigmoid(x W_ii^T + b_ii + h W_hi^T + b_hi)          input gate
        f  = sigmoid(x W_if^T + b_if + h W_hf^T + b_hf)          forget gate
        g  = tanh(x W_ig^T + b_ig + h W_hg^T + b_hg)             cell candidate
        o  = sigmoid(x W_io^T + b_io + h W_ho^T + b_ho)          output gate
        c' = f * c + i * g
        h' = o * tanh(c')

    Shapes (B batch, I input_size, H hidden_size)::

        input  (B, I), or unbatched (I,)
        hx = (h, c), (h', c')  (B, H) each, or unbatched (H,)
        weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh (G*H,): G = 4 gate blocks of H rows, i, f, g, o

    ``forward(input, hx)`` returns ((h', c'), tape); ``backward(tape, (dh', dc'))`` the
    gradients. ONNX's peepholes are the parameter ``weight_p`` (3H,): p_i, p_f, p_o."""

    _mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, dtype: Any = np.float64,
                 seed: Any = None, activations: tuple[str, ...] | None = None,
                 activation_alpha: tuple[float, ...] | None = None, activation_beta: tuple[float, ...] | None = None,
                 clip: float | None = None, input_forget: bool = False, peephole: bool = False):
        super().__init__(input_size, hidden_size, bias, dtype=dtype, seed=seed, activations=activations,
                         activation_alpha=activation_alpha, activation_beta=activation_beta, clip=clip,
                         input_forget=input_forget, peephole=peephole)

    input_forget = property(lambda self: self.config.input_forget)
    peephole = property(lambda self: self.config.peephole)


# -- the same step as plain functions ----------------------------------------------


class CellCache(NamedTuple):
    config: RNNConfig
    placement: Any
    stack: StackTape


def _cell_forward(mode: str, x: Any, states: tuple, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> tuple:
    place = placement_of(x=x, states=states, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
    xp = place.xp
    cfg = RNNConfig(mode, w_ih.shape[1], w_hh.shape[1], bias=b_ih is not None)
    params = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
    weights = prepare_stack(place, cfg, {k: v for k, v in params.items() if v is not None})
    with np.errstate(all="ignore"):
        _, finals, stack = stack_forward(place, cfg, weights, xp.expand_dims(x, axis=0),
                                         tuple(xp.expand_dims(s, axis=0) for s in states))
    return tuple(f[0, ...] for f in finals), CellCache(cfg, place, stack)


def _cell_backward(dstates: tuple, cache: CellCache) -> dict[str, Any]:
    xp = cache.placement.xp
    with np.errstate(all="ignore"):
        g = stack_backward(cache.placement, cache.config, cache.stack, None,
                           tuple(xp.expand_dims(d, axis=0) for d in dstates))
    dh0 = tuple(d[0, ...] for d in g.dstates0)
    grads = {"input": g.dx[0, ...], "hx": dh0 if len(dh0) == 2 else dh0[0]}
    grads.update((name[: -len("_l0")], value) for name, value in g.params.items())
    return grads


def rnn_cell_forward(x: Any, h_prev: Any, w_ih: Any, w_hh: Any, b_ih: Any = None, b_hh: Any = None,
                     nonlinearity: str = "tanh") -> tuple[Any, CellCache]:
    """One RNN step on a batch. x (B, I), h_prev (B, H), w_ih (H, I), w_hh (H, H), b_ih, b_hh (H,) or
    both None. Returns h (B, H) and the cache for ``rnn_cell_backward``."""
    (h,), cache = _cell_forward("RNN_RELU" if nonlinearity == "relu" else "RNN_TANH", x, (h_prev,), w_ih, w_hh,
                                b_ih, b_hh)
    return h, cache


def rnn_cell_backward(dh: Any, cache: CellCache) -> dict[str, Any]:
    """"input" (B, I), "hx" (B, H), "weight_ih", "weight_hh" and, with biases, "bias_ih", "bias_hh"."""
    return _cell_backward((dh,), cache)


def gru_cell_forward(x: Any, h_prev: Any, w_ih: Any, w_hh: Any, b_ih: Any = None,
                     b_hh: Any = None) -> tuple[Any, CellCache]:
    """One GRU step on a batch. x (B, I), h_prev (B, H), w_ih (3H, I), w_hh (3H, H), b_ih, b_hh (3H,)
    or both None. Returns h (B, H) and the cache for ``gru_cell_backward``."""
    (h,), cache = _cell_forward("GRU", x, (h_prev,), w_ih, w_hh, b_ih, b_hh)
    return h, cache


def gru_cell_backward(dh: Any, cache: CellCache) -> dict[str, Any]:
    """"input" (B, I), "hx" (B, H), "weight_ih", "weight_hh" and, with biases, "bias_ih", "bias_hh"."""
    return _cell_backward((dh,), cache)


def lstm_cell_forward(x: Any, h_prev: Any, c_prev: Any, w_ih: Any, w_hh: Any, b_ih: Any = None,
                      b_hh: Any = None) -> tuple[tuple[Any, Any], CellCache]:
    """One LSTM step on a batch. x (B, I), h_prev and c_prev (B, H), w_ih (4H, I), w_hh (4H, H), b_ih,
    b_hh (4H,) or both None. Returns (h, c) and the cache for ``lstm_cell_backward``."""
    hc, cache = _cell_forward("LSTM", x, (h_prev, c_prev), w_ih, w_hh, b_ih, b_hh)
    return hc, cache


def lstm_cell_backward(dh: Any, dc: Any, cache: CellCache) -> dict[str, Any]:
    """"input" (B, I), "hx" = (dh_prev, dc_prev), "weight_ih", "weight_hh" and, with biases, "bias_ih", "bias_hh"."""
    return _cell_backward((dh, dc), cache)
