"""Losses with hand-written backward: log-softmax, cross-entropy (torch.nn.functional's), MSE.

Equations (N rows, C classes, targets y_n, w = rows not equal to ignore_index)::

    log_softmax(z)_c = z_c - max(z) - log sum_k exp(z_k - max(z))
    cross_entropy    = -(1 / |w|) sum_{n in w} log_softmax(z_n)_{y_n}        reduction="mean"
    d z_n            = (softmax(z_n) - onehot(y_n)) * dL / |w|                  (zero on ignored rows)
    mse              = (1 / numel) sum (x - y)^2,     dx = 2 (x - y) dL / numel

The cache holds the log-probabilities; backward exponentiates them (softmax =
exp(log_softmax)), so no max-shift or division has to be redone.

Shapes: N rows, C classes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis (shift by the max)."""
    shifted = z - z.max(axis=-1, keepdims=True)  # (..., C)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # (..., C)


def log_softmax_backward(dlogp: np.ndarray, logp: np.ndarray) -> np.ndarray:
    """dz = dlogp - softmax * sum_c dlogp_c, with softmax = exp(logp)."""
    return dlogp - np.exp(logp) * dlogp.sum(axis=-1, keepdims=True)  # (..., C)


class CrossEntropyCache(NamedTuple):
    logp: np.ndarray  # (N, C) log-probabilities
    target: np.ndarray  # (N,) int
    weight_rows: np.ndarray  # (N,) 1 on counted rows, 0 on ignored rows, divided by the count for "mean"


def cross_entropy_forward(logits: np.ndarray, target: np.ndarray, reduction: str = "mean",
                          ignore_index: int = -100) -> tuple[np.ndarray, CrossEntropyCache]:
    """torch.nn.functional.cross_entropy(logits, target) for class indices.

    Args:
        logits: (N, C).  target: (N,) ints in [0, C) or ignore_index.
        reduction: "mean" (over rows not ignored) or "sum".
    Returns:
        the loss (a 0-d array) and the cache for ``cross_entropy_backward``.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    target = np.asarray(target)
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"logits (N, C) and target (N,): got shapes {logits.shape} and {target.shape}")
    logp = log_softmax(logits)  # (N, C)
    keep = target != ignore_index  # (N,)
    safe = np.where(keep, target, 0)  # (N,) any valid class on ignored rows; their weight is 0
    rows = keep.astype(logits.dtype)  # (N,)
    if reduction == "mean":
        rows /= rows.sum()  # torch: 0/0 = nan when every row is ignored
    picked = logp[np.arange(len(safe)), safe]  # (N,)
    loss = -(picked * rows).sum()  # ()
    return np.asarray(loss), CrossEntropyCache(logp, safe, rows)


def cross_entropy_backward(dloss: float, cache: CrossEntropyCache) -> np.ndarray:
    """dL/dlogits (N, C) = (softmax - onehot(target)) * row weight * dL/dloss."""
    logp, target, rows = cache
    dlogits = np.exp(logp)  # (N, C) softmax
    dlogits[np.arange(len(target)), target] -= 1
    dlogits *= (rows * dloss)[:, None]
    return dlogits


class MSECache(NamedTuple):
    diff: np.ndarray  # (...,) input - target


def mse_loss_forward(input: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, MSECache]:
    """torch.nn.functional.mse_loss(input, target), reduction="mean"."""
    diff = input - target  # (...,)
    return np.asarray(np.mean(diff * diff)), MSECache(diff)


def mse_loss_backward(dloss: float, cache: MSECache) -> np.ndarray:
    """dL/dinput = 2 (input - target) dL / numel."""
    return cache.diff * (2.0 * dloss / cache.diff.size)
