"""Keras 3 recurrent layers read in torch's terms: their mode, sizes, gate functions and weights.

Keras is imported by :func:`import_keras`, only when a Keras object is checked.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

import numpy as np

# Keras's activations as ONNX's functions (name, alpha, beta): Keras 3's hard_sigmoid is
# relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1); its leaky_relu's default slope is 0.2.
KERAS_ACTIVATIONS = {"tanh": ("Tanh", 0.0, 0.0), "sigmoid": ("Sigmoid", 0.0, 0.0), "relu": ("Relu", 0.0, 0.0),
                     "hard_sigmoid": ("HardSigmoid", 1 / 6, 0.5), "linear": ("Affine", 1.0, 0.0),
                     "elu": ("Elu", 1.0, 0.0), "softsign": ("Softsign", 0.0, 0.0),
                     "softplus": ("Softplus", 0.0, 0.0), "leaky_relu": ("LeakyRelu", 0.2, 0.0)}


def import_keras() -> Any:
    """Keras, on the backend configured; where none is and TensorFlow is absent, on torch (else JAX)."""
    if "keras" not in sys.modules and "KERAS_BACKEND" not in os.environ and \
            importlib.util.find_spec("tensorflow") is None:
        for backend in ("torch", "jax"):
            if importlib.util.find_spec(backend) is not None:
                os.environ["KERAS_BACKEND"] = backend
                break
    try:
        import keras
    except ImportError as e:
        raise ImportError(f"keras: Keras 3 is needed for a Keras candidate (pip install 'rnn-reference[keras]'): "
                          f"{e}") from e
    return keras



# -- what the layers are, in torch's terms ----------------------------------------------------------


def _functions(keras: Any, cell: Any, where: str) -> tuple[str, tuple]:
    """(the reference's mode, the cell's gate functions as ONNX's (name, alpha, beta), in ONNX's order).

    The mode comes from the built-in cell class the cell is or derives from; the functions are
    f, g, h for LSTM (recurrent_activation, activation, activation), f, g for GRU and f for SimpleRNN.
    """
    L = keras.layers
    attrs: tuple[str, ...]
    if isinstance(cell, L.LSTMCell):
        mode, attrs = "LSTM", ("recurrent_activation", "activation", "activation")
    elif isinstance(cell, L.GRUCell):
        mode, attrs = "GRU", ("recurrent_activation", "activation")
    elif isinstance(cell, L.SimpleRNNCell):
        mode, attrs = "RNN_TANH", ("activation",)
    else:
        raise TypeError(f"{where}: cell {type(cell).__name__} derives from none of keras.layers.LSTMCell, GRUCell, "
                        "SimpleRNNCell, so its equations are unknown to the reference")
    functions = []
    for attr in attrs:
        f = getattr(cell, attr)
        known = {id(keras.activations.get(k)): k for k in KERAS_ACTIVATIONS}  # Keras's own functions, by identity
        name = "linear" if f is None else known.get(id(f))
        if name is None:
            raise ValueError(f"{where}: {attr}={getattr(f, '__name__', repr(f))!r} is not a function the reference "
                             f"has; supported: {', '.join(repr(k) for k in KERAS_ACTIVATIONS)}")
        functions.append(KERAS_ACTIVATIONS[name])
    return mode, tuple(functions)


def recurrent_layers(keras: Any, obj: Any) -> list[Any]:
    """The recurrent layers of a layer or model, in order; anything else in a model is refused by name."""
    L = keras.layers
    if isinstance(obj, (L.RNN, L.Bidirectional)):
        return [obj]
    if not isinstance(obj, keras.Model):
        raise TypeError(f"candidate: expected a Keras recurrent layer (LSTM, GRU, SimpleRNN, RNN, Bidirectional) or "
                        f"a model of them, got {type(obj).__name__}")
    layers = [layer for layer in obj.layers if not isinstance(layer, L.InputLayer)]
    other = [f"{layer.name} ({type(layer).__name__})" for layer in layers
             if not isinstance(layer, (L.RNN, L.Bidirectional))]
    if other:
        raise ValueError(f"model {obj.name}: holds layers the reference does not run: {', '.join(other)}; "
                         "check the recurrent layers themselves (model.layers[k])")
    if not layers:
        raise ValueError(f"model {obj.name}: holds no recurrent layer")
    _check_chain(keras, obj, layers)
    return layers


def _check_chain(keras: Any, model: Any, layers: list[Any]) -> None:
    """The verifier runs a model's recurrent layers in order, each on the one before's output, as a Sequential
    does: a model whose class overrides call, or a functional one wired otherwise, is refused by name."""
    from keras.src.models.functional import Functional

    if type(model).call not in (keras.Sequential.call, Functional.call):
        raise ValueError(f"model {model.name}: its class {type(model).__name__} overrides call, which the verifier "
                         "does not run (it runs a model's recurrent layers in order, as a Sequential does); check "
                         "the recurrent layers themselves (model.layers[k])")
    if isinstance(model, keras.Sequential):
        return
    try:
        chain = [model.inputs[0], *(layer.output for layer in layers)]
        inputs = [layer.input for layer in layers]
        ok = len(model.inputs) == len(model.outputs) == 1 and chain[-1] is model.outputs[0] and all(
            i is o for i, o in zip(inputs, chain[:-1], strict=True))
    except (AttributeError, ValueError):  # a layer used twice, say: no one input or output
        ok = False
    if not ok:
        raise ValueError(f"model {model.name}: its recurrent layers are not one chain from the model's input to its "
                         "output, each reading the one before; check the recurrent layers themselves")


class RecurrentLayer:
    """One recurrent layer (both directions when Bidirectional): its mode, size and per-direction RNNs."""

    def __init__(self, keras: Any, layer: Any):
        L = keras.layers
        self.layer = layer
        where = f"layer {layer.name!r}"
        if isinstance(layer, L.Bidirectional):
            if layer.merge_mode != "concat":
                raise ValueError(f"{where}: merge_mode={layer.merge_mode!r}; the reference's bidirectional layers "
                                 "concatenate (merge_mode='concat')")
            self.rnns = [layer.forward_layer, layer.backward_layer]
            if self.rnns[0].go_backwards or not self.rnns[1].go_backwards:
                raise ValueError(f"{where}: its forward layer must run forward and its backward layer backward")
        else:
            self.rnns = [layer]
        self.reverse = len(self.rnns) == 1 and bool(layer.go_backwards)  # one direction, run from the last step
        kinds = [_functions(keras, r.cell, f"{where} ({r.name})") for r in self.rnns]
        if len({mode for mode, _ in kinds}) != 1:
            raise ValueError(f"{where}: its two directions are of different kinds {[m for m, _ in kinds]}")
        self.mode = kinds[0][0]
        self.functions = tuple(f for _, fs in kinds for f in fs)  # every direction's, as ONNX lists them
        for r in self.rnns:
            if getattr(r, "stateful", False):
                raise ValueError(f"{where}: stateful=True carries state across calls; the reference takes it as hx")
            if not r.built:
                raise ValueError(f"{where}: not built; call it once (or build it) so that its weights exist")
        cells = [r.cell for r in self.rnns]
        self.units = {int(c.units) for c in cells}
        self.use_bias = {bool(c.use_bias) for c in cells}
        self.reset_after = {bool(getattr(c, "reset_after", True)) for c in cells}
        for name in ("units", "use_bias", "reset_after"):
            if len(getattr(self, name)) != 1:
                raise ValueError(f"{where}: its two directions differ in {name}")
        self.input_size = int(cells[0].kernel.shape[0])

    def arrays(self) -> list[dict[str, np.ndarray]]:
        """Per direction, the cell's weights under the keras layout's names."""
        out = []
        for r in self.rnns:
            c = r.cell
            arrays = {"kernel": np.asarray(c.kernel.numpy()), "recurrent_kernel": np.asarray(c.recurrent_kernel.numpy())}
            if c.use_bias:
                arrays["bias"] = np.asarray(c.bias.numpy())
            out.append(arrays)
        return out
