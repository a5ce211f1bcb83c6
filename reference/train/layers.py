"""Linear and Embedding (torch.nn.Linear, torch.nn.Embedding): forward, cache, backward.

Equations::

    Linear:     y = x W^T + b               W (out, in), b (out,)
                dx = dy W      dW = sum_n dy_n^T x_n      db = sum_n dy_n
    Embedding:  y[...] = W[idx[...]]        W (num_embeddings, E)
                dW[k] = sum over positions where idx == k of dy     (scatter-add)

Parameters are plain dicts keyed like torch's state_dict ("weight", "bias"), so
``{"fc." + k: v}`` gives the keys of a torch model holding ``fc = nn.Linear(..)``.

Shapes: N any leading axes, I in features, O out features, V vocabulary, E embedding size.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._linear import affine, affine_backward


def init_linear(in_features: int, out_features: int, bias: bool = True, *, rng: np.random.Generator,
                dtype=np.float64) -> dict[str, np.ndarray]:
    """torch's default init: W, b ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a = sqrt(5))."""
    bound = 1.0 / np.sqrt(in_features)
    params = {"weight": rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype)}  # (O, I)
    if bias:
        params["bias"] = rng.uniform(-bound, bound, (out_features,)).astype(dtype)  # (O,)
    return params


def init_embedding(num_embeddings: int, embedding_dim: int, *, rng: np.random.Generator,
                   dtype=np.float64) -> dict[str, np.ndarray]:
    """torch's default init: W ~ N(0, 1)."""
    return {"weight": rng.standard_normal((num_embeddings, embedding_dim)).astype(dtype)}  # (V, E)


class LinearCache(NamedTuple):
    x: np.ndarray  # (..., I)
    weight: np.ndarray  # (O, I)
    has_bias: bool


def linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> tuple[np.ndarray, LinearCache]:
    """y = x W^T + b.

    Args:
        x: (..., I).  weight: (O, I).  bias: (O,) or None.
    Returns:
        y (..., O) and the cache for ``linear_backward``.
    """
    y = affine(np, x, weight, bias)  # (..., O)
    return y, LinearCache(x, weight, bias is not None)


def linear_backward(dy: np.ndarray, cache: LinearCache) -> dict[str, np.ndarray]:
    """Gradients given dL/dy (..., O): "input" (..., I), "weight" (O, I), "bias" (O,)."""
    x, weight, has_bias = cache
    dx, dweight, dbias = affine_backward(np, dy, x, weight, has_bias)  # (..., I), (O, I), (O,)
    grads = {"input": dx, "weight": dweight}
    if has_bias:
        grads["bias"] = dbias
    return grads


class EmbeddingCache(NamedTuple):
    indices: np.ndarray  # (...,) int
    num_embeddings: int
    padding_idx: int | None


def embedding_forward(indices: np.ndarray, weight: np.ndarray,
                      padding_idx: int | None = None) -> tuple[np.ndarray, EmbeddingCache]:
    """y = W[indices]: a row lookup.

    Args:
        indices: (...,) ints in [0, V).  weight: (V, E).
        padding_idx: a row whose gradient is always zero (torch's padding_idx).
    Returns:
        y (..., E) and the cache for ``embedding_backward``.
    """
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices: expected integers, got dtype {indices.dtype}")
    if indices.size and (indices.min() < 0 or indices.max() >= weight.shape[0]):
        raise IndexError(f"indices: expected values in [0, {weight.shape[0]}), got [{indices.min()}, {indices.max()}]")
    return weight[indices], EmbeddingCache(indices, weight.shape[0], padding_idx)  # (..., E)


def embedding_backward(dy: np.ndarray, cache: EmbeddingCache) -> dict[str, np.ndarray]:
    """dL/dW (V, E) given dL/dy (..., E): a scatter-add, because one row may be read many times."""
    indices, V, padding_idx = cache
    dweight = np.zeros((V, dy.shape[-1]), dtype=dy.dtype)  # (V, E)
    np.add.at(dweight, indices.reshape(-1), dy.reshape(-1, dy.shape[-1]))
    if padding_idx is not None:
        dweight[padding_idx] = 0
    return {"weight": dweight}
