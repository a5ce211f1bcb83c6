"""The data every implementation of a row sees: same weights, inputs and cotangents.

Everything is drawn from fixed seeds, so each worker process rebuilds it
identically instead of receiving arrays. Values are bounded and the weights are
torch's init (U(-1/sqrt(H), 1/sqrt(H))), so gates are not saturated. The weights
are drawn here, not by the reference's initialiser, and loaded through the public
``load_state_dict``: a previous revision of the reference (``--baseline-ref``)
then gets the very same weights.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import reference

from .config import Row


def numpy_dtype(row: Row) -> np.dtype:
    """The dtype the problem is drawn in: the row's, or float32 for bfloat16 and float16 (NumPy has
    neither as a computing type), which torch then rounds to the row's format."""
    return np.dtype("float32" if row.low_precision else row.dtype)


class Problem(NamedTuple):
    module: object  # the reference module; torch modules are converted from it
    x: np.ndarray  # (T, B, I)
    hx: tuple  # (h0,) or (h0, c0): (1, B, P) and (1, B, H)
    dout: np.ndarray  # (T, B, P) random cotangent of the output
    dhx: tuple  # like hx: random cotangents of h_n (and c_n)


def make_module(row: Row):
    """The reference module of the row, with weights drawn from seed 0."""
    dtype = numpy_dtype(row)
    if row.cell.startswith("RNN"):
        module = reference.RNN(row.I, row.H, nonlinearity=row.cell[4:].lower(), dtype=dtype, seed=0)
    elif row.P:
        module = reference.LSTM(row.I, row.H, proj_size=row.P, dtype=dtype, seed=0)
    else:
        module = getattr(reference, row.cell)(row.I, row.H, dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    bound = 1.0 / np.sqrt(row.H)
    state = {k: rng.uniform(-bound, bound, np.shape(v)).astype(dtype) for k, v in module.state_dict().items()}
    module.load_state_dict(state)
    return module


def make_problem(row: Row) -> Problem:
    dtype = numpy_dtype(row)
    module = make_module(row)
    P = row.P or row.H
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (row.T, row.B, row.I)).astype(dtype)  # (T, B, I)
    hx = (rng.uniform(-1, 1, (1, row.B, P)).astype(dtype),)  # h0 (1, B, P)
    if row.cell == "LSTM":
        hx += (rng.uniform(-1, 1, (1, row.B, row.H)).astype(dtype),)  # c0 (1, B, H)
    dout = rng.standard_normal((row.T, row.B, P)).astype(dtype)  # (T, B, P)
    dhx = tuple(rng.standard_normal(h.shape).astype(dtype) for h in hx)
    return Problem(module, x, hx, dout, dhx)


def as_hidden(states: tuple):
    """The hx argument as torch and the reference take it: h or the pair (h, c)."""
    return states if len(states) == 2 else states[0]
