"""Keras 3 recurrent layers as they are: a candidate that runs the layers themselves, on any backend.

    report = compare(keras.layers.LSTM(16))                    # a built layer: its own weights and activations
    report = compare(keras.Sequential([inp, Bidirectional(GRU(8, return_sequences=True)), GRU(8)]))
    rnn-check --model model.keras                              # a saved model, loaded in Keras's safe mode

What is accepted, and what it is in torch's terms:

=========================================  ==============================================================
Keras                                      torch / the reference
=========================================  ==============================================================
``LSTM``                                   LSTM; gates i, f, c, o; one merged bias (b_ih + b_hh)
``GRU(reset_after=True)``                  GRU (torch's form: b_hn inside the reset product); bias (2, 3H)
``GRU(reset_after=False)``                 GRU, ``reset_after=False`` (the paper's form); bias (3H,)
``SimpleRNN(activation="tanh"/"relu")``    RNN_TANH / RNN_RELU
``RNN(cell)``, cell a subclass of          the mode of the cell it derives from (a custom cell: the
``LSTMCell``/``GRUCell``/``SimpleRNNCell``  reference checks the equations of that mode)
``Bidirectional(layer, merge_mode="concat")``  bidirectional=True: [forward, reverse] along features
a ``Sequential`` / ``Model`` of these      num_layers = the number of recurrent layers (all alike)
=========================================  ==============================================================

The candidate runs clones of the layers (the same class and configuration, asked for
``return_sequences`` and ``return_state``), holding the weights the verifier gives, batch-major
as Keras runs, in inference. Lengths become Keras's mask, with ``zero_output_for_mask`` (padded
steps keep the state and output zeros, as torch's packing does; Keras's other choice, repeating
the last output there, is a convention of the padding, not of the maths). Gradients come from the backend's own autograd
through ``Layer.stateless_call``: ``torch.autograd`` on the torch backend, ``jax.vjp`` on JAX,
``tf.GradientTape`` on TensorFlow.

Activations are the cells' own, as ONNX's functions (:data:`KERAS_ACTIVATIONS`: tanh, sigmoid,
relu, hard_sigmoid, linear, elu, softsign, softplus, leaky_relu); ``go_backwards`` on a layer of
its own is ONNX's reverse direction. What the reference cannot express is refused by name
(ValueError): another activation (gelu, a Python function), a merge mode other than concat,
``stateful``, layers that differ in size or kind, or any other layer in a model. Initialisation options (``unit_forget_bias``, initializers) and dropout (inactive in
inference) do not change what is checked.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

import numpy as np

from ..config import RNNConfig
from .candidates import Candidate, CandidateError
from .layouts import export_state_dict, import_gradients, import_state_dict
from .spec import Spec

# Keras's activations as ONNX's functions (name, alpha, beta): Keras 3's hard_sigmoid is
# relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1); its leaky_relu's default slope is 0.2.
KERAS_ACTIVATIONS = {"tanh": ("Tanh", 0.0, 0.0), "sigmoid": ("Sigmoid", 0.0, 0.0), "relu": ("Relu", 0.0, 0.0),
                     "hard_sigmoid": ("HardSigmoid", 1 / 6, 0.5), "linear": ("Affine", 1.0, 0.0),
                     "elu": ("Elu", 1.0, 0.0), "softsign": ("Softsign", 0.0, 0.0),
                     "softplus": ("Softplus", 0.0, 0.0), "leaky_relu": ("LeakyRelu", 0.2, 0.0)}


def is_keras_object(obj: Any) -> bool:
    """A Keras layer or model, told from its classes' modules (Keras is not imported here)."""
    return any(c.__module__.split(".")[0] == "keras" for c in type(obj).__mro__)


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


def load_keras_model(path: str) -> KerasCandidate:
    """A saved ``.keras`` model, loaded in Keras's safe mode (no lambda or arbitrary code is deserialised)."""
    keras = import_keras()
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # a damaged archive, an unregistered class, an unsafe lambda: all refused
        raise ValueError(f"model: {os.path.basename(path)} could not be loaded by Keras (safe mode): "
                         f"{type(e).__name__}: {e}") from e
    return KerasCandidate(model, name=os.path.basename(path))


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


def _recurrent_layers(keras: Any, obj: Any) -> list[Any]:
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
    return layers


class _Layer:
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


class KerasCandidate(Candidate):
    """Keras recurrent layers (one, bidirectional, or a stack in a model) run by Keras itself."""

    spec: Spec  # the layers' own configuration, weights and dtype, set in __init__
    own_params: dict[str, np.ndarray]
    dtype: np.dtype
    takes_hx = True
    takes_lengths = True
    declares_reset_after = True

    def __init__(self, obj: Any, name: str | None = None):
        keras = import_keras()
        self.keras, self.backend = keras, keras.backend.backend()
        self.layers = [_Layer(keras, layer) for layer in _recurrent_layers(keras, obj)]
        first = self.layers[0]
        for k, layer in enumerate(self.layers[1:], 1):
            for attr in ("mode", "units", "use_bias", "reset_after", "reverse", "functions"):
                if getattr(layer, attr) != getattr(first, attr):
                    raise ValueError(f"layer {layer.layer.name!r}: {attr} {getattr(layer, attr)} differs from the first "
                                     f"recurrent layer's {getattr(first, attr)}; the reference stacks layers alike")
            if len(layer.rnns) != len(first.rnns):
                raise ValueError(f"layer {layer.layer.name!r}: bidirectional differs from the first recurrent layer's")
            want = len(first.rnns) * next(iter(first.units))
            if layer.input_size != want:
                raise ValueError(f"layer {layer.layer.name!r} (recurrent layer {k}): takes {layer.input_size} "
                                 f"features, the layer below gives {want}")
        names, alphas, betas = zip(*first.functions, strict=True)
        self.spec = Spec.coerce(RNNConfig(
            first.mode, first.input_size, next(iter(first.units)), len(self.layers), next(iter(first.use_bias)),
            bidirectional=len(first.rnns) == 2, reverse=first.reverse,
            reset_after=next(iter(first.reset_after)) if first.mode == "GRU" else True,
            activations=names, activation_alpha=alphas, activation_beta=betas))
        self.dtype = np.dtype(str(first.rnns[0].cell.kernel.dtype).replace("torch.", ""))
        nested = {f"l{k}{sfx}": arrays for k, layer in enumerate(self.layers)
                  for sfx, arrays in zip(("", "_reverse"), layer.arrays(), strict=False)}
        self.own_params = import_state_dict("keras", self.spec, nested)
        self.name = name or f"{type(obj).__name__} {getattr(obj, 'name', '')} (keras, {self.backend})".replace("  ", " ")
        self._clones: dict[tuple, list] = {}

    # -- the layers, rebuilt for the configuration asked ----------------------------------------

    def _clone(self, rnn: Any, units: int) -> Any:
        """A new RNN layer of ``rnn``'s class and configuration, returning its sequence and states."""
        L = self.keras.layers
        if type(rnn) in (L.LSTM, L.GRU, L.SimpleRNN):
            config = {**rnn.get_config(), "units": units, "return_sequences": True, "return_state": True,
                      "zero_output_for_mask": True}
            config.pop("name", None)
            return type(rnn).from_config(config)
        cell_config = {**rnn.cell.get_config(), "units": units}
        cell_config.pop("name", None)
        return L.RNN(type(rnn.cell).from_config(cell_config), return_sequences=True, return_state=True,
                     go_backwards=rnn.go_backwards, zero_output_for_mask=True)

    def _stack(self, spec: Spec, B: int, T: int) -> list[list[Any]]:
        """Per layer, per direction, a built clone (cached by configuration and shape)."""
        fixed = ("mode", "reset_after", "reverse", "activations", "activation_alpha", "activation_beta")
        if any(getattr(spec, f) != getattr(self.spec, f) for f in fixed):
            raise CandidateError(f"{self.name} runs {self.spec}, asked {spec}")
        key = (spec, B, T)
        if key not in self._clones:
            stack = []
            for k in range(spec.num_layers):
                template = self.layers[k if spec.num_layers == len(self.layers) else 0]
                if spec.D != len(template.rnns):
                    raise CandidateError(f"{self.name}: asked for {spec.D} directions, its layers have "
                                         f"{len(template.rnns)}")
                clones = [self._clone(r, spec.hidden_size) for r in template.rnns]
                I = spec.input_size if k == 0 else spec.D * spec.P
                for c in clones:
                    c.build((B, T, I))
                stack.append(clones)
            self._clones[key] = stack
        return self._clones[key]

    # -- running -----------------------------------------------------------------------------------

    def call(self, spec, params, x, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        if dropout_masks is not None:
            raise CandidateError(f"{self.name} runs in inference: Keras draws its own dropout masks, so compare "
                                 "it with dropout inactive")
        T, B = x.shape[:2]
        stack = self._stack(spec, B, T)
        nested = export_state_dict("keras", spec, params)
        weights, slots = [], []  # the weight arrays in the order of each clone's trainable variables
        for k, clones in enumerate(stack):
            for d, c in enumerate(clones):
                arrays = nested[f"l{k}{('', '_reverse')[d]}"]
                names = {id(c.cell.kernel): "kernel", id(c.cell.recurrent_kernel): "recurrent_kernel"}
                if spec.bias:
                    names[id(c.cell.bias)] = "bias"
                for v in c.trainable_variables:
                    if id(v) not in names:
                        raise CandidateError(f"{self.name}: layer {k} has a trainable variable {v.path} the "
                                             "reference has no place for")
                    weights.append(np.asarray(arrays[names[id(v)]], dtype=self.dtype))
                    slots.append((k, d, names[id(v)]))
        mask = None if lengths is None else np.arange(T)[None, :] < np.asarray(lengths)[:, None]  # (B, T)
        run = _Run(self, stack, spec, mask)
        primals = [np.ascontiguousarray(np.swapaxes(x, 0, 1), dtype=self.dtype),  # (B, T, I): Keras is batch-major
                   *[np.asarray(h, dtype=self.dtype) for h in hx], *weights]
        backward = grad_output is not None or grad_hidden is not None
        if not backward:
            outputs = run.numpy(run(*[self.keras.ops.convert_to_tensor(p) for p in primals]))
            return _result(outputs, len(hx))
        cots = [np.swapaxes(grad_output, 0, 1) if grad_output is not None else None,
                *(grad_hidden if grad_hidden is not None else (None,) * len(hx))]
        outputs, grads = _vjp(self.backend, run, primals, cots, self.dtype)
        res = _result(outputs, len(hx))
        res["input"] = np.swapaxes(grads[0], 0, 1)
        res["hx"] = tuple(grads[1:1 + len(hx)])
        layout: dict[str, dict[str, np.ndarray]] = {}
        for (k, d, name), g in zip(slots, grads[1 + len(hx):], strict=True):
            layout.setdefault(f"l{k}{('', '_reverse')[d]}", {})[name] = g
        try:
            res.update(import_gradients("keras", spec, layout))
        except (TypeError, ValueError) as e:
            raise CandidateError(f"{self.name}: its weight gradients in the keras layout: {e}") from e
        return res


def _result(outputs: list[np.ndarray], n_states: int) -> dict[str, Any]:
    """(output (B, T, D*P), h_n, [c_n]) -> the protocol's time-major result."""
    return {"output": np.swapaxes(outputs[0], 0, 1), "hidden": tuple(outputs[1:1 + n_states])}


class _Run:
    """The stack as one function of (x, h_0, [c_0], weights...) -> [output, h_n, [c_n]], in backend tensors."""

    def __init__(self, cand: KerasCandidate, stack: list[list[Any]], spec: Spec, mask: np.ndarray | None):
        self.keras, self.stack, self.spec = cand.keras, stack, spec
        self.mask = None if mask is None else cand.keras.ops.convert_to_tensor(mask)

    def __call__(self, x, *rest):
        ops, spec = self.keras.ops, self.spec
        n_states = 2 if spec.lstm else 1
        states, weights = rest[:n_states], list(rest[n_states:])
        D, finals = spec.D, [[] for _ in range(n_states)]
        y = x
        for k, clones in enumerate(self.stack):
            outs = []
            for d, c in enumerate(clones):
                n = len(c.trainable_variables)
                w, weights = weights[:n], weights[n:]
                init = [s[k * D + d] for s in states]  # (B, P) [and (B, H)]
                (seq, *final), _ = c.stateless_call(w, [v.value for v in c.non_trainable_variables], y,
                                                    initial_state=init, mask=self.mask, training=False)
                outs.append(ops.flip(seq, axis=1) if c.go_backwards else seq)  # Keras returns it in its own order
                for j, f in enumerate(final):
                    finals[j].append(f)
            y = outs[0] if D == 1 else ops.concatenate(outs, axis=-1)  # (B, T, D*P)
        return [y, *(ops.stack(f, axis=0) for f in finals)]

    def numpy(self, outputs) -> list[np.ndarray]:
        return [np.asarray(self.keras.ops.convert_to_numpy(o)) for o in outputs]


def _vjp(backend: str, run: _Run, primals: list[np.ndarray], cots: list, dtype: np.dtype):
    """(outputs, gradients of <cots, outputs> with respect to every primal), by the backend's autograd."""
    if backend == "torch":
        import torch

        leaves = [torch.tensor(p, requires_grad=True) for p in primals]
        outs = run(*leaves)
        pairs = [(o, torch.as_tensor(np.asarray(c, dtype=dtype))) for o, c in zip(outs, cots, strict=True)
                 if c is not None]
        grads = torch.autograd.grad([o for o, _ in pairs], leaves, [c for _, c in pairs], allow_unused=True)
        return ([o.detach().cpu().numpy() for o in outs],
                [np.zeros_like(p) if g is None else g.detach().cpu().numpy() for p, g in zip(primals, grads,
                                                                                             strict=True)])
    if backend == "jax":
        import jax

        outs, pullback = jax.vjp(lambda *a: run(*a), *primals)
        grads = pullback([np.zeros(o.shape, dtype) if c is None else np.asarray(c, dtype) for o, c in
                          zip(outs, cots, strict=True)])
        return [np.asarray(o) for o in outs], [np.asarray(g) for g in grads]
    if backend == "tensorflow":
        import tensorflow as tf

        leaves = [tf.convert_to_tensor(p) for p in primals]
        with tf.GradientTape() as tape:
            for t in leaves:
                tape.watch(t)
            outs = run(*leaves)
            loss = tf.add_n([tf.reduce_sum(o * tf.convert_to_tensor(np.asarray(c, dtype))) for o, c in
                             zip(outs, cots, strict=True) if c is not None])
        grads = tape.gradient(loss, leaves)
        return ([o.numpy() for o in outs],
                [np.zeros_like(p) if g is None else g.numpy() for p, g in zip(primals, grads, strict=True)])
    raise CandidateError(f"keras backend {backend!r}: gradients are taken on torch, jax or tensorflow only")
