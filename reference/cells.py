"""RNNCell, GRUCell, LSTMCell: torch's single-step modules, with a backward.

    cell = LSTMCell(10, 20, seed=0)
    (h, c), tape = cell.forward(x, (h0, c0))      # x (B, 10) or unbatched (10,)
    grads = cell.backward(tape, (dh, dc))         # "input", "hx", "weight_ih", ...

``cell(x, hx)`` returns what torch's cell returns. The maths lives in
``rnn_cell.py``, ``gru_cell.py`` and ``lstm_cell.py``; this module adds torch's
argument handling (unbatched input, ``hx=None``), parameters and validation.

The pure functions (``rnn_cell_forward``, ``lstm_cell_backward``, ...) check
nothing: they trust their caller for shapes and dtypes, as the BPTT loop does.
Call them directly only with arrays shaped as their docstrings say.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._checks import (
    as_float_array,
    check_bool,
    check_ndim,
    check_nonlinearity,
    check_positive_int,
    check_shape,
    check_tape,
)
from .gru_cell import gru_cell_backward, gru_cell_forward
from .lstm_cell import lstm_cell_backward, lstm_cell_forward
from .module import ParameterModule
from .rnn_cell import rnn_cell_backward, rnn_cell_forward


class CellTape(NamedTuple):
    """What a cell's forward recorded: read-only arrays, reusable any number of times."""

    owner: object
    cache: NamedTuple  # the *_cell_forward cache
    batched: bool


class _CellBase(ParameterModule):
    _gates: int
    _has_cell_state = False

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, dtype: Any = np.float64, seed: Any = None):
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.bias = check_bool("bias", bias)
        self._init_parameters(dtype, seed)

    def _parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        GH, I, H = self._gates * self.hidden_size, self.input_size, self.hidden_size
        shapes = {"weight_ih": (GH, I), "weight_hh": (GH, H)}
        if self.bias:
            shapes.update(bias_ih=(GH,), bias_hh=(GH,))
        return shapes

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        return s if self.bias else s + ", bias=False"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()}, dtype={self.dtype.name})"

    def __call__(self, input: Any, hx: Any = None):
        return self.forward(input, hx)[0]

    # -- argument handling -------------------------------------------------

    def _input(self, input: Any) -> tuple[np.ndarray, bool]:
        x = as_float_array("input", input, self.dtype)
        check_ndim("input", x, (1, 2), "1-D (unbatched, I) or 2-D (batched, B x I) input")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input: expected {self.input_size} features (input_size) in the last dimension, got shape {x.shape}")
        batched = x.ndim == 2
        return (x if batched else x[None]), batched

    def _state(self, name: str, value: Any, B: int, batched: bool) -> np.ndarray:
        shape = (B, self.hidden_size)
        if value is None:
            return np.zeros(shape, dtype=self.dtype)
        if isinstance(value, (tuple, list)):
            raise TypeError(f"{name}: expected an array, got a {type(value).__name__}")
        h = as_float_array(name, value, self.dtype)
        expected = shape if batched else shape[1:]
        check_shape(name, h, expected, "batched input" if batched else "unbatched input")
        return h if batched else h[None]

    def _hx(self, hx: Any, B: int, batched: bool):
        if not self._has_cell_state:
            return self._state("hx", hx, B, batched)
        if hx is None:
            hx = (None, None)
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"hx: expected a pair (h, c) or None, got {type(hx).__name__}"
                            + (f" of length {len(hx)}" if isinstance(hx, (tuple, list)) else ""))
        if any(v is None for v in hx) and not all(v is None for v in hx):
            raise TypeError("hx: expected both h and c, or hx=None; got one of them None")
        return self._state("hx[0]", hx[0], B, batched), self._state("hx[1]", hx[1], B, batched)

    def _unbatch(self, value, batched: bool):
        if isinstance(value, tuple):
            return tuple(self._unbatch(v, batched) for v in value)
        return value if batched else value[0]

    # -- forward / backward ------------------------------------------------

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, CellTape]:
        """Returns (hidden, tape): hidden is h' (or (h', c') for LSTM), shaped as torch's.

        Args:
            input: (B, I) or unbatched (I,).
            hx: (B, H) -- for LSTMCell the pair (h, c) -- unbatched (H,); None means zeros.

        Real floating arrays of any precision are cast to the module's dtype;
        integer, bool, complex or object arrays raise TypeError. Bad shapes
        raise ValueError; the caller's arrays are never written.
        """
        x, batched = self._input(input)  # (B, I)
        state = self._hx(hx, x.shape[0], batched)
        with np.errstate(all="ignore"):  # Inf and NaN follow IEEE arithmetic, silently, as in torch
            hidden, cache = self._cell_forward(x, state)
        return self._unbatch(hidden, batched), CellTape(self._owner, cache, batched)

    def backward(self, tape: CellTape, grad_hidden: Any = None) -> dict[str, Any]:
        """Gradients given dL/d(what forward returned).

        Returns a dict with "input", "hx" (for LSTM a pair; present even when
        forward had hx=None) and one entry per state_dict key, shaped like them.
        """
        check_tape(tape, self._owner, CellTape)
        B = tape.cache.x.shape[0]
        if self._has_cell_state:
            grad_hidden = (None, None) if grad_hidden is None else grad_hidden
            if not isinstance(grad_hidden, (tuple, list)) or len(grad_hidden) != 2:
                raise TypeError(f"grad_hidden: expected a pair (dh, dc) whose items may be None, got "
                                f"{type(grad_hidden).__name__}"
                                + (f" of length {len(grad_hidden)}" if isinstance(grad_hidden, (tuple, list)) else ""))
            dh = self._grad("grad_hidden[0]", grad_hidden[0], B, tape.batched)
            dc = self._grad("grad_hidden[1]", grad_hidden[1], B, tape.batched)
            with np.errstate(all="ignore"):
                grads = lstm_cell_backward(dh, dc, tape.cache)
        else:
            dh = self._grad("grad_hidden", grad_hidden, B, tape.batched)
            with np.errstate(all="ignore"):
                grads = self._cell_backward(dh, tape.cache)
        grads["input"] = self._unbatch(grads["input"], tape.batched)
        grads["hx"] = self._unbatch(grads["hx"], tape.batched)
        return grads

    def _grad(self, name: str, value: Any, B: int, batched: bool) -> np.ndarray:
        if value is None:
            return np.zeros((B, self.hidden_size), dtype=self.dtype)
        return self._state(name, value, B, batched)


class RNNCell(_CellBase):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu (torch.nn.RNNCell)."""

    _gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 *, dtype: Any = np.float64, seed: Any = None):
        self.nonlinearity = check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias, dtype=dtype, seed=seed)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"

    def _cell_forward(self, x, h):
        p = self._params
        return rnn_cell_forward(x, h, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"), self.nonlinearity)

    _cell_backward = staticmethod(rnn_cell_backward)


class GRUCell(_CellBase):
    """torch.nn.GRUCell; gates r, z, n with b_hn inside the reset product."""

    _gates = 3

    def _cell_forward(self, x, h):
        p = self._params
        return gru_cell_forward(x, h, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"))

    _cell_backward = staticmethod(gru_cell_backward)


class LSTMCell(_CellBase):
    """torch.nn.LSTMCell; gates i, f, g, o; hx is the pair (h, c)."""

    _gates = 4
    _has_cell_state = True

    def _cell_forward(self, x, state):
        p = self._params
        return lstm_cell_forward(x, *state, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"))
