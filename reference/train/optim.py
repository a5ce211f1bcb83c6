"""SGD and Adam with torch.optim's update rules (single-tensor code path), and
gradient clipping as torch.nn.utils does it.

SGD (torch.optim.SGD), per parameter p with gradient g::

    g = -g                                  maximize only
    g = g + weight_decay * p
    b = g                                   first step (buffer is a copy of g)
    b = momentum * b + (1 - dampening) * g  later steps
    g = g + momentum * b   (nesterov)   or   g = b
    p = p - lr * g

Adam (torch.optim.Adam), step t = 1, 2, ...::

    g = g + weight_decay * p
    m = m + (1 - beta1) * (g - m)           torch's lerp_
    v = beta2 * v + (1 - beta2) * g * g
    v_max = max(v_max, v)                   amsgrad only; then v_max replaces v below
    p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

Clipping (torch.nn.utils)::

    clip_grad_norm_:   n = || (||g_1||, ..., ||g_k||) ||      the global norm
                       g_i = g_i * min(1, max_norm / (n + 1e-6))   (always multiplied)
    clip_grad_value_:  g_i = clamp(g_i, -clip_value, clip_value)

Parameters, gradients and optimizer state are dicts keyed by parameter name;
``step`` returns the new parameters and never writes the arrays it is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple, cast

import numpy as np


def sgd_update(param: np.ndarray, grad: np.ndarray, momentum_buffer: np.ndarray | None, *, lr: float,
               momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
               maximize: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """One SGD step for one parameter: returns (new param, new momentum buffer or None)."""
    g = -grad if maximize else grad  # same shape as param
    if weight_decay != 0:
        g = g + weight_decay * param
    buf = None
    if momentum != 0:
        buf = g.copy() if momentum_buffer is None else momentum_buffer * momentum + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return param - lr * g, buf


class AdamState(NamedTuple):
    step: int
    exp_avg: np.ndarray  # m, shaped like the parameter
    exp_avg_sq: np.ndarray  # v
    max_exp_avg_sq: np.ndarray | None  # amsgrad only


def adam_update(param: np.ndarray, grad: np.ndarray, state: AdamState | None, *, lr: float = 1e-3,
                betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                amsgrad: bool = False, maximize: bool = False) -> tuple[np.ndarray, AdamState]:
    """One Adam step for one parameter: returns (new param, new state)."""
    beta1, beta2 = betas
    if state is None:
        zeros = np.zeros_like(param)
        state = AdamState(0, zeros, zeros, zeros if amsgrad else None)
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    step = state.step + 1
    exp_avg = state.exp_avg + (1 - beta1) * (g - state.exp_avg)  # torch's lerp_ for weight < 0.5
    exp_avg_sq = state.exp_avg_sq * beta2 + (1 - beta2) * (g * g)
    second = exp_avg_sq
    max_sq = None
    if amsgrad:
        max_sq = np.maximum(cast(np.ndarray, state.max_exp_avg_sq), exp_avg_sq)  # made by an amsgrad step
        second = max_sq
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = math.sqrt(1 - beta2**step)
    step_size = lr / bias_correction1
    denom = np.sqrt(second) / bias_correction2_sqrt + eps
    new = param + (-step_size * exp_avg) / denom  # torch's addcdiv_: p + (value * t1) / t2
    return new, AdamState(step, exp_avg, exp_avg_sq, max_sq)


class SGD:
    """torch.optim.SGD over a dict of parameters; the state is one momentum buffer per name."""

    def __init__(self, lr: float, momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, *, maximize: bool = False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.hyper: dict[str, Any] = {"lr": lr, "momentum": momentum, "dampening": dampening,
                                      "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize}
        self.state: dict[str, np.ndarray | None] = {}

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """New parameters; names missing from ``grads`` (torch's grad None) are left as they are."""
        new = dict(params)
        for name, g in grads.items():
            if name in params:
                new[name], self.state[name] = sgd_update(params[name], g, self.state.get(name), **self.hyper)
        return new


class Adam:
    """torch.optim.Adam over a dict of parameters; the state is an AdamState per name."""

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False):
        self.hyper: dict[str, Any] = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                      "amsgrad": amsgrad, "maximize": maximize}
        self.state: dict[str, AdamState] = {}

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """New parameters; names missing from ``grads`` are left as they are."""
        new = dict(params)
        for name, g in grads.items():
            if name in params:
                new[name], self.state[name] = adam_update(params[name], g, self.state.get(name), **self.hyper)
        return new


def clip_grad_norm_(grads: dict[str, np.ndarray], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """torch.nn.utils.clip_grad_norm_ on a dict of gradients (scaled in place); returns the total norm.

    The norm of all gradients together is the norm of the per-tensor norms. The
    scale min(1, max_norm / (total + 1e-6)) is applied even when it is 1, as
    torch does, so the result is bit-for-bit what torch's multiply gives.
    """
    if not grads:
        return 0.0
    norm_type = float(norm_type)
    if math.isinf(norm_type):
        norms = [np.abs(g).max(initial=0.0) for g in grads.values()]
        total = max(norms)
    else:
        norms = [np.linalg.norm(g.ravel(), ord=norm_type) for g in grads.values()]
        total = np.linalg.norm(np.asarray(norms), ord=norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients is non-finite, so it cannot be clipped.")
    clip_coef = min(max_norm / (total + 1e-6), 1.0)
    for g in grads.values():
        g *= clip_coef
    return float(total)


def clip_grad_value_(grads: dict[str, np.ndarray], clip_value: float) -> None:
    """torch.nn.utils.clip_grad_value_: clamp every gradient to [-clip_value, clip_value], in place."""
    for g in grads.values():
        np.clip(g, -clip_value, clip_value, out=g)
