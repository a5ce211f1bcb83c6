"""Long short-term memory step (torch.nn.LSTM with projections, LSTMCell):
forward, backward and forward-mode tangent.

Names. Every function takes ``xp``, the array namespace of its arrays (NumPy, or torch
through array_api_compat, ...), and the layer's weights ``w`` (``layer.LayerWeights``):
``w.w_hh`` (4H, P) is torch's ``W_hh``, for ``da W_hh``; ``w.w_hh_T`` (P, 4H) is its
transpose, kept row-major for ``h W_hh^T`` (``layer.prepare_weights``); ``w.w_hr`` (P, H)
and ``w.w_hr_T`` the projection, or None. ``xw = x W_ih^T + b_ih + b_hh`` (B, 4H), the
input side, is computed for a block of steps before the loop. Batches of rows: x (B, I),
h (B, P), c (B, H), products ``x W^T``. c_prev and h_prev are the state a step starts
from, c and h the state it makes.

Forward (torch's equations)::

    a = xw + h_prev W_hh^T              (B, 4H) pre-activations, a_i, a_f, a_g, a_o
    i = sigmoid(a_i)                    input gate
    f = sigmoid(a_f)                    forget gate
    g = tanh(a_g)                       cell candidate
    o = sigmoid(a_o)                    output gate
    c = f * c_prev + i * g
    m = o * tanh(c)
    h = m                               no projection (P = H)
    h = m W_hr^T                        proj_size P > 0: h is (B, P), c stays (B, H)

Backward. ``dX`` is dL/dX, the gradient of the loss at X (shaped like X); ``dY_dX`` is
the partial derivative dY/dX of one value of the step by another, elementwise here (a
diagonal Jacobian), so the chain rule reads ``dX = dY * dY_dX``. dh and dc arrive from
later steps::

    h = m W_hr^T        =>  dm = dh W_hr                        (no projection: dm = dh)
    m = o * tanh(c)     =>  dc = dc + dm * dm_dc,               dm_dc   = o (1 - tanh(c)^2)
                            da_o = dm * dm_da_o,                dm_da_o = tanh(c) o (1 - o)
    c = f * c_prev      =>  da_i = dc * dc_da_i,                dc_da_i = g i (1 - i)
        + i * g             da_f = dc * dc_da_f,                dc_da_f = c_prev f (1 - f)
                            da_g = dc * dc_da_g,                dc_da_g = i (1 - g^2)
                            dc_prev = dc * dc_dc_prev,          dc_dc_prev = f
    a = xw + h_prev W_hh^T  =>  dxw = dhw = da,   dh_prev = da W_hh
    dW_hr = sum_t dh_t^T m_t                                    (one product, in the layer)

Every ``dY_dX`` above depends on forward's values only, not on the gradient arriving:
``lstm_partials`` forms them for a block of steps at once, and a step of backward is
the chain rule alone (``lstm_step_backward``).

Inside the loop the gate blocks of ``w`` and ``xw`` sit in the order o, i, f, g, a speed
trick that ``gate_rows`` keeps to itself: here every gate is read by its name.

Tangent (a dot is a forward-mode tangent)::

    a. = xw. + h_prev. W_hh^T + h_prev W_hh.^T
    i. = i (1 - i) a_i.   f. = f (1 - f) a_f.   g. = (1 - g^2) a_g.   o. = o (1 - o) a_o.
    c. = f. c_prev + f c_prev. + i. g + i g.
    m. = o. tanh(c) + o (1 - tanh(c)^2) c.
    h. = m.    or    m. W_hr^T + m W_hr.^T

Shapes: B batch, H hidden, P output (proj_size or H); any leading axes K... before B broadcast.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._linear import sum_rows
from .activations import clip_input, sigmoid_derivative, tanh, tanh_derivative
from .blocks import chain_in_place
from .gate_rows import lstm_gates, lstm_join, lstm_split, split


class LSTMStepCache(NamedTuple):
    i: Any  # (B, H) input gate, after the sigmoid
    f: Any  # (B, H) forget gate
    g: Any  # (B, H) cell candidate, after the tanh
    o: Any  # (B, H) output gate
    tanh_c: Any  # (B, H) tanh(c), kept so that backward needs no tanh


def lstm_step(xp: Any, xw: Any, state: tuple[Any, Any], w: Any) -> tuple[tuple[Any, Any], LSTMStepCache]:
    """One step from state = (h_prev, c_prev), given xw (B, 4H): ((h, c), cache)."""
    h_prev, c_prev = state  # (B, P), (B, H)
    a = xw + h_prev @ w.w_hh_T  # (B, 4H)
    i, f, g, o = lstm_gates(xp, a)  # 4 x (B, H)
    c = f * c_prev + i * g  # (B, H)
    tanh_c = tanh(xp, c)  # (B, H)
    m = o * tanh_c  # (B, H)
    h = m if w.w_hr_T is None else m @ w.w_hr_T  # (B, P)
    return (h, c), LSTMStepCache(i, f, g, o, tanh_c)


class LSTMPartials(NamedTuple):
    """The step's partial derivatives dY/dX, for K steps at once (leading axis K)."""

    dm_dc: Any  # (K, B, H)   o (1 - tanh(c)^2), through m = o * tanh(c)
    dcm_da: Any  # (K, B, 4H) dc_da_i, dc_da_f, dc_da_g, dm_da_o: each step's share becomes its da (chain_in_place)
    dc_dc_prev: Any  # (K, B, H) f


def lstm_partials(xp: Any, cache: LSTMStepCache, c_prev: Any) -> LSTMPartials:
    """Every dY/dX of backward, for K steps at once: cache fields (K, B, H), c_prev (K, B, H)."""
    i, f, g, o, tanh_c = cache
    dm_dc = o * tanh_derivative(tanh_c)  # (K, B, H)
    dm_da_o = tanh_c * sigmoid_derivative(o)  # (K, B, H)
    dc_da_i = g * sigmoid_derivative(i)  # (K, B, H)
    dc_da_f = c_prev * sigmoid_derivative(f)  # (K, B, H)
    dc_da_g = i * tanh_derivative(g)  # (K, B, H)
    return LSTMPartials(dm_dc, lstm_join(xp, dc_da_i, dc_da_f, dc_da_g, dm_da_o), f)


def lstm_step_backward(xp: Any, dstate: tuple[Any, Any], p: LSTMPartials, w: Any) -> tuple[Any, tuple[Any, Any]]:
    """(da, (dh_prev, dc_prev)) given dstate = (dh, dc) and one step's ``LSTMPartials``: the
    gradient at the pre-activations (B, 4H) -- at xw and at h_prev W_hh^T alike -- and at
    the state the step started from, (B, P) and (B, H)."""
    dh, dc = dstate  # (B, P), (B, H)
    dm = dh if w.w_hr is None else dh @ w.w_hr  # (B, H)
    dc = dc + dm * p.dm_dc  # (B, H) c feeds m and the next step: the two gradients add
    da = chain_in_place(p.dcm_da, lstm_join(xp, dc, dc, dc, dm))  # (B, 4H) da_i, da_f, da_g from dc; da_o from dm
    dh_prev = da @ w.w_hh  # (B, P)
    dc_prev = dc * p.dc_dc_prev  # (B, H)
    return da, (dh_prev, dc_prev)


def lstm_projection_input(cache: Any) -> Any:
    """m = o * tanh(c) (B, H), the input of the projection, rebuilt from the cache
    (one product; cheaper than keeping another B*H floats per step)."""
    return cache.o * cache.tanh_c


def lstm_step_jvp(xp: Any, xw_dot: Any, h_prev_dot: Any, c_prev_dot: Any, h_prev: Any, c_prev: Any, cache: LSTMStepCache,
                  w: Any, w_dot: Any) -> tuple[Any, Any]:
    """(h., c.) given the tangents of xw, (h_prev, c_prev) and the weights (w_dot entries None = 0)."""
    i, f, g, o, tanh_c = cache
    a_dot = xw_dot + h_prev_dot @ w.w_hh_T  # (K..., B, 4H)
    if w_dot.w_hh_T is not None:
        a_dot = a_dot + h_prev @ w_dot.w_hh_T
    a_i_dot, a_f_dot, a_g_dot, a_o_dot = lstm_split(a_dot)  # 4 x (K..., B, H)
    i_dot = sigmoid_derivative(i) * a_i_dot  # (K..., B, H)
    f_dot = sigmoid_derivative(f) * a_f_dot  # (K..., B, H)
    g_dot = tanh_derivative(g) * a_g_dot  # (K..., B, H)
    o_dot = sigmoid_derivative(o) * a_o_dot  # (K..., B, H)
    c_dot = f_dot * c_prev + f * c_prev_dot + i_dot * g + i * g_dot  # (K..., B, H)
    m_dot = o_dot * tanh_c + o * tanh_derivative(tanh_c) * c_dot  # (K..., B, H)
    if w.w_hr_T is None:
        return m_dot, c_dot
    h_dot = m_dot @ w.w_hr_T  # (K..., B, P)
    if w_dot.w_hr_T is not None:
        h_dot = h_dot + lstm_projection_input(cache) @ w_dot.w_hr_T
    return h_dot, c_dot


# -- ONNX's general form ---------------------------------------------------------------------------
#
# ONNX's LSTM operator: gate functions f, g, h (default sigmoid, tanh, tanh), peepholes p_i, p_f,
# p_o, the cell clip and coupled input and forget gates. With x~ = clip(x) (the identity without
# a clip):
#
#     a   = xw + h_prev W_hh^T                   (B, 4H)
#     a_i += p_i * c_prev     a_f += p_f * c_prev    peepholes read the state the step starts from
#     i = f(a_i~)   f = f(a_f~)  (input_forget: f = 1 - i)   g = g(a_g~)
#     c   = f * c_prev + i * g
#     a_o += p_o * c                             the output gate's peephole reads the new state
#     o = f(a_o~)   m = o * h(c)   h = m  or  m W_hr^T
#
# Backward keeps the structure of torch's cell: every gate gradient is dm or dc times a
# partial, and dc_prev = dc times a partial. With f'(a~) taken at the clipped input and times
# [|a| <= clip]:
#
#     dm_da_o    = h(c) f'(a_o~)
#     dm_dc      = o h'(c) + p_o * dm_da_o         (through h(c) and through a_o's peephole)
#     dc_da_i    = (g - c_prev if input_forget else g) f'(a_i~)
#     dc_da_f    = c_prev f'(a_f~)   (0 with input_forget)
#     dc_da_g    = i g'(a_g~)
#     dc_dc_prev = f + p_i * dc_da_i + p_f * dc_da_f
#     dp_i = sum_t,b da_i * c_prev,   dp_f = sum_t,b da_f * c_prev,   dp_o = sum_t,b da_o * c   (in the layer)
#
# The cache extends torch's: ``tanh_c`` holds h(c) (so ``lstm_projection_input`` and the
# tape's gates read it unchanged) and ``a`` the pre-activations, peepholes added, before the clip.


class LSTMGeneralCache(NamedTuple):
    i: Any  # (B, H) f(a_i~)
    f: Any  # (B, H) f(a_f~), or 1 - i with input_forget
    g: Any  # (B, H) g(a_g~)
    o: Any  # (B, H) f(a_o~)
    tanh_c: Any  # (B, H) h(c): tanh(c) by default
    a: Any  # (B, 4H) pre-activations, peepholes added, before the clip (gate_rows' loop order)


def lstm_general_step(xp: Any, xw: Any, state: tuple[Any, Any], w: Any, acts: tuple, clip: float | None,
                      input_forget: bool) -> tuple[tuple[Any, Any], LSTMGeneralCache]:
    """One step of ONNX's LSTM from state = (h_prev, c_prev), given xw (B, 4H) and the gate
    functions acts = (f, g, h): ((h, c), cache)."""
    f_act, g_act, h_act = acts
    h_prev, c_prev = state  # (B, P), (B, H)
    a_i, a_f, a_g, a_o = lstm_split(xw + h_prev @ w.w_hh_T)  # 4 x (B, H)
    p_i, p_f, p_o = (None, None, None) if w.w_p is None else split(w.w_p, 3)  # (H,) each
    if w.w_p is not None:  # peepholes p_i, p_f read c_prev
        a_i, a_f = a_i + p_i * c_prev, a_f + p_f * c_prev
    i = f_act(xp, clip_input(xp, a_i, clip)[0])  # (B, H)
    f = 1 - i if input_forget else f_act(xp, clip_input(xp, a_f, clip)[0])  # (B, H)
    g = g_act(xp, clip_input(xp, a_g, clip)[0])  # (B, H)
    c = f * c_prev + i * g  # (B, H)
    if w.w_p is not None:  # p_o reads c
        a_o = a_o + p_o * c
    o = f_act(xp, clip_input(xp, a_o, clip)[0])  # (B, H)
    h_c = h_act(xp, c)  # (B, H)
    m = o * h_c  # (B, H)
    h = m if w.w_hr_T is None else m @ w.w_hr_T  # (B, P)
    return (h, c), LSTMGeneralCache(i, f, g, o, h_c, lstm_join(xp, a_i, a_f, a_g, a_o))


def _lstm_general_derivatives(xp: Any, cache: LSTMGeneralCache, c: Any, acts: tuple,
                              clip: float | None) -> tuple[tuple, Any]:
    """((f'(a_i~), f'(a_f~), g'(a_g~), f'(a_o~)) (..., H) each, times the clip's derivative; h'(c) (..., H))."""
    f_act, g_act, h_act = acts
    x, dclip = clip_input(xp, cache.a, clip)  # (..., 4H) the functions' inputs, and the clip's derivative
    x_i, x_f, x_g, x_o = lstm_split(x)  # 4 x (..., H)
    d_a = (f_act.derivative(xp, x_i, cache.i), f_act.derivative(xp, x_f, cache.f), g_act.derivative(xp, x_g, cache.g),
           f_act.derivative(xp, x_o, cache.o))
    if dclip is not None:
        d_a = tuple(d * k for d, k in zip(d_a, lstm_split(dclip), strict=True))
    return d_a, h_act.derivative(xp, c, cache.tanh_c)


def lstm_general_partials(xp: Any, cache: LSTMGeneralCache, c_prev: Any, c: Any, w_p: Any, acts: tuple,
                          clip: float | None, input_forget: bool) -> LSTMPartials:
    """``lstm_partials`` for ONNX's form, K steps at once: cache fields (K, B, .), c_prev and c
    (K, B, H) the cell states before and after each step, w_p (3H,) or None."""
    i, f, g, o, h_c, _ = cache
    (di_da, df_da, dg_da, do_da), dhc_dc = _lstm_general_derivatives(xp, cache, c, acts, clip)  # (K, B, H) each
    dm_da_o = h_c * do_da  # (K, B, H)
    dm_dc = o * dhc_dc  # (K, B, H)
    dc_da_i = ((g - c_prev) if input_forget else g) * di_da  # (K, B, H)   f = 1 - i: dL/di = dc (g - c_prev)
    dc_da_f = xp.zeros_like(dc_da_i) if input_forget else c_prev * df_da  # (K, B, H)
    dc_dc_prev = f  # (K, B, H)
    if w_p is not None:
        p_i, p_f, p_o = split(w_p, 3)  # (H,) each
        dm_dc = dm_dc + p_o * dm_da_o
        dc_dc_prev = f + p_i * dc_da_i + p_f * dc_da_f
    return LSTMPartials(dm_dc, lstm_join(xp, dc_da_i, dc_da_f, i * dg_da, dm_da_o), dc_dc_prev)


def lstm_general_step_jvp(xp: Any, xw_dot: Any, h_prev_dot: Any, c_prev_dot: Any, h_prev: Any, c_prev: Any, c: Any,
                          cache: LSTMGeneralCache, w: Any, w_dot: Any, acts: tuple, clip: float | None,
                          input_forget: bool) -> tuple[Any, Any]:
    """(h., c.) of ONNX's LSTM given the tangents of xw, (h_prev, c_prev) and the weights (w_dot entries None = 0)::

        a_i. = xw_i. + (h_prev W_hh^T)_i. + p_i. c_prev + p_i c_prev.     (a_f. alike; a_o. with c. and c)
        i. = f'(a_i~) a_i.    f. = -i. (input_forget) or f'(a_f~) a_f.    g. = g'(a_g~) a_g.
        c. = f. c_prev + f c_prev. + i. g + i g.      o. = f'(a_o~) a_o.      m. = o. h(c) + o h'(c) c.
    """
    i, f, g, o, h_c, _ = cache
    (di_da, df_da, dg_da, do_da), dhc_dc = _lstm_general_derivatives(xp, cache, c, acts, clip)  # (B, H) each
    a_dot = xw_dot + h_prev_dot @ w.w_hh_T  # (K..., B, 4H)
    if w_dot.w_hh_T is not None:
        a_dot = a_dot + h_prev @ w_dot.w_hh_T
    a_i_dot, a_f_dot, a_g_dot, a_o_dot = lstm_split(a_dot)  # 4 x (K..., B, H)
    p, p_dot = (None if v is None else split(v, 3) for v in (w.w_p, w_dot.w_p))  # p_i, p_f, p_o (H,) each, and their tangents
    if p is not None:
        a_i_dot, a_f_dot = a_i_dot + p[0] * c_prev_dot, a_f_dot + p[1] * c_prev_dot
    if p_dot is not None:
        a_i_dot, a_f_dot = a_i_dot + p_dot[0] * c_prev, a_f_dot + p_dot[1] * c_prev
    i_dot = di_da * a_i_dot  # (K..., B, H)
    f_dot = -i_dot if input_forget else df_da * a_f_dot
    c_dot = f_dot * c_prev + f * c_prev_dot + i_dot * g + i * (dg_da * a_g_dot)  # (K..., B, H)
    if p is not None:
        a_o_dot = a_o_dot + p[2] * c_dot
    if p_dot is not None:
        a_o_dot = a_o_dot + p_dot[2] * c
    m_dot = do_da * a_o_dot * h_c + o * dhc_dc * c_dot  # (K..., B, H)
    if w.w_hr_T is None:
        return m_dot, c_dot
    h_dot = m_dot @ w.w_hr_T  # (K..., B, P)
    if w_dot.w_hr_T is not None:
        h_dot = h_dot + lstm_projection_input(cache) @ w_dot.w_hr_T
    return h_dot, c_dot


def lstm_peephole_grad(xp: Any, da: Any, c_prev: Any, c: Any) -> Any:
    """dW_p (3H,) in p_i, p_f, p_o order from every step's da (T, B, 4H) and the cell states
    before and after each step (T, B, H): sum_t,b da_i c_prev, da_f c_prev, da_o c."""
    H = c.shape[-1]
    da_i, da_f, _, da_o = lstm_split(da)  # 3 x (T, B, H)
    prods = xp.concat([da_i * c_prev, da_f * c_prev, da_o * c], axis=-1)  # (T, B, 3H)
    return sum_rows(xp, xp.reshape(prods, (-1, 3 * H)))  # (3H,)
