"""The conformance kit's builders for Keras 3 layers (see adapter_kit.py), on the backend this process runs.

The planted gate bugs live in :class:`KitLSTMCell`, a subclass of Keras's LSTMCell whose ``call`` writes the
equations out (keras.ops, so it runs on every backend), with one bug in gate f; a layer carries it as
``RNN(KitLSTMCell(...))``. The subclasses of ``LSTM`` override ``call`` itself.
"""

from __future__ import annotations

import os

if "keras" not in __import__("sys").modules:
    os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from adapter_kit import CASES, SCALE, VALUE, B, Expect, H, I, T, keywords
from keras import ops

L = keras.layers


@keras.saving.register_keras_serializable(package="adapter_kit")
class KitLSTMCell(L.LSTMCell):
    """Keras's LSTMCell with one bug in gate f (None: correct): "preact", its pre-activation scaled by 1.25;
    "grad", its gradient stopped; "value", its pre-activation + 0.5 where input feature 0 is VALUE."""

    def __init__(self, units, bug=None, **kwargs):
        super().__init__(units, **kwargs)
        self.bug = bug

    def call(self, inputs, states, training=False):
        h, c = states
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h, self.recurrent_kernel) + self.bias
        i, f, g, o = ops.split(z, 4, axis=-1)
        if self.bug == "preact":
            f = 1.25 * f
        if self.bug == "value":
            f = f + 0.5 * ops.cast(ops.equal(inputs[:, :1], VALUE), f.dtype)
        f = ops.sigmoid(f)
        if self.bug == "grad":
            f = ops.stop_gradient(f)
        c = f * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "bug": self.bug}


@keras.saving.register_keras_serializable(package="adapter_kit")
class QuietLSTM(L.LSTM):
    """A subclass whose call is its own and the maths Keras's."""

    def call(self, sequences, initial_state=None, mask=None, training=False):
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)


@keras.saving.register_keras_serializable(package="adapter_kit")
class ScaledLSTM(L.LSTM):
    """A subclass whose own call scales the output (the sequence) by 1 + 1e-3, its states untouched."""

    def call(self, sequences, initial_state=None, mask=None, training=False):
        out = super().call(sequences, initial_state=initial_state, mask=mask, training=training)
        return [out[0] * SCALE, *out[1:]] if isinstance(out, (list, tuple)) else out * SCALE


@keras.saving.register_keras_serializable(package="adapter_kit")
class LastStepCLSTM(L.LSTM):
    """A subclass (returning its sequence and states) whose c_n is the state after the last step of the padded
    input, whatever the mask says."""

    def call(self, sequences, initial_state=None, mask=None, training=False):
        out = super().call(sequences, initial_state=initial_state, mask=mask, training=training)
        whole = super().call(sequences, initial_state=initial_state, mask=None, training=training)
        return [*out[:2], whole[2]]


def built(layer, dtype="float32", seed=0):
    """``layer`` built on (B, T, I), its biases random and non-zero (a zero bias hides where it goes)."""
    layer(np.zeros((B, T, I), dtype=dtype))
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        if v.path.endswith("bias"):
            v.assign(rng.uniform(-0.5, 0.5, v.shape).astype(v.dtype))
    return layer


def stack(*layers, dtype="float32"):
    return built(keras.Sequential([keras.Input((None, I), dtype=dtype), *layers]), dtype)


class KerasKit:
    """Keras layers and models on this process's backend."""

    def expect(self, case: str) -> Expect:
        if case == "an option the reference lacks":
            return Expect("REFUSED", says="recurrent_activation='gelu'")
        if case in ("bfloat16", "float16"):  # mixed policies: judged against the rounding envelope
            return Expect("MATCH")
        return CASES[case]

    def layer(self, case: str):
        seq = dict(return_sequences=True)
        bug = lambda kind, **kw: L.RNN(KitLSTMCell(H, bug=kind), **seq, **kw)
        makers = {
            "float32": lambda: built(L.LSTM(H)),
            "float64": lambda: built(L.LSTM(H, dtype="float64"), "float64"),
            "lengths": lambda: built(L.LSTM(H, **seq)),
            "reverse": lambda: built(L.LSTM(H, go_backwards=True, **seq)),
            "bidirectional": lambda: built(L.Bidirectional(L.LSTM(H, **seq))),
            "two layers": lambda: stack(L.LSTM(H, **seq), L.LSTM(H)),
            "GRU torch form": lambda: built(L.GRU(H)),
            "GRU paper form": lambda: built(L.GRU(H, reset_after=False)),
            "subclass, same maths": lambda: built(QuietLSTM(H, **seq)),
            "subclass scales the output": lambda: built(ScaledLSTM(H, **seq)),
            "subclass c_n from the last step": lambda: built(LastStepCLSTM(H, return_state=True, **seq)),
            "layer 1 gate f": lambda: stack(L.LSTM(H, **seq), bug("preact")),
            "gradient of gate f stopped": lambda: built(bug("grad")),
            "reverse direction gate f": lambda: built(L.Bidirectional(
                L.RNN(KitLSTMCell(H), **seq), backward_layer=bug("preact", go_backwards=True))),
            "gate f on one input value": lambda: built(bug("value")),
            "bfloat16": lambda: built(L.LSTM(H, dtype="mixed_bfloat16")),
            "float16": lambda: built(L.LSTM(H, dtype="mixed_float16")),
            "an option the reference lacks": lambda: built(L.LSTM(H, recurrent_activation="gelu")),
        }
        return makers[case]()

    def build(self, case: str):
        return self.layer(case), keywords(case)
