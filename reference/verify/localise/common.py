"""What every phase of localisation shares: the stage being run, the one rule on slices of a result,
the reference's states before each step, and the first differing output in processing order."""

from __future__ import annotations

import math

import numpy as np

from ..deadline import set_phase

EQ_H = {"LSTM": "h' = o * tanh(c')", "GRU": "h' = (1 - z) * n + z * h", "RNN_TANH": "h' = tanh(W_ih x + b_ih + W_hh h + b_hh)",
         "RNN_RELU": "h' = relu(W_ih x + b_ih + W_hh h + b_hh)"}


class Stage:
    """What localisation is running now, for the report when a sub-problem cannot run (and a time limit's
    message: each probe is named as it starts)."""

    _text = "starting"

    @property
    def text(self) -> str:
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        self._text = value
        set_phase(f"localisation ({value})")



def valid_steps(lengths, T: int, B: int) -> np.ndarray:
    """(T, B) bool: True on valid steps."""
    if lengths is None:
        return np.ones((T, B), dtype=bool)
    return np.arange(T)[:, None] < np.asarray(lengths)[None, :]


def judge(actual, desired, bound, d: int | None = None, rows=None) -> tuple[bool, float]:
    """(ok, max abs error) under ``bound`` (:mod:`.bounds`); ``d`` selects axis 0, ``rows`` axis -2 of the
    arrays and of the bound alike."""
    if actual is None:
        return True, 0.0
    a, r = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    if a.shape != r.shape:
        return False, math.inf
    if d is not None:
        a, r, bound = a[d:d + 1], r[d:d + 1], bound[d:d + 1]
    if rows is not None:
        a, r, bound = a[..., rows, :], r[..., rows, :], bound[..., rows, :]
    if a.size == 0:
        return True, 0.0
    if not np.isfinite(a).all():
        return False, math.inf
    return bound.allows(a, r)


class States:
    """The reference's states before each step of one layer, both directions, from ``tape.steps``."""

    def __init__(self, tape, layer: int, D: int, lstm: bool):
        recs = [{r.t: r for r in tape.steps(layer, d)} for d in range(D)]
        self.recs, self.D, self.lstm = recs, D, lstm

    def at(self, t: int) -> tuple:
        """((D, B, P),) or (.., (D, B, H)): the states before step t."""
        hs = np.stack([np.asarray(self.recs[d][t].h_prev) for d in range(self.D)])
        if not self.lstm:
            return (hs,)
        return hs, np.stack([np.asarray(self.recs[d][t].c_prev) for d in range(self.D)])


def processing_index(t: int, d: int, n: int) -> int:
    return t if d == 0 else n - 1 - t


def first_output_divergence(cand_out, ref_out, lengths, D: int, P: int, bound):
    """(direction, time, batch row, error) of the first output beyond ``bound``, in each row's processing
    order (padding positions, which must be zero, count after every valid step)."""
    a, r = np.asarray(cand_out, np.float64), np.asarray(ref_out, np.float64)
    if a.shape != r.shape:
        return 0, 0, 0, math.inf
    T = a.shape[0]
    best = None  # (processing index, direction, row, time, error)
    for d in range(D):
        sl = slice(d * P, (d + 1) * P)
        diff = np.abs(a[..., sl] - r[..., sl]).max(axis=-1)  # (T, B)
        bad = bound[..., sl].exceeded(a[..., sl], r[..., sl]).any(axis=-1)  # (T, B)
        for b, t in zip(*np.nonzero(bad.T), strict=True):
            n = int(lengths[b]) if lengths is not None else T
            k = processing_index(int(t), d, n) if t < n else T + int(t)
            cand = (k, d, int(b), int(t), float(diff[t, b]))
            if best is None or cand[:3] < best[:3]:
                best = cand
    return None if best is None else (best[1], best[3], best[2], best[4])


def gate_blocks(a: np.ndarray, G: int) -> list[np.ndarray]:
    return np.split(np.asarray(a), G, axis=0)


def bound_blocks(bound, rows: int, G: int) -> list:
    """The bound of each of the G row blocks of a (rows, ...) tensor, as ``gate_blocks`` splits it."""
    n = rows // G
    return [bound[j * n:(j + 1) * n] for j in range(G)]


def with_arrays(params: dict, **arrays: np.ndarray) -> dict:
    out = dict(params)
    out.update(arrays)
    return out
