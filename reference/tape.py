"""What ``forward`` records for ``backward``: the tape, and its public reading API.

    output, hidden, tape = lstm.forward(x, lengths=[5, 3, 4])
    for step in tape.steps(layer=0, direction=1):       # processing order: t = T-1 ... 0
        step.t, step.h_prev, step.h, step.c, step.gates["f"], step.valid
    tape.layer_input(1)                                  # what layer 1 read (after dropout)
    grads = lstm.backward(tape, dout, carries=True)
    grads["carries"][0][1][t]                            # (dh_t, dc_t): total gradient at the state after step t

A tape is read-only and can be used any number of times, by the module that
made it, while that module's weights are the ones it was made with. Its arrays
are in the library and on the device the forward ran on. jvp, gradient_flow
and the verifier read tapes only through this API.

Shapes: T time, B batch, H hidden, P output (proj_size or H).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .config import RNNConfig
from .layer import LayerTape, cell_of
from .stack import StackTape


class StepRecord(NamedTuple):
    """One step of one layer and direction, as forward computed it: state (h_prev, c_prev) in,
    gates, state (h, c) out. LSTM: i, f, o = sigmoid(.), g = tanh(.), c = f * c_prev + i * g,
    h = o * tanh(c); GRU: r, z = sigmoid(.), n = tanh(. + r * hn), h = (1 - z) * n + z * h_prev."""

    t: int  # time index
    h_prev: Any  # (B, P) state the step started from
    c_prev: Any  # (B, H) or None (not LSTM)
    h: Any  # (B, P) state after the step (on a padded step: carried, equal to h_prev)
    c: Any  # (B, H) or None
    gates: dict  # gate letter -> (B, H), after its nonlinearity: LSTM i f g o; GRU r z n (+ "hn" = W_hn h + b_hn)
    valid: Any  # (B,) bool, or None when every step is valid


class RecurrentTape(NamedTuple):
    """Everything backward needs; nothing in it is written after forward.

    Per layer l and direction d (``layer(l, d)``, a ``layer.LayerTape``): the layer's input
    (T, B, I_l), the states h_t (T, B, P) and c_t (T, B, H) after each step and the ones each
    step started from, and every step's gate values (T, B, H) each; ``steps(l, d)`` reads them
    one ``StepRecord`` a step. With the gate values, backward needs no transcendental function:
    sigmoid'(a) = s (1 - s) and tanh'(a) = 1 - t^2 from the gates themselves.
    """

    owner: object  # the module that recorded it
    version: int  # that module's weights version at the time
    config: RNNConfig
    placement: Any  # the library and device forward ran on
    stack: StackTape
    batched: bool
    T: int
    B: int
    lengths: Any  # (B,) NumPy ints, or None
    output_guard: Any  # (array, version) for torch outputs shared with the tape, else None

    def layer(self, layer: int, direction: int = 0) -> LayerTape:
        """The raw per-layer record (see ``reference.layer.LayerTape``)."""
        self._check(layer, direction)
        return self.stack.layers[layer][direction]

    def layer_input(self, layer: int) -> Any:
        """(T, B, I_l) the input layer ``layer`` read, time-major (after the previous layer's dropout)."""
        return self.layer(layer).x

    @property
    def dropout_masks(self) -> list:
        """Per layer boundary, the scaled keep mask (T, B, D*P) applied, or None."""
        return list(self.stack.dropout)

    def steps(self, layer: int, direction: int = 0) -> list[StepRecord]:
        """Every step of one layer and direction, in processing order (reverse: t = T-1 ... 0)."""
        lt = self.layer(layer, direction)
        gate_values = cell_of(self.config, direction).gate_values
        ts = range(self.T - 1, -1, -1) if lt.reverse else range(self.T)
        records = []
        for t in ts:
            prev, new = lt.state_before(t), lt.state(t)
            valid = None if lt.mask is None else lt.mask[t, :, 0]
            records.append(StepRecord(t, prev[0], prev[1] if len(prev) == 2 else None, new[0],
                                      new[1] if len(new) == 2 else None, gate_values(lt.cache(t)), valid))
        return records

    def _check(self, layer: int, direction: int) -> None:
        if not 0 <= layer < self.config.num_layers:
            raise ValueError(f"layer: expected 0 <= layer < {self.config.num_layers}, got {layer}")
        if not 0 <= direction < self.config.num_directions:
            raise ValueError(f"direction: expected 0 <= direction < {self.config.num_directions}, got {direction}")
