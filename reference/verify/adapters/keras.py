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

The candidate runs the user's own layer objects, each through its own ``call`` (``Layer.stateless_call``:
the verifier's weights are passed in, nothing is assigned), batch-major as Keras runs, in inference,
in order for a model (a ``Sequential``, or a functional model that chains them; a model whose class
overrides ``call`` is refused by name). For the run each layer is asked for its whole sequence and
its final states (``return_sequences``, ``return_state`` and ``zero_output_for_mask`` set, then
restored): padded steps keep the state and output zeros, as torch's packing does (Keras's other
choice, repeating the last output there, is a convention of the padding, not of the maths), and a
``call`` that cannot return them is refused by name. Each layer of a stack, alone, is that layer.
Lengths become Keras's mask. Gradients come from the backend's own autograd: ``torch.autograd`` on
the torch backend, ``jax.vjp`` on JAX, ``tf.GradientTape`` on TensorFlow.

Dtype: a layer runs in its compute dtype. Keras 3 computes products of float64 arrays in float32 on
the torch and JAX backends (``keras.backend.result_type("float64", "float64")`` is "float32"), so a
float64 layer there is run in float64 and judged at float32's tolerance, and the report says so.
bfloat16 and float16 policies (``mixed_bfloat16``) are refused by name.

Activations are the cells' own, as ONNX's functions (:data:`KERAS_ACTIVATIONS`: tanh, sigmoid,
relu, hard_sigmoid, linear, elu, softsign, softplus, leaky_relu); ``go_backwards`` on a layer of
its own is ONNX's reverse direction. What the reference cannot express is refused by name
(ValueError): another activation (gelu, a Python function), a merge mode other than concat,
``stateful``, layers that differ in size or kind, or any other layer in a model. Initialisation options (``unit_forget_bias``, initializers) and dropout (inactive in
inference) do not change what is checked.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from ...config import RNNConfig
from ..candidates import Candidate, CandidateError, to_numpy
from ..files import charge_archive
from ..layouts import export_state_dict, import_gradients, import_state_dict
from ..precision import judged_dtype, narrow_format
from ..spec import Spec, split_name
from .keras_layers import RecurrentLayer, import_keras, recurrent_layers


class KerasCandidate(Candidate):
    """Keras recurrent layers (one, bidirectional, or a stack in a model): the user's own layer objects, run by
    Keras itself."""

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
        self.name = name or f"{type(obj).__name__} {getattr(obj, 'name', '')} (keras, {self.backend})".replace("  ", " ")
        computes = {layer.layer.compute_dtype for layer in self.layers}
        compute = computes.pop() if len(computes) == 1 else "mixed"
        self.storage = narrow_format(compute)  # mixed_bfloat16, mixed_float16: float32 variables, narrow arithmetic
        self.dtype = np.dtype(np.float32) if self.storage else judged_dtype(compute, self.name)
        nested = {f"l{k}{sfx}": arrays for k, layer in enumerate(self.layers)
                  for sfx, arrays in zip(("", "_reverse"), layer.arrays(), strict=False)}
        held = {a.dtype for arrays in nested.values() for a in arrays.values()}
        if self.dtype == np.float64 and held != {self.dtype}:  # JAX without jax_enable_x64 holds float64 as float32
            self.dtype = np.dtype(np.float32)
            self.dtype_note = (f"its float64 variables hold float32 on the {self.backend} backend (JAX without "
                               "jax_enable_x64): it is run and judged in float32")
        elif self.dtype == np.float64 and keras.backend.result_type("float64", "float64") != "float64":
            self.judged_dtype = np.dtype(np.float32)
            self.dtype_note = (f"Keras computes products of float64 arrays in float32 on the {self.backend} backend "
                               "(keras.backend.result_type('float64', 'float64') is 'float32')")
        self.own_params = import_state_dict("keras", self.spec, nested)
        self._jitted: dict[tuple, Any] = {}

    def part(self, first: int, stop: int) -> KerasCandidate:
        """The user's own layers ``first``..``stop``-1: each layer alone is that layer."""
        view = copy.copy(self)
        view.layers, view.spec = self.layers[first:stop], self.spec.layers(first, stop)
        view.name = f"{self.name}, layers {first}..{stop - 1}"
        view.own_params = {f"{base}_l{layer - first}{'_reverse' if d else ''}": v
                           for base, layer, d, v in ((*split_name(k), v) for k, v in self.own_params.items())
                           if first <= layer < stop}
        return view

    # -- running -----------------------------------------------------------------------------------

    def call(self, spec, params, x, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        if dropout_masks is not None:
            raise CandidateError(f"{self.name} runs in inference: Keras draws its own dropout masks, so compare "
                                 "it with dropout inactive")
        diffs = [d for d in spec.differences(self.spec) if not (spec.num_layers == 1 and d.startswith("dropout"))]
        if diffs:
            raise CandidateError(f"{self.name} runs {self.spec}, asked {spec} ({'; '.join(diffs)})")
        T = x.shape[0]
        nested = export_state_dict("keras", spec, params)
        weights, slots = [], []  # the weight arrays in the order of each layer's trainable variables
        for k, layer in enumerate(self.layers):
            names = {}
            for d, r in enumerate(layer.rnns):
                names.update({id(r.cell.kernel): (d, "kernel"), id(r.cell.recurrent_kernel): (d, "recurrent_kernel")})
                if spec.bias:
                    names[id(r.cell.bias)] = (d, "bias")
            for v in layer.layer.trainable_variables:
                if id(v) not in names:
                    raise CandidateError(f"{self.name}: layer {layer.layer.name!r} has a trainable variable {v.path} "
                                         "the reference has no place for")
                d, name = names[id(v)]
                weights.append(np.asarray(nested[f"l{k}{('', '_reverse')[d]}"][name], dtype=self.dtype))
                slots.append((k, d, name))
        mask = None if lengths is None else np.arange(T)[None, :] < np.asarray(lengths)[:, None]  # (B, T)
        run = _Run(self, mask)
        primals = [np.ascontiguousarray(np.swapaxes(x, 0, 1), dtype=self.dtype),  # (B, T, I): Keras is batch-major
                   *[np.asarray(h, dtype=self.dtype) for h in hx], *weights]
        backward = grad_output is not None or grad_hidden is not None
        cots = [np.swapaxes(grad_output, 0, 1) if grad_output is not None else None,
                *(grad_hidden if grad_hidden is not None else (None,) * len(hx))]
        with _sequences_and_states(self.layers):
            if self.backend == "jax":  # one compiled program per shape; forward-only with zero cotangents
                outputs, grads = self._jax_vjp(mask, primals, cots, x.shape[1], len(hx))
            elif not backward:
                outputs = run.numpy(run(*[self.keras.ops.convert_to_tensor(p) for p in primals]))
            else:
                outputs, grads = _vjp(self.backend, run, primals, cots, self.dtype)
        res = _result(outputs, len(hx))
        if not backward:
            return res
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

    def _jax_vjp(self, mask: np.ndarray | None, primals: list, cots: list, B: int, n_states: int):
        """(outputs, gradients) by ``jax.vjp`` under ``jax.jit``, one program per layers, mask presence and shape
        (localisation's probes share a few shapes: eager JAX would dispatch every op of every step)."""
        import jax

        T = primals[0].shape[1]
        spec = self.spec
        shapes = [(B, T, spec.D * spec.P), *((spec.num_layers * spec.D, B, s) for s in (spec.P, spec.hidden_size)
                                            [:n_states])]
        cots = [np.zeros(s, self.dtype) if c is None else np.asarray(c, self.dtype) for c, s in
                zip(cots, shapes, strict=True)]
        key = (tuple(id(layer.layer) for layer in self.layers), mask is None)
        if key not in self._jitted:
            def program(mask, primals, cots):
                outs, pullback = jax.vjp(lambda *a: _Run(self, mask)(*a), *primals)
                return outs, pullback([c.astype(o.dtype) for c, o in zip(cots, outs, strict=True)])

            self._jitted[key] = jax.jit(program)
        outs, grads = self._jitted[key](mask, primals, cots)
        return [np.asarray(o, np.float32 if o.dtype.name in ("bfloat16", "float16") else o.dtype) for o in outs], \
            [np.asarray(g) for g in grads]


@contextlib.contextmanager
def _sequences_and_states(layers: list[RecurrentLayer]) -> Iterator[None]:
    """Each layer asked for its whole sequence and its final states, padded steps' outputs zero (torch's packing),
    for the run; its own settings restored after it, whatever happens."""
    objects = [o for layer in layers for o in {id(x): x for x in (layer.layer, *layer.rnns)}.values()]
    wanted = {"return_sequences": True, "return_state": True, "zero_output_for_mask": True}
    saved = [{k: getattr(o, k) for k in wanted if hasattr(o, k)} for o in objects]
    try:
        for o, own in zip(objects, saved, strict=True):
            for k in own:
                setattr(o, k, wanted[k])
        yield
    finally:
        for o, own in zip(objects, saved, strict=True):
            for k, v in own.items():
                setattr(o, k, v)


def _result(outputs: list[np.ndarray], n_states: int) -> dict[str, Any]:
    """(output (B, T, D*P), h_n, [c_n]) -> the protocol's time-major result."""
    return {"output": np.swapaxes(outputs[0], 0, 1), "hidden": tuple(outputs[1:1 + n_states])}


class _Run:
    """The user's layers as one function of (x, h_0, [c_0], weights...) -> [output, h_n, [c_n]], in backend tensors:
    each layer object called through its own ``call`` (``stateless_call``: the weights given, nothing assigned)."""

    def __init__(self, cand: KerasCandidate, mask: Any):
        self.keras, self.layers, self.spec = cand.keras, cand.layers, cand.spec
        self.mask = None if mask is None else cand.keras.ops.convert_to_tensor(mask)

    def __call__(self, x, *rest):
        ops, spec = self.keras.ops, self.spec
        n_states = 2 if spec.lstm else 1
        states, weights = rest[:n_states], list(rest[n_states:])
        D, finals = spec.D, [[] for _ in range(n_states)]
        y = x
        for k, layer in enumerate(self.layers):
            obj = layer.layer
            n = len(obj.trainable_variables)
            w, weights = weights[:n], weights[n:]
            init = [s[k * D + d] for d in range(D) for s in states]  # per direction (B, P) [and (B, H)]
            outputs, _ = obj.stateless_call(w, [v.value for v in obj.non_trainable_variables], y,
                                            initial_state=init, mask=self.mask, training=False)
            if not isinstance(outputs, (list, tuple)) or len(outputs) != 1 + D * n_states:
                raise CandidateError(f"layer {obj.name!r} ({type(obj).__name__}): its call returned "
                                     f"{type(outputs).__name__} with return_sequences=True and return_state=True; "
                                     f"expected [sequence, {D * n_states} states]")
            y, final = outputs[0], outputs[1:]
            if D == 1 and obj.go_backwards:
                y = ops.flip(y, axis=1)  # Keras returns a backward layer's sequence in its own order
            for j, f in enumerate(final):
                finals[j % n_states].append(f)
        return [y, *(ops.stack(f, axis=0) for f in finals)]

    def numpy(self, outputs) -> list[np.ndarray]:
        """NumPy arrays of the outputs; a mixed policy's bfloat16 or float16 ones as float32 (exact)."""
        ops = self.keras.ops
        wide = lambda o: ops.cast(o, "float32") if str(getattr(o, "dtype", "")).endswith(("bfloat16", "float16")) else o
        return [np.asarray(ops.convert_to_numpy(wide(o))) for o in outputs]


def _vjp(backend: str, run: _Run, primals: list[np.ndarray], cots: list, dtype: np.dtype):
    """(outputs, gradients of <cots, outputs> with respect to every primal), by the backend's autograd."""
    if backend == "torch":
        import torch

        leaves = [torch.tensor(p, requires_grad=True) for p in primals]
        outs = run(*leaves)
        pairs = [(o, torch.as_tensor(np.asarray(c, dtype=dtype)).to(o.dtype)) for o, c in zip(outs, cots, strict=True)
                 if c is not None]  # a mixed policy's outputs are bfloat16 or float16: their cotangents too
        grads = torch.autograd.grad([o for o, _ in pairs], leaves, [c for _, c in pairs], allow_unused=True)
        return ([to_numpy(o) for o in outs],
                [np.zeros_like(p) if g is None else to_numpy(g) for p, g in zip(primals, grads, strict=True)])
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
