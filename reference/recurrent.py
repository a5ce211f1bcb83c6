"""RNN, GRU, LSTM: torch's multi-layer modules, with hand-written BPTT.

    lstm = LSTM(8, 16, num_layers=2, bidirectional=True, proj_size=4, seed=0)
    output, (h_n, c_n), tape = lstm.forward(x, lengths=[5, 3, 4])
    grads = lstm.backward(tape, grad_output, (dh_n, dc_n))

This module is torch's argument handling (batch_first, unbatched input, hx,
lengths, dropout masks) and validation around the functional core in
``stack.py``. A call runs in the array library and on the device of the arrays
it is given: NumPy in, NumPy out; torch tensors (CPU or CUDA) or
array-api-strict arrays in, the same out.

Shapes: T time, B batch, I input, H hidden, P output size (proj_size or H),
L layers, D directions (1 or 2).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ._checks import check_bool, check_lengths, check_nonlinearity, check_probability
from ._namespace import (
    NOT_WIDER,
    SAME_DTYPE,
    Placement,
    as_float,
    contiguous,
    from_numpy,
    library,
    placement_matching,
    placement_of,
    to_numpy,
)
from .config import RNNConfig, register_module_classes
from .memory import check_memory, estimate, on_host
from .module import ParameterModule
from .stack import stack_backward, stack_forward
from .tape import RecurrentTape


class RNNBase(ParameterModule):
    """Shared machinery of RNN, GRU and LSTM (mirrors torch.nn.RNNBase)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 *, reset_after: bool = True, dtype: Any = np.float64, seed: Any = None, **onnx: Any):
        self.config = RNNConfig(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                                proj_size, reset_after, **onnx)
        if self.config.dropout > 0 and self.config.num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}", UserWarning, stacklevel=3)
        self.training = True
        self._init_parameters(dtype, seed)

    # -- configuration (read from the one RNNConfig) ---------------------------------

    mode = property(lambda self: self.config.mode)
    input_size = property(lambda self: self.config.input_size)
    hidden_size = property(lambda self: self.config.hidden_size)
    num_layers = property(lambda self: self.config.num_layers)
    bias = property(lambda self: self.config.bias)
    bidirectional = property(lambda self: self.config.bidirectional)
    proj_size = property(lambda self: self.config.proj_size)
    num_directions = property(lambda self: self.config.num_directions)
    output_size = property(lambda self: self.config.output_size, doc="P: proj_size when projecting, else hidden_size")
    # ONNX's options (RNNConfig documents them); torch's modules have none of them
    reverse = property(lambda self: self.config.reverse)
    activations = property(lambda self: self.config.activations)
    activation_alpha = property(lambda self: self.config.activation_alpha)
    activation_beta = property(lambda self: self.config.activation_beta)
    clip = property(lambda self: self.config.clip)

    @property
    def batch_first(self) -> bool:
        return self.config.batch_first

    @batch_first.setter
    def batch_first(self, value: bool) -> None:
        self.config = self.config.replace(batch_first=check_bool("batch_first", value))

    @property
    def dropout(self) -> float:
        return self.config.dropout

    @dropout.setter
    def dropout(self, value: float) -> None:
        self.config = self.config.replace(dropout=check_probability("dropout", value))

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
        onnx: dict[str, Any] = dict(reverse=False, activations=None, activation_alpha=None, activation_beta=None, clip=None,
                    input_forget=False, peephole=False)
        for name, default in onnx.items():
            if getattr(self.config, name) != default:
                s += f", {name}={getattr(self.config, name)!r}"
        return s

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()}, dtype={self.dtype.name})"

    def __call__(self, input: Any, hx: Any = None, *, lengths: Any = None):
        output, hidden, _ = self.forward(input, hx, lengths=lengths)
        return output, hidden

    # -- argument handling (public: jvp and the verifier convert their tangents and cotangents alike) --

    def input_array(self, place: Placement, input: Any, *, same_dtype: bool = False) -> tuple[Any, bool]:
        """(T, B, I) time-major input and whether the caller's input was batched. With
        ``same_dtype``, an array of another floating dtype raises TypeError (forward's input)."""
        x = as_float(place, "input", input, self.dtype, dtype_rule=SAME_DTYPE if same_dtype else None)
        if x.ndim not in (2, 3):
            raise ValueError(f"input: expected 2-D (unbatched, T x I) or 3-D (batched) input, got a {x.ndim}-D array "
                             f"of shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input: expected {self.input_size} features (input_size) in the last dimension, "
                             f"got shape {tuple(x.shape)}")
        batched = x.ndim == 3
        if (x.shape[1] if batched and self.batch_first else x.shape[0]) == 0:
            raise ValueError(f"input: expected at least one time step, got shape {tuple(x.shape)}")
        return self.to_time_major(place, x, batched, self.batch_first), batched

    @staticmethod
    def to_time_major(place: Placement, a: Any, batched: bool, batch_first: bool) -> Any:
        if not batched:
            return place.xp.expand_dims(a, axis=1)  # (T, 1, .)
        return contiguous(place, place.xp.permute_dims(a, (1, 0, 2))) if batch_first else a  # (T, B, .)

    @staticmethod
    def from_time_major(place: Placement, a: Any, batched: bool, batch_first: bool) -> Any:
        if not batched:
            return a[:, 0, :]  # (T, .)
        return contiguous(place, place.xp.permute_dims(a, (1, 0, 2))) if batch_first else a  # (B, T, .) or (T, B, .)

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

    def state_arrays(self, place: Placement, name: str, value: Any, B: int, batched: bool, *,
                     same_dtype: bool = False) -> tuple:
        """hx or grad_hidden as (h (D*L, B, P),) or (h, c (D*L, B, H)); None entries -> zeros.
        With ``same_dtype`` (forward's hx), an h of another floating dtype, or a c of a wider
        one, raises TypeError, as in torch (which widens a narrower c exactly)."""
        parts = self._pair_or_array(name, value)
        if self.mode == "LSTM" and name == "hx" and (parts[0] is None) != (parts[1] is None):
            raise TypeError("hx: expected both h_0 and c_0, or hx=None; got one of them None")
        out = []
        for k, (part, shape) in enumerate(zip(parts, self.config.state_shapes(B), strict=True)):
            label = f"{name}[{k}]" if self.mode == "LSTM" else name
            if part is None:
                out.append(from_numpy(place, np.zeros(shape, dtype=self.dtype)))
                continue
            rule = (NOT_WIDER if k == 1 else SAME_DTYPE) if same_dtype else None
            arr = as_float(place, label, part, self.dtype, dtype_rule=rule)
            expected = shape if batched else (shape[0], shape[2])
            if arr.ndim != len(expected):
                raise ValueError(f"{label}: expected a {len(expected)}-D array {expected} for "
                                 f"{'batched 3-D' if batched else 'unbatched 2-D'} input, got shape {tuple(arr.shape)}")
            if tuple(arr.shape) != expected:
                hint = "(num_layers * num_directions, batch, size)" if batched else "(num_layers * num_directions, size)"
                raise ValueError(f"{label}: expected shape {expected} {hint}, got {tuple(arr.shape)}")
            out.append(arr if batched else place.xp.expand_dims(arr, axis=1))
        return tuple(out)

    def _mask(self, place: Placement, lengths: Any, T: int, B: int, batched: bool) -> tuple[Any, Any]:
        """(lengths as NumPy ints, mask (T, B, 1) bool in the call's library) or (None, None)."""
        if lengths is None:
            return None, None
        if not batched:
            raise ValueError("lengths: not supported with unbatched (2-D) input; add a batch dimension")
        if library(lengths) not in (None, "numpy"):
            lengths = to_numpy(lengths)  # torch keeps lengths on the CPU; any device is accepted here
        lengths = check_lengths(lengths, T, B)
        mask = (np.arange(T)[:, None] < lengths[None, :])[:, :, None]  # (T, B, 1)
        return lengths, from_numpy(place, mask)

    def _dropout_masks(self, place: Placement, masks: Any, T: int, B: int, batched: bool) -> list:
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
            return [from_numpy(place, (self._rng.random(shape) >= self.dropout).astype(self.dtype) * scale)
                    for _ in range(boundaries)]
        if not isinstance(masks, (list, tuple)) or len(masks) != boundaries:
            raise ValueError(f"dropout_masks: expected a list of {boundaries} arrays (one per layer boundary), got "
                             f"{type(masks).__name__}" + (f" of length {len(masks)}" if isinstance(masks, (list, tuple)) else ""))
        user_shape: tuple[int, ...] = shape if not batched else ((B, T, shape[2]) if self.batch_first else shape)
        user_shape = user_shape if batched else (T, shape[2])
        out = []
        for k, mask in enumerate(masks):
            arr = np.asarray(to_numpy(mask))
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"dropout_masks[{k}]: expected an array of 0s and 1s, got {arr.dtype}")
            if arr.shape != user_shape:
                raise ValueError(f"dropout_masks[{k}]: expected shape {user_shape} (the layer's output), got {arr.shape}")
            if not np.isin(arr, (0, 1)).all():
                raise ValueError(f"dropout_masks[{k}]: expected keep masks of 0s and 1s (the 1/(1-p) scale is applied for you)")
            scaled = from_numpy(place, arr.astype(self.dtype) * scale)
            out.append(self.to_time_major(place, scaled, batched, self.batch_first))
        return out

    def hidden_result(self, place: Placement, states: tuple, batched: bool):
        states = tuple(s if batched else s[:, 0, :] for s in states)
        return states if self.mode == "LSTM" else states[0]

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

        Arrays may come from NumPy, torch (any device; not requiring grad) or any
        array API library; the call runs there and returns arrays from there.
        As in torch, an input or h_0 of another floating dtype than the module's
        raises TypeError naming both and the two fixes (convert the array, or
        the module: ``module.astype(dtype)``); a c_0 of a narrower one is
        widened (exactly), a wider one raises. Lists have no dtype and take the
        module's. Integer, bool, complex or object arrays raise TypeError. Bad shapes and
        values raise ValueError; nothing is changed on error and the caller's
        arrays are never written. Values at padded steps (t >= lengths[b]) are
        ignored, NaN and Inf included, as torch's packing does. A NumPy output
        that is a view of the tape is read-only; a torch one is checked at
        backward for in-place changes.
        """
        place = placement_of(input=input, hx=hx, dropout_masks=dropout_masks)
        sizes = self._sizes(getattr(input, "shape", None))
        if sizes is not None:  # from the shape alone, before even the input's cast copy
            self._check_memory(place, *sizes, lengths is not None)
        x, batched = self.input_array(place, input, same_dtype=True)  # (T, B, I)
        T, B = x.shape[0], x.shape[1]
        if sizes is None:  # a list: converted first (its array is no larger than the list it came from)
            self._check_memory(place, T, B, lengths is not None)
        states0 = self.state_arrays(place, "hx", hx, B, batched, same_dtype=True)  # ((D*L, B, P),) or with (D*L, B, H)
        lengths, mask = self._mask(place, lengths, T, B, batched)  # (B,), (T, B, 1) or None
        drop = self._dropout_masks(place, dropout_masks, T, B, batched)
        version, weights = self._snapshot(place)  # one consistent set of weights for the whole call
        xp = place.xp
        if mask is not None:  # torch's packing never reads padding: NaN or Inf there must not reach a gradient
            x = xp.where(mask, x, xp.zeros_like(x[:1, :1, :1]))  # (T, B, I)
        with np.errstate(all="ignore"):  # Inf and NaN follow IEEE arithmetic, as in torch, which does not warn
            out, finals, stack = stack_forward(place, self.config, weights, x, states0, mask, drop)
        shared = out is stack.layers[-1][0].h  # the output *is* the tape's state history
        output = self.from_time_major(place, out, batched, self.batch_first)
        guard = None
        if shared and place.is_numpy:
            output = output.view()
            output.flags.writeable = False
        elif shared and place.library == "torch":
            guard = (out, out._version)
        elif shared:
            output = xp.asarray(output, copy=True)
        tape = RecurrentTape(self._owner, version, self.config, place, stack, batched, T, B, lengths, guard)
        return output, self.hidden_result(place, finals, batched), tape

    def _sizes(self, shape: Any) -> tuple[int, int] | None:
        """(T, B) from an input's shape, or None where it has none (a list) or a malformed one (input_array says)."""
        if shape is None or len(shape) not in (2, 3):
            return None
        T, B = (shape[0], 1) if len(shape) == 2 else (shape[1], shape[0]) if self.batch_first else shape[:2]
        return int(T), int(B)

    def _check_memory(self, place: Placement, T: int, B: int, lengths: bool) -> None:
        """Refuse a forward + backward that would not fit (the tape is kept for backward, so both are estimated)."""
        if on_host(place.device):
            check_memory(estimate(self.config, T, B, self.dtype, lengths))

    def backward(self, tape: RecurrentTape, grad_output: Any = None, grad_hidden: Any = None, *,
                 carries: bool = False) -> dict[str, Any]:
        """Backpropagation through time, through every layer and direction.

        Args:
            grad_output: dL/d(output), shaped like output, or None (zero).
            grad_hidden: dL/d(hidden), shaped like hidden (for LSTM a pair whose
                items may be None), or None (zero).
            carries: also return "carries": carries[layer][direction][t] = (dh_t,)
                or (dh_t, dc_t), the total gradient at the state after step t.
        Returns:
            "input" (shaped like input), "hx" (shaped like hidden), and one entry
            per state_dict key; arrays from the library forward ran in.
        """
        self._check_tape(tape, RecurrentTape)
        place = placement_matching(tape.placement, grad_output=grad_output, grad_hidden=grad_hidden)
        T, B, batched, D, P = tape.T, tape.B, tape.batched, self.num_directions, self.output_size
        dout = None
        if grad_output is not None:
            out_shape = (T, B, D * P) if batched else (T, D * P)
            if batched and tape.config.batch_first:
                out_shape = (B, T, D * P)
            g = as_float(place, "grad_output", grad_output, self.dtype, copy=False)  # read, never kept or written
            if tuple(g.shape) != out_shape:
                raise ValueError(f"grad_output: expected shape {out_shape} (the shape of output), got {tuple(g.shape)}")
            dout = self.to_time_major(place, g, batched, tape.config.batch_first)  # (T, B, D*P)
        if grad_hidden is None:
            grad_hidden = (None, None) if self.mode == "LSTM" else None
        dstates = self.state_arrays(place, "grad_hidden", grad_hidden, B, batched)  # zeros where None
        with np.errstate(all="ignore"):  # IEEE Inf/NaN arithmetic, silently, as in torch
            g = stack_backward(place, tape.config, tape.stack, dout, dstates, keep_carries=carries)
        dx = self.from_time_major(place, g.dx, batched, tape.config.batch_first)
        result: dict[str, Any] = {"input": dx, "hx": self.hidden_result(place, g.dstates0, batched)}
        result.update(g.params)
        if carries:
            result["carries"] = g.carries
        return result


class RNN(RNNBase):
    """torch.nn.RNN, an Elman network: at each step t of each layer (x_t the layer's input)::

        h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)        act = tanh or relu

    Shapes: input (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I); output like
    input with D*H features (each step's h_t of the last layer, D = 2 directions side by side
    with bidirectional); h_0 and h_n (L*D, B, H), unbatched (L*D, H); weight_ih_l0 (H, I) and
    (H, D*H) above layer 0, weight_hh_l{k} (H, H), bias_ih_l{k} and bias_hh_l{k} (H,). T time,
    B batch, I input_size, H hidden_size, L num_layers.

    ``forward`` returns (output, h_n, tape); ``backward(tape, grad_output, grad_hidden)``
    the gradients (``reference/rnn_cell.py`` derives them)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, *, dtype: Any = np.float64, seed: Any = None, reverse: bool = False,
                 activations: tuple[str, ...] | None = None, activation_alpha: tuple[float, ...] | None = None,
                 activation_beta: tuple[float, ...] | None = None, clip: float | None = None):
        nonlinearity = check_nonlinearity(nonlinearity)
        # proj_size is accepted only to reject it by name (torch: ValueError), not as an unknown keyword
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, proj_size, dtype=dtype, seed=seed, reverse=reverse,
                         activations=activations, activation_alpha=activation_alpha, activation_beta=activation_beta,
                         clip=clip)

    nonlinearity = property(lambda self: self.config.nonlinearity)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"


class GRU(RNNBase):
    """torch.nn.GRU: at each step t of each layer (x_t the layer's input)::

        r_t = sigmoid(x_t W_ir^T + b_ir + h_{t-1} W_hr^T + b_hr)           reset gate
        z_t = sigmoid(x_t W_iz^T + b_iz + h_{t-1} W_hz^T + b_hz)           update gate
        n_t = tanh(x_t W_in^T + b_in + r_t * (h_{t-1} W_hn^T + b_hn))      new gate: b_hn inside the reset product
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    ``reset_after=False`` gives the paper's form, ``n_t = tanh(x_t W_in^T + b_in + (r_t *
    h_{t-1}) W_hn^T + b_hn)``, which torch does not ship (ONNX's default, Keras
    ``reset_after=False``).

    Shapes as ``RNN``'s, with three gate blocks of H rows in each weight and bias, r, z, n
    (``W_ih = [W_ir; W_iz; W_in]``): weight_ih_l0 (3H, I) and (3H, D*H) above layer 0,
    weight_hh_l{k} (3H, H), bias_ih_l{k} and bias_hh_l{k} (3H,); h_0 and h_n (L*D, B, H).

    ``forward`` returns (output, h_n, tape); ``backward(tape, grad_output, grad_hidden)``
    the gradients (``reference/gru_cell.py`` derives them)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 *, reset_after: bool = True, dtype: Any = np.float64, seed: Any = None, reverse: bool = False,
                 activations: tuple[str, ...] | None = None, activation_alpha: tuple[float, ...] | None = None,
                 activation_beta: tuple[float, ...] | None = None, clip: float | None = None):
        # proj_size is accepted only to reject it by name (torch: ValueError), not as an unknown keyword
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, reset_after=reset_after, dtype=dtype, seed=seed, reverse=reverse,
                         activations=activations, activation_alpha=activation_alpha, activation_beta=activation_beta,
                         clip=clip)

    reset_after = property(lambda self: self.config.reset_after)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.reset_after else s + ", reset_after=False"


class LSTM(RNNBase):
    """torch.nn.LSTM: at each step t of each layer (x_t the layer's input)::

        i_t = sigmoid(x_t W_ii^T + b_ii + h_{t-1} W_hi^T + b_hi)     input gate
        f_t = sigmoid(x_t W_if^T + b_if + h_{t-1} W_hf^T + b_hf)     forget gate
        g_t = tanh(x_t W_ig^T + b_ig + h_{t-1} W_hg^T + b_hg)        cell candidate
        o_t = sigmoid(x_t W_io^T + b_io + h_{t-1} W_ho^T + b_ho)     output gate
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)                 with proj_size > 0: h_t = (o_t * tanh(c_t)) W_hr^T

    Shapes as ``RNN``'s, with four gate blocks of H rows in each weight and bias, i, f, g, o
    (``W_ih = [W_ii; W_if; W_ig; W_io]``), and P = proj_size or H the size of h: output
    (T, B, D*P); h_0 and h_n (L*D, B, P), c_0 and c_n (L*D, B, H); weight_ih_l0 (4H, I) and
    (4H, D*P) above layer 0, weight_hh_l{k} (4H, P), bias_ih_l{k} and bias_hh_l{k} (4H,),
    weight_hr_l{k} (P, H) with proj_size.

    ``hx`` and ``hidden`` are the pairs (h_0, c_0) and (h_n, c_n). ``forward`` returns (output,
    (h_n, c_n), tape); ``backward(tape, grad_output, grad_hidden)`` the gradients
    (``reference/lstm_cell.py`` derives them). ONNX's options (``peephole``,
    ``input_forget``, ``clip``, ``activations``, ...) are ``RNNConfig``'s."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 *, dtype: Any = np.float64, seed: Any = None, reverse: bool = False,
                 activations: tuple[str, ...] | None = None, activation_alpha: tuple[float, ...] | None = None,
                 activation_beta: tuple[float, ...] | None = None, clip: float | None = None,
                 input_forget: bool = False, peephole: bool = False):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, dtype=dtype, seed=seed, reverse=reverse, activations=activations,
                         activation_alpha=activation_alpha, activation_beta=activation_beta, clip=clip,
                         input_forget=input_forget, peephole=peephole)

    input_forget = property(lambda self: self.config.input_forget)
    peephole = property(lambda self: self.config.peephole)


register_module_classes(RNN, GRU, LSTM)
