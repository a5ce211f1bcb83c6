"""JAX recurrent cells as they are: Flax (linen and nnx) and Equinox, run by JAX, gradients by ``jax.vjp``.

    report = compare((cell, params))                  # a linen cell, nn.RNN or nn.Bidirectional, with its params
    report = compare(FlaxCandidate(cell, params))     # the same, spelt out
    report = compare(nnx.LSTMCell(3, 8, rngs=nnx.Rngs(0)))   # nnx: cells, nnx.RNN, nnx.Bidirectional
    report = compare(eqx.nn.GRUCell(3, 8, key=key))   # Equinox: one cell, scanned over time

Linen modules hold no weights, so they come with their params: ``(module, params)``, where
``params`` is what ``module.init`` returned (``{"params": ...}``) or its ``"params"`` entry
(a bare cell's own params, not wrapped in ``{"cell": ...}``). nnx modules and Equinox cells
hold their own. The candidate runs the framework's own modules on the weights the verifier
gives, batch- and time-major as the reference, in the dtype of the module's params (float32 by
default; float64 where ``jax_enable_x64`` is on and the params are float64), and returns the
gradients of ``<cotangents, outputs>`` with respect to the input, the initial states and every
parameter by ``jax.vjp``, under ``jax.jit`` (compiled once per shape).

Low precision. A module whose params or computation ``dtype`` is bfloat16 or float16 (Flax's
``param_dtype=`` / ``dtype=``, Equinox's ``dtype=``) stores that format: its candidate exchanges
float32 arrays (they hold the format's values exactly), runs the module on them cast to the dtype
it computes in (its ``dtype``, else its params'), returns float32, and is judged against the
rounding envelope (:mod:`reference.verify.low_precision`). It declares nothing, so it is judged at
the widest claim its storage allows, every result and every partial sum rounded. What XLA does on
the CPU (jax 0.10, read from the optimised HLO of a bfloat16 function and measured on 10^5 values):
every elementwise result is rounded to bfloat16, sigmoid's own steps (negate, exp, add, divide)
each, as the reference's every-op model rounds them (82% of results bit-equal to it, 53% to one
rounding at the end); a matrix product sums in float32 and rounds once (bit-equal to the exact
product rounded, K = 64). That is ``compute="bfloat16", accumulate="float32"``, inside the widest
claim; ``compute="float32"`` (a fused kernel) is not what XLA does there.

What each framework computes, and how its arrays map onto torch's: :mod:`.jax_leaves`.

Lengths: Flax's ``RNN`` takes ``seq_lengths``: the carry returned is the state after each row's
last valid step, and the reverse direction runs each row's valid steps only. Its outputs at padded
steps are not zeroed; the candidate zeroes them, as torch's packing does (a convention of the
padding, not of the maths). Equinox has no scan of its own: the candidate scans the cell with
``jax.lax.scan`` and ``jax.vmap`` over the batch (an Equinox cell is unbatched), so it takes no
lengths.

Refused by name (ValueError): a gate or activation function other than the reference's
(``gate_fn`` sigmoid, ``activation_fn`` tanh; relu too for ``SimpleCell``), ``SimpleCell(residual=True)``,
a computation ``dtype`` other than the params' where both are float32 or float64, or where they are
two narrow formats (float32 beside bfloat16 or float16 is mixed precision, judged at the narrow one),
a lone ``RNN(reverse=True)``, a ``Bidirectional`` whose ``merge_fn`` is not concatenation or whose
directions differ, cells the reference has no equations for (``MGUCell``, ``ConvLSTMCell``, any
other), and params whose names or shapes are not the cell's. A subclass of a supported cell is run
as it is and checked against the equations of the cell it derives from: that is how a modified cell
is localised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..candidates import Candidate, CandidateError
from ..layouts import TORCH_ORDER, torch_mode
from ..precision import dtype_name, judged_dtype, narrow_format
from ..spec import Spec
from .jax_leaves import BOTH, Direction, Leaf, leaf_shape, rows


def exchange_dtype(params: Any, compute: Any, who: str) -> tuple[np.dtype, str | None]:
    """(the dtype a module's arrays are exchanged in, its narrow storage format or None), for params of dtype
    ``params`` computing in ``compute`` (None: the params' dtype).

    float32 and float64 are judged as they are, and a module computing in another of them than its params'
    is refused. Where either is bfloat16 or float16 the module stores that format: it exchanges float32
    (which holds the format's values exactly) and is judged against the rounding envelope; the other one
    must be float32 or the same format (mixed precision: float32 params computing in bfloat16, or bfloat16
    params promoted to float32).
    """
    formats = {narrow_format(d) for d in (params, compute) if d is not None} - {None}
    if not formats:
        if compute is not None and dtype_name(compute) != dtype_name(params):
            raise ValueError(f"{who}: dtype={dtype_name(compute)} computes in another dtype than its params "
                             f"({dtype_name(params)}); the verifier checks a float32 or float64 module in its "
                             "params' dtype (supported: dtype=None or the params' dtype)")
        return judged_dtype(params, who), None
    wide = sorted({dtype_name(d) for d in (params, compute) if d is not None and narrow_format(d) is None})
    if len(formats) > 1 or wide not in ([], ["float32"]):
        raise ValueError(f"{who}: params in {dtype_name(params)} computing in {dtype_name(compute or params)}; a "
                         "low-precision module is judged in one storage format, beside float32 (supported: "
                         "bfloat16 or float16 params or dtype, the other float32 or the same)")
    return np.dtype(np.float32), formats.pop()


def _np(a: Any) -> np.ndarray:
    """A JAX array as NumPy: bfloat16 and float16 as float32, which holds their values exactly."""
    a = np.asarray(a)
    return a.astype(np.float32) if narrow_format(a.dtype) else a


# -- the candidate ----------------------------------------------------------------------------------


class JaxCandidate(Candidate):
    """A JAX recurrent module run by JAX on the verifier's weights; gradients by ``jax.vjp`` (see the module doc).

    Subclasses set ``spec``, ``name``, ``_directions``, ``compute_dtype`` and the flattened parameter tree
    (``_treedef``, ``_paths``, own arrays), then call ``_finish``, and implement ``_apply``.
    """

    takes_hx = True
    declares_reset_after = True
    compute_dtype: Any = None  # the dtype the module computes in where it says (Flax's ``dtype=``); None: its params'
    spec: Spec
    mode: str
    arrays: dict[str, np.ndarray]
    _directions: list[Direction]
    _paths: list[str]
    _treedef: Any

    def _finish(self, arrays: list[Any]) -> None:
        """Check the parameter tree against the tables, import the own weights and compile lazily."""
        import jax

        own = {p: np.asarray(a) for p, a in zip(self._paths, arrays, strict=True)}
        self.arrays = own  # path ("cell/hi/bias") -> its own array, as the framework holds it
        expected = self._check_names(own)
        I, H = self.spec.input_size, self.spec.hidden_size
        wrong = [f"{p}: expected {leaf_shape(leaf, I, H)}, got {own[p].shape}" for p, leaf in expected.items()
                 if own[p].shape != leaf_shape(leaf, I, H)]
        if wrong:
            raise ValueError(f"{self.name}: parameter shapes do not fit input_size={I}, hidden_size={H}: "
                             + "; ".join(wrong))
        dtypes = {a.dtype for a in own.values()}
        if len(dtypes) != 1:
            raise ValueError(f"{self.name}: its parameters are of dtypes {sorted(map(str, dtypes))}; expected all "
                             "of one dtype (float32, float64, bfloat16 or float16)")
        self._param_dtype = next(iter(dtypes))  # what its leaves are held in
        self.dtype, self.storage = exchange_dtype(self._param_dtype, self.compute_dtype, self.name)
        self._run_dtype = np.dtype(self.compute_dtype or self._param_dtype)  # what its inputs are given in
        self.own_params = self._import(own, gradients=False)
        uncovered = self._uncovered()
        if uncovered:
            provided = {"input", "h_0", "c_0", "weight_ih", "weight_hh", "bias_ih", "bias_hh"}
            self.gradients = frozenset(provided - {base for base, _, _ in uncovered})
        self._run = jax.jit(self._vjp)

    def _check_names(self, arrays: Mapping[str, Any]) -> dict[str, Leaf]:
        """The table by full path, once the parameter names are exactly the table's (else ValueError)."""
        expected = {d.prefix + k: leaf for d in self._directions for k, leaf in d.table.items()}
        missing, unexpected = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
        if missing or unexpected:
            raise ValueError(f"{self.name}: its parameters {sorted(arrays)} are not those of its cell "
                             f"(missing {missing}, unexpected {unexpected}); expected {sorted(expected)}")
        return expected

    # -- weights in and out -------------------------------------------------------------------

    def _suffix(self, d: int) -> str:
        return "_l0_reverse" if d else "_l0"

    def _uncovered(self) -> list[tuple[str, str, int]]:
        """Torch's (base name, gate, direction) blocks the framework has no parameter for."""
        mode = self.spec.mode
        out = []
        for d, direction in enumerate(self._directions):
            covered = {(n, g) for leaf in direction.table.values() for g, names in leaf.blocks for n in names}
            bases = ("weight_ih", "weight_hh") + (BOTH if self.spec.bias else ())
            out += [(b, g, d) for b in bases for g in TORCH_ORDER[torch_mode(mode)] if (b, g) not in covered]
        return out

    def to_framework(self, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """torch-named weights (a state_dict of one layer) -> the framework's arrays by path."""
        return dict(zip(self._paths, self._export(params), strict=True))

    def _export(self, params: Mapping[str, Any]) -> list[np.ndarray]:
        """torch-named weights -> the framework's arrays, in the tree's order."""
        H, mode = self.spec.hidden_size, self.spec.mode
        for base, g, d in self._uncovered():
            block = np.asarray(params[base + self._suffix(d)])[rows(mode, g, H)]
            if np.any(block != 0):
                raise CandidateError(f"{self.name} has no parameter for torch's {base}{self._suffix(d)} gate {g} "
                                     f"block (its form fixes it at 0), but was given one of max |value| "
                                     f"{np.abs(block).max():.3g}: check it with its own weights (weights='candidate')")
        arrays = {}
        for d, direction in enumerate(self._directions):
            for key, leaf in direction.table.items():
                blocks = [sum(np.asarray(params[n + self._suffix(d)], dtype=np.float64)[rows(mode, g, H)]
                              for n in names) for g, names in leaf.blocks]
                a = np.concatenate(blocks, axis=0)  # (n*H, in) or (n*H,)
                arrays[direction.prefix + key] = a.T if leaf.kind == "kernel" else a
        return [np.ascontiguousarray(arrays[p], dtype=self._param_dtype) for p in self._paths]

    def _import(self, arrays: Mapping[str, np.ndarray], gradients: bool) -> dict[str, np.ndarray]:
        """The framework's arrays (or their gradients) -> torch's names.

        Weights: a merged block goes to the first torch name of its sum, zeros to the others.
        Gradients: every torch block of a sum receives the sum's gradient; a torch tensor with a
        block the framework has no parameter for is left out (not provided).
        """
        H, mode = self.spec.hidden_size, self.spec.mode
        shapes = self.spec.parameter_shapes()
        out = {k: np.zeros(s) for k, s in shapes.items()}
        for d, direction in enumerate(self._directions):
            for key, leaf in direction.table.items():
                a = np.asarray(arrays[direction.prefix + key], dtype=np.float64)
                a = a.T if leaf.kind == "kernel" else a  # (n*H, in) or (n*H,)
                for (g, names), block in zip(leaf.blocks, np.split(a, len(leaf.blocks), axis=0), strict=True):
                    for n in (names if gradients else names[:1]):
                        out[n + self._suffix(d)][rows(mode, g, H)] += block
        if gradients:
            for base, _, d in self._uncovered():
                out.pop(base + self._suffix(d), None)
        return out

    # -- running --------------------------------------------------------------------------------

    def _apply(self, leaves: list[Any], x: Any, hx: tuple, lengths: Any) -> tuple[Any, tuple]:
        """(output (T, B, D*P), (h_n,) or (h_n, c_n), each (D, B, H)) in JAX arrays; traced under jit."""
        raise NotImplementedError

    def _vjp(self, leaves: list[Any], x: Any, hx: tuple, lengths: Any, cots: tuple) -> tuple:
        import jax

        outs, pullback = jax.vjp(lambda w, x_, h: self._apply(w, x_, h, lengths), leaves, x, hx)
        return outs, pullback(jax.tree_util.tree_map(lambda c, o: c.astype(o.dtype), cots, outs))

    def call(self, spec, params, x, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        if dropout_masks is not None:
            raise CandidateError(f"{self.name} has no dropout between layers (one layer); compare it without")
        diffs = [d for d in spec.differences(self.spec) if not d.startswith("training")]
        if diffs:
            raise CandidateError(f"{self.name} runs {self.spec}, asked {spec} ({'; '.join(diffs)})")
        if lengths is not None and not self.takes_lengths:
            raise CandidateError(f"{self.name} takes no lengths")
        import jax

        if jax.dtypes.canonicalize_dtype(self.dtype) != self.dtype:
            raise CandidateError(f"{self.name}: its params are {self.dtype.name}, but JAX would compute in "
                                 f"{np.dtype(jax.dtypes.canonicalize_dtype(self.dtype)).name}: enable float64 "
                                 "(jax.config.update('jax_enable_x64', True), or compare inside jax.enable_x64(True))")
        leaves = self._export(params)
        dt = self._run_dtype  # bfloat16 values given as float32 are cast exactly
        out_shape = (x.shape[0], x.shape[1], spec.D * spec.P)
        g_out = np.zeros(out_shape, dt) if grad_output is None else np.asarray(grad_output, dt)
        g_hid = tuple(np.zeros(h.shape, dt) if grad_hidden is None or grad_hidden[k] is None
                      else np.asarray(grad_hidden[k], dt) for k, h in enumerate(hx))
        lens = None if lengths is None else np.asarray(lengths, dtype=np.int32)
        # a forward-only call runs the same program with zero cotangents: one compile per shape, not two
        (out, hidden), (g_leaves, g_x, g_hx) = self._run(leaves, np.asarray(x, dt),
                                                         tuple(np.asarray(h, dt) for h in hx), lens, (g_out, g_hid))
        res: dict[str, Any] = {"output": _np(out), "hidden": tuple(_np(h) for h in hidden)}
        if grad_output is not None or grad_hidden is not None:
            res["input"] = _np(g_x)
            res["hx"] = tuple(_np(g) for g in g_hx)
            grads = self._import(dict(zip(self._paths, (np.asarray(g) for g in g_leaves), strict=True)),
                                 gradients=True)
            res.update((k, v.astype(self.dtype)) for k, v in grads.items())
        return res

