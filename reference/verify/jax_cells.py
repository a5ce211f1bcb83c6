"""JAX recurrent cells as they are: Flax (linen and nnx) and Equinox, run by JAX, gradients by ``jax.vjp``.

    report = compare((cell, params))                  # a linen cell, nn.RNN or nn.Bidirectional, with its params
    report = compare(FlaxCandidate(cell, params))     # the same, spelt out
    report = compare(nnx.LSTMCell(3, 8, rngs=nnx.Rngs(0)))   # nnx: cells, nnx.RNN, nnx.Bidirectional
    report = compare(eqx.nn.GRUCell(3, 8, key=key))   # Equinox: one cell, scanned over time

Linen modules hold no weights, so they come with their params: ``(module, params)``, where
``params`` is what ``module.init`` returned (``{"params": ...}``) or its ``"params"`` entry
(a bare cell's own params, not wrapped in ``{"cell": ...}``). nnx modules and Equinox cells
hold their own. The candidate runs the framework's own modules on the weights the verifier
gives, batch- and time-major as the reference, in the dtype of the module's params (float32 by
default; float64 where ``jax_enable_x64`` is on and the params are float64), and returns the
gradients of ``<cotangents, outputs>`` with respect to the input, the initial states and every
parameter by ``jax.vjp``, under ``jax.jit`` (compiled once per shape).

What each framework computes, read from its sources (``flax/linen/recurrent.py``,
``flax/nnx/nn/recurrent.py``, ``equinox/nn/_rnn.py``), in torch's names (rows of gate g of
``weight_ih`` are ``W_ig``; a kernel is (in, out), the transpose of torch's weight):

======================================  ===============================================================
framework cell                          torch / the reference
======================================  ===============================================================
linen ``LSTMCell``,                     LSTM. kernels ``i{g}`` (I, H) without bias, ``h{g}`` (H, H) with
``OptimizedLSTMCell``                   bias, g in i, f, g, o; one bias per gate: ``h{g}.bias`` = b_ig + b_hg;
                                        carry (c, h)
nnx ``LSTMCell``                        the same, the forget kernels named ``if_``, ``hf``
nnx ``OptimizedLSTMCell``               LSTM. ``dense_i`` (I, 4H) no bias, ``dense_h`` (H, 4H) with bias
                                        (4H,) = b_ih + b_hh; gates i, f, g, o
linen ``GRUCell``                       GRU, torch's form n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
                                        ``ir``, ``iz``, ``in`` with bias, ``hr``, ``hz`` without,
                                        ``hn`` with: ``ir.bias`` = b_ir + b_hr, ``iz.bias`` = b_iz + b_hz,
                                        ``in.bias`` = b_in, ``hn.bias`` = b_hn
nnx ``GRUCell``                         GRU, torch's form with **b_hn = 0**: ``dense_i`` (I, 3H) with bias
                                        (3H,) = [b_ir + b_hr, b_iz + b_hz, b_in], ``dense_h`` (H, 3H)
                                        without bias, so n = tanh(W_in x + b_in + r * W_hn h). Weights
                                        with a non-zero b_hn cannot be given to it, and torch's
                                        dL/dbias_hh is not among its gradients (it has no such parameter):
                                        the report lists grad bias_hh as not checked
linen / nnx ``SimpleCell``              RNN_TANH (``activation_fn`` tanh) or RNN_RELU (relu). ``i`` /
                                        ``dense_i`` with bias = b_ih + b_hh, ``h`` / ``dense_h`` without
Equinox ``LSTMCell``                    LSTM. ``weight_ih`` (4H, I), ``weight_hh`` (4H, H) in torch's
                                        layout and gate order; ``bias`` (4H,) = b_ih + b_hh (``use_bias``)
Equinox ``GRUCell``                     GRU, torch's form. ``weight_ih``, ``weight_hh`` as torch's; ``bias``
                                        (3H,) = [b_ir + b_hr, b_iz + b_hz, b_in], ``bias_n`` (H,) = b_hn
linen / nnx ``RNN(cell)``               the cell over the sequence (one layer, forward)
linen / nnx ``Bidirectional``           bidirectional=True: [forward, reverse] concatenated along features
======================================  ===============================================================

A merged bias is one sum, so the candidate's own weights import as (b_ih = the sum, b_hh = 0),
and both of torch's gradients are the merged bias's gradient (the chain rule through the sum).

Lengths: Flax's ``RNN`` takes ``seq_lengths``: the carry returned is the state after each row's
last valid step, and the reverse direction runs each row's valid steps only. Its outputs at padded
steps are not zeroed; the candidate zeroes them, as torch's packing does (a convention of the
padding, not of the maths). Equinox has no scan of its own: the candidate scans the cell with
``jax.lax.scan`` and ``jax.vmap`` over the batch (an Equinox cell is unbatched), so it takes no
lengths.

Refused by name (ValueError): a gate or activation function other than the reference's
(``gate_fn`` sigmoid, ``activation_fn`` tanh; relu too for ``SimpleCell``), ``SimpleCell(residual=True)``,
a computation ``dtype`` other than the params', a lone ``RNN(reverse=True)``, a ``Bidirectional``
whose ``merge_fn`` is not concatenation or whose directions differ, cells the reference has no
equations for (``MGUCell``, ``ConvLSTMCell``, any other), and params whose names or shapes are not
the cell's. A subclass of a supported cell is run as it is and checked against the equations of
the cell it derives from: that is how a modified cell is localised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from .candidates import Candidate, CandidateError
from .layouts import TORCH_ORDER, torch_mode
from .spec import Spec

BOTH = ("bias_ih", "bias_hh")  # a merged bias: both of torch's biases enter the one sum


def _framework(obj: Any) -> str | None:
    """"linen", "nnx" or "equinox" from the classes' modules of ``obj`` (or of ``obj[0]`` in a (module, params)
    pair); None otherwise. Nothing is imported."""
    target = obj[0] if isinstance(obj, tuple) and len(obj) == 2 else obj
    modules = [c.__module__ for c in type(target).__mro__]
    if any(m.startswith("flax.linen") for m in modules):
        return "linen"
    if any(m.startswith("flax.nnx") for m in modules):
        return "nnx"
    if any(m.split(".")[0] == "equinox" for m in modules):
        return "equinox"
    return None


def is_jax_object(obj: Any) -> bool:
    """A Flax (linen or nnx) module, a (linen module, params) pair, or an Equinox module."""
    return _framework(obj) is not None


def jax_candidate(obj: Any) -> JaxCandidate:
    """The candidate for a Flax or Equinox object (see the module docstring)."""
    kind = _framework(obj)
    pair = isinstance(obj, tuple)
    if kind == "linen":
        if not pair:
            raise ValueError(f"candidate: a flax.linen {type(obj).__name__} holds no weights; pass (module, params) "
                             "or FlaxCandidate(module, params), params being what module.init returned")
        return FlaxCandidate(*obj)
    if pair:
        raise ValueError(f"candidate: a {kind} {type(obj[0]).__name__} holds its own weights; pass the module alone "
                         "(a (module, params) pair is for flax.linen)")
    if kind == "nnx":
        return NnxCandidate(obj)
    if kind == "equinox":
        return EquinoxCandidate(obj)
    raise TypeError(f"candidate: expected a Flax or Equinox module, got {type(obj).__name__}")


# -- the map between a framework's arrays and torch's -----------------------------------------------


class _Leaf(NamedTuple):
    """One framework array in torch's terms: gate blocks along its output axis, each a sum of torch blocks."""

    blocks: tuple[tuple[str, tuple[str, ...]], ...]  # ((gate letter, torch base names summed), ...) in its order
    kind: str  # "kernel" (in, n*H): used as x @ kernel; "weight" (n*H, in): torch's layout; "bias" (n*H,)


def _kernel(name: str, gates: str) -> _Leaf:
    return _Leaf(tuple((g, (name,)) for g in gates), "kernel")


def _weight(name: str, gates: str) -> _Leaf:
    return _Leaf(tuple((g, (name,)) for g in gates), "weight")


def _bias(*blocks: tuple[str, tuple[str, ...]]) -> _Leaf:
    return _Leaf(tuple(blocks), "bias")


def _separate_lstm(forget: str) -> dict[str, _Leaf]:
    """linen LSTMCell / OptimizedLSTMCell, nnx LSTMCell: one Dense per gate and side (``forget``: f's name)."""
    table = {}
    for g in "ifgo":
        table[f"i{forget if g == 'f' else g}/kernel"] = _kernel("weight_ih", g)
        table[f"h{g}/kernel"] = _kernel("weight_hh", g)
        table[f"h{g}/bias"] = _bias((g, BOTH))
    return table


_LINEN_GRU = {
    **{f"i{g}/kernel": _kernel("weight_ih", g) for g in "rzn"},
    **{f"h{g}/kernel": _kernel("weight_hh", g) for g in "rzn"},
    "ir/bias": _bias(("r", BOTH)), "iz/bias": _bias(("z", BOTH)),
    "in/bias": _bias(("n", ("bias_ih",))), "hn/bias": _bias(("n", ("bias_hh",))),
}
_NNX_GRU = {  # no b_hn: dense_h has no bias
    "dense_i/kernel": _kernel("weight_ih", "rzn"), "dense_h/kernel": _kernel("weight_hh", "rzn"),
    "dense_i/bias": _bias(("r", BOTH), ("z", BOTH), ("n", ("bias_ih",))),
}
_NNX_OPTIMIZED_LSTM = {
    "dense_i/kernel": _kernel("weight_ih", "ifgo"), "dense_h/kernel": _kernel("weight_hh", "ifgo"),
    "dense_h/bias": _bias(*((g, BOTH) for g in "ifgo")),
}
_LINEN_SIMPLE = {"i/kernel": _kernel("weight_ih", "h"), "h/kernel": _kernel("weight_hh", "h"),
                 "i/bias": _bias(("h", BOTH))}
_NNX_SIMPLE = {"dense_i/kernel": _kernel("weight_ih", "h"), "dense_h/kernel": _kernel("weight_hh", "h"),
               "dense_i/bias": _bias(("h", BOTH))}


def _eqx_table(mode: str, use_bias: bool) -> dict[str, _Leaf]:
    gates = TORCH_ORDER[torch_mode(mode)]
    table = {"weight_ih": _weight("weight_ih", gates), "weight_hh": _weight("weight_hh", gates)}
    if use_bias and mode == "LSTM":
        table["bias"] = _bias(*((g, BOTH) for g in gates))
    elif use_bias:  # GRU: bias on the input side, b_hn inside the reset product
        table["bias"] = _bias(("r", BOTH), ("z", BOTH), ("n", ("bias_ih",)))
        table["bias_n"] = _bias(("n", ("bias_hh",)))
    return table


def _rows(mode: str, gate: str, H: int) -> slice:
    k = TORCH_ORDER[torch_mode(mode)].index(gate)
    return slice(k * H, (k + 1) * H)


def _leaf_shape(leaf: _Leaf, I: int, H: int) -> tuple[int, ...]:
    n = len(leaf.blocks) * H
    if leaf.kind == "bias":
        return (n,)
    fan_in = I if leaf.blocks[0][1][0] == "weight_ih" else H
    return (fan_in, n) if leaf.kind == "kernel" else (n, fan_in)


class _Direction(NamedTuple):
    """One direction's arrays: their paths' prefix in the framework's tree and the table of their names."""

    prefix: str
    table: dict[str, _Leaf]


def _path_name(keypath: Any) -> str:
    """'cell/hi/bias' from a JAX key path (dict keys, attribute names, indices; nnx's '.value' dropped)."""
    parts = []
    for k in keypath:
        name = getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))
        parts.append(str(name))
    if parts and parts[-1] == "value":
        parts.pop()
    return "/".join(parts)


# -- the candidate ----------------------------------------------------------------------------------


class JaxCandidate(Candidate):
    """A JAX recurrent module run by JAX on the verifier's weights; gradients by ``jax.vjp`` (see the module doc).

    Subclasses set ``spec``, ``dtype``, ``name``, ``_directions`` and the flattened parameter tree
    (``_treedef``, ``_paths``, own arrays), then call ``_finish``, and implement ``_apply``.
    """

    takes_hx = True
    declares_reset_after = True
    spec: Spec
    mode: str
    arrays: dict[str, np.ndarray]
    _directions: list[_Direction]
    _paths: list[str]
    _treedef: Any

    def _finish(self, arrays: list[Any]) -> None:
        """Check the parameter tree against the tables, import the own weights and compile lazily."""
        import jax

        own = {p: np.asarray(a) for p, a in zip(self._paths, arrays, strict=True)}
        self.arrays = own  # path ("cell/hi/bias") -> its own array, as the framework holds it
        expected = self._check_names(own)
        I, H = self.spec.input_size, self.spec.hidden_size
        wrong = [f"{p}: expected {_leaf_shape(leaf, I, H)}, got {own[p].shape}" for p, leaf in expected.items()
                 if own[p].shape != _leaf_shape(leaf, I, H)]
        if wrong:
            raise ValueError(f"{self.name}: parameter shapes do not fit input_size={I}, hidden_size={H}: "
                             + "; ".join(wrong))
        dtypes = {a.dtype for a in own.values()}
        if len(dtypes) != 1 or next(iter(dtypes)) not in (np.float32, np.float64):
            raise ValueError(f"{self.name}: its parameters are of dtypes {sorted(map(str, dtypes))}; expected all "
                             "float32 or all float64")
        self.dtype = np.dtype(next(iter(dtypes)))
        self.own_params = self._import(own, gradients=False)
        uncovered = self._uncovered()
        if uncovered:
            provided = {"input", "h_0", "c_0", "weight_ih", "weight_hh", "bias_ih", "bias_hh"}
            self.gradients = frozenset(provided - {base for base, _, _ in uncovered})
        self._run = jax.jit(self._vjp)

    def _check_names(self, arrays: Mapping[str, Any]) -> dict[str, _Leaf]:
        """The table by full path, once the parameter names are exactly the table's (else ValueError)."""
        expected = {d.prefix + k: leaf for d in self._directions for k, leaf in d.table.items()}
        missing, unexpected = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
        if missing or unexpected:
            raise ValueError(f"{self.name}: its parameters {sorted(arrays)} are not those of its cell "
                             f"(missing {missing}, unexpected {unexpected}); expected {sorted(expected)}")
        return expected

    # -- weights in and out -------------------------------------------------------------------

    def _suffix(self, d: int) -> str:
        return "_l0_reverse" if d else "_l0"

    def _uncovered(self) -> list[tuple[str, str, int]]:
        """Torch's (base name, gate, direction) blocks the framework has no parameter for."""
        mode = self.spec.mode
        out = []
        for d, direction in enumerate(self._directions):
            covered = {(n, g) for leaf in direction.table.values() for g, names in leaf.blocks for n in names}
            bases = ("weight_ih", "weight_hh") + (BOTH if self.spec.bias else ())
            out += [(b, g, d) for b in bases for g in TORCH_ORDER[torch_mode(mode)] if (b, g) not in covered]
        return out

    def to_framework(self, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """torch-named weights (a state_dict of one layer) -> the framework's arrays by path."""
        return dict(zip(self._paths, self._export(params), strict=True))

    def _export(self, params: Mapping[str, Any]) -> list[np.ndarray]:
        """torch-named weights -> the framework's arrays, in the tree's order."""
        H, mode = self.spec.hidden_size, self.spec.mode
        for base, g, d in self._uncovered():
            block = np.asarray(params[base + self._suffix(d)])[_rows(mode, g, H)]
            if np.any(block != 0):
                raise CandidateError(f"{self.name} has no parameter for torch's {base}{self._suffix(d)} gate {g} "
                                     f"block (its form fixes it at 0), but was given one of max |value| "
                                     f"{np.abs(block).max():.3g}: check it with its own weights (weights='candidate')")
        arrays = {}
        for d, direction in enumerate(self._directions):
            for key, leaf in direction.table.items():
                blocks = [sum(np.asarray(params[n + self._suffix(d)], dtype=np.float64)[_rows(mode, g, H)]
                              for n in names) for g, names in leaf.blocks]
                a = np.concatenate(blocks, axis=0)  # (n*H, in) or (n*H,)
                arrays[direction.prefix + key] = a.T if leaf.kind == "kernel" else a
        return [np.ascontiguousarray(arrays[p], dtype=self.dtype) for p in self._paths]

    def _import(self, arrays: Mapping[str, np.ndarray], gradients: bool) -> dict[str, np.ndarray]:
        """The framework's arrays (or their gradients) -> torch's names.

        Weights: a merged block goes to the first torch name of its sum, zeros to the others.
        Gradients: every torch block of a sum receives the sum's gradient; a torch tensor with a
        block the framework has no parameter for is left out (not provided).
        """
        H, mode = self.spec.hidden_size, self.spec.mode
        shapes = self.spec.parameter_shapes()
        out = {k: np.zeros(s) for k, s in shapes.items()}
        for d, direction in enumerate(self._directions):
            for key, leaf in direction.table.items():
                a = np.asarray(arrays[direction.prefix + key], dtype=np.float64)
                a = a.T if leaf.kind == "kernel" else a  # (n*H, in) or (n*H,)
                for (g, names), block in zip(leaf.blocks, np.split(a, len(leaf.blocks), axis=0), strict=True):
                    for n in (names if gradients else names[:1]):
                        out[n + self._suffix(d)][_rows(mode, g, H)] += block
        if gradients:
            for base, _, d in self._uncovered():
                out.pop(base + self._suffix(d), None)
        return out

    # -- running --------------------------------------------------------------------------------

    def _apply(self, leaves: list[Any], x: Any, hx: tuple, lengths: Any) -> tuple[Any, tuple]:
        """(output (T, B, D*P), (h_n,) or (h_n, c_n), each (D, B, H)) in JAX arrays; traced under jit."""
        raise NotImplementedError

    def _vjp(self, leaves: list[Any], x: Any, hx: tuple, lengths: Any, cots: tuple) -> tuple:
        import jax

        outs, pullback = jax.vjp(lambda w, x_, h: self._apply(w, x_, h, lengths), leaves, x, hx)
        return outs, pullback(cots)

    def call(self, spec, params, x, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        if dropout_masks is not None:
            raise CandidateError(f"{self.name} has no dropout between layers (one layer); compare it without")
        diffs = [d for d in spec.differences(self.spec) if not d.startswith("training")]
        if diffs:
            raise CandidateError(f"{self.name} runs {self.spec}, asked {spec} ({'; '.join(diffs)})")
        if lengths is not None and not self.takes_lengths:
            raise CandidateError(f"{self.name} takes no lengths")
        import jax

        if jax.dtypes.canonicalize_dtype(self.dtype) != self.dtype:
            raise CandidateError(f"{self.name}: its params are {self.dtype.name}, but JAX would compute in "
                                 f"{np.dtype(jax.dtypes.canonicalize_dtype(self.dtype)).name}: enable float64 "
                                 "(jax.config.update('jax_enable_x64', True), or compare inside jax.enable_x64(True))")
        leaves = self._export(params)
        dt = self.dtype
        out_shape = (x.shape[0], x.shape[1], spec.D * spec.P)
        g_out = np.zeros(out_shape, dt) if grad_output is None else np.asarray(grad_output, dt)
        g_hid = tuple(np.zeros(h.shape, dt) if grad_hidden is None or grad_hidden[k] is None
                      else np.asarray(grad_hidden[k], dt) for k, h in enumerate(hx))
        lens = None if lengths is None else np.asarray(lengths, dtype=np.int32)
        # a forward-only call runs the same program with zero cotangents: one compile per shape, not two
        (out, hidden), (g_leaves, g_x, g_hx) = self._run(leaves, np.asarray(x, dt),
                                                         tuple(np.asarray(h, dt) for h in hx), lens, (g_out, g_hid))
        res: dict[str, Any] = {"output": np.asarray(out), "hidden": tuple(np.asarray(h) for h in hidden)}
        if grad_output is not None or grad_hidden is not None:
            res["input"] = np.asarray(g_x)
            res["hx"] = tuple(np.asarray(g) for g in g_hx)
            grads = self._import(dict(zip(self._paths, (np.asarray(g) for g in g_leaves), strict=True)),
                                 gradients=True)
            res.update((k, v.astype(self.dtype)) for k, v in grads.items())
        return res


# -- Flax: linen and nnx --------------------------------------------------------------------------


def _check_fn(where: str, attr: str, fn: Any, allowed: dict[str, Any]) -> str:
    """The name of ``fn`` among ``allowed`` (name -> function), or a ValueError naming the attribute."""
    for name, f in allowed.items():
        if fn is f:
            return name
    got = getattr(fn, "__name__", repr(fn))
    raise ValueError(f"{where}: {attr}={got}; the reference's cell uses {' or '.join(allowed)} there "
                     f"(supported: {attr} in {list(allowed)})")


def _flax_cell(flavour: str, cell: Any, where: str) -> tuple[str, dict[str, _Leaf], int]:
    """(mode, table, hidden size) of a linen or nnx cell, its options checked."""
    import jax
    import jax.numpy as jnp

    if flavour == "linen":
        import flax.linen as nn

        classes = {"LSTMCell": nn.LSTMCell, "OptimizedLSTMCell": nn.OptimizedLSTMCell, "GRUCell": nn.GRUCell,
                   "SimpleCell": nn.SimpleCell}
        hidden = int(cell.features)
    else:
        from flax import nnx

        classes = {"LSTMCell": nnx.LSTMCell, "OptimizedLSTMCell": nnx.OptimizedLSTMCell, "GRUCell": nnx.GRUCell,
                   "SimpleCell": nnx.SimpleCell}
        hidden = int(cell.hidden_features)
    kind = next((k for k, c in classes.items() if isinstance(cell, c)), None)
    if kind is None:
        raise ValueError(f"{where}: {type(cell).__name__} derives from none of {sorted(classes)}, so its equations "
                         "are unknown to the reference (supported: LSTM, GRU and simple cells)")
    sigmoid, tanh = {"sigmoid": jax.nn.sigmoid}, {"tanh": jnp.tanh}
    if kind == "SimpleCell":
        if cell.residual:
            raise ValueError(f"{where}: residual=True adds h to the pre-activation; the reference's RNN has no "
                             "residual (supported: residual=False)")
        act = _check_fn(where, "activation_fn", cell.activation_fn, {**tanh, "relu": jax.nn.relu})
        mode = "RNN_TANH" if act == "tanh" else "RNN_RELU"
    else:
        _check_fn(where, "gate_fn", cell.gate_fn, sigmoid)
        _check_fn(where, "activation_fn", cell.activation_fn, tanh)
        mode = "LSTM" if "LSTM" in kind else "GRU"
    if cell.dtype is not None and np.dtype(cell.dtype) != np.dtype(cell.param_dtype):
        raise ValueError(f"{where}: dtype={np.dtype(cell.dtype).name} computes in another dtype than its params "
                         f"({np.dtype(cell.param_dtype).name}); the verifier checks a cell in its params' dtype "
                         "(supported: dtype=None or the param_dtype)")
    if flavour == "linen":
        table = _separate_lstm("f") if mode == "LSTM" else _LINEN_GRU if mode == "GRU" else _LINEN_SIMPLE
    elif kind == "LSTMCell":
        table = _separate_lstm("f_")
    else:
        table = {"OptimizedLSTMCell": _NNX_OPTIMIZED_LSTM, "GRUCell": _NNX_GRU, "SimpleCell": _NNX_SIMPLE}[kind]
    return mode, table, hidden


def _flax_layers(flavour: str, obj: Any) -> tuple[Any, list[Any], list[str]]:
    """(the RNN module to call, its cells, their paths' prefixes) of a cell, an RNN or a Bidirectional."""
    if flavour == "linen":
        import flax.linen as fl
        from flax.linen import recurrent
    else:
        from flax import nnx as fl
        from flax.nnx.nn import recurrent
    name = type(obj).__name__
    if isinstance(obj, fl.Bidirectional):
        rnns = [obj.forward_rnn, obj.backward_rnn]
        if obj.merge_fn is not recurrent._concatenate:
            raise ValueError(f"{name}: merge_fn={getattr(obj.merge_fn, '__name__', obj.merge_fn)}; the reference's "
                             "bidirectional layer concatenates [forward, reverse] (supported: the default merge_fn)")
        if not all(isinstance(r, fl.RNN) for r in rnns):
            raise ValueError(f"{name}: its forward_rnn and backward_rnn must be {flavour} RNN modules, got "
                             f"{[type(r).__name__ for r in rnns]}")
        if obj.forward_rnn is obj.backward_rnn:
            raise ValueError(f"{name}: forward_rnn and backward_rnn are the same object, so the two directions share "
                             "their weights; the reference's directions have weights of their own")
        return obj, [r.cell for r in rnns], ["forward_rnn/cell/", "backward_rnn/cell/"]
    if isinstance(obj, fl.RNN):
        if obj.reverse:
            raise ValueError(f"{name}: reverse=True on its own; this candidate runs Flax's reverse direction inside "
                             "Bidirectional only (supported: reverse=False, or Bidirectional)")
        return obj, [obj.cell], ["cell/"]
    return None, [obj], ["cell/"]


class _FlaxBase(JaxCandidate):
    flavour = "linen"

    def _setup(self, obj: Any) -> Any:
        """Spec and directions from ``obj``; returns the RNN module to run (None: wrap the cell in RNN)."""
        runner, cells, prefixes = _flax_layers(self.flavour, obj)
        where = [type(obj).__name__ + (f" ({p.split('/')[0]})" if len(cells) > 1 else "") for p in prefixes]
        found = [_flax_cell(self.flavour, c, w) for c, w in zip(cells, where, strict=True)]
        if len({(m, tuple(t), h) for m, t, h in found}) != 1:
            raise ValueError(f"{type(obj).__name__}: its two directions differ in kind or size "
                             f"({[type(c).__name__ for c in cells]}: {[(m, h) for m, _, h in found]})")
        self.mode, self.hidden = found[0][0], found[0][2]
        self._directions = [_Direction(p, t) for p, (_, t, _) in zip(prefixes, found, strict=True)]
        self.name = f"{type(obj).__name__} (flax.{self.flavour})"
        return runner

    def _spec(self, arrays: Mapping[str, Any]) -> Spec:
        self._check_names(arrays)
        key = next(self._directions[0].prefix + k for k, leaf in self._directions[0].table.items()
                   if leaf.blocks[0][1] == ("weight_ih",))
        I = int(np.shape(arrays[key])[0])  # a kernel: (I, n*H)
        return Spec(self.mode, I, self.hidden, 1, True, len(self._directions) == 2)

    def _flax_apply(self, call: Callable, x: Any, hx: tuple, lengths: Any) -> tuple[Any, tuple]:
        import jax.numpy as jnp

        D, lstm = len(self._directions), self.spec.lstm
        carries = [(hx[1][d], hx[0][d]) if lstm else hx[0][d] for d in range(D)]  # Flax's LSTM carry is (c, h)
        carry, out = call(x, initial_carry=carries[0] if D == 1 else tuple(carries), seq_lengths=lengths,
                          return_carry=True, time_major=True)
        finals = [carry] if D == 1 else list(carry)
        h_n = jnp.stack([f[1] if lstm else f for f in finals])  # (D, B, H)
        if lengths is not None:  # Flax leaves padded outputs as computed; torch's packing zeroes them
            valid = jnp.arange(x.shape[0])[:, None] < lengths[None, :]  # (T, B)
            out = jnp.where(valid[..., None], out, 0)
        return out, ((h_n, jnp.stack([f[0] for f in finals])) if lstm else (h_n,))


class FlaxCandidate(_FlaxBase):
    """A flax.linen cell (LSTMCell, OptimizedLSTMCell, GRUCell, SimpleCell), ``nn.RNN(cell)`` or
    ``nn.Bidirectional`` with its params (what ``module.init`` returned, or its "params" entry)."""

    flavour = "linen"

    def __init__(self, module: Any, params: Mapping[str, Any], name: str | None = None):
        import flax.linen as nn
        import jax

        if not isinstance(module, nn.Module):
            raise TypeError(f"module: expected a flax.linen module, got {type(module).__name__}")
        if not isinstance(params, Mapping):
            raise TypeError(f"params: expected the mapping module.init returned, got {type(params).__name__}")
        if "params" in params:
            others = sorted(set(params) - {"params"})
            if others:
                raise ValueError(f"params: collections {others} besides 'params'; a recurrent cell has only params")
            params = params["params"]
        runner = self._setup(module)
        if runner is None:
            runner, params = nn.RNN(module), {"cell": params}
        self.runner = runner
        flat, self._treedef = jax.tree_util.tree_flatten_with_path(params)
        self._paths = [_path_name(k) for k, _ in flat]
        self.spec = self._spec(dict(zip(self._paths, (a for _, a in flat), strict=True)))
        self.name = name or self.name
        self._finish([a for _, a in flat])

    def _apply(self, leaves, x, hx, lengths):
        import jax

        tree = jax.tree_util.tree_unflatten(self._treedef, leaves)
        return self._flax_apply(lambda *a, **k: self.runner.apply({"params": tree}, *a, **k), x, hx, lengths)


class NnxCandidate(_FlaxBase):
    """A flax.nnx cell (LSTMCell, OptimizedLSTMCell, GRUCell, SimpleCell), ``nnx.RNN(cell)`` or
    ``nnx.Bidirectional``, holding its own weights."""

    flavour = "nnx"

    def __init__(self, module: Any, name: str | None = None):
        import jax
        from flax import nnx

        runner = self._setup(module)
        if runner is None:
            runner = nnx.RNN(module, rngs=False)  # the carry is always given: no RNG stream needed
        self._graphdef, state, self._rest = nnx.split(runner, nnx.Param, ...)
        flat, self._treedef = jax.tree_util.tree_flatten_with_path(state)
        self._paths = [_path_name(k) for k, _ in flat]
        self.spec = self._spec(dict(zip(self._paths, (a for _, a in flat), strict=True)))
        self.name = name or self.name
        self._finish([a for _, a in flat])

    def _apply(self, leaves, x, hx, lengths):
        import jax
        from flax import nnx

        module = nnx.merge(self._graphdef, jax.tree_util.tree_unflatten(self._treedef, leaves), self._rest)
        return self._flax_apply(module, x, hx, lengths)


# -- Equinox ----------------------------------------------------------------------------------------


class EquinoxCandidate(JaxCandidate):
    """An Equinox ``nn.LSTMCell`` or ``nn.GRUCell`` (one unbatched step), scanned over time by ``jax.lax.scan``
    and mapped over the batch by ``jax.vmap``. Takes no lengths (Equinox has no scan of its own)."""

    takes_lengths = False

    def __init__(self, cell: Any, name: str | None = None):
        import equinox as eqx
        import jax

        if isinstance(cell, eqx.nn.LSTMCell):
            self.mode = "LSTM"
        elif isinstance(cell, eqx.nn.GRUCell):
            self.mode = "GRU"
        else:
            raise TypeError(f"candidate: {type(cell).__name__} derives from neither equinox.nn.LSTMCell nor "
                             "equinox.nn.GRUCell, so its equations are unknown to the reference")
        self.name = name or f"{type(cell).__name__} (equinox)"
        use_bias = bool(cell.use_bias)
        self.spec = Spec(self.mode, int(cell.input_size), int(cell.hidden_size), 1, use_bias, False)
        self._directions = [_Direction("", _eqx_table(self.mode, use_bias))]
        arrays, self._static = eqx.partition(cell, eqx.is_array)
        flat, self._treedef = jax.tree_util.tree_flatten_with_path(arrays)
        self._paths = [_path_name(k) for k, _ in flat]
        self._finish([a for _, a in flat])

    def _apply(self, leaves, x, hx, lengths):
        import equinox as eqx
        import jax

        cell = eqx.combine(jax.tree_util.tree_unflatten(self._treedef, leaves), self._static)
        lstm = self.spec.lstm
        step_all = jax.vmap(cell)  # the cell is unbatched: one row at a time

        def step(state, x_t):  # Equinox's LSTM state is (h, c)
            new = step_all(x_t, state)
            return new, (new[0] if lstm else new)

        init = (hx[0][0], hx[1][0]) if lstm else hx[0][0]  # (B, H)
        final, out = jax.lax.scan(step, init, x)  # out (T, B, H)
        return out, ((final[0][None], final[1][None]) if lstm else (final[None],))
