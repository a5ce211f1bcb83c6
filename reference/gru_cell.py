"""Gated recurrent unit step (torch.nn.GRU, GRUCell): forward, backward and tangent.

Names. Every function takes ``xp``, the array namespace of its arrays (NumPy, or torch
through array_api_compat, ...), and the layer's weights ``w`` (``layer.LayerWeights``):
``w.w_hh`` (3H, H) is torch's ``W_hh``, gate blocks r, z, n, for ``dhw W_hh``; ``w.w_hh_T``
(H, 3H) is its transpose, kept row-major for ``h W_hh^T`` (``layer.prepare_weights``);
``w.b_hn`` (H,) is torch's b_hn (None without biases). ``xw = x W_ih^T + b_ih + [b_hr,
b_hz, 0]`` (B, 3H), the input side, is computed for a block of steps before the loop.
Batches of rows: x (B, I), h (B, H), products ``x W^T``. h_prev is the state a step
starts from, h the state it makes; ``split`` (``gate_rows``) cuts a (B, 3H) array into
its r, z, n blocks.

torch's form (``reset_after=True``; cuDNN, ONNX ``linear_before_reset=1``, Keras
``reset_after=True``): the reset gate multiplies the hidden product *after* it,
bias ``b_hn`` included::

    hw = h_prev W_hh^T                              (B, 3H) one product for the three gates
    r  = sigmoid(xw_r + hw_r)                       reset gate
    z  = sigmoid(xw_z + hw_z)                       update gate
    hn = hw_n + b_hn                                (B, H) kept: backward needs it
    n  = tanh(xw_n + r * hn)                        new gate; a_n = xw_n + r * hn
    h  = (1 - z) * n + z * h_prev  =  n + z * (h_prev - n)

The paper's form (``reset_after=False``; ONNX's default ``linear_before_reset=0``,
Keras ``reset_after=False``): the reset gate multiplies h_prev *before* the product,
so b_hn folds into the input side like every other bias::

    n  = tanh(xw_n + (r * h_prev) W_hn^T)

Backward. ``dX`` is dL/dX, the gradient of the loss at X (shaped like X); ``dY_dX`` is
the partial derivative dY/dX of one value of the step by another, elementwise here (a
diagonal Jacobian), so the chain rule reads ``dX = dY * dY_dX``. a_r, a_z, a_n are the
gates' pre-activations; dh arrives from later steps::

    h = n + z * (h_prev - n)   =>  da_n = dh * dh_da_n,     dh_da_n = (1 - z)(1 - n^2)
                                   da_z = dh * dh_da_z,     dh_da_z = (h_prev - n) z (1 - z)
                                   dh_prev gets dh * dh_dh_prev,  dh_dh_prev = z   (the direct path)
    a_n = xw_n + r * hn        =>  da_r = dh * dh_da_r,     dh_da_r = dh_da_n hn r (1 - r)
                                   dhn = da_n * r
    dxw = [da_r, da_z, da_n]                                gradient at xw
    dhw = [da_r, da_z, da_n * r] = dh * dh_dhw              gradient at h_prev W_hh^T: the n rows pass through r
    dh_prev = dh * z + dhw W_hh

    paper's form: a_n = xw_n + rh W_hn^T, rh = r * h_prev  =>  drh = da_n W_hn,
                  da_r = drh * drh_da_r,  drh_da_r = h_prev r (1 - r),
                  dh_prev = dh * z + drh * drh_dh_prev + [da_r, da_z] W_h(r,z),   drh_dh_prev = r,
                  dW_hn = sum_t da_n^T rh

Every ``dY_dX`` depends on forward's values only: ``gru_partials`` forms them for a block
of steps at once, so a step of torch's form is one product for dhw, one matrix product
and dh * z; dxw (which differs from dhw only in the n rows) is formed for the whole block
after it (``gru_input_grad``).

Tangent (a dot is a forward-mode tangent)::

    hw. = h_prev. W_hh^T + h_prev W_hh.^T  (+ b_hh.)
    r. = r (1 - r) (xw_r. + hw_r.)            z. = z (1 - z) (xw_z. + hw_z.)
    n. = (1 - n^2) (xw_n. + r. * hn + r * hn.)
    h. = (1 - z) n. + z. (h_prev - n) + z h_prev.

Shapes: B batch, I input, H hidden; any leading axes K... before B broadcast.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .activations import clip_input, sigmoid, sigmoid_derivative, tanh, tanh_derivative
from .blocks import chain_in_place
from .gate_rows import split


def rz_and_n(a: Any, axis: int = -1) -> tuple[Any, Any]:
    """The r and z blocks together (..., 2H) and the n block (..., H) of a (..., 3H) array, or
    of a (3H, .) weight's rows with axis=0: views. The paper's form multiplies the n block by
    r * h_prev, so its r and z blocks make one product without it."""
    H = a.shape[axis] // 3
    return (a[: 2 * H, ...], a[2 * H :, ...]) if axis == 0 else (a[..., : 2 * H], a[..., 2 * H :])


class GRUStepCache(NamedTuple):
    r: Any  # (B, H) reset gate, after the sigmoid
    z: Any  # (B, H) update gate
    n: Any  # (B, H) new gate, after the tanh
    hn: Any  # (B, H) h_prev W_hn^T + b_hn (torch's form), None in the paper's form


def gru_step(xp: Any, xw: Any, h_prev: Any, w: Any, reset_after: bool = True) -> tuple[Any, GRUStepCache]:
    """One step given xw (B, 3H): (h (B, H), cache)."""
    xw_r, xw_z, xw_n = split(xw, 3)  # 3 x (B, H)
    if reset_after:
        hw_r, hw_z, hw_n = split(h_prev @ w.w_hh_T, 3)  # 3 x (B, H)
        r = sigmoid(xp, xw_r + hw_r)  # (B, H)
        z = sigmoid(xp, xw_z + hw_z)  # (B, H)
        hn = hw_n if w.b_hn is None else hw_n + w.b_hn  # (B, H)
        n = tanh(xp, xw_n + r * hn)  # (B, H)
    else:
        w_hrz_T, w_hn_T = rz_and_n(w.w_hh_T)  # (H, 2H), (H, H) views
        hw_r, hw_z = split(h_prev @ w_hrz_T, 2)  # 2 x (B, H)
        r = sigmoid(xp, xw_r + hw_r)  # (B, H)
        z = sigmoid(xp, xw_z + hw_z)  # (B, H)
        hn = None
        n = tanh(xp, xw_n + (r * h_prev) @ w_hn_T)  # (B, H)
    h = n + z * (h_prev - n)  # (B, H)
    return h, GRUStepCache(r, z, n, hn)


class GRUPartials(NamedTuple):
    """The step's partial derivatives dY/dX, for K steps at once (leading axis K)."""

    dh_dh_prev: Any  # (K, B, H) z: the direct path of h = n + z * (h_prev - n), hw held fixed
    dh_da_n: Any  # (K, B, H)    (1 - z)(1 - n^2)
    dh_dhw: Any  # torch's form (K, B, 3H): dh_da_r, dh_da_z, dh_da_n * r; each step's share becomes its dhw
    #              (chain_in_place). The paper's form: None
    dh_da_z: Any = None  # the paper's form (K, B, H): (h_prev - n) z (1 - z); else None
    drh_da_r: Any = None  # the paper's form (K, B, H): h_prev r (1 - r), rh = r * h_prev; else None
    drh_dh_prev: Any = None  # the paper's form (K, B, H): r; else None


def gru_partials(xp: Any, cache: tuple, h_prev: Any, d_act: tuple | None = None) -> GRUPartials:
    """Every dY/dX of backward, for K steps at once: cache fields (K, B, .), h_prev (K, B, H).
    ``d_act``: the gate functions' derivatives (dr/da_r, dz/da_z, dn/da_n) (K, B, H) each in
    ONNX's general form; None for sigmoid' and tanh', from the outputs."""
    r, z, n, hn = cache[:4]
    dr_da, dz_da, dn_da = (sigmoid_derivative(r), sigmoid_derivative(z), tanh_derivative(n)) if d_act is None \
        else d_act  # (K, B, H) each
    dh_da_n = (1 - z) * dn_da  # (K, B, H)
    dh_da_z = (h_prev - n) * dz_da  # (K, B, H)
    if hn is not None:
        dh_da_r = dh_da_n * hn * dr_da  # (K, B, H)
        return GRUPartials(z, dh_da_n, xp.concat([dh_da_r, dh_da_z, dh_da_n * r], axis=-1))  # (K, B, 3H)
    return GRUPartials(z, dh_da_n, None, dh_da_z, h_prev * dr_da, r)


def gru_step_backward(xp: Any, dh: Any, p: GRUPartials, w: Any) -> tuple[Any, Any]:
    """(dhw, dh_prev) given one step's partials: the gradient at the hidden product (B, 3H)
    and at the state the step started from (B, H). In the paper's form dhw is the gradient
    at all three pre-activations (dxw): the n rows' operand is r * h_prev, which the layer
    accounts for in dW_hh."""
    if p.dh_dhw is not None:
        dhw = chain_in_place(p.dh_dhw, xp.concat([dh, dh, dh], axis=-1))  # (B, 3H) [da_r, da_z, da_n * r]
        dh_prev = dh * p.dh_dh_prev + dhw @ w.w_hh  # (B, H)
        return dhw, dh_prev
    w_hrz, w_hn = rz_and_n(w.w_hh, axis=0)  # (2H, H), (H, H)
    da_n = dh * p.dh_da_n  # (B, H)
    drh = da_n @ w_hn  # (B, H) at rh = r * h_prev
    da_rz = xp.concat([drh * p.drh_da_r, dh * p.dh_da_z], axis=-1)  # (B, 2H) da_r, da_z
    dh_prev = dh * p.dh_dh_prev + drh * p.drh_dh_prev + da_rz @ w_hrz  # (B, H)
    return xp.concat([da_rz, da_n], axis=-1), dh_prev


def gru_input_grad(xp: Any, dhw: Any, dh: Any, p: GRUPartials) -> Any:
    """dxw (K, B, 3H) for K steps from their dhw (K, B, 3H) and dh (K, B, H): torch's
    form differs in the n rows, da_n = dh * dh_da_n where dhw has da_n * r."""
    if p.dh_dhw is None:
        return dhw
    da_r, da_z, _ = split(dhw, 3)  # 2 x (K, B, H)
    return xp.concat([da_r, da_z, dh * p.dh_da_n], axis=-1)  # (K, B, 3H)


def gru_step_jvp(xp: Any, xw_dot: Any, h_prev_dot: Any, h_prev: Any, cache: tuple, w: Any, w_dot: Any,
                 reset_after: bool = True, d_act: tuple | None = None) -> Any:
    """h. (K..., B, H) given the tangents of xw, h_prev and the weights (w_dot entries None = 0).
    ``d_act`` as for ``gru_partials`` (ONNX's general form), None for sigmoid' and tanh'."""
    r, z, n, hn = cache[:4]
    dr_da, dz_da, dn_da = (r * (1 - r), z * (1 - z), 1 - n * n) if d_act is None else d_act  # (B, H) each
    xw_r_dot, xw_z_dot, xw_n_dot = split(xw_dot, 3)  # 3 x (K..., B, H)
    if reset_after:
        hw_dot = h_prev_dot @ w.w_hh_T  # (K..., B, 3H)
        if w_dot.w_hh_T is not None:
            hw_dot = hw_dot + h_prev @ w_dot.w_hh_T
        hw_r_dot, hw_z_dot, hw_n_dot = split(hw_dot, 3)  # 3 x (K..., B, H)
        if w_dot.b_hn is not None:
            hw_n_dot = hw_n_dot + w_dot.b_hn
        r_dot = dr_da * (xw_r_dot + hw_r_dot)  # (K..., B, H)
        z_dot = dz_da * (xw_z_dot + hw_z_dot)  # (K..., B, H)
        a_n_dot = xw_n_dot + r_dot * hn + r * hw_n_dot  # (K..., B, H)
    else:
        w_hrz_T, w_hn_T = rz_and_n(w.w_hh_T)  # (H, 2H), (H, H)
        hw_rz_dot = h_prev_dot @ w_hrz_T  # (K..., B, 2H)
        if w_dot.w_hh_T is not None:
            w_hrz_T_dot, w_hn_T_dot = rz_and_n(w_dot.w_hh_T)
            hw_rz_dot = hw_rz_dot + h_prev @ w_hrz_T_dot
        hw_r_dot, hw_z_dot = split(hw_rz_dot, 2)  # 2 x (K..., B, H)
        r_dot = dr_da * (xw_r_dot + hw_r_dot)  # (K..., B, H)
        z_dot = dz_da * (xw_z_dot + hw_z_dot)  # (K..., B, H)
        rh_dot = r_dot * h_prev + r * h_prev_dot  # (K..., B, H) tangent of r * h_prev
        a_n_dot = xw_n_dot + rh_dot @ w_hn_T  # (K..., B, H)
        if w_dot.w_hh_T is not None:
            a_n_dot = a_n_dot + (r * h_prev) @ w_hn_T_dot
    n_dot = dn_da * a_n_dot  # (K..., B, H)
    return (1 - z) * n_dot + z_dot * (h_prev - n) + z * h_prev_dot  # (K..., B, H)


# -- ONNX's general form ---------------------------------------------------------------------------
#
# ONNX's GRU operator: gate functions f, g (default sigmoid, tanh) and the cell clip, in either
# form. With x~ = clip(x):
#
#     r = f(a_r~)   z = f(a_z~)   n = g(a_n~)   h = n + z * (h_prev - n)
#
# Backward is torch's (or the paper's) with sigmoid' and tanh' replaced by f'(a~) and g'(a_n~),
# each times the clip's derivative [|a| <= clip]; ``gru_partials`` takes them as ``d_act``.
# The cache extends torch's with ``a``, the pre-activations r, z, n before the clip.


class GRUGeneralCache(NamedTuple):
    r: Any  # (B, H) f(a_r~)
    z: Any  # (B, H) f(a_z~)
    n: Any  # (B, H) g(a_n~)
    hn: Any  # (B, H) h_prev W_hn^T + b_hn (torch's form), None in the paper's form
    a: Any  # (B, 3H) pre-activations r, z, n before the clip


def gru_general_step(xp: Any, xw: Any, h_prev: Any, w: Any, acts: tuple, clip: float | None,
                     reset_after: bool = True) -> tuple[Any, GRUGeneralCache]:
    """One step of ONNX's GRU given xw (B, 3H) and the gate functions acts = (f, g): (h (B, H), cache)."""
    f_act, g_act = acts
    xw_r, xw_z, xw_n = split(xw, 3)  # 3 x (B, H)
    if reset_after:
        hw_r, hw_z, hw_n = split(h_prev @ w.w_hh_T, 3)  # 3 x (B, H)
        a_r, a_z = xw_r + hw_r, xw_z + hw_z  # (B, H) each
        r = f_act(xp, clip_input(xp, a_r, clip)[0])  # (B, H)
        z = f_act(xp, clip_input(xp, a_z, clip)[0])  # (B, H)
        hn = hw_n + w.b_hn if w.b_hn is not None else hw_n  # (B, H) b_hn inside r's product
        a_n = xw_n + r * hn  # (B, H)
    else:
        w_hrz_T, w_hn_T = rz_and_n(w.w_hh_T)  # (H, 2H), (H, H)
        hw_r, hw_z = split(h_prev @ w_hrz_T, 2)  # 2 x (B, H)
        a_r, a_z = xw_r + hw_r, xw_z + hw_z  # (B, H) each
        r = f_act(xp, clip_input(xp, a_r, clip)[0])  # (B, H)
        z = f_act(xp, clip_input(xp, a_z, clip)[0])  # (B, H)
        hn = None
        a_n = xw_n + (r * h_prev) @ w_hn_T  # (B, H)
    n = g_act(xp, clip_input(xp, a_n, clip)[0])  # (B, H)
    h = n + z * (h_prev - n)  # (B, H)
    return h, GRUGeneralCache(r, z, n, hn, xp.concat([a_r, a_z, a_n], axis=-1))


def gru_general_partials(xp: Any, cache: GRUGeneralCache, h_prev: Any, acts: tuple,
                         clip: float | None) -> GRUPartials:
    """``gru_partials`` for ONNX's form, K steps at once: cache fields (K, B, .), h_prev (K, B, H)."""
    return gru_partials(xp, cache, h_prev, gru_general_derivatives(xp, cache, acts, clip))


def gru_general_derivatives(xp: Any, cache: GRUGeneralCache, acts: tuple, clip: float | None) -> tuple:
    """(dr/da_r, dz/da_z, dn/da_n) = (f'(a_r~), f'(a_z~), g'(a_n~)) times the clip's derivative, for
    any leading axes."""
    f_act, g_act = acts
    x, dclip = clip_input(xp, cache.a, clip)  # (..., 3H) the functions' inputs, and the clip's derivative
    x_r, x_z, x_n = split(x, 3)  # 3 x (..., H)
    dr_da = f_act.derivative(xp, x_r, cache.r)  # (..., H)
    dz_da = f_act.derivative(xp, x_z, cache.z)  # (..., H)
    dn_da = g_act.derivative(xp, x_n, cache.n)  # (..., H)
    if dclip is not None:
        k_r, k_z, k_n = split(dclip, 3)
        dr_da, dz_da, dn_da = dr_da * k_r, dz_da * k_z, dn_da * k_n
    return dr_da, dz_da, dn_da
