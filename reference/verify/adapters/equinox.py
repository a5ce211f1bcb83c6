"""Equinox's recurrent cells as they are: one unbatched cell, scanned over time and mapped over the batch;
see :mod:`reference.verify.adapters.jax_base` for what each cell computes in torch's terms."""

from __future__ import annotations

from typing import Any

from ..layouts import TORCH_ORDER, torch_mode
from ..spec import Spec
from .jax_base import JaxCandidate
from .jax_leaves import BOTH, Direction, Leaf, bias_leaf, path_name, weight_leaf


def _eqx_table(mode: str, use_bias: bool) -> dict[str, Leaf]:
    gates = TORCH_ORDER[torch_mode(mode)]
    table = {"weight_ih": weight_leaf("weight_ih", gates), "weight_hh": weight_leaf("weight_hh", gates)}
    if use_bias and mode == "LSTM":
        table["bias"] = bias_leaf(*((g, BOTH) for g in gates))
    elif use_bias:  # GRU: bias on the input side, b_hn inside the reset product
        table["bias"] = bias_leaf(("r", BOTH), ("z", BOTH), ("n", ("bias_ih",)))
        table["bias_n"] = bias_leaf(("n", ("bias_hh",)))
    return table



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
        self._directions = [Direction("", _eqx_table(self.mode, use_bias))]
        arrays, self._static = eqx.partition(cell, eqx.is_array)
        flat, self._treedef = jax.tree_util.tree_flatten_with_path(arrays)
        self._paths = [path_name(k) for k, _ in flat]
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


def candidate(obj: Any, **_: Any) -> EquinoxCandidate:
    """The registry's builder: an Equinox cell, holding its own weights."""
    pair = isinstance(obj, tuple)
    if pair:
        raise ValueError(f"candidate: a equinox {type(obj[0]).__name__} holds its own weights; pass the module alone "
                         "(a (module, params) pair is for flax.linen)")
    return EquinoxCandidate(obj)
