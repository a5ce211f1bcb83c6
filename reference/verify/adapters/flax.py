"""Flax's recurrent cells as they are, linen and nnx: ``(module, params)`` for linen, the module alone for
nnx; see :mod:`reference.verify.adapters.jax_base` for what each cell computes in torch's terms."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..spec import Spec
from .jax_base import JaxCandidate
from .jax_leaves import BOTH, Direction, Leaf, bias_leaf, kernel_leaf, path_name


def _separate_lstm(forget: str) -> dict[str, Leaf]:
    """linen LSTMCell / OptimizedLSTMCell, nnx LSTMCell: one Dense per gate and side (``forget``: f's name)."""
    table = {}
    for g in "ifgo":
        table[f"i{forget if g == 'f' else g}/kernel"] = kernel_leaf("weight_ih", g)
        table[f"h{g}/kernel"] = kernel_leaf("weight_hh", g)
        table[f"h{g}/bias"] = bias_leaf((g, BOTH))
    return table


_LINEN_GRU = {
    **{f"i{g}/kernel": kernel_leaf("weight_ih", g) for g in "rzn"},
    **{f"h{g}/kernel": kernel_leaf("weight_hh", g) for g in "rzn"},
    "ir/bias": bias_leaf(("r", BOTH)), "iz/bias": bias_leaf(("z", BOTH)),
    "in/bias": bias_leaf(("n", ("bias_ih",))), "hn/bias": bias_leaf(("n", ("bias_hh",))),
}
_NNX_GRU = {  # no b_hn: dense_h has no bias
    "dense_i/kernel": kernel_leaf("weight_ih", "rzn"), "dense_h/kernel": kernel_leaf("weight_hh", "rzn"),
    "dense_i/bias": bias_leaf(("r", BOTH), ("z", BOTH), ("n", ("bias_ih",))),
}
_NNX_OPTIMIZED_LSTM = {
    "dense_i/kernel": kernel_leaf("weight_ih", "ifgo"), "dense_h/kernel": kernel_leaf("weight_hh", "ifgo"),
    "dense_h/bias": bias_leaf(*((g, BOTH) for g in "ifgo")),
}
_LINEN_SIMPLE = {"i/kernel": kernel_leaf("weight_ih", "h"), "h/kernel": kernel_leaf("weight_hh", "h"),
                 "i/bias": bias_leaf(("h", BOTH))}
_NNX_SIMPLE = {"dense_i/kernel": kernel_leaf("weight_ih", "h"), "dense_h/kernel": kernel_leaf("weight_hh", "h"),
               "dense_i/bias": bias_leaf(("h", BOTH))}



def _check_fn(where: str, attr: str, fn: Any, allowed: dict[str, Any]) -> str:
    """The name of ``fn`` among ``allowed`` (name -> function), or a ValueError naming the attribute."""
    for name, f in allowed.items():
        if fn is f:
            return name
    got = getattr(fn, "__name__", repr(fn))
    raise ValueError(f"{where}: {attr}={got}; the reference's cell uses {' or '.join(allowed)} there "
                     f"(supported: {attr} in {list(allowed)})")


def _flax_cell(flavour: str, cell: Any, where: str) -> tuple[str, dict[str, Leaf], int, Any]:
    """(mode, table, hidden size, computation dtype or None: its params') of a linen or nnx cell, its options
    checked (its dtype against its params' when they are known: :func:`~.jax_base.exchange_dtype`)."""
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
    if flavour == "linen":
        table = _separate_lstm("f") if mode == "LSTM" else _LINEN_GRU if mode == "GRU" else _LINEN_SIMPLE
    elif kind == "LSTMCell":
        table = _separate_lstm("f_")
    else:
        table = {"OptimizedLSTMCell": _NNX_OPTIMIZED_LSTM, "GRUCell": _NNX_GRU, "SimpleCell": _NNX_SIMPLE}[kind]
    return mode, table, hidden, None if cell.dtype is None else np.dtype(cell.dtype)


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

    def _read(self, params: Any, name: str | None) -> None:
        """The params tree's leaves and paths, the spec they give, the name; then the shared checks."""
        import jax

        flat, self._treedef = jax.tree_util.tree_flatten_with_path(params)
        self._paths = [path_name(k) for k, _ in flat]
        self.spec = self._spec(dict(zip(self._paths, (a for _, a in flat), strict=True)))
        self.name = name or self.name
        self._finish([a for _, a in flat])

    def _setup(self, obj: Any) -> Any:
        """Spec and directions from ``obj``; returns the RNN module to run (None: wrap the cell in RNN)."""
        runner, cells, prefixes = _flax_layers(self.flavour, obj)
        where = [type(obj).__name__ + (f" ({p.split('/')[0]})" if len(cells) > 1 else "") for p in prefixes]
        found = [_flax_cell(self.flavour, c, w) for c, w in zip(cells, where, strict=True)]
        if len({(m, tuple(t), h, d) for m, t, h, d in found}) != 1:
            raise ValueError(f"{type(obj).__name__}: its two directions differ in kind, size or dtype "
                             f"({[type(c).__name__ for c in cells]}: {[(m, h, str(d)) for m, _, h, d in found]})")
        self.mode, self.hidden, self.compute_dtype = found[0][0], found[0][2], found[0][3]
        self._directions = [Direction(p, t) for p, (_, t, _, _) in zip(prefixes, found, strict=True)]
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
        self._read(params, name)

    def _apply(self, leaves, x, hx, lengths):
        import jax

        tree = jax.tree_util.tree_unflatten(self._treedef, leaves)
        return self._flax_apply(lambda *a, **k: self.runner.apply({"params": tree}, *a, **k), x, hx, lengths)


class NnxCandidate(_FlaxBase):
    """A flax.nnx cell (LSTMCell, OptimizedLSTMCell, GRUCell, SimpleCell), ``nnx.RNN(cell)`` or
    ``nnx.Bidirectional``, holding its own weights."""

    flavour = "nnx"

    def __init__(self, module: Any, name: str | None = None):
        from flax import nnx

        runner = self._setup(module)
        if runner is None:
            runner = nnx.RNN(module, rngs=False)  # the carry is always given: no RNG stream needed
        self._graphdef, state, self._rest = nnx.split(runner, nnx.Param, ...)
        self._read(state, name)

    def _apply(self, leaves, x, hx, lengths):
        import jax
        from flax import nnx

        module = nnx.merge(self._graphdef, jax.tree_util.tree_unflatten(self._treedef, leaves), self._rest)
        return self._flax_apply(module, x, hx, lengths)


def candidate(obj: Any, **_: Any) -> JaxCandidate:
    """The registry's builder: a linen module with its params as ``(module, params)``, or an nnx module."""
    pair = isinstance(obj, tuple) and len(obj) == 2
    target = obj[0] if pair else obj
    if any(c.__module__.startswith("flax.linen") for c in type(target).__mro__):
        if not pair:
            raise ValueError(f"candidate: a flax.linen {type(obj).__name__} holds no weights; pass (module, params) "
                             "or FlaxCandidate(module, params), params being what module.init returned")
        return FlaxCandidate(*obj)
    if pair:
        raise ValueError(f"candidate: a nnx {type(obj[0]).__name__} holds its own weights; pass the module alone "
                         "(a (module, params) pair is for flax.linen)")
    return NnxCandidate(obj)
