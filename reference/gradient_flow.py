"""Gradient flow through time: ||dL/dh_t|| and the step Jacobians dh_t/dh_{t-1}.

BPTT multiplies the gradient by one step Jacobian per step::

    dL/dh_{t-1} = (dh_t/dh_{t-1})^T dL/dh_t  +  (gradient from the output at t-1)

so the size of dL/dh_t far from the loss is governed by products of step
Jacobians. Their singular values say by how much one step can stretch (> 1:
exploding) or shrink (< 1: vanishing) a gradient:

    RNN    dh_t/dh_{t-1} = diag(1 - h_t^2) W_hh                   tanh: every factor <= ||W_hh||
    GRU    dh_t/dh_{t-1} = diag(z) + (terms through r, z, n)      z near 1 gives an identity path
    LSTM   d(h_t, c_t)/d(h_{t-1}, c_{t-1}) has the block dc_t/dc_{t-1} = diag(f)   the "constant error carousel"

For LSTM the recurrent state is the pair (h, c), so its step Jacobian is the
(P + H) x (P + H) map of the pair; for RNN and GRU it is H x H.

Both functions work on one layer and one direction of a reference module
(``layer``, forward direction); ``hidden_gradient_norms`` needs the layer to be
the top one, where grad_output arrives directly.

Shapes: T time, B batch, P output size, H hidden, S state size (P or P + H).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .jvp import step_jvp
from .layer import CELLS


def hidden_gradient_norms(module: Any, input: Any, hx: Any = None, grad_output: Any = None,
                          grad_hidden: Any = None) -> np.ndarray:
    """||dL/dh_t|| (T, B) for the top layer, forward direction.

    dL/dh_t is the *total* gradient at h_t: from the output at t and from every
    later step through the recurrence -- exactly the carry ``dh_next`` of the
    BPTT loop in ``layer.layer_backward``, recorded at each step.

    Args:
        module: a reference RNN, GRU or LSTM, batch-major or time-major, no ``lengths``.
        input, hx: as for ``module.forward``.
        grad_output: dL/d(output), shaped like output, or None.
        grad_hidden: dL/d(hidden) like hidden, or None; for LSTM a pair whose items may be None.
    """
    _output, _hidden, tape = module.forward(input, hx)
    top = tape.layers[-1][0]
    T, B, P = tape.T, tape.B, module.output_size
    dout = np.zeros((T, B, P), dtype=module.dtype)  # (T, B, P) forward direction's slice
    if grad_output is not None:
        g = module._to_time_major(np.asarray(grad_output, dtype=module.dtype), tape.batched)  # (T, B, D*P)
        dout = g[..., :P]
    dstates = module._states("grad_hidden", grad_hidden if grad_hidden is not None else
                             ((None, None) if module.mode == "LSTM" else None), B, tape.batched)
    idx = (module.num_layers - 1) * module.num_directions
    dstate = tuple(s[idx] for s in dstates)  # (dh_n,) or (dh_n, dc_n)
    cell = CELLS[top.mode]
    norms = np.empty((T, B))
    for t in reversed(range(T)):
        dstate = (dstate[0] + dout[t],) + dstate[1:]  # (B, P) total dL/dh_t
        norms[t] = np.linalg.norm(dstate[0], axis=-1)
        _, _, dstate = cell.step_backward(dstate, top.caches[t], top.weights)
    return norms


def step_jacobians(module: Any, input: Any, hx: Any = None, layer: int = 0) -> np.ndarray:
    """dstate_t/dstate_{t-1} (T, B, S, S) along the forward direction of ``layer``.

    Built column by column in forward mode: the tangent of the previous state
    is each basis vector in turn (one broadcast call per step), input and
    weight tangents are zero. Row = output coordinate, column = input
    coordinate; for LSTM the state is the concatenation (h, c).
    """
    _, _, tape = module.forward(input, hx)
    lt = tape.layers[layer][0]
    P, H = module.output_size, module.hidden_size
    lstm = lt.mode == "LSTM"
    S = P + H if lstm else P
    B = tape.B
    basis = np.broadcast_to(np.eye(S, dtype=module.dtype)[:, None, :], (S, B, S))  # (S, B, S): tangent k is e_k
    dstate = (basis[..., :P], basis[..., P:]) if lstm else (basis,)
    jac = np.empty((tape.T, B, S, S), dtype=module.dtype)
    for t in range(tape.T):
        dnew = step_jvp(lt.mode, 0.0, dstate, lt.states[t], lt.caches[t], lt.weights)
        cols = np.concatenate(dnew, axis=-1) if lstm else dnew[0]  # (S, B, S): [k, b, :] = column k
        jac[t] = cols.transpose(1, 2, 0)  # (B, S, S)
    return jac


def step_singular_values(module: Any, input: Any, hx: Any = None, layer: int = 0) -> np.ndarray:
    """Singular values (T, B, S) of each step Jacobian, largest first."""
    return np.linalg.svd(step_jacobians(module, input, hx, layer), compute_uv=False)
