"""The GEMM floor: the matrix products of the reference's BPTT, timed alone.

A row's floor is what its forward and backward would cost if everything but the
matrix products were free: the same products, on the same shapes and the same
BLAS, with no gate arithmetic, no Python loop body and no bookkeeping. The
reference's step over its floor is then the price of everything else.

The products, for one layer and one direction (G gates, P = proj_size or H)::

    forward    xw = x (T*B, I) @ W_ih^T (I, G*H)                 one product for all steps
               per step t: h_{t-1} (B, P) @ W_hh^T (P, G*H)      T products
               LSTM with P: per step m_t (B, H) @ W_hr^T (H, P)   T products
    backward   per step t: dgates_t (B, G*H) @ W_hh (G*H, P)     T products (the carry dh)
               LSTM with P: per step dh_t (B, P) @ W_hr (P, H)    T products
               dx    = dgates (T*B, G*H) @ W_ih (G*H, I)
               dW_ih = dgates^T (G*H, T*B) @ x (T*B, I)
               dW_hh = dgates^T (G*H, T*B) @ h_prev (T*B, P)
               LSTM with P: dW_hr = dh^T (P, T*B) @ m (T*B, H)

Written with ``@`` and ``.T`` only, so the same code runs on NumPy arrays (the CPU
floor) and torch tensors (the CUDA floor).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .config import GATES, Row


class FloorArrays(NamedTuple):
    x: Any  # (T*B, I)
    h_prev: Any  # (T, B, P) the states each step's recurrent product reads
    m: Any  # (T, B, H) LSTM with projection: what W_hr multiplies; else None
    dgates: Any  # (T, B, G*H)
    dh: Any  # (T, B, P) LSTM with projection; else None
    w_ih: Any  # (G*H, I)
    w_hh: Any  # (G*H, P)
    w_hr: Any  # (P, H) or None


def floor_arrays(row: Row, make) -> FloorArrays:
    """Random arrays of the row's shapes; ``make(shape)`` builds one in the target library."""
    T, B, I, H, G = row.T, row.B, row.I, row.H, GATES[row.cell]
    P = row.P or H
    proj = bool(row.P)
    return FloorArrays(x=make((T * B, I)), h_prev=make((T, B, P)), m=make((T, B, H)) if proj else None,
                       dgates=make((T, B, G * H)), dh=make((T, B, P)) if proj else None,
                       w_ih=make((G * H, I)), w_hh=make((G * H, P)), w_hr=make((P, H)) if proj else None)


def forward(a: FloorArrays) -> list:
    """The forward's products; returns their results so nothing is optimised away."""
    out = [a.x @ a.w_ih.T]  # (T*B, G*H)
    for t in range(a.h_prev.shape[0]):
        out.append(a.h_prev[t] @ a.w_hh.T)  # (B, G*H)
        if a.w_hr is not None:
            out.append(a.m[t] @ a.w_hr.T)  # (B, P)
    return out


def backward(a: FloorArrays) -> list:
    """The backward's products."""
    T, B = a.h_prev.shape[:2]
    out = []
    for t in reversed(range(T)):
        out.append(a.dgates[t] @ a.w_hh)  # (B, P)
        if a.w_hr is not None:
            out.append(a.dh[t] @ a.w_hr)  # (B, H)
    dgates = a.dgates.reshape(T * B, -1)  # (T*B, G*H)
    out.append(dgates @ a.w_ih)  # dx (T*B, I)
    out.append(dgates.T @ a.x)  # dW_ih (G*H, I)
    out.append(dgates.T @ a.h_prev.reshape(T * B, -1))  # dW_hh (G*H, P)
    if a.w_hr is not None:
        out.append(a.dh.reshape(T * B, -1).T @ a.m.reshape(T * B, -1))  # dW_hr (P, H)
    return out


def product_counts(row: Row) -> dict[str, int]:
    """How many products each phase calls (what the module docstring lists)."""
    per_step = 2 if row.P else 1
    return {"forward": 1 + per_step * row.T, "backward": per_step * row.T + 3 + (1 if row.P else 0)}
