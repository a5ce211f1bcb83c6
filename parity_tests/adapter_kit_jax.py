"""The conformance kit's builders for Flax (linen, nnx) and Equinox cells (see adapter_kit.py).

Each framework's planted bugs live in a subclass of its LSTMCell whose ``__call__`` writes the equations out
with one bug in gate f ("preact": its pre-activation scaled by 1.25; "grad": its gradient stopped; "value":
its pre-activation + 0.5 where input feature 0 is VALUE). These candidates are one layer (a cell, an RNN or a
Bidirectional), so the stacked cases are named skips; Equinox takes no lengths and has one direction.
float64 runs under ``jax.enable_x64``; bfloat16 and float16 params MATCH against the rounding envelope.
"""

from __future__ import annotations

import contextlib

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from adapter_kit import CASES, SCALE, VALUE, B, Expect, H, I, Skip, T, keywords
from flax import nnx

ONE_LAYER = "the adapter takes one layer (a cell, an RNN or a Bidirectional): a stack is not one of its objects"


def drawn(abstract, seed=0):
    """Every array of an abstract tree drawn U(-0.5, 0.5), biases included (a zero bias hides where it goes)."""
    rng = np.random.default_rng(seed)
    fill = lambda s: jnp.asarray(rng.uniform(-0.5, 0.5, s.shape).astype(s.dtype))
    return jax.tree_util.tree_map(fill, abstract, is_leaf=lambda v: isinstance(v, jax.ShapeDtypeStruct))


def planted_f(pre_f, inputs, bug):
    """Gate f's value, with ``bug`` in it (None: right)."""
    if bug == "preact":
        pre_f = 1.25 * pre_f
    if bug == "value":
        pre_f = pre_f + 0.5 * (inputs[..., :1] == VALUE)
    f = jax.nn.sigmoid(pre_f)
    return jax.lax.stop_gradient(f) if bug == "grad" else f


def flax_skips(case: str, flavour: str) -> None:
    """Skip, saying why, the cases Flax's candidates (one layer; GRU in torch's form) cannot express."""
    if case in ("two layers", "layer 1 gate f"):
        raise Skip(ONE_LAYER)
    if case == "reverse":
        raise Skip(f"the adapter runs {flavour}'s reverse direction inside Bidirectional only (a lone "
                   "RNN(reverse=True) is refused by name)")
    if case == "GRU paper form":
        raise Skip(f"{flavour}'s GRUCell has torch's form only")


def float64_case(case: str):
    return jax.enable_x64(True) if case == "float64" else contextlib.nullcontext()


# -- linen ------------------------------------------------------------------------------------------


class LinenKitCell(nn.LSTMCell):
    """linen's LSTMCell, the equations written out, ``bug`` in gate f; ``scale`` on the output (not the carry)."""

    bug: str | None = None
    scale: float = 1.0

    @nn.compact
    def __call__(self, carry, inputs):
        c, h = carry
        dense_h = lambda name: nn.Dense(h.shape[-1], use_bias=True, name=name, param_dtype=self.param_dtype)
        dense_i = lambda name: nn.Dense(h.shape[-1], use_bias=False, name=name, param_dtype=self.param_dtype)
        i = self.gate_fn(dense_i("ii")(inputs) + dense_h("hi")(h))
        f = planted_f(dense_i("if")(inputs) + dense_h("hf")(h), inputs, self.bug)
        g = self.activation_fn(dense_i("ig")(inputs) + dense_h("hg")(h))
        o = self.gate_fn(dense_i("io")(inputs) + dense_h("ho")(h))
        new_c = f * c + i * g
        new_h = o * self.activation_fn(new_c)
        return (new_c, new_h), new_h * self.scale


class LinenLastStepC(nn.RNN):
    """An RNN whose carry's c is the state after the last step of the padded input, whatever the lengths."""

    def __call__(self, inputs, *, seq_lengths=None, **kw):
        if not kw.get("return_carry"):  # init
            return super().__call__(inputs, seq_lengths=seq_lengths, **kw)
        carry, out = super().__call__(inputs, seq_lengths=seq_lengths, **kw)
        whole, _ = super().__call__(inputs, seq_lengths=None, **kw)
        return (whole[0], carry[1]), out


def linen(module, dtype=jnp.float32, seed=0):
    """(module, params) of a linen cell, RNN or Bidirectional, its params drawn."""
    def init():
        if isinstance(module, (nn.RNN, nn.Bidirectional)):
            return module.init(jax.random.key(0), jnp.ones((T, B, I), dtype), time_major=True)
        return module.init(jax.random.key(0), module.initialize_carry(jax.random.key(0), (B, I)),
                           jnp.ones((B, I), dtype))

    return module, drawn(jax.eval_shape(init), seed)


LOW_PRECISION_MATCH = Expect("MATCH")  # bfloat16 and float16 params are judged against the rounding envelope


class LinenKit:
    def expect(self, case: str) -> Expect:
        if case in ("bfloat16", "float16"):
            return LOW_PRECISION_MATCH
        return Expect("REFUSED", says="gate_fn") if case == "an option the reference lacks" else CASES[case]

    def build(self, case: str):
        flax_skips(case, "Flax")
        cell = lambda bug=None, scale=1.0, **kw: LinenKitCell(H, bug=bug, scale=scale, **kw)
        makers = {
            "float32": lambda: nn.LSTMCell(H),
            "float64": lambda: nn.LSTMCell(H, param_dtype=jnp.float64),
            "lengths": lambda: nn.RNN(nn.LSTMCell(H)),
            "bidirectional": lambda: nn.Bidirectional(nn.RNN(nn.LSTMCell(H)), nn.RNN(nn.LSTMCell(H))),
            "GRU torch form": lambda: nn.GRUCell(H),
            "subclass, same maths": lambda: cell(),
            "subclass scales the output": lambda: cell(scale=SCALE),
            "subclass c_n from the last step": lambda: LinenLastStepC(nn.LSTMCell(H)),
            "gradient of gate f stopped": lambda: cell("grad"),
            "reverse direction gate f": lambda: nn.Bidirectional(nn.RNN(nn.LSTMCell(H)), nn.RNN(cell("preact"))),
            "gate f on one input value": lambda: cell("value"),
            "bfloat16": lambda: nn.LSTMCell(H, param_dtype=jnp.bfloat16),
            "float16": lambda: nn.LSTMCell(H, param_dtype=jnp.float16),
            "an option the reference lacks": lambda: nn.LSTMCell(H, gate_fn=jax.nn.hard_sigmoid),
        }
        with float64_case(case):
            return linen(makers[case](), jnp.float64 if case == "float64" else jnp.float32), \
                keywords(case, _context=lambda: float64_case(case))


# -- nnx --------------------------------------------------------------------------------------------


class NnxKitCell(nnx.LSTMCell):
    """nnx's LSTMCell, the equations written out, ``bug`` in gate f; ``scale`` on the output (not the carry)."""

    def __init__(self, *args, bug=None, scale=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.bug, self.scale = bug, scale

    def __call__(self, carry, inputs):
        c, h = carry
        i = self.gate_fn(self.ii(inputs) + self.hi(h))
        f = planted_f(self.if_(inputs) + self.hf(h), inputs, self.bug)
        g = self.activation_fn(self.ig(inputs) + self.hg(h))
        o = self.gate_fn(self.io(inputs) + self.ho(h))
        new_c = f * c + i * g
        new_h = o * self.activation_fn(new_c)
        return (new_c, new_h), new_h * self.scale


class NnxLastStepC(nnx.RNN):
    """An RNN whose carry's c is the state after the last step of the padded input, whatever the lengths."""

    def __call__(self, inputs, *, seq_lengths=None, **kw):
        carry, out = super().__call__(inputs, seq_lengths=seq_lengths, **kw)
        whole, _ = super().__call__(inputs, seq_lengths=None, **kw)
        return (whole[0], carry[1]), out


def nnx_cell(cls, seed=0, **kw):
    """An nnx cell with drawn weights (built abstractly, then filled)."""
    graphdef, state = nnx.split(nnx.eval_shape(lambda: cls(I, H, rngs=nnx.Rngs(0), **kw)))
    return nnx.merge(graphdef, drawn(state, seed))


class NnxKit(LinenKit):
    def build(self, case: str):
        flax_skips(case, "nnx")
        cell = lambda cls=nnx.LSTMCell, **kw: nnx_cell(cls, **kw)
        rnn = lambda c: nnx.RNN(c, rngs=False)
        makers = {
            "float32": lambda: cell(),
            "float64": lambda: cell(param_dtype=jnp.float64),
            "lengths": lambda: rnn(cell()),
            "bidirectional": lambda: nnx.Bidirectional(rnn(cell()), rnn(cell(seed=1))),
            "GRU torch form": lambda: cell(nnx.GRUCell),
            "subclass, same maths": lambda: cell(NnxKitCell),
            "subclass scales the output": lambda: cell(NnxKitCell, scale=SCALE),
            "subclass c_n from the last step": lambda: NnxLastStepC(cell(), rngs=False),
            "gradient of gate f stopped": lambda: cell(NnxKitCell, bug="grad"),
            "reverse direction gate f": lambda: nnx.Bidirectional(rnn(cell()), rnn(cell(NnxKitCell, bug="preact"))),
            "gate f on one input value": lambda: cell(NnxKitCell, bug="value"),
            "bfloat16": lambda: cell(param_dtype=jnp.bfloat16),
            "float16": lambda: cell(param_dtype=jnp.float16),
            "an option the reference lacks": lambda: cell(gate_fn=jax.nn.hard_sigmoid),
        }
        with float64_case(case):
            return makers[case](), keywords(case, _context=lambda: float64_case(case))


# -- Equinox ----------------------------------------------------------------------------------------


class EqxKitCell(eqx.nn.LSTMCell):
    """Equinox's LSTMCell, the equations written out, ``bug`` in gate f; ``scale`` on its state h (an Equinox
    cell returns its state only: its output is h)."""

    bug: str | None = eqx.field(static=True)
    scale: float = eqx.field(static=True)

    def __init__(self, input_size, hidden_size, *, bug=None, scale=1.0, **kwargs):
        super().__init__(input_size, hidden_size, **kwargs)
        self.bug, self.scale = bug, scale

    def __call__(self, input, hidden, *, key=None):
        h, c = hidden
        i, f, g, o = jnp.split(self.weight_ih @ input + self.weight_hh @ h + self.bias, 4)
        c = planted_f(f, input, self.bug) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c) * self.scale, c


def eqx_cell(cls, seed=0, **kw):
    return drawn(eqx.filter_eval_shape(lambda: cls(I, H, key=jax.random.key(0), **kw)), seed)


class EquinoxKit:
    def expect(self, case: str) -> Expect:
        if case == "subclass scales the output":  # an Equinox cell's output is its state h = o * tanh(c)
            return Expect("MISMATCH", ("step", 0, 0, 0, "o"))
        return LOW_PRECISION_MATCH if case in ("bfloat16", "float16") else CASES[case]

    def build(self, case: str):
        if case in ("two layers", "layer 1 gate f"):
            raise Skip(ONE_LAYER)
        if case in ("lengths", "subclass c_n from the last step"):
            raise Skip("Equinox has no scan of its own: the adapter scans the cell over whole sequences, no lengths")
        if case in ("reverse", "bidirectional", "reverse direction gate f"):
            raise Skip("an Equinox cell is one step: the adapter runs it forward over the sequence, one direction")
        if case == "GRU paper form":
            raise Skip("Equinox's GRUCell has torch's form only")
        if case == "an option the reference lacks":
            raise Skip("Equinox's LSTMCell and GRUCell have no option beyond use_bias, which the reference has")
        makers = {
            "float32": lambda: eqx_cell(eqx.nn.LSTMCell),
            "float64": lambda: eqx_cell(eqx.nn.LSTMCell, dtype=jnp.float64),
            "GRU torch form": lambda: eqx_cell(eqx.nn.GRUCell),
            "subclass, same maths": lambda: eqx_cell(EqxKitCell),
            "subclass scales the output": lambda: eqx_cell(EqxKitCell, scale=SCALE),
            "gradient of gate f stopped": lambda: eqx_cell(EqxKitCell, bug="grad"),
            "gate f on one input value": lambda: eqx_cell(EqxKitCell, bug="value"),
            "bfloat16": lambda: eqx_cell(eqx.nn.LSTMCell, dtype=jnp.bfloat16),
            "float16": lambda: eqx_cell(eqx.nn.LSTMCell, dtype=jnp.float16),
        }
        with float64_case(case):
            return makers[case](), keywords(case, _context=lambda: float64_case(case))
