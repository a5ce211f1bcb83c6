"""Forward mode: Jacobian-vector products (tangent propagation through time).

Reverse mode (``backward``) carries one cotangent *backwards* through time;
forward mode carries one tangent *forwards*, next to the primal values, step by
step. Given tangents u for the input, the initial state and every parameter,
``jvp`` returns J u for the output and the final state, where J is the Jacobian
of the module's forward. The two modes are tied by the identity
``<v, J u> = <J^T v, u>`` for every cotangent v.

Tangent of each step (a dot marks a tangent; xw = W_ih x + b is the input side)::

    xw.  = x. W_ih^T + x W_ih.^T + b.                       before the loop, all steps at once

    then each cell's step tangent (``rnn_step_jvp``, ``gru_step_jvp``, ``lstm_step_jvp``,
    written next to the step's forward and backward in ``*_cell.py``).

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

from ._namespace import as_float
from .layer import cell_of, prepare_weights, scan, time_steps


def jvp(module: Any, input: Any, hx: Any = None, tangents: Mapping[str, Any] | None = None, *,
        lengths: Any = None):
    """Forward-mode derivative of ``module.forward`` (RNN, GRU or LSTM, any configuration, eval mode or no dropout).

    The primal values (states, gates) come from the module's own forward, read
    from its tape; the tangents are carried by the same ``scan`` as forward and
    backward, so padded steps carry them unchanged.

    Args:
        module: a reference RNN, GRU or LSTM.
        input, hx, lengths: as for ``module.forward`` (any array library).
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
    params = module.parameters()
    unknown = set(tangents) - set(params) - {"input", "hx"}
    if unknown:
        raise ValueError(f"tangents: unknown keys {sorted(unknown)}; expected 'input', 'hx' or parameter names")
    output, hidden, tape = module.forward(input, hx, lengths=lengths)
    place, cfg = tape.placement, tape.config
    xp, D, T, B = place.xp, cfg.num_directions, tape.T, tape.B
    dx, _ = module.input_array(place, tangents["input"]) if "input" in tangents else (xp.zeros_like(tape.layer_input(0)), None)
    dstates0 = module.state_arrays(place, "tangents['hx']", tangents.get("hx"), B, tape.batched)
    dparams = {k: (as_float(place, f"tangents[{k!r}]", tangents[k], module.dtype) if k in tangents
                   else xp.zeros_like(as_float(place, k, v, module.dtype))) for k, v in params.items()}
    finals: list = [[] for _ in dstates0]
    for layer in range(cfg.num_layers):
        douts = []
        for d, sfx in enumerate(cfg.suffixes()):
            k, idx, lt = f"l{layer}{sfx}", layer * D + d, tape.layer(layer, d)
            w = lt.weights
            dw = prepare_weights(place, cfg, dparams[f"weight_ih_{k}"], dparams[f"weight_hh_{k}"],
                                 dparams.get(f"bias_ih_{k}"), dparams.get(f"bias_hh_{k}"), dparams.get(f"weight_hr_{k}"),
                                 dparams.get(f"weight_p_{k}"))
            cell = cell_of(cfg, d)
            dxw = dx @ w.w_ih.T + lt.x @ dw.w_ih.T  # (T, B, G*H)  xw. = x. W_ih^T + x W_ih.^T + b.
            if dw.b_x is not None:
                dxw = dxw + dw.b_x

            def step(dstate, t, lt=lt, w=w, dw=dw, dxw=dxw, cell=cell):
                return cell.step_jvp(xp, dxw[t, ...], dstate, lt.state_before(t), lt.state(t), lt.cache(t), w, dw), None

            dstate_n, records = scan(xp, step, tuple(s[idx, ...] for s in dstates0), time_steps(T, lt.reverse), lt.mask)
            records.sort(key=lambda r: r[0])  # time order
            dout = xp.stack([new[0] for _, new, _ in records])  # (T, B, P)
            if lt.mask is not None:
                dout = xp.where(lt.mask, dout, xp.zeros_like(dout[:1, :1, :1]))
            douts.append(dout)
            for f, s in zip(finals, dstate_n, strict=True):
                f.append(s)
        dx = douts[0] if D == 1 else xp.concat(douts, axis=-1)  # (T, B, D*P)
    with np.errstate(all="ignore"):
        dout = module.from_time_major(place, dx, tape.batched, cfg.batch_first)
    return output, hidden, dout, module.hidden_result(place, tuple(xp.stack(f) for f in finals), tape.batched)
