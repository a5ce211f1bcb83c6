"""The affine map every cell shares, and its gradients.

A recurrent cell touches its input weights only through

    xw = x W_ih^T + b          (input side, all time steps at once)

so given the gradient at xw for every step, the weight gradients are one matrix
product each over all steps: the ``+=`` over time (the same weights are used at
every step) collapses into the product's sum over its rows.

Convention (used everywhere in the reference): arrays are batches of rows, x is
(N, I), W_ih is (G*H, I) in torch's layout, so xw = x W_ih^T is (N, G*H).
"""

from __future__ import annotations

from typing import Any


def affine(xp: Any, x: Any, weight: Any, bias: Any | None) -> Any:
    """x W^T + b over the last axis, as one matrix product for any leading shape."""
    lead = tuple(x.shape[:-1])
    y = xp.reshape(x, (-1, x.shape[-1])) @ weight.T  # (N, out)
    if bias is not None:
        y += bias  # in place: the product is a new array, and a second (N, out) would double the peak
    return xp.reshape(y, (*lead, weight.shape[0]))  # (..., out)


def sum_rows(xp: Any, a: Any) -> Any:
    """Sum of the rows of a (N, M) array, added pairwise: (M,).

    A plain column sum over a row-major array adds the rows one by one, and in
    float32 its error grows like N: a bias gradient summed over T*B = 160000 rows
    was off by 1.3e-5 where pairwise order gives 3e-8. Halving until one row is
    left costs two passes over the data instead of one.
    """
    if a.shape[0] == 0:
        return xp.sum(a, axis=0)  # (M,) zeros
    own = getattr(xp, "sum_rows", None)  # a namespace may sum in its own order (reference.precision: one by one)
    if own is not None:
        return own(a)
    odd_rows = []  # at most log2(N) rows left over by odd halvings, added at the end
    while a.shape[0] > 1:
        n, half = a.shape[0], a.shape[0] // 2
        if n % 2:
            odd_rows.append(a[n - 1, ...])  # (M,)
        a = a[:half, ...] + a[half : 2 * half, ...]  # (half, M)
    total = a[0, ...]  # (M,)
    for row in odd_rows:
        total = total + row
    return total


def weight_grad(xp: Any, dy: Any, x: Any) -> Any:
    """dW = sum over every leading index of dy^T x, for y = x W^T: one product. (out, in)"""
    return xp.reshape(dy, (-1, dy.shape[-1])).T @ xp.reshape(x, (-1, x.shape[-1]))


def affine_backward(xp: Any, dy: Any, x: Any, weight: Any, has_bias: bool) -> tuple[Any, Any, Any]:
    """Gradients of y = x W^T + b given dy; leading axes are summed over.

    Returns (dx (..., in), dweight (out, in), dbias (out,) or None without a bias).
    """
    dbias = sum_rows(xp, xp.reshape(dy, (-1, dy.shape[-1]))) if has_bias else None  # (out,)
    dx = xp.reshape(xp.reshape(dy, (-1, dy.shape[-1])) @ weight, tuple(x.shape))  # (..., in)
    return dx, weight_grad(xp, dy, x), dbias
