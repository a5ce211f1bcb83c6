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

Each function reads one layer and direction of a reference module through the
public tape API (``tape.steps``, ``backward(..., carries=True)``).

Shapes: T time, B batch, P output size, H hidden, S state size (P or P + H).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._namespace import to_numpy
from .layer import LayerWeights, cell_of


def hidden_gradient_norms(module: Any, input: Any, hx: Any = None, grad_output: Any = None,
                          grad_hidden: Any = None, layer: int | None = None, direction: int = 0) -> np.ndarray:
    """||dL/dh_t|| (T, B) for one layer and direction (default: the top layer, forward direction).

    dL/dh_t is the *total* gradient at h_t: from the output at t and from every
    later step through the recurrence -- the carry of the BPTT loop, which
    ``backward(..., carries=True)`` returns for every step.

    Args:
        module: a reference RNN, GRU or LSTM.
        input, hx: as for ``module.forward``.
        grad_output: dL/d(output), shaped like output, or None.
        grad_hidden: dL/d(hidden) like hidden, or None; for LSTM a pair whose items may be None.
    """
    _output, _hidden, tape = module.forward(input, hx)
    grads = module.backward(tape, grad_output, grad_hidden, carries=True)
    layer = module.num_layers - 1 if layer is None else layer
    carries = grads["carries"][layer][direction]  # T x (dh_t,) or (dh_t, dc_t)
    return np.stack([np.linalg.norm(to_numpy(c[0]), axis=-1) for c in carries])  # (T, B)


def step_jacobians(module: Any, input: Any, hx: Any = None, layer: int = 0, direction: int = 0) -> np.ndarray:
    """dstate_t/dstate_{t-1} (T, B, S, S) of one layer and direction, in time order.

    Built column by column in forward mode: the tangent of the previous state
    is each basis vector in turn (one broadcast call per step), input and
    weight tangents are zero. Row = output coordinate, column = input
    coordinate; for LSTM the state is the concatenation (h, c).
    """
    _, _, tape = module.forward(np.asarray(input, dtype=module.dtype), hx)
    lt = tape.layer(layer, direction)
    cfg = tape.config
    P, H, B = cfg.output_size, cfg.hidden_size, tape.B
    lstm = cfg.mode == "LSTM"
    S = P + H if lstm else P
    basis = np.broadcast_to(np.eye(S, dtype=module.dtype)[:, None, :], (S, B, S))  # (S, B, S): tangent k is e_k
    state_dot = (basis[..., :P], basis[..., P:]) if lstm else (basis,)  # a dot is a forward-mode tangent
    no_tangent = LayerWeights(*[None] * len(LayerWeights._fields))
    step_jvp = cell_of(cfg, direction).step_jvp
    zero_xw_dot = np.zeros(cfg.gates * H, dtype=module.dtype)  # (G*H,) no input tangent
    jac = np.empty((tape.T, B, S, S), dtype=module.dtype)
    for t in range(tape.T):
        new_dot = step_jvp(np, zero_xw_dot, state_dot, lt.state_before(t), lt.state(t), lt.cache(t), lt.weights,
                           no_tangent)
        cols = np.concatenate(new_dot, axis=-1) if lstm else new_dot[0]  # (S, B, S): [k, b, :] = column k
        jac[t] = cols.transpose(1, 2, 0)  # (B, S, S)
    return jac


def step_singular_values(module: Any, input: Any, hx: Any = None, layer: int = 0, direction: int = 0) -> np.ndarray:
    """Singular values (T, B, S) of each step Jacobian, largest first."""
    return np.linalg.svd(step_jacobians(module, input, hx, layer, direction), compute_uv=False)


def gate_means(module: Any, input: Any, hx: Any = None, layer: int = 0, direction: int = 0) -> dict[str, np.ndarray]:
    """Mean of each gate's activation over batch and units, per time step: {letter: (T,)}, in time order."""
    _, _, tape = module.forward(input, hx)
    steps = sorted(tape.steps(layer, direction), key=lambda s: s.t)
    letters = [k for k in tape.config.gate_names if k in steps[0].gates]
    return {k: np.array([float(np.mean(to_numpy(s.gates[k]))) for s in steps]) for k in letters}
