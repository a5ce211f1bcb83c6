"""Forward mode: Jacobian-vector products (tangent propagation through time).

Reverse mode (``backward``) carries one cotangent *backwards* through time;
forward mode carries one tangent *forwards*, next to the primal values, step by
step. Given tangents u for the input, the initial state and every parameter,
``jvp`` returns J u for the output and the final state, where J is the Jacobian
of the module's forward. The two modes are tied by the identity
``<v, J u> = <J^T v, u>`` for every cotangent v.

Tangent of each step (a dot marks a tangent; xw = W_ih x + b is the input side)::

    xw.  = x. W_ih^T + x W_ih.^T + b.                       before the loop, all steps at once

    RNN    pre. = xw. + h. W_hh^T + h W_hh.^T
           h'.  = (1 - h'^2) * pre.            tanh        ([h' > 0] * pre. for relu)

    GRU    hw.  = h. W_hh^T + h W_hh.^T + b_hh.
           r.   = r (1 - r) (xw_r. + hw_r.)     z. = z (1 - z) (xw_z. + hw_z.)
           n.   = (1 - n^2) (xw_n. + r. * hw_n + r * hw_n.)          b_hn inside the reset product
           h'.  = (1 - z) n. + z. (h - n) + z h.

    LSTM   pre. = xw. + h. W_hh^T + h W_hh.^T
           i. = i (1 - i) pre_i.   f. = f (1 - f) pre_f.   g. = (1 - g^2) pre_g.   o. = o (1 - o) pre_o.
           c'.  = f. c + f c. + i. g + i g.
           m.   = o. tanh(c') + o (1 - tanh(c')^2) c'.
           h'.  = m.      or, with a projection,  h'. = m. W_hr^T + m W_hr.^T

Variable lengths, stacking and directions follow the module's forward: padded
steps carry the tangent unchanged and output a zero tangent; the input tangent
of layer l + 1 is the concatenated output tangents of layer l.

The step functions broadcast over leading axes of the tangents, so a batch of
tangents (e.g. the columns of an identity, to build a step Jacobian) costs one
call. Shapes: T time, B batch, I input, H hidden, P output (= H without
projection), G gates, K any leading tangent axes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .gru_cell import GRUStepCache
from .layer import CELLS, LayerWeights, recurrent_layout
from .lstm_cell import LSTMStepCache, lstm_projection_input
from .rnn_cell import RNNStepCache


def _matT(a: np.ndarray, w: np.ndarray | None) -> np.ndarray | float:
    """a @ w^T, or 0 when the tangent w is absent."""
    return 0.0 if w is None else a @ w.T


def projection_jvp(x: np.ndarray, dx: np.ndarray, w: LayerWeights, dw: LayerWeights, both_biases: bool) -> np.ndarray:
    """xw. = x. W_ih^T + x W_ih.^T + b_ih. (+ b_hh. when both biases enter the same sum), (T, B, G*H)."""
    dxw = dx @ w.w_ih.T + _matT(x, dw.w_ih)  # (T, B, G*H)
    if dw.b_ih is not None:
        dxw = dxw + dw.b_ih
    if both_biases and dw.b_hh is not None:
        dxw = dxw + dw.b_hh
    return dxw


def rnn_step_jvp(dxw: np.ndarray, dh_prev: np.ndarray, h_prev: np.ndarray, cache: RNNStepCache,
                 w_hh: np.ndarray, dw_hh: np.ndarray | None = None) -> np.ndarray:
    """h'. for h' = act(xw + h W_hh^T).

    Args:
        dxw: (K..., B, H) or 0.  dh_prev: (K..., B, H).  h_prev: (B, H).
        cache: the step's RNNStepCache (holds h').  w_hh, dw_hh: (H, H); dw_hh None is zero.
    """
    dpre = dxw + dh_prev @ w_hh.T + _matT(h_prev, dw_hh)  # (K..., B, H)
    if cache.nonlinearity == "tanh":
        return (1 - cache.h * cache.h) * dpre  # (K..., B, H)
    return np.where(cache.h > 0, dpre, 0)  # (K..., B, H)


def gru_step_jvp(dxw: np.ndarray, dh_prev: np.ndarray, cache: GRUStepCache, w_hh: np.ndarray,
                 dw_hh: np.ndarray | None = None, db_hh: np.ndarray | None = None) -> np.ndarray:
    """h'. for the GRU step (gates r, z, n; b_hn inside the reset product).

    Args:
        dxw: (K..., B, 3H) or 0.  dh_prev: (K..., B, H).  cache: GRUStepCache.
        w_hh, dw_hh: (3H, H).  db_hh: (3H,) or None.
    """
    h_prev, rz, n, hw_n = cache
    H = n.shape[-1]
    r, z = rz[:, :H], rz[:, H:]  # 2 x (B, H)
    dhw = dh_prev @ w_hh.T + _matT(h_prev, dw_hh)  # (K..., B, 3H)
    if db_hh is not None:
        dhw = dhw + db_hh
    dsum = dhw + dxw  # (K..., B, 3H) only the r and z columns are used
    dr = r * (1 - r) * dsum[..., :H]  # (K..., B, H)
    dz = z * (1 - z) * dsum[..., H : 2 * H]  # (K..., B, H)
    dxw_n = dxw[..., 2 * H :] if np.ndim(dxw) else 0.0
    dn = (1 - n * n) * (dxw_n + dr * hw_n + r * dhw[..., 2 * H :])  # (K..., B, H)
    return (1 - z) * dn + dz * (h_prev - n) + z * dh_prev  # (K..., B, H)


def lstm_step_jvp(dxw: np.ndarray, dh_prev: np.ndarray, dc_prev: np.ndarray, h_prev: np.ndarray,
                  cache: LSTMStepCache, w_hh: np.ndarray, dw_hh: np.ndarray | None = None,
                  w_hr: np.ndarray | None = None, dw_hr: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(h'., c'.) for the LSTM step (gates i, f, g, o; optional projection).

    Args:
        dxw: (K..., B, 4H) or 0.  dh_prev: (K..., B, P).  dc_prev: (K..., B, H).
        h_prev: (B, P).  cache: LSTMStepCache.  w_hh, dw_hh: (4H, P).  w_hr, dw_hr: (P, H) or None.
    """
    c_prev, gates, tanh_c = cache
    H = c_prev.shape[-1]
    i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))  # 4 x (B, H)
    dpre = dxw + dh_prev @ w_hh.T + _matT(h_prev, dw_hh)  # (K..., B, 4H)
    di = i * (1 - i) * dpre[..., :H]  # (K..., B, H)
    df = f * (1 - f) * dpre[..., H : 2 * H]
    dg = (1 - g * g) * dpre[..., 2 * H : 3 * H]
    do = o * (1 - o) * dpre[..., 3 * H :]
    dc = df * c_prev + f * dc_prev + di * g + i * dg  # (K..., B, H)
    dm = do * tanh_c + o * (1 - tanh_c * tanh_c) * dc  # (K..., B, H)
    if w_hr is None:
        return dm, dc
    dh = dm @ w_hr.T + _matT(lstm_projection_input(cache), dw_hr)  # (K..., B, P)
    return dh, dc


def step_jvp(mode: str, dxw: Any, dstate: tuple, h_prev: np.ndarray, cache: Any, w: LayerWeights,
             dw: LayerWeights | None = None) -> tuple:
    """Dispatch to the cell's step tangent; states are (h,) or (h, c)."""
    dw = dw or LayerWeights(None, None, None, None, None)
    if mode == "GRU":
        return (gru_step_jvp(dxw, dstate[0], cache, w.w_hh, dw.w_hh, dw.b_hh),)
    if mode == "LSTM":
        return lstm_step_jvp(dxw, dstate[0], dstate[1], h_prev, cache, w.w_hh, dw.w_hh, w.w_hr, dw.w_hr)
    return (rnn_step_jvp(dxw, dstate[0], h_prev, cache, w.w_hh, dw.w_hh),)


def layer_jvp(mode: str, x: np.ndarray, dx: np.ndarray, state0: tuple, dstate0: tuple, w: LayerWeights,
              dw: LayerWeights, mask: np.ndarray | None = None, reverse: bool = False):
    """One layer, one direction: primal and tangent side by side.

    Args:
        x, dx: (T, B, I).  state0, dstate0: (h0,) or (h0, c0); h0 (B, P), c0 (B, H).
        w, dw: the weights and their tangents (None entries are zero tangents).
        mask: (T, B, 1) bool or None.
    Returns:
        out (T, B, P), dout (T, B, P), state_n, dstate_n.
    """
    cell = CELLS[mode]
    xw = cell.project(x, w)  # (T, B, G*H)
    dxw = projection_jvp(x, dx, w, dw, both_biases=not cell.separate_dhw)  # (T, B, G*H)
    w_step = recurrent_layout(w)  # the primal steps multiply exactly as layer_forward's do
    state, dstate = state0, dstate0
    outs, douts = [], []
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    for t in steps:
        new, cache = cell.step(xw[t], state, w_step)
        dnew = step_jvp(mode, dxw[t], dstate, state[0], cache, w, dw)
        if mask is not None:  # padded rows keep their state and its tangent
            new = tuple(np.where(mask[t], a, b) for a, b in zip(new, state))
            dnew = tuple(np.where(mask[t], a, b) for a, b in zip(dnew, dstate))
        state, dstate = new, dnew
        outs.append(state[0])
        douts.append(dstate[0])
    out, dout = np.stack(outs), np.stack(douts)  # (T, B, P) in processing order
    if reverse:
        out, dout = out[::-1], dout[::-1]
    if mask is not None:
        out, dout = np.where(mask, out, 0), np.where(mask, dout, 0)
    return out, dout, state, dstate


def jvp(module: Any, input: Any, hx: Any = None, tangents: Mapping[str, Any] | None = None, *,
        lengths: Any = None):
    """Forward-mode derivative of ``module.forward`` (RNN, GRU or LSTM, any configuration, eval mode or no dropout).

    Args:
        module: a reference RNN, GRU or LSTM.
        input, hx, lengths: as for ``module.forward``.
        tangents: "input" (shaped like input), "hx" (shaped like hx; a pair for
            LSTM) and any parameter names (shaped like the parameters); missing
            entries are zero tangents.
    Returns:
        (output, hidden, output_tangent, hidden_tangent), output and hidden as
        ``module.forward`` returns them, the tangents shaped alike.
    """
    if module.training and module.dropout > 0 and module.num_layers > 1:
        raise ValueError("jvp: dropout is random; call module.eval() or use dropout=0")
    tangents = dict(tangents or {})
    x, batched = module._input(input)  # (T, B, I)
    dx, _ = module._input(tangents.get("input", np.zeros_like(np.asarray(input, dtype=module.dtype))))
    T, B = x.shape[:2]
    states0 = module._states("hx", hx, B, batched)  # [(D*L, B, P)] (+ [(D*L, B, H)])
    dstates0 = module._states("hx", tangents.get("hx"), B, batched)
    mask = module._mask(lengths, T, B, batched)  # (T, B, 1) or None
    params = module.parameters()
    unknown = set(tangents) - set(params) - {"input", "hx"}
    if unknown:
        raise ValueError(f"tangents: unknown keys {sorted(unknown)}; expected 'input', 'hx' or parameter names")
    dparams = {k: (np.asarray(tangents[k], dtype=module.dtype) if k in tangents else None) for k in params}
    D, P = module.num_directions, module.output_size
    final = [np.empty_like(s) for s in states0]
    dfinal = [np.empty_like(s) for s in states0]
    for layer in range(module.num_layers):
        outs, douts = [], []
        for d, sfx in enumerate(["", "_reverse"][:D]):
            idx, k = layer * D + d, f"l{layer}{sfx}"
            w = module._weights(layer, sfx)
            dw = LayerWeights(dparams[f"weight_ih_{k}"], dparams[f"weight_hh_{k}"], dparams.get(f"bias_ih_{k}"),
                              dparams.get(f"bias_hh_{k}"), dparams.get(f"weight_hr_{k}"))
            out, dout, state_n, dstate_n = layer_jvp(module.mode, x, dx, tuple(s[idx] for s in states0),
                                                     tuple(s[idx] for s in dstates0), w, dw, mask, reverse=d == 1)
            for f, s in zip(final, state_n):
                f[idx] = s
            for f, s in zip(dfinal, dstate_n):
                f[idx] = s
            outs.append(out)
            douts.append(dout)
        x = outs[0] if D == 1 else np.concatenate(outs, axis=-1)  # (T, B, D*P)
        dx = douts[0] if D == 1 else np.concatenate(douts, axis=-1)  # (T, B, D*P)
    assert x.shape[-1] == D * P
    return (module._from_time_major(x, batched), module._hidden(final, batched),
            module._from_time_major(dx, batched), module._hidden(dfinal, batched))
