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

import os
from typing import Any

import numpy as np

from ...config import RNNConfig
from ..candidates import Candidate, CandidateError
from ..files import charge_archive
from ..layouts import export_state_dict, import_gradients, import_state_dict
from ..spec import Spec
from .keras_layers import RecurrentLayer, import_keras, recurrent_layers


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
        self.layers = [RecurrentLayer(keras, layer) for layer in recurrent_layers(keras, obj)]
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


def candidate(obj: Any, **_: Any) -> KerasCandidate:
    """The registry's builder: a Keras layer or model of recurrent layers."""
    return KerasCandidate(obj)


def load(path: str, **_: Any) -> KerasCandidate:
    """The registry's reader of ``.keras`` files: loaded in Keras's safe mode (no lambda or arbitrary code is
    deserialised)."""
    keras = import_keras()
    charge_archive(path, "model")  # what Keras will unpack, counted against the check's limits first
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # a damaged archive, an unregistered class, an unsafe lambda: all refused
        raise ValueError(f"model: {os.path.basename(path)} could not be loaded by Keras (safe mode): "
                         f"{type(e).__name__}: {e}") from e
    return KerasCandidate(model, name=os.path.basename(path))
