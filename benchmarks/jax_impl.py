"""The peer a user might pick instead: the same layers in JAX, lax.scan over time,
gradients by jax.vjp, every phase jit-compiled (compile time is paid in prepare, not timed).

    xw = x @ W_ih^T + b_ih                     (T, B, G*H)   one product before the scan
    LSTM  i, f, g, o = split(xw_t + h @ W_hh^T + b_hh); c = f*c + i*g; h = o*tanh(c)
    GRU   r, z = sigmoid(xr + hr), sigmoid(xz + hz); n = tanh(xn + r*hn); h = (1-z)*n + z*h
    RNN   h = tanh or relu(xw_t + h @ W_hh^T + b_hh)

Importing this module raises ImportError without jax; impls.py reports the row Unavailable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .config import Row
from .prepared import Prepared, Unavailable
from .problem import make_problem

jax.config.update("jax_enable_x64", True)  # float64 rows compute in float64


def _step(mode: str):
    """(carry, xw_t) -> (carry, h_t) for one cell; params closed over by the caller."""
    def step(w, carry, xw):
        if mode == "LSTM":
            h, c = carry
            i, f, g, o = jnp.split(xw + h @ w["weight_hh_l0"].T + w["bias_hh_l0"], 4, axis=-1)  # 4 x (B, H)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)  # (B, H)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)  # (B, H)
            return (h, c), h
        (h,) = carry
        hw = h @ w["weight_hh_l0"].T + w["bias_hh_l0"]  # (B, G*H)
        if mode == "GRU":
            xr, xz, xn = jnp.split(xw, 3, axis=-1)  # 3 x (B, H)
            hr, hz, hn = jnp.split(hw, 3, axis=-1)  # 3 x (B, H); b_hn sits inside the reset product
            r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
            h = (1 - z) * jnp.tanh(xn + r * hn) + z * h  # (B, H)
        else:
            h = (jnp.tanh if mode == "RNN_TANH" else jax.nn.relu)(xw + hw)  # (B, H)
        return (h,), h
    return step


def layer(mode: str):
    """f(params, x, hx) -> (output, *final states), torch.nn's layouts for one layer."""
    step = _step(mode)

    def f(w, x, hx):
        xw = x @ w["weight_ih_l0"].T + w["bias_ih_l0"]  # (T, B, G*H)
        carry, out = jax.lax.scan(lambda c, xw_t: step(w, c, xw_t), tuple(h[0] for h in hx), xw)
        return (out, *(h[None] for h in carry))  # (T, B, H), (1, B, H) each

    return f


def prepare(row: Row) -> Prepared:
    if row.device != "cpu":
        raise Unavailable("the jax row runs on the CPU")
    if row.P:
        raise Unavailable("the jax row has no projection")
    p = make_problem(row)
    f = layer(row.cell)
    w = {k: jnp.asarray(v) for k, v in p.module.state_dict().items()}
    x, hx = jnp.asarray(p.x), tuple(jnp.asarray(h) for h in p.hx)
    cot = (jnp.asarray(p.dout), *(jnp.asarray(h) for h in p.dhx))

    infer = jax.jit(f)
    forward = jax.jit(lambda w, x, hx: jax.vjp(f, w, x, hx))  # (outputs, vjp_fn): vjp_fn is a pytree
    backward = jax.jit(lambda vjp_fn, cot: vjp_fn(cot))
    step = jax.jit(lambda w, x, hx, cot: jax.vjp(f, w, x, hx)[1](cot))
    ready = jax.block_until_ready
    ready(infer(w, x, hx))  # compile every phase here, outside the clock
    fwd = ready(forward(w, x, hx))
    ready(backward(fwd[1], cot))
    ready(step(w, x, hx, cot))

    def results():
        outs, vjp_fn = forward(w, x, hx)
        dw, dx, dhx = vjp_fn(cot)
        res = {"output": outs[0], "h_n": outs[1]}
        if row.cell == "LSTM":
            res["c_n"] = outs[2]
        res.update({"d_input": dx, "d_h0": dhx[0]})
        if row.cell == "LSTM":
            res["d_c0"] = dhx[1]
        res.update({f"d_{k}": v for k, v in dw.items()})
        return {k: np.asarray(v) for k, v in res.items()}

    return Prepared(infer=lambda: ready(infer(w, x, hx)), forward=lambda: ready(forward(w, x, hx)),
                    backward=lambda fwd: ready(backward(fwd[1], cot)), results=results,
                    sync=lambda: None, step=lambda: ready(step(w, x, hx, cot)))
