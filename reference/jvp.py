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
from .layer import carry_past_padding, cell_of, prepare_weights, time_steps


def jvp(module: Any, input: Any, hx: Any = None, tangents: Mapping[str, Any] | None = None, *,
        lengths: Any = None):
    """Forward-mode derivative of ``module.forward`` (RNN, GRU or LSTM, any configuration, eval mode or no dropout).

    The primal values (states, gates) come from the module's own forward, read
    from its tape; the tangents are carried through time like forward's states,
    so padded steps carry them unchanged (``layer.carry_past_padding``).

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
    # a dot is a forward-mode tangent: x_dot is the tangent of x
    x_dot, _ = module.input_array(place, tangents["input"]) if "input" in tangents \
        else (xp.zeros_like(tape.layer_input(0)), None)  # (T, B, I)
    states0_dot = module.state_arrays(place, "tangents['hx']", tangents.get("hx"), B, tape.batched)
    params_dot = {k: (as_float(place, f"tangents[{k!r}]", tangents[k], module.dtype) if k in tangents
                      else xp.zeros_like(as_float(place, k, v, module.dtype))) for k, v in params.items()}
    finals: list = [[] for _ in states0_dot]
    for layer in range(cfg.num_layers):
        outs_dot = []
        for d, sfx in enumerate(cfg.suffixes()):
            k, idx, lt = f"l{layer}{sfx}", layer * D + d, tape.layer(layer, d)
            w = lt.weights
            w_dot = prepare_weights(place, cfg, params_dot[f"weight_ih_{k}"], params_dot[f"weight_hh_{k}"],
                                    params_dot.get(f"bias_ih_{k}"), params_dot.get(f"bias_hh_{k}"),
                                    params_dot.get(f"weight_hr_{k}"), params_dot.get(f"weight_p_{k}"))
            cell = cell_of(cfg, d)
            xw_dot = x_dot @ w.w_ih.T + lt.x @ w_dot.w_ih.T  # (T, B, G*H)  xw. = x. W_ih^T + x W_ih.^T + b.
            if w_dot.b_x is not None:
                xw_dot = xw_dot + w_dot.b_x
            state_dot = tuple(s[idx, ...] for s in states0_dot)  # carried through time like the state
            h_dot: list = [None] * T  # after each step, in time order
            for t in time_steps(T, lt.reverse):
                new = cell.step_jvp(xp, xw_dot[t, ...], state_dot, lt.state_before(t), lt.state(t), lt.cache(t), w,
                                    w_dot)
                state_dot = new if lt.mask is None else carry_past_padding(xp, lt.mask[t, ...], new, state_dot)
                h_dot[t] = state_dot[0]
            out_dot = xp.stack(h_dot)  # (T, B, P)
            if lt.mask is not None:
                out_dot = xp.where(lt.mask, out_dot, xp.zeros_like(out_dot[:1, :1, :1]))
            outs_dot.append(out_dot)
            for f, s in zip(finals, state_dot, strict=True):
                f.append(s)
        x_dot = outs_dot[0] if D == 1 else xp.concat(outs_dot, axis=-1)  # (T, B, D*P)
    with np.errstate(all="ignore"):
        output_dot = module.from_time_major(place, x_dot, tape.batched, cfg.batch_first)
    return output, hidden, output_dot, module.hidden_result(place, tuple(xp.stack(f) for f in finals), tape.batched)
