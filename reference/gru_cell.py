"""Gated recurrent unit step (torch.nn.GRU, GRUCell): forward, backward and tangent.

Convention: batches of rows; x_t (B, I), h (B, H), weights in torch's (3H, .)
layout with gate rows r, z, n; products read ``x W^T``. The input side
``xw = x W_ih^T + b_ih (+ b_hr, b_hz)`` is computed for all steps before the loop.

torch's form (``reset_after=True``; cuDNN, ONNX ``linear_before_reset=1``, Keras
``reset_after=True``): the reset gate multiplies the hidden product *after* it,
bias ``b_hn`` included::

    hw = h W_hh^T                                   (B, 3H) one product for the three gates
    r  = sigmoid(xw_r + hw_r)                       reset gate
    z  = sigmoid(xw_z + hw_z)                       update gate
    hn = hw_n + b_hn                                (B, H) kept: backward needs it
    n  = tanh(xw_n + r * hn)                        new gate
    h' = (1 - z) * n + z * h  =  n + z * (h - n)

The paper's form (``reset_after=False``; ONNX's default ``linear_before_reset=0``,
Keras ``reset_after=False``): the reset gate multiplies h *before* the product,
so b_hn folds into the input side like every other bias::

    n  = tanh(xw_n + (r * h) W_hn^T)

Backward (``dh'`` arrives; a "d" on a gate is the gradient at its pre-activation)::

    h' = n + z * (h - n)     =>  dn_out = dh' * (1 - z),   dz_out = dh' * (h - n),   dh += dh' * z
    n  = tanh(pre_n)         =>  dn = dn_out * (1 - n^2)
    z  = sigmoid(pre_z)      =>  dz = dz_out * z * (1 - z)
    pre_n = xw_n + r * hn    =>  dr_out = dn * hn,   dhn = dn * r
    r  = sigmoid(pre_r)      =>  dr = dr_out * r * (1 - r)
    dxw = [dr, dz, dn]                              gradient at xw
    dhw = [dr, dz, dn * r]                          gradient at h W_hh^T: the n rows pass through r
    dh  = dh' * z + dhw W_hh

    paper's form: pre_n = xw_n + (r * h) W_hn^T  =>  d(rh) = dn W_hn,  dr_out = d(rh) * h,
                  dh = dh' * z + d(rh) * r + [dr, dz] W_h(r,z),   dW_hn = sum_t dn^T (r * h)

In torch's form every gate gradient is dh' times a factor the incoming gradient does
not change: dn = dh' * (1 - z)(1 - n^2), dr = dh' * (1 - z)(1 - n^2) hn r (1 - r),
dz = dh' * (h - n) z (1 - z). ``gru_partials`` forms these factors for a block of
steps at once, so a step is one product for dhw, one matrix product and dh' * z; dxw
(which differs from dhw only in the n rows) is formed for the whole block after it.

Tangent::

    hw. = h. W_hh^T + h W_hh.^T  (+ b_hh.)
    r. = r (1 - r) (xw_r. + hw_r.)            z. = z (1 - z) (xw_z. + hw_z.)
    n. = (1 - n^2) (xw_n. + r. * hn + r * hn.)
    h'. = (1 - z) n. + z. (h - n) + z h.

Shapes: B batch, I input, H hidden; any leading axes K... before B broadcast.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .activations import clip_input, sigmoid, sigmoid_derivative, tanh, tanh_derivative


class GRUStepCache(NamedTuple):
    rz: Any  # (B, 2H) reset and update gates, after the sigmoid
    n: Any  # (B, H) new gate, after the tanh
    hn: Any  # (B, H) W_hn h + b_hn (torch's form), None in the paper's form


def gru_step(xp: Any, xw: Any, h_prev: Any, w: Any, reset_after: bool = True) -> tuple[Any, GRUStepCache]:
    """One step given xw (B, 3H): (h' (B, H), cache)."""
    H = h_prev.shape[-1]
    if reset_after:
        hw = h_prev @ w.w_hh_T  # (B, 3H)
        rz = sigmoid(xp, xw[..., : 2 * H] + hw[..., : 2 * H])  # (B, 2H)
        hn = hw[..., 2 * H :] if w.b_hn is None else hw[..., 2 * H :] + w.b_hn  # (B, H)
        n = tanh(xp, xw[..., 2 * H :] + rz[..., :H] * hn)  # (B, H)
    else:
        rz = sigmoid(xp, xw[..., : 2 * H] + h_prev @ w.w_hh_T[..., : 2 * H])  # (B, 2H)
        hn = None
        n = tanh(xp, xw[..., 2 * H :] + (rz[..., :H] * h_prev) @ w.w_hh_T[..., 2 * H :])  # (B, H)
    h = n + rz[..., H:] * (h_prev - n)  # (B, H)
    return h, GRUStepCache(rz, n, hn)


class GRUPartials(NamedTuple):
    """The step's partial derivatives, for K steps at once (leading axis K)."""

    z: Any  # (K, B, H)    dh_prev / dh' directly
    dn: Any  # (K, B, H)   d a_n / dh':  (1 - z)(1 - n^2)
    drz: Any  # torch's form: (K, B, 3H) d(h W_hh^T) / dh' in rows r, z, n:  dn hn r (1 - r),  (h - n) z (1 - z),  dn r
    #           paper's form: (K, B, 2H) d a_r / d(r * h):  h r (1 - r);   d a_z / dh':  (h - n) z (1 - z)
    r: Any  # (K, B, H) paper's form (d(r * h) / dh = r), else None


def gru_partials(xp: Any, cache: tuple, h_prev: Any, d_act: tuple | None = None) -> GRUPartials:
    """Every factor of backward that the incoming gradient does not change, for K
    steps at once: cache fields (K, B, .), h_prev (K, B, H). ``d_act``: the gate
    functions' derivatives (f'(a_rz) (K, B, 2H), g'(a_n) (K, B, H)) in ONNX's general
    form; None for sigmoid' and tanh', from the outputs."""
    rz, n, hn = cache[:3]
    H = n.shape[-1]
    r, z = rz[..., :H], rz[..., H:]  # 2 x (K, B, H)
    ds, dg = (sigmoid_derivative(rz), None) if d_act is None else d_act  # (K, B, 2H)   s (1 - s) for r, z
    dn = (1 - z) * (tanh_derivative(n) if dg is None else dg)  # (K, B, H)
    dz = (h_prev - n) * ds[..., H:]  # (K, B, H)
    if hn is not None:
        return GRUPartials(z, dn, xp.concat([dn * hn * ds[..., :H], dz, dn * r], axis=-1), None)  # (K, B, 3H)
    return GRUPartials(z, dn, xp.concat([h_prev * ds[..., :H], dz], axis=-1), r)  # (K, B, 2H)


def gru_step_backward(xp: Any, dh: Any, p: tuple, w: Any) -> tuple[Any, Any]:
    """(dhw, dh_prev) given one step's partials (``GRUPartials`` fields): the gradient
    at the hidden product (B, 3H) and at the previous hidden state (B, H). In the
    paper's form dhw is the gradient at all three pre-activations (dxw): the n rows'
    operand is r * h, which the layer accounts for in dW_hh.

    In torch's form dhw is written over ``drz``, the step's own share of the block's
    partials (read by no other step): the block of partials becomes the block of dhw,
    which the layer keeps without a copy per step."""
    z, dn, drz, r = p
    if r is None:
        drz *= xp.concat([dh, dh, dh], axis=-1)  # (B, 3H)   dhw = [dr, dz, dn * r] = dh' * d(h W_hh^T)/dh', in place
        return drz, dh * z + drz @ w.w_hh
    H = dh.shape[-1]
    d_n = dh * dn  # (B, H)
    d_rh = d_n @ w.w_hh[2 * H :, ...]  # (B, H) at r * h
    d_rz = xp.concat([d_rh, dh], axis=-1) * drz  # (B, 2H)
    return xp.concat([d_rz, d_n], axis=-1), dh * z + d_rh * r + d_rz @ w.w_hh[: 2 * H, ...]


def gru_input_grad(xp: Any, dhw: Any, dh: Any, p: GRUPartials) -> Any:
    """dxw (K, B, 3H) for K steps from their dhw (K, B, 3H) and dh' (K, B, H): torch's
    form differs in the n rows, dn * dh' where dhw has dn * r * dh'."""
    if p.r is not None:
        return dhw
    H = dh.shape[-1]
    return xp.concat([dhw[..., : 2 * H], dh * p.dn], axis=-1)  # (K, B, 3H)


def gru_step_jvp(xp: Any, dxw: Any, dh_prev: Any, h_prev: Any, cache: tuple, w: Any, dw: Any,
                 reset_after: bool = True, d_act: tuple | None = None) -> Any:
    """h'. (K..., B, H) given the tangents of xw, h and the weights (dw entries None = 0).
    ``d_act`` as for ``gru_partials`` (ONNX's general form), None for sigmoid' and tanh'."""
    rz, n, hn = cache[:3]
    H = n.shape[-1]
    ds, dg = (rz * (1 - rz), 1 - n * n) if d_act is None else d_act  # (B, 2H), (B, H)
    r, z = rz[..., :H], rz[..., H:]  # 2 x (B, H)
    if reset_after:
        dhw = dh_prev @ w.w_hh_T  # (K..., B, 3H)
        if dw.w_hh_T is not None:
            dhw = dhw + h_prev @ dw.w_hh_T
        if dw.b_hn is not None:
            dhw = xp.concat([dhw[..., : 2 * H], dhw[..., 2 * H :] + dw.b_hn], axis=-1)
        d_rz = ds * (dxw[..., : 2 * H] + dhw[..., : 2 * H])  # (K..., B, 2H)
        d_pre_n = dxw[..., 2 * H :] + d_rz[..., :H] * hn + r * dhw[..., 2 * H :]  # (K..., B, H)
    else:
        dhw_rz = dh_prev @ w.w_hh_T[..., : 2 * H]  # (K..., B, 2H)
        if dw.w_hh_T is not None:
            dhw_rz = dhw_rz + h_prev @ dw.w_hh_T[..., : 2 * H]
        d_rz = ds * (dxw[..., : 2 * H] + dhw_rz)  # (K..., B, 2H)
        d_rh = d_rz[..., :H] * h_prev + r * dh_prev  # (K..., B, H) tangent of r * h
        d_pre_n = dxw[..., 2 * H :] + d_rh @ w.w_hh_T[..., 2 * H :]  # (K..., B, H)
        if dw.w_hh_T is not None:
            d_pre_n = d_pre_n + (r * h_prev) @ dw.w_hh_T[..., 2 * H :]
    d_n = dg * d_pre_n  # (K..., B, H)
    return (1 - z) * d_n + d_rz[..., H:] * (h_prev - n) + z * dh_prev  # (K..., B, H)


# -- ONNX's general form ---------------------------------------------------------------------------
#
# ONNX's GRU operator: gate functions f, g (default sigmoid, tanh) and the cell clip, in either
# form. With x~ = clip(x):
#
#     r = f(a_r~)   z = f(a_z~)   n = g(a_n~)   h' = n + z * (h - n)
#
# Backward is torch's (or the paper's) with sigmoid' and tanh' replaced by f'(a~) and g'(a_n~),
# each times the clip's derivative [|a| <= clip]; ``gru_partials`` takes them as ``d_act``.
# The cache extends torch's with ``a``, the pre-activations r, z, n before the clip.


class GRUGeneralCache(NamedTuple):
    rz: Any  # (B, 2H) r, z after f
    n: Any  # (B, H) n after g
    hn: Any  # (B, H) W_hn h + b_hn (torch's form), None in the paper's form
    a: Any  # (B, 3H) pre-activations r, z, n before the clip


def gru_general_step(xp: Any, xw: Any, h_prev: Any, w: Any, acts: tuple, clip: float | None,
                     reset_after: bool = True) -> tuple[Any, GRUGeneralCache]:
    """One step of ONNX's GRU given xw (B, 3H) and the gate functions acts = (f, g): (h' (B, H), cache)."""
    f_act, g_act = acts
    H = h_prev.shape[-1]
    if reset_after:
        hw = h_prev @ w.w_hh_T  # (B, 3H)
        a_rz = xw[..., : 2 * H] + hw[..., : 2 * H]  # (B, 2H)
        rz = f_act(xp, clip_input(xp, a_rz, clip)[0])  # (B, 2H)
        hn = hw[..., 2 * H :] + w.b_hn if w.b_hn is not None else hw[..., 2 * H :]  # (B, H) b_hn inside r's product
        a_n = xw[..., 2 * H :] + rz[..., :H] * hn  # (B, H)
    else:
        a_rz = xw[..., : 2 * H] + h_prev @ w.w_hh_T[..., : 2 * H]  # (B, 2H)
        rz = f_act(xp, clip_input(xp, a_rz, clip)[0])  # (B, 2H)
        hn = None
        a_n = xw[..., 2 * H :] + (rz[..., :H] * h_prev) @ w.w_hh_T[..., 2 * H :]  # (B, H)
    n = g_act(xp, clip_input(xp, a_n, clip)[0])  # (B, H)
    h = n + rz[..., H:] * (h_prev - n)  # (B, H)
    return h, GRUGeneralCache(rz, n, hn, xp.concat([a_rz, a_n], axis=-1))


def gru_general_partials(xp: Any, cache: GRUGeneralCache, h_prev: Any, acts: tuple,
                         clip: float | None) -> GRUPartials:
    """``gru_partials`` for ONNX's form, K steps at once: cache fields (K, B, .), h_prev (K, B, H)."""
    return gru_partials(xp, cache, h_prev, gru_general_derivatives(xp, cache, acts, clip))


def gru_general_derivatives(xp: Any, cache: GRUGeneralCache, acts: tuple, clip: float | None) -> tuple[Any, Any]:
    """(f'(a_rz~), g'(a_n~)) times the clip's derivative, for any leading axes."""
    f_act, g_act = acts
    H = cache.n.shape[-1]
    x, dclip = clip_input(xp, cache.a, clip)  # (..., 3H)
    d_rz = f_act.derivative(xp, x[..., : 2 * H], cache.rz)  # (..., 2H)
    d_n = g_act.derivative(xp, x[..., 2 * H :], cache.n)  # (..., H)
    if dclip is not None:
        d_rz, d_n = d_rz * dclip[..., : 2 * H], d_n * dclip[..., 2 * H :]
    return d_rz, d_n
