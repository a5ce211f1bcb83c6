"""The data every implementation of a row sees: same weights, inputs and cotangents.

Everything is drawn from fixed seeds, so each worker process rebuilds it
identically instead of receiving arrays. Values are bounded and the weights are
torch's init (U(-1/sqrt(H), 1/sqrt(H))), so gates are not saturated.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import reference

from .config import Row


class Problem(NamedTuple):
    module: object  # the reference module; torch modules are converted from it
    x: np.ndarray  # (T, B, I)
    hx: tuple  # (h0,) or (h0, c0), each (1, B, H)
    dout: np.ndarray  # (T, B, H) random cotangent of the output
    dhx: tuple  # like hx: random cotangents of h_n (and c_n)


def make_problem(row: Row) -> Problem:
    dtype = np.dtype(row.dtype)
    if row.cell.startswith("RNN"):
        module = reference.RNN(row.I, row.H, nonlinearity=row.cell[4:].lower(), dtype=dtype, seed=0)
    else:
        module = getattr(reference, row.cell)(row.I, row.H, dtype=dtype, seed=0)
    rng = np.random.default_rng(1)
    n_states = 2 if row.cell == "LSTM" else 1
    x = rng.uniform(-1, 1, (row.T, row.B, row.I)).astype(dtype)
    hx = tuple(rng.uniform(-1, 1, (1, row.B, row.H)).astype(dtype) for _ in range(n_states))
    dout = rng.standard_normal((row.T, row.B, row.H)).astype(dtype)
    dhx = tuple(rng.standard_normal((1, row.B, row.H)).astype(dtype) for _ in range(n_states))
    return Problem(module, x, hx, dout, dhx)


def as_hidden(states: tuple):
    """The hx argument as torch and the reference take it: h or the pair (h, c)."""
    return states if len(states) == 2 else states[0]
