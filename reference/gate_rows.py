"""Where each gate's block sits: torch's order, and the LSTM's order inside the loop.

A layer's weights stack one block of H rows per gate, ``W_ih`` (G*H, I), in torch's
order: LSTM i, f, g, o; GRU r, z, n. Products with them give activations with one
block of H columns per gate, ``a = h W_hh^T`` (B, G*H). The cells read those blocks
by name, never by index:

    a_r, a_z, a_n = split(a, 3)              # 3 x (B, H) views, any leading axes

**The LSTM inside the loop: o, i, f, g (a speed trick).** ``loop_rows`` turns torch's
i, f, g, o rows into o, i, f, g -- torch's order rotated by one block -- once per weight
version, where the layer converts its weights (``layer.prepare_weights``); ``torch_rows``
turns gradients back (``stack``). Then the three sigmoid gates o, i, f are one block, and
``lstm_gates`` applies one sigmoid call per step to it where torch's order needs two. Forward +
backward in the loop's order over torch's order, same process, alternating calls, fastest CPU time
of 20 each at 1 thread (OpenBLAS SkylakeX kernel): T1000 B1 H8 float32 0.91x, T1000 B8 H64
float64 0.97x, where a step is microseconds of array calls; at T100 B64, H256 and H512 in
float32 and float64, 0.96-1.02x, no difference beyond the noise. It also keeps every result
bit for bit as the suite has pinned it: in torch's order the columns of every h W_hh^T
product move, and 3016 of 18874 arrays of a sweep over every option changed in their last
bits. Nothing outside the loop sees the loop's order, and inside it only these functions
know it: the cells write

    i, f, g, o = lstm_gates(xp, a)           # the four activations, from pre-activations in the loop's rows
    a_i, a_f, a_g, a_o = lstm_split(a)       # views of any (..., 4H) array in the loop's rows
    da = lstm_join(xp, da_i, da_f, da_g, da_o)   # (..., 4H) in the loop's rows

``xp`` is the array namespace of the arrays (NumPy, torch through array_api_compat, ...).
"""

from __future__ import annotations

from typing import Any

from .activations import sigmoid, tanh


def split(a: Any, k: int, axis: int = -1) -> tuple:
    """``a`` cut into k equal blocks along ``axis`` (the last by default, or 0 for a weight's rows): views."""
    n = a.shape[axis] // k
    if axis == 0:
        return tuple(a[j * n : (j + 1) * n, ...] for j in range(k))
    return tuple(a[..., j * n : (j + 1) * n] for j in range(k))


# -- the LSTM's loop order -------------------------------------------------------------------------


def loop_rows(xp: Any, a: Any) -> Any:
    """torch's LSTM rows i, f, g, o (axis 0: a weight or a bias) -> the loop's o, i, f, g."""
    i, f, g, o = split(a, 4, axis=0)
    return xp.concat([o, i, f, g], axis=0)


def torch_rows(xp: Any, a: Any) -> Any:
    """The loop's o, i, f, g rows (axis 0: a weight's or a bias's gradient) -> torch's i, f, g, o."""
    o, i, f, g = split(a, 4, axis=0)
    return xp.concat([i, f, g, o], axis=0)


def lstm_split(a: Any) -> tuple:
    """Views (a_i, a_f, a_g, a_o) of an (..., 4H) array in the loop's rows."""
    o, i, f, g = split(a, 4)
    return i, f, g, o


def lstm_join(xp: Any, i: Any, f: Any, g: Any, o: Any) -> Any:
    """Four (..., H) arrays, one per gate, as one (..., 4H) array in the loop's rows."""
    return xp.concat([o, i, f, g], axis=-1)


def lstm_gates(xp: Any, a: Any) -> tuple:
    """(i, f, g, o) = (sigmoid(a_i), sigmoid(a_f), tanh(a_g), sigmoid(a_o)), 4 x (..., H), from the
    pre-activations a (..., 4H) in the loop's rows: one sigmoid call for the three sigmoid gates."""
    H = a.shape[-1] // 4
    o, i, f = split(sigmoid(xp, a[..., : 3 * H]), 3)  # (..., 3H): the loop's o, i, f are one block
    return i, f, tanh(xp, a[..., 3 * H :]), o
