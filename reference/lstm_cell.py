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

Inside the loop the gate rows are stored i, f, o, g (torch's are i, f, g, o): the
three sigmoid gates are then one contiguous block and take one sigmoid call per
step instead of two, and the tape keeps exactly i, f, o, g with no scratch. The
layer converts weights in and gradients out (``lstm_rows``); nothing outside it
sees that order.

Backward (``dh'`` and ``dc'`` arrive; a "d" on a gate is the gradient at its pre-activation)::

    h' = m W_hr^T            =>  dm = dh' W_hr                (no projection: dm = dh')
    m  = o * tanh(c')        =>  do_out = dm * tanh(c'),  dc = dc' + dm * o * (1 - tanh(c')^2)
    c' = f * c + i * g       =>  di_out = dc * g,  df_out = dc * c,  dg_out = dc * i,  dc_prev = dc * f
    i, f, o = sigmoid(.)     =>  d(i, f, o) = d(i, f, o)_out * s * (1 - s)      s = the gate itself
    g = tanh(a_g)            =>  dg = dg_out * (1 - g^2)
    a = xw + h W_hh^T        =>  dxw = dhw = [di, df, do, dg],  dh_prev = dhw W_hh
    dW_hr = sum_t dh'_t^T m_t                                  (one product, in the layer)

Tangent::

    a. = xw. + h. W_hh^T + h W_hh.^T
    (i, f, o). = s (1 - s) a_(i, f, o).      g. = (1 - g^2) a_g.
    c'. = f. c + f c. + i. g + i g.
    m.  = o. tanh(c') + o (1 - tanh(c')^2) c'.
    h'. = m.    or    m. W_hr^T + m W_hr.^T

Shapes: B batch, H hidden, P output (proj_size or H); any leading axes K... before B broadcast.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .activations import sigmoid, tanh


class LSTMStepCache(NamedTuple):
    ifo: Any  # (B, 3H) input, forget and output gates, after the sigmoid
    g: Any  # (B, H) cell candidate, after the tanh
    tanh_c: Any  # (B, H) tanh(c'), kept so that backward needs no tanh


def lstm_rows(xp: Any, a: Any, H: int) -> Any:
    """Swap the last two gate blocks along axis 0: torch's i, f, g, o <-> the loop's i, f, o, g (its own inverse)."""
    return xp.concat([a[: 2 * H, ...], a[3 * H :, ...], a[2 * H : 3 * H, ...]], axis=0)


def lstm_step(xp: Any, xw: Any, h_prev: Any, c_prev: Any, w: Any) -> tuple[tuple[Any, Any], LSTMStepCache]:
    """One step given xw (B, 4H) in i, f, o, g rows: ((h', c'), cache)."""
    H = c_prev.shape[-1]
    a = xw + h_prev @ w.w_hh_T  # (B, 4H)
    ifo = sigmoid(xp, a[..., : 3 * H])  # (B, 3H)
    g = tanh(xp, a[..., 3 * H :])  # (B, H)
    c = ifo[..., H : 2 * H] * c_prev + ifo[..., :H] * g  # (B, H)   c' = f * c + i * g
    tanh_c = tanh(xp, c)  # (B, H)
    m = ifo[..., 2 * H :] * tanh_c  # (B, H)   m = o * tanh(c')
    h = m if w.w_hr_T is None else m @ w.w_hr_T  # (B, P)
    return (h, c), LSTMStepCache(ifo, g, tanh_c)


def lstm_step_backward(xp: Any, dh: Any, dc: Any, cache: LSTMStepCache, c_prev: Any, w: Any) -> tuple[Any, Any, Any]:
    """(dgates, dh_prev, dc_prev): the gradient at the pre-activations (B, 4H) in
    i, f, o, g rows -- the gradient at xw and at h W_hh^T alike -- and at the
    previous states, (B, P) and (B, H)."""
    ifo, g, tanh_c = cache
    H = g.shape[-1]
    i, f, o = ifo[..., :H], ifo[..., H : 2 * H], ifo[..., 2 * H :]  # 3 x (B, H)
    dm = dh if w.w_hr is None else dh @ w.w_hr  # (B, H)
    dc = dc + dm * o * (1 - tanh_c * tanh_c)  # (B, H) total gradient at c'
    d_ifo = xp.concat([dc * g, dc * c_prev, dm * tanh_c], axis=-1) * ifo * (1 - ifo)  # (B, 3H)
    d_g = dc * i * (1 - g * g)  # (B, H)
    dgates = xp.concat([d_ifo, d_g], axis=-1)  # (B, 4H)
    return dgates, dgates @ w.w_hh, dc * f


def lstm_projection_input(cache: LSTMStepCache) -> Any:
    """m = o * tanh(c') (B, H), the input of the projection, rebuilt from the cache
    (one product; cheaper than keeping another B*H floats per step)."""
    H = cache.g.shape[-1]
    return cache.ifo[..., 2 * H :] * cache.tanh_c


def lstm_step_jvp(xp: Any, dxw: Any, dh_prev: Any, dc_prev: Any, h_prev: Any, c_prev: Any, cache: LSTMStepCache,
                  w: Any, dw: Any) -> tuple[Any, Any]:
    """(h'., c'.) given the tangents of xw, (h, c) and the weights (dw entries None = 0)."""
    ifo, g, tanh_c = cache
    H = g.shape[-1]
    i, f, o = ifo[..., :H], ifo[..., H : 2 * H], ifo[..., 2 * H :]  # 3 x (B, H)
    da = dxw + dh_prev @ w.w_hh_T  # (K..., B, 4H)
    if dw.w_hh_T is not None:
        da = da + h_prev @ dw.w_hh_T
    d_ifo = ifo * (1 - ifo) * da[..., : 3 * H]  # (K..., B, 3H)
    d_g = (1 - g * g) * da[..., 3 * H :]  # (K..., B, H)
    dc = d_ifo[..., H : 2 * H] * c_prev + f * dc_prev + d_ifo[..., :H] * g + i * d_g  # (K..., B, H)
    dm = d_ifo[..., 2 * H :] * tanh_c + o * (1 - tanh_c * tanh_c) * dc  # (K..., B, H)
    if w.w_hr_T is None:
        return dm, dc
    dh = dm @ w.w_hr_T  # (K..., B, P)
    if dw.w_hr_T is not None:
        dh = dh + lstm_projection_input(cache) @ dw.w_hr_T
    return dh, dc
