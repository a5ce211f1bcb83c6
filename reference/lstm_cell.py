"""Long short-term memory step (torch.nn.LSTM with projections, LSTMCell):
forward, backward and forward-mode tangent.

Convention: batches of rows; x_t (B, I), h (B, P), c (B, H); products read
``x W^T``. The input side ``xw = x W_ih^T + b_ih + b_hh`` is computed for all
steps before the loop.

Forward (torch's equations)::

    a  = xw + h W_hh^T                  (B, 4H) pre-activations
    i  = sigmoid(a_i)                   input gate
    f  = sigmoid(a_f)                   forget gate
    g  = tanh(a_g)                      cell candidate
    o  = sigmoid(a_o)                   output gate
    c' = f * c + i * g
    m  = o * tanh(c')
    h' = m                              no projection (P = H)
    h' = m W_hr^T                       proj_size P > 0: h is (B, P), c stays (B, H)

Inside the loop the gate rows are stored o, i, f, g: torch's i, f, g, o rotated by one
block (``lstm_rows``). Then the three sigmoid gates (o, i, f) are one contiguous block,
one sigmoid call per step, and the three rows that backward drives with dc (i, f, g) are
another, one product per step. The layer converts weights in and gradients out; nothing
outside it sees that order.

Backward (``dh'`` and ``dc'`` arrive; a "d" on a gate is the gradient at its pre-activation)::

    h' = m W_hr^T            =>  dm = dh' W_hr                (no projection: dm = dh')
    m  = o * tanh(c')        =>  do = dm * tanh(c') * o (1 - o),   dc = dc' + dm * o (1 - tanh(c')^2)
    c' = f * c + i * g       =>  di = dc * g * i (1 - i),   df = dc * c * f (1 - f),
                                 dg = dc * i * (1 - g^2),   dc_prev = dc * f
    a = xw + h W_hh^T        =>  dxw = dhw = [do, di, df, dg],   dh_prev = dhw W_hh
    dW_hr = sum_t dh'_t^T m_t                                  (one product, in the layer)

Every factor right of dm and dc above is a partial derivative of the step that does
not depend on the incoming gradient. ``lstm_partials`` forms them for a block of steps
at once (a few array calls per block); the step itself is then the chain rule alone:
dc, the four gate gradients as one product ``[dm, dc, dc, dc] * partials``, and one
matrix product.

Tangent::

    a. = xw. + h. W_hh^T + h W_hh.^T
    (o, i, f). = s (1 - s) a_(o, i, f).      g. = (1 - g^2) a_g.
    c'. = f. c + f c. + i. g + i g.
    m.  = o. tanh(c') + o (1 - tanh(c')^2) c'.
    h'. = m.    or    m. W_hr^T + m W_hr.^T

Shapes: B batch, H hidden, P output (proj_size or H); any leading axes K... before B broadcast.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._linear import sum_rows
from .activations import clip_input, sigmoid, sigmoid_derivative, tanh, tanh_derivative


class LSTMStepCache(NamedTuple):
    oif: Any  # (B, 3H) output, input and forget gates, after the sigmoid
    g: Any  # (B, H) cell candidate, after the tanh
    tanh_c: Any  # (B, H) tanh(c'), kept so that backward needs no tanh


class LSTMPartials(NamedTuple):
    """The step's partial derivatives, for K steps at once (leading axis K)."""

    dc_dm: Any  # (K, B, H)    dc'/dm through m = o * tanh(c'):  o (1 - tanh(c')^2)
    da_dmc: Any  # (K, B, 4H)  d a_o / dm, then d a_(i, f, g) / dc':  tanh(c') o (1 - o),  g i (1 - i),  c f (1 - f),  i (1 - g^2)
    f: Any  # (K, B, H)        dc_prev / dc'


def lstm_rows(xp: Any, a: Any, H: int) -> Any:
    """torch's gate rows i, f, g, o -> the loop's o, i, f, g along axis 0 (one block rotated)."""
    return xp.concat([a[3 * H :, ...], a[: 3 * H, ...]], axis=0)


def torch_rows(xp: Any, a: Any, H: int) -> Any:
    """The loop's o, i, f, g rows -> torch's i, f, g, o along axis 0 (``lstm_rows`` undone)."""
    return xp.concat([a[H:, ...], a[:H, ...]], axis=0)


def lstm_step(xp: Any, xw: Any, state: tuple[Any, Any], w: Any) -> tuple[tuple[Any, Any], LSTMStepCache]:
    """One step from state = (h, c), given xw (B, 4H) in o, i, f, g rows: ((h', c'), cache)."""
    h_prev, c_prev = state  # (B, P), (B, H)
    H = c_prev.shape[-1]
    a = xw + h_prev @ w.w_hh_T  # (B, 4H)
    oif = sigmoid(xp, a[..., : 3 * H])  # (B, 3H)
    g = tanh(xp, a[..., 3 * H :])  # (B, H)
    c = oif[..., 2 * H :] * c_prev + oif[..., H : 2 * H] * g  # (B, H)   c' = f * c + i * g
    tanh_c = tanh(xp, c)  # (B, H)
    m = oif[..., :H] * tanh_c  # (B, H)   m = o * tanh(c')
    h = m if w.w_hr_T is None else m @ w.w_hr_T  # (B, P)
    return (h, c), LSTMStepCache(oif, g, tanh_c)


def lstm_partials(xp: Any, cache: LSTMStepCache, c_prev: Any) -> LSTMPartials:
    """Every factor of backward that the incoming gradient does not change, for K
    steps at once: cache fields (K, B, .), c_prev (K, B, H)."""
    oif, g, tanh_c = cache
    H = g.shape[-1]
    o, i, f = oif[..., :H], oif[..., H : 2 * H], oif[..., 2 * H :]  # 3 x (K, B, H)
    ds = sigmoid_derivative(oif)  # (K, B, 3H)   s (1 - s) for o, i, f
    da_dmc = xp.concat([tanh_c * ds[..., :H], g * ds[..., H : 2 * H], c_prev * ds[..., 2 * H :], i * tanh_derivative(g)],
                       axis=-1)  # (K, B, 4H)
    return LSTMPartials(o * tanh_derivative(tanh_c), da_dmc, f)


def lstm_step_backward(xp: Any, dstate: tuple[Any, Any], p: tuple, w: Any) -> tuple[Any, tuple[Any, Any]]:
    """(dgates, (dh_prev, dc_prev)) given dstate = (dh', dc') and one step's partials
    (``LSTMPartials`` fields): the gradient at the pre-activations (B, 4H) in o, i, f, g
    rows -- the gradient at xw and at h W_hh^T alike -- and at the previous states,
    (B, P) and (B, H).

    dgates is written over ``da_dmc``, the step's own share of the block's partials
    (read by no other step): the block of partials becomes the block of dgates, which
    the layer keeps without a copy per step."""
    dh, dc = dstate  # (B, P), (B, H)
    dc_dm, dgates, f = p  # dgates holds da/d(m, c') until the product below
    dm = dh if w.w_hr is None else dh @ w.w_hr  # (B, H)
    dc = dc + dm * dc_dm  # (B, H) total gradient at c'
    dgates *= xp.concat([dm, dc, dc, dc], axis=-1)  # (B, 4H)   [do, di, df, dg] = [dm, dc, dc, dc] * da/d(m, c'), in place
    return dgates, (dgates @ w.w_hh, dc * f)


def lstm_projection_input(cache: Any) -> Any:
    """m = o * tanh(c') (B, H), the input of the projection, rebuilt from the cache
    (one product; cheaper than keeping another B*H floats per step)."""
    H = cache.g.shape[-1]
    return cache.oif[..., :H] * cache.tanh_c


def lstm_step_jvp(xp: Any, dxw: Any, dh_prev: Any, dc_prev: Any, h_prev: Any, c_prev: Any, cache: LSTMStepCache,
                  w: Any, dw: Any) -> tuple[Any, Any]:
    """(h'., c'.) given the tangents of xw, (h, c) and the weights (dw entries None = 0)."""
    oif, g, tanh_c = cache
    H = g.shape[-1]
    o, i, f = oif[..., :H], oif[..., H : 2 * H], oif[..., 2 * H :]  # 3 x (B, H)
    da = dxw + dh_prev @ w.w_hh_T  # (K..., B, 4H)
    if dw.w_hh_T is not None:
        da = da + h_prev @ dw.w_hh_T
    d_oif = sigmoid_derivative(oif) * da[..., : 3 * H]  # (K..., B, 3H)
    d_g = tanh_derivative(g) * da[..., 3 * H :]  # (K..., B, H)
    dc = d_oif[..., 2 * H :] * c_prev + f * dc_prev + d_oif[..., H : 2 * H] * g + i * d_g  # (K..., B, H)
    dm = d_oif[..., :H] * tanh_c + o * tanh_derivative(tanh_c) * dc  # (K..., B, H)
    if w.w_hr_T is None:
        return dm, dc
    dh = dm @ w.w_hr_T  # (K..., B, P)
    if dw.w_hr_T is not None:
        dh = dh + lstm_projection_input(cache) @ dw.w_hr_T
    return dh, dc


# -- ONNX's general form ---------------------------------------------------------------------------
#
# ONNX's LSTM operator: gate functions f, g, h (default sigmoid, tanh, tanh), peepholes p_i, p_f,
# p_o, the cell clip and coupled input and forget gates. With x~ = clip(x) (the identity without
# a clip) and the gate rows in the loop's o, i, f, g order:
#
#     a   = xw + h W_hh^T                        (B, 4H)
#     a_i += p_i * c          a_f += p_f * c     peepholes read the state the step starts from
#     i = f(a_i~)   f = f(a_f~)  (input_forget: f = 1 - i)   g = g(a_g~)
#     c'  = f * c + i * g
#     a_o += p_o * c'                            the output gate's peephole reads the new state
#     o = f(a_o~)   m = o * h(c')   h' = m  or  m W_hr^T
#
# Backward keeps the structure of torch's cell: every gate gradient is dm or dc times a
# partial, and dc_prev = dc times a partial. With f'(a~) taken at the clipped input and times
# [|a| <= clip]:
#
#     d a_o / dm   = h(c') f'(a_o~)
#     dc'/dm       = o h'(c') + p_o * d a_o / dm     (through h(c') and through a_o's peephole)
#     d a_i / dc'  = (g - c if input_forget else g) f'(a_i~)
#     d a_f / dc'  = c f'(a_f~)   (0 with input_forget)
#     d a_g / dc'  = i g'(a_g~)
#     dc / dc'     = f + p_i * d a_i / dc' + p_f * d a_f / dc'
#     dp_i = sum_t,b da_i * c,   dp_f = sum_t,b da_f * c,   dp_o = sum_t,b da_o * c'   (in the layer)
#
# The cache extends torch's: ``tanh_c`` holds h(c') (so ``lstm_projection_input`` and the
# tape's gates read it unchanged) and ``a`` the pre-activations, peepholes added, before the clip.


class LSTMGeneralCache(NamedTuple):
    oif: Any  # (B, 3H) o, i, f after their function (f = 1 - i with input_forget)
    g: Any  # (B, H) g(a_g~)
    tanh_c: Any  # (B, H) h(c'): tanh(c') by default
    a: Any  # (B, 4H) pre-activations o, i, f, g, peepholes added, before the clip


def lstm_general_step(xp: Any, xw: Any, state: tuple[Any, Any], w: Any, acts: tuple, clip: float | None,
                      input_forget: bool) -> tuple[tuple[Any, Any], LSTMGeneralCache]:
    """One step of ONNX's LSTM from state = (h, c), given xw (B, 4H) in o, i, f, g rows and the
    gate functions acts = (f, g, h): ((h', c'), cache)."""
    f_act, g_act, h_act = acts
    h_prev, c_prev = state  # (B, P), (B, H)
    H = c_prev.shape[-1]
    a = xw + h_prev @ w.w_hh_T  # (B, 4H)
    a_i, a_f, a_g = a[..., H : 2 * H], a[..., 2 * H : 3 * H], a[..., 3 * H :]  # 3 x (B, H)
    if w.w_p is not None:  # peepholes p_i, p_f read c
        a_i, a_f = a_i + w.w_p[:H] * c_prev, a_f + w.w_p[H : 2 * H] * c_prev
    i = f_act(xp, clip_input(xp, a_i, clip)[0])  # (B, H)
    f = 1 - i if input_forget else f_act(xp, clip_input(xp, a_f, clip)[0])  # (B, H)
    g = g_act(xp, clip_input(xp, a_g, clip)[0])  # (B, H)
    c = f * c_prev + i * g  # (B, H)
    a_o = a[..., :H] if w.w_p is None else a[..., :H] + w.w_p[2 * H :] * c  # (B, H) p_o reads c'
    o = f_act(xp, clip_input(xp, a_o, clip)[0])  # (B, H)
    h_c = h_act(xp, c)  # (B, H)
    m = o * h_c  # (B, H)
    h = m if w.w_hr_T is None else m @ w.w_hr_T  # (B, P)
    return (h, c), LSTMGeneralCache(xp.concat([o, i, f], axis=-1), g, h_c, xp.concat([a_o, a_i, a_f, a_g], axis=-1))


def _lstm_general_derivatives(xp: Any, cache: LSTMGeneralCache, c: Any, acts: tuple,
                              clip: float | None) -> tuple[Any, Any]:
    """(f'(a_o~), f'(a_i~), f'(a_f~), g'(a_g~) (..., 4H) times the clip's derivative, h'(c') (..., H))."""
    f_act, g_act, h_act = acts
    oif, g, h_c, a = cache
    H = g.shape[-1]
    x, dclip = clip_input(xp, a, clip)  # (..., 4H) the functions' inputs, and the clip's derivative
    d_a = xp.concat([f_act.derivative(xp, x[..., : 3 * H], oif), g_act.derivative(xp, x[..., 3 * H :], g)],
                    axis=-1)  # (..., 4H)
    return (d_a if dclip is None else d_a * dclip), h_act.derivative(xp, c, h_c)


def lstm_general_partials(xp: Any, cache: LSTMGeneralCache, c_prev: Any, c: Any, w_p: Any, acts: tuple,
                          clip: float | None, input_forget: bool) -> LSTMPartials:
    """``lstm_partials`` for ONNX's form, K steps at once: cache fields (K, B, .), c_prev and c
    (K, B, H) the cell states before and after each step, w_p (3H,) or None."""
    oif, g, h_c, _ = cache
    H = g.shape[-1]
    o, i, f = oif[..., :H], oif[..., H : 2 * H], oif[..., 2 * H :]  # 3 x (K, B, H)
    d_a, dh_c = _lstm_general_derivatives(xp, cache, c, acts, clip)  # (K, B, 4H), (K, B, H)
    do_dm = h_c * d_a[..., :H]  # (K, B, H)
    dc_dm = o * dh_c  # (K, B, H)
    di_dc = ((g - c_prev) if input_forget else g) * d_a[..., H : 2 * H]  # (K, B, H)   f = 1 - i: dL/di = dc' (g - c)
    df_dc = xp.zeros_like(di_dc) if input_forget else c_prev * d_a[..., 2 * H : 3 * H]  # (K, B, H)
    dcprev_dc = f  # (K, B, H)
    if w_p is not None:
        dc_dm = dc_dm + w_p[2 * H :] * do_dm
        dcprev_dc = f + w_p[:H] * di_dc + w_p[H : 2 * H] * df_dc
    return LSTMPartials(dc_dm, xp.concat([do_dm, di_dc, df_dc, i * d_a[..., 3 * H :]], axis=-1), dcprev_dc)


def lstm_general_step_jvp(xp: Any, dxw: Any, dh_prev: Any, dc_prev: Any, h_prev: Any, c_prev: Any, c: Any,
                          cache: LSTMGeneralCache, w: Any, dw: Any, acts: tuple, clip: float | None,
                          input_forget: bool) -> tuple[Any, Any]:
    """(h'., c'.) of ONNX's LSTM given the tangents of xw, (h, c) and the weights (dw entries None = 0)::

        a_i. = xw_i. + (h W_hh^T). + p_i. c + p_i c.     (a_f. alike; a_o. with c'. and c')
        i. = f'(a_i~) a_i.    f. = -i. (input_forget) or f'(a_f~) a_f.    g. = g'(a_g~) a_g.
        c'. = f. c + f c. + i. g + i g.      o. = f'(a_o~) a_o.      m. = o. h(c') + o h'(c') c'.
    """
    oif, g, h_c, _ = cache
    H = g.shape[-1]
    o, i, f = oif[..., :H], oif[..., H : 2 * H], oif[..., 2 * H :]  # 3 x (B, H)
    d_a, dh_c = _lstm_general_derivatives(xp, cache, c, acts, clip)  # (B, 4H), (B, H)
    da = dxw + dh_prev @ w.w_hh_T  # (K..., B, 4H)
    if dw.w_hh_T is not None:
        da = da + h_prev @ dw.w_hh_T
    da_i, da_f = da[..., H : 2 * H], da[..., 2 * H : 3 * H]  # (K..., B, H)
    if w.w_p is not None:
        da_i, da_f = da_i + w.w_p[:H] * dc_prev, da_f + w.w_p[H : 2 * H] * dc_prev
    if dw.w_p is not None:
        da_i, da_f = da_i + dw.w_p[:H] * c_prev, da_f + dw.w_p[H : 2 * H] * c_prev
    d_i = d_a[..., H : 2 * H] * da_i  # (K..., B, H)
    d_f = -d_i if input_forget else d_a[..., 2 * H : 3 * H] * da_f
    dc = d_f * c_prev + f * dc_prev + d_i * g + i * (d_a[..., 3 * H :] * da[..., 3 * H :])  # (K..., B, H)
    da_o = da[..., :H]  # (K..., B, H)
    if w.w_p is not None:
        da_o = da_o + w.w_p[2 * H :] * dc
    if dw.w_p is not None:
        da_o = da_o + dw.w_p[2 * H :] * c
    dm = d_a[..., :H] * da_o * h_c + o * dh_c * dc  # (K..., B, H)
    if w.w_hr_T is None:
        return dm, dc
    dh = dm @ w.w_hr_T  # (K..., B, P)
    if dw.w_hr_T is not None:
        dh = dh + lstm_projection_input(cache) @ dw.w_hr_T
    return dh, dc


def lstm_peephole_grad(xp: Any, dgates: Any, c_prev: Any, c: Any) -> Any:
    """dW_p (3H,) in p_i, p_f, p_o order from every step's dgates (T, B, 4H) in o, i, f, g rows and
    the cell states before and after (T, B, H): sum_t,b da_i c, da_f c, da_o c'."""
    H = c.shape[-1]
    prods = xp.concat([dgates[..., H : 2 * H] * c_prev, dgates[..., 2 * H : 3 * H] * c_prev, dgates[..., :H] * c],
                      axis=-1)  # (T, B, 3H)
    return sum_rows(xp, xp.reshape(prods, (-1, 3 * H)))  # (3H,)
