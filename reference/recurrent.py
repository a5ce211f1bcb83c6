"""RNN, GRU, LSTM: torch's multi-layer modules, with hand-written BPTT.

    lstm = LSTM(8, 16, num_layers=2, bidirectional=True, proj_size=4, seed=0)
    output, (h_n, c_n), tape = lstm.forward(x, lengths=[5, 3, 4])
    grads = lstm.backward(tape, grad_output, (dh_n, dc_n))

Stacking (what this module adds to ``layer.py``)::

    x_0 = input
    x_{l+1} = dropout_l( concat_d layer_{l,d}(x_l) )        l < L - 1, training only
    output = concat_d layer_{L-1,d}(x_{L-1})
    h_n[l * D + d] = final state of layer l, direction d     (taken before dropout)

Backward walks the layers top-down: the gradient at x_{l+1} goes back through
the dropout mask, is split by direction, and each direction's input gradient is
summed into the gradient at x_l.

Shapes: T time, B batch, I input, H hidden, P output size (proj_size or H),
L layers, D directions (1 or 2).
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, NamedTuple

import numpy as np

from ._checks import (
    as_float_array,
    check_bool,
    check_lengths,
    check_ndim,
    check_nonlinearity,
    check_positive_int,
    check_probability,
    check_shape,
    check_tape,
)
from .layer import LayerWeights, layer_backward, layer_forward
from .module import ParameterModule

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


class RecurrentTape(NamedTuple):
    """What forward recorded: read-only, reusable, tied to the module that made it."""

    owner: object
    layers: list  # [layer][direction] -> LayerTape
    dropout: list  # per layer boundary: (T, B, D*P) scaled keep mask, or None
    batched: bool
    batch_first: bool
    T: int
    B: int


class RNNBase(ParameterModule):
    """Shared machinery of RNN, GRU and LSTM (mirrors torch.nn.RNNBase)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 *, dtype: Any = np.float64, seed: Any = None):
        self.mode = mode
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.bias = check_bool("bias", bias)
        self.batch_first = check_bool("batch_first", batch_first)
        self.dropout = check_probability("dropout", dropout)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        if isinstance(proj_size, bool) or not isinstance(proj_size, numbers.Integral):
            raise TypeError(f"proj_size: expected an int, got {type(proj_size).__name__}")
        if proj_size < 0:
            raise ValueError(f"proj_size: expected a non-negative int, got {proj_size}")
        if proj_size and mode != "LSTM":
            raise ValueError(f"proj_size: only LSTM supports projections, got proj_size={proj_size} for {mode}")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size: expected proj_size < hidden_size ({hidden_size}), got {proj_size}")
        self.proj_size = int(proj_size)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}", UserWarning, stacklevel=3)
        self.training = True
        self._init_parameters(dtype, seed)

    # -- configuration -----------------------------------------------------

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """P: the size of h (proj_size when projecting, else hidden_size)."""
        return self.proj_size or self.hidden_size

    def _suffixes(self) -> list[str]:
        return ["", "_reverse"][: self.num_directions]

    def _parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        GH, H, P, D = _GATES[self.mode] * self.hidden_size, self.hidden_size, self.output_size, self.num_directions
        shapes = {}
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else D * P
            for sfx in self._suffixes():
                shapes[f"weight_ih_l{layer}{sfx}"] = (GH, layer_input)
                shapes[f"weight_hh_l{layer}{sfx}"] = (GH, P)
                if self.bias:
                    shapes[f"bias_ih_l{layer}{sfx}"] = (GH,)
                    shapes[f"bias_hh_l{layer}{sfx}"] = (GH,)
                if self.proj_size:
                    shapes[f"weight_hr_l{layer}{sfx}"] = (P, H)
        return shapes

    def _weights(self, layer: int, sfx: str) -> LayerWeights:
        p, k = self._params, f"l{layer}{sfx}"
        return LayerWeights(p[f"weight_ih_{k}"], p[f"weight_hh_{k}"], p.get(f"bias_ih_{k}"), p.get(f"bias_hh_{k}"),
                            p.get(f"weight_hr_{k}"))

    def train(self, mode: bool = True) -> RNNBase:
        self.training = check_bool("mode", mode)
        return self

    def eval(self) -> RNNBase:
        return self.train(False)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        defaults = dict(proj_size=0, num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False)
        for name, default in defaults.items():
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()}, dtype={self.dtype.name})"

    def __call__(self, input: Any, hx: Any = None, *, lengths: Any = None):
        output, hidden, _ = self.forward(input, hx, lengths=lengths)
        return output, hidden

    # -- argument handling -------------------------------------------------

    def _input(self, input: Any) -> tuple[np.ndarray, bool]:
        """(T, B, I) time-major input and whether the caller's input was batched."""
        x = as_float_array("input", input, self.dtype)
        check_ndim("input", x, (2, 3), "2-D (unbatched, T x I) or 3-D (batched) input")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input: expected {self.input_size} features (input_size) in the last dimension, got shape {x.shape}")
        batched = x.ndim == 3
        if not batched:
            x = x[:, None]  # (T, 1, I)
        elif self.batch_first:
            x = np.ascontiguousarray(x.swapaxes(0, 1))  # (T, B, I)
        if x.shape[0] == 0:
            raise ValueError(f"input: expected at least one time step, got shape {tuple(input.shape) if hasattr(input, 'shape') else x.shape}")
        return x, batched

    def _state_shapes(self, B: int) -> list[tuple[int, ...]]:
        DL = self.num_directions * self.num_layers
        shapes = [(DL, B, self.output_size)]
        if self.mode == "LSTM":
            shapes.append((DL, B, self.hidden_size))
        return shapes

    def _pair_or_array(self, name: str, value: Any) -> list:
        """Split hx-like arguments into their parts: [h] or [h, c] (None = zeros)."""
        if self.mode == "LSTM":
            if value is None:
                return [None, None]
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise TypeError(f"{name}: expected a pair (h, c) for LSTM, got {type(value).__name__}"
                                + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""))
            return list(value)
        if isinstance(value, (tuple, list)):
            raise TypeError(f"{name}: expected one array for {type(self).__name__}, got a {type(value).__name__}")
        return [value]

    def _states(self, name: str, value: Any, B: int, batched: bool, none_ok: bool = True) -> list:
        """hx or grad_hidden as [h (D*L, B, P)] or [h, c (D*L, B, H)]; None entries -> zeros."""
        parts = self._pair_or_array(name, value)
        if self.mode == "LSTM" and name == "hx" and (parts[0] is None) != (parts[1] is None):
            raise TypeError("hx: expected both h_0 and c_0, or hx=None; got one of them None")
        out = []
        for k, (part, shape) in enumerate(zip(parts, self._state_shapes(B))):
            label = f"{name}[{k}]" if self.mode == "LSTM" else name
            if part is None:
                out.append(np.zeros(shape, dtype=self.dtype))
                continue
            arr = as_float_array(label, part, self.dtype)
            expected = shape if batched else (shape[0], shape[2])
            if arr.ndim != len(expected):
                raise ValueError(f"{label}: expected a {len(expected)}-D array {expected} for "
                                 f"{'batched 3-D' if batched else 'unbatched 2-D'} input, got shape {arr.shape}")
            check_shape(label, arr, expected, "(num_layers * num_directions, batch, size)" if batched
                        else "(num_layers * num_directions, size)")
            out.append(arr if batched else arr[:, None])
        return out

    def _mask(self, lengths: Any, T: int, B: int, batched: bool) -> np.ndarray | None:
        if lengths is None:
            return None
        if not batched:
            raise ValueError("lengths: not supported with unbatched (2-D) input; add a batch dimension")
        lengths = check_lengths(lengths, T, B)
        return (np.arange(T)[:, None] < lengths[None, :])[:, :, None]  # (T, B, 1)

    def _dropout_masks(self, masks: Any, T: int, B: int, batched: bool) -> list:
        """Scaled keep masks (T, B, D*P), one per layer boundary, or [None, ...]."""
        boundaries = self.num_layers - 1
        active = self.training and self.dropout > 0 and boundaries > 0
        if masks is not None and not active:
            raise ValueError("dropout_masks: given, but no dropout is applied "
                             f"(training={self.training}, dropout={self.dropout}, num_layers={self.num_layers})")
        if not active:
            return [None] * boundaries
        shape = (T, B, self.num_directions * self.output_size)
        scale = 0.0 if self.dropout == 1 else 1.0 / (1.0 - self.dropout)
        if masks is None:  # torch's Bernoulli(1 - p) keep mask, drawn per element
            return [(self._rng.random(shape) >= self.dropout).astype(self.dtype) * scale for _ in range(boundaries)]
        if not isinstance(masks, (list, tuple)) or len(masks) != boundaries:
            raise ValueError(f"dropout_masks: expected a list of {boundaries} arrays (one per layer boundary), got "
                             f"{type(masks).__name__}" + (f" of length {len(masks)}" if isinstance(masks, (list, tuple)) else ""))
        user_shape = shape if not batched else ((B, T, shape[2]) if self.batch_first else shape)
        user_shape = user_shape if batched else (T, shape[2])
        out = []
        for k, mask in enumerate(masks):
            arr = np.asarray(mask)
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"dropout_masks[{k}]: expected an array of 0s and 1s, got {arr.dtype}")
            check_shape(f"dropout_masks[{k}]", arr, user_shape, "the layer's output")
            if not np.isin(arr, (0, 1)).all():
                raise ValueError(f"dropout_masks[{k}]: expected keep masks of 0s and 1s (the 1/(1-p) scale is applied for you)")
            arr = arr.astype(self.dtype) * scale
            out.append(self._to_time_major(arr, batched))
        return out

    def _to_time_major(self, arr: np.ndarray, batched: bool) -> np.ndarray:
        if not batched:
            return arr[:, None]
        return np.ascontiguousarray(arr.swapaxes(0, 1)) if self.batch_first else arr

    def _from_time_major(self, arr: np.ndarray, batched: bool) -> np.ndarray:
        if not batched:
            return arr[:, 0]
        return np.ascontiguousarray(arr.swapaxes(0, 1)) if self.batch_first else arr

    def _hidden(self, states: list, batched: bool):
        states = [s if batched else s[:, 0] for s in states]
        return tuple(states) if self.mode == "LSTM" else states[0]

    # -- forward / backward ------------------------------------------------

    def forward(self, input: Any, hx: Any = None, *, lengths: Any = None, dropout_masks: Any = None):
        """Returns (output, hidden, tape), output and hidden shaped as torch's.

        Args:
            input: (T, B, I), (B, T, I) with batch_first, or unbatched (T, I).
            hx: h_0 (D*L, B, P) -- for LSTM the pair (h_0, c_0 (D*L, B, H)) --
                unbatched without the B axis; None means zeros.
            lengths: B ints in [1, T]: torch's pack_padded_sequence(...,
                enforce_sorted=False) -> module -> pad_packed_sequence(total_length=T).
            dropout_masks: L - 1 keep masks of 0s and 1s, each shaped like a
                layer's output; only in training mode with dropout > 0. Drawn
                from the module's generator when omitted.

        Real floating arrays of any precision (input, hx) are cast to the
        module's dtype; integer, bool, complex or object arrays raise TypeError.
        Bad shapes and values raise ValueError; nothing is changed on error and
        the caller's arrays are never written. Values at padded steps (t >=
        lengths[b]) are ignored, NaN and Inf included, as torch's packing does.
        """
        x, batched = self._input(input)  # (T, B, I)
        T, B = x.shape[:2]
        states0 = self._states("hx", hx, B, batched)  # [(D*L, B, P)] or [.., (D*L, B, H)]
        mask = self._mask(lengths, T, B, batched)  # (T, B, 1) or None
        drop = self._dropout_masks(dropout_masks, T, B, batched)
        if mask is not None:  # torch's packing never reads padding: NaN or Inf there must not reach a gradient
            x = np.where(mask, x, 0)  # (T, B, I)
        # Inf and NaN follow IEEE arithmetic, as in torch, which does not warn either.
        with np.errstate(all="ignore"):
            return self._forward(x, states0, mask, drop, batched)

    def _forward(self, x: np.ndarray, states0: list, mask: np.ndarray | None, drop: list, batched: bool):
        T, B = x.shape[:2]
        D = self.num_directions
        final = [np.empty_like(s) for s in states0]  # h_n, c_n
        tapes = []
        for layer in range(self.num_layers):
            outs, layer_tapes = [], []
            for d, sfx in enumerate(self._suffixes()):
                idx = layer * D + d
                state0 = tuple(s[idx] for s in states0)
                out, state_n, tape = layer_forward(self.mode, x, state0, self._weights(layer, sfx), mask, reverse=d == 1)
                for f, s in zip(final, state_n):
                    f[idx] = s
                outs.append(out)
                layer_tapes.append(tape)
            tapes.append(layer_tapes)
            x = outs[0] if D == 1 else np.concatenate(outs, axis=-1)  # (T, B, D*P)
            if layer < self.num_layers - 1 and drop[layer] is not None:
                x = x * drop[layer]  # (T, B, D*P); h_n was taken before this
        output = self._from_time_major(x, batched)
        tape = RecurrentTape(self._owner, tapes, drop, batched, self.batch_first, T, B)
        return output, self._hidden(final, batched), tape

    def backward(self, tape: RecurrentTape, grad_output: Any = None, grad_hidden: Any = None) -> dict[str, Any]:
        """Backpropagation through time, through every layer and direction.

        Args:
            grad_output: dL/d(output), shaped like output, or None (zero).
            grad_hidden: dL/d(hidden), shaped like hidden (for LSTM a pair whose
                items may be None), or None (zero).
        Returns:
            "input" (shaped like input), "hx" (shaped like hidden), and one entry
            per state_dict key.
        """
        check_tape(tape, self._owner, RecurrentTape)
        T, B, batched, D = tape.T, tape.B, tape.batched, self.num_directions
        P = self.output_size
        dout = None
        if grad_output is not None:
            out_shape = (T, B, D * P)
            if batched and self.batch_first:
                out_shape = (B, T, D * P)
            elif not batched:
                out_shape = (T, D * P)
            g = as_float_array("grad_output", grad_output, self.dtype)
            check_shape("grad_output", g, out_shape, "the shape of output")
            dout = self._to_time_major(g, batched)  # (T, B, D*P)
        if grad_hidden is None:
            grad_hidden = (None, None) if self.mode == "LSTM" else None
        dstates = self._states("grad_hidden", grad_hidden, B, batched)  # zeros where None
        with np.errstate(all="ignore"):  # IEEE Inf/NaN arithmetic, silently, as in torch
            return self._backward(tape, dout, dstates)

    def _backward(self, tape: RecurrentTape, dout: np.ndarray | None, dstates: list) -> dict[str, Any]:
        batched, D, P = tape.batched, self.num_directions, self.output_size
        d_initial = [np.empty_like(s) for s in dstates]
        grads: dict[str, Any] = {}
        for layer in reversed(range(self.num_layers)):
            dx = None
            for d, sfx in enumerate(self._suffixes()):
                idx = layer * D + d
                d_dir = None if dout is None else dout[..., d * P:(d + 1) * P]  # (T, B, P)
                dxd, dstate0, g = layer_backward(d_dir, tuple(s[idx] for s in dstates), tape.layers[layer][d])
                for dst, src in zip(d_initial, dstate0):
                    dst[idx] = src
                dx = dxd if dx is None else dx + dxd  # both directions read the same input
                k = f"l{layer}{sfx}"
                grads[f"weight_ih_{k}"], grads[f"weight_hh_{k}"] = g["w_ih"], g["w_hh"]
                if self.bias:
                    grads[f"bias_ih_{k}"], grads[f"bias_hh_{k}"] = g["b_ih"], g["b_hh"]
                if self.proj_size:
                    grads[f"weight_hr_{k}"] = g["w_hr"]
            if layer > 0 and tape.dropout[layer - 1] is not None:
                dx = dx * tape.dropout[layer - 1]  # (T, B, D*P)
            dout = dx
        mask = tape.layers[0][0].mask  # (T, B, 1) or None
        if mask is not None:  # padding is never read (torch: exactly 0), even where a carried NaN state sits
            dout = np.where(mask, dout, 0)  # (T, B, I)
        result = {"input": self._from_time_major(dout, batched), "hx": self._hidden(d_initial, batched)}
        result.update((name, grads[name]) for name in self._params)  # torch's order
        return result


class RNN(RNNBase):
    """torch.nn.RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, *, dtype: Any = np.float64, seed: Any = None):
        self.nonlinearity = check_nonlinearity(nonlinearity)
        # proj_size is accepted only to reject it by name (torch: ValueError), not as an unknown keyword
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, proj_size, dtype=dtype, seed=seed)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"


class GRU(RNNBase):
    """torch.nn.GRU (gates r, z, n; b_hn inside the reset product)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 *, dtype: Any = np.float64, seed: Any = None):
        # proj_size is accepted only to reject it by name (torch: ValueError), not as an unknown keyword
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, dtype=dtype, seed=seed)


class LSTM(RNNBase):
    """torch.nn.LSTM (gates i, f, g, o; optional projection h = W_hr (o * tanh(c)))."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 *, dtype: Any = np.float64, seed: Any = None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, dtype=dtype, seed=seed)
