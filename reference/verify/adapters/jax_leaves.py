"""The map between a JAX framework's arrays and torch's: each framework array as gate blocks of torch's.

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
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..layouts import TORCH_ORDER, torch_mode

BOTH = ("bias_ih", "bias_hh")  # a merged bias: both of torch's biases enter the one sum


class Leaf(NamedTuple):
    """One framework array in torch's terms: gate blocks along its output axis, each a sum of torch blocks."""

    blocks: tuple[tuple[str, tuple[str, ...]], ...]  # ((gate letter, torch base names summed), ...) in its order
    kind: str  # "kernel" (in, n*H): used as x @ kernel; "weight" (n*H, in): torch's layout; "bias" (n*H,)


def kernel_leaf(name: str, gates: str) -> Leaf:
    return Leaf(tuple((g, (name,)) for g in gates), "kernel")


def weight_leaf(name: str, gates: str) -> Leaf:
    return Leaf(tuple((g, (name,)) for g in gates), "weight")


def bias_leaf(*blocks: tuple[str, tuple[str, ...]]) -> Leaf:
    return Leaf(tuple(blocks), "bias")


def rows(mode: str, gate: str, H: int) -> slice:
    k = TORCH_ORDER[torch_mode(mode)].index(gate)
    return slice(k * H, (k + 1) * H)


def leaf_shape(leaf: Leaf, I: int, H: int) -> tuple[int, ...]:
    n = len(leaf.blocks) * H
    if leaf.kind == "bias":
        return (n,)
    fan_in = I if leaf.blocks[0][1][0] == "weight_ih" else H
    return (fan_in, n) if leaf.kind == "kernel" else (n, fan_in)


class Direction(NamedTuple):
    """One direction's arrays: their paths' prefix in the framework's tree and the table of their names."""

    prefix: str
    table: dict[str, Leaf]


def path_name(keypath: Any) -> str:
    """'cell/hi/bias' from a JAX key path (dict keys, attribute names, indices; nnx's '.value' dropped)."""
    parts = []
    for k in keypath:
        name = getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))
        parts.append(str(name))
    if parts and parts[-1] == "value":
        parts.pop()
    return "/".join(parts)
