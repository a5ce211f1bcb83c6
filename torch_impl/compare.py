"""Check any recurrent implementation against the reference, and say where it first goes wrong.

    report = compare(candidate, reference_module, x, lengths=[6, 4, 3])
    print(report)                  # per-tensor errors, pass/fail, first divergence
    report.passed                  # bool
    plot_errors(report, "err.png")

Both sides get the same weights, inputs, initial states and random cotangents
(for ``output``, ``h_n`` and ``c_n``; never ``.sum()``). The reference always
runs in float64 on the candidate's (rounded) values; the tolerance is the
table's entry for the candidate's dtype and device.

Candidates
----------
* **A torch module** with torch's parameter names and call signature
  (``module(input, hx) -> (output, hidden)``, ``batch_first`` honoured).
  Variable lengths are passed as a ``PackedSequence`` (torch.nn's convention),
  or, when ``forward`` has a ``lengths`` keyword, as ``lengths=`` with padded
  input. Dropout masks are passed as ``dropout_masks=`` (a list of L-1 keep masks
  of 0s and 1s, (T, B, D*P) or batch-first; the module applies the 1/(1-p)
  scale): torch.nn itself draws its own masks, so compare it in eval mode.
  Localisation builds smaller modules of the same class,
  ``type(module)(input_size, hidden_size, num_layers=..., bias=..., dropout=...,
  bidirectional=..., [proj_size=...,] [nonlinearity=...])``; pass
  ``factory=`` when the class cannot be built like that.
* **A function** with the signature of :class:`CandidateFn`::

      fn(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None) -> Mapping

  ``spec`` is a :class:`Spec` (the configuration to run, which localisation
  varies); ``params`` a dict of NumPy arrays keyed like torch's ``state_dict``
  (or, with ``layout=``, ``{"l0": <weights in that layout>, "l0_reverse": ...}``,
  see ``torch_impl.layouts``); ``input`` (T, B, I) time-major; ``hx`` a tuple
  ``(h_0,)`` or ``(h_0, c_0)`` of (L*D, B, P) / (L*D, B, H) arrays;
  ``grad_output`` (T, B, D*P) and ``grad_hidden`` (a tuple like ``hx``) the
  cotangents, both ``None`` for a forward-only call. It returns ``"output"``
  and ``"hidden"`` (tuple like ``hx``), and for a backward call the gradients
  ``"input"``, ``"hx"`` (tuple like ``hx``) and one entry per parameter (same
  keys as ``params``); missing gradients are reported as not provided.
  Anything (NumPy, JAX, a C extension) fits behind this signature.

Localisation (only run when something fails)
--------------------------------------------
Forward, layer by layer (each layer fed the reference's own input and initial
state, so an upstream error cannot hide a downstream one):

1. *isolated layer*: one layer over the whole sequence; the first (direction,
   time step) whose output differs, in each row's processing order.
2. *teacher-forced steps*: T=1 calls from the reference's state before each
   step. A step that differs means the step function is wrong ("step"); if all
   steps agree the error is in how steps are chained: order, lengths, state
   carry ("sequence").
3. *gate isolation* for a wrong step: the candidate is run with every gate
   pinned to the same value (weights 0, ``bias_ih = asinh(1)``, so that
   sigmoid = tanh = 1/sqrt(2) and a permutation of gates cannot show), then
   with one gate at a time given back its real rows. The first gate whose own
   rows reproduce the error is named; if the pinned cell already differs, the
   combination is wrong and the quantity named is ``c`` or ``h``.
4. if every layer is right alone, truncated stacks find the first layer
   boundary where the output goes wrong ("dropout" when dropout is active,
   else "stacking").

Gradients (when the forward agrees): each layer alone with the reference's
gradient at its output; then, in BPTT order, the gradient at the state before
each step, from runs that start at that step (the carry ``dh``/``dc``); the first
step whose carry differs is named.
"""

from __future__ import annotations

import copy
import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

import reference
from reference.layer import layer_backward
from reference.recurrent import RNNBase
from reference.tolerances import candidate_tol

GATES = {"RNN_TANH": (), "RNN_RELU": (), "GRU": ("r", "z", "n"), "LSTM": ("i", "f", "g", "o")}
_PIN = math.asinh(1.0)  # sigmoid(asinh 1) = tanh(asinh 1) = 1/sqrt(2)


# -- configuration ------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A recurrent configuration in torch's terms (mode as torch's ``RNNBase.mode``)."""

    mode: str  # "RNN_TANH", "RNN_RELU", "GRU", "LSTM"
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    bidirectional: bool = False
    proj_size: int = 0
    dropout: float = 0.0
    training: bool = False

    def __post_init__(self):
        if self.mode not in GATES:
            raise ValueError(f"mode: expected one of {sorted(GATES)}, got {self.mode!r}")

    @property
    def D(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def P(self) -> int:
        return self.proj_size or self.hidden_size

    @property
    def lstm(self) -> bool:
        return self.mode == "LSTM"

    @property
    def dropout_active(self) -> bool:
        return self.training and self.dropout > 0 and self.num_layers > 1

    @property
    def torch_class(self) -> str:
        return {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(self.mode, self.mode)

    def torch_kwargs(self) -> dict[str, Any]:
        """Constructor keywords of torch.nn.<torch_class> (batch_first=False)."""
        kw: dict[str, Any] = {"num_layers": self.num_layers, "bias": self.bias, "batch_first": False,
                                  "dropout": self.dropout, "bidirectional": self.bidirectional}
        if self.lstm:
            kw["proj_size"] = self.proj_size
        if self.torch_class == "RNN":
            kw["nonlinearity"] = "tanh" if self.mode == "RNN_TANH" else "relu"
        return kw

    def reference(self, params: Mapping[str, Any] | None = None, seed: Any = 0) -> RNNBase:
        """A float64 reference module of this configuration (weights from ``params``, else drawn)."""
        import warnings

        kw = self.torch_kwargs()
        with warnings.catch_warnings():  # dropout with one layer: torch warns, so does the reference
            warnings.simplefilter("ignore", UserWarning)
            ref = getattr(reference, self.torch_class)(self.input_size, self.hidden_size, **kw, dtype=np.float64,
                                                       seed=seed)
        if params is not None:
            ref.load_state_dict(params)
        return ref.train(self.training)

    def state_shapes(self, B: int) -> list[tuple[int, ...]]:
        DL = self.num_layers * self.D
        return [(DL, B, self.P)] + ([(DL, B, self.hidden_size)] if self.lstm else [])

    def layer(self, layer: int) -> Spec:
        """Layer ``layer`` alone: one layer, both directions, no dropout."""
        I = self.input_size if layer == 0 else self.D * self.P
        return replace(self, input_size=I, num_layers=1, dropout=0.0, training=False)

    def __str__(self) -> str:
        s = f"{self.torch_class}({self.input_size}, {self.hidden_size}"
        for name, default in {"num_layers": 1, "bias": True, "bidirectional": False, "proj_size": 0, "dropout": 0.0}.items():
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        return s + (", training)" if self.dropout_active else ")")

    @classmethod
    def of(cls, module: Any) -> Spec:
        """The configuration of a reference or torch.nn-like module."""
        mode = getattr(module, "mode", type(module).__name__)
        if mode == "RNN":
            mode = "RNN_TANH" if getattr(module, "nonlinearity", "tanh") == "tanh" else "RNN_RELU"
        return cls(mode, int(module.input_size), int(module.hidden_size), int(module.num_layers), bool(module.bias),
                   bool(module.bidirectional), int(getattr(module, "proj_size", 0)), float(module.dropout),
                   bool(getattr(module, "training", False)))


class CandidateFn(Protocol):
    """The function protocol (see the module docstring)."""

    def __call__(self, spec: Spec, params: Mapping[str, Any], input: np.ndarray, hx: tuple,
                 grad_output: np.ndarray | None, grad_hidden: tuple | None, *, lengths: np.ndarray | None = None,
                 dropout_masks: list | None = None) -> Mapping[str, Any]: ...


class CandidateError(RuntimeError):
    """The candidate could not be run as asked (raised, with the cause chained)."""


# -- torch modules behind the function protocol -------------------------------


class TorchCandidate:
    """Wraps a torch module (and a factory for other configurations) as a :class:`CandidateFn`."""

    def __init__(self, module: Any, factory: Callable[[Spec], Any] | None = None):
        import torch

        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
        p = next(module.parameters())
        self.module, self.device, self.dtype = module, p.device, p.dtype
        self.spec = Spec.of(module)
        self.name = type(module).__name__
        self._factory = factory or (lambda spec: type(module)(spec.input_size, spec.hidden_size, **spec.torch_kwargs()))
        self._cache: dict[Spec, Any] = {}

    def _module(self, spec: Spec):
        if spec not in self._cache:
            if spec == self.spec:
                m = copy.deepcopy(self.module)  # the user's module keeps its weights
            else:
                try:
                    m = self._factory(spec)
                except Exception as e:
                    raise CandidateError(f"could not build {self.name} for {spec} (pass factory=): {e}") from e
            self._cache[spec] = m.to(device=self.device, dtype=self.dtype).train(spec.training)
        return self._cache[spec]

    def __call__(self, spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        from .convert import load_into

        m = self._module(spec)
        load_into(m, params)
        bf = bool(getattr(m, "batch_first", False))
        want_grad = grad_output is not None

        def leaf(a):
            return torch.tensor(np.asarray(a), dtype=self.dtype, device=self.device, requires_grad=want_grad)

        def tm(t):  # time-major <-> the module's layout
            return t.transpose(0, 1) if bf else t

        x = leaf(input)
        hxt = tuple(leaf(h) for h in hx)
        hx_arg = hxt if spec.lstm else hxt[0]
        kwargs = {}
        params_sig = inspect.signature(m.forward).parameters
        if dropout_masks is not None:
            if "dropout_masks" not in params_sig:
                raise CandidateError(f"{self.name}.forward takes no dropout_masks=: torch.nn draws its own masks, "
                                     "so compare it in eval mode")
            kwargs["dropout_masks"] = [tm(torch.as_tensor(np.asarray(k), dtype=self.dtype, device=self.device))
                                       for k in dropout_masks]
        T = x.shape[0]
        if lengths is None:
            out, hidden = m(tm(x), hx_arg, **kwargs)
        elif "lengths" in params_sig:
            out, hidden = m(tm(x), hx_arg, lengths=torch.as_tensor(np.asarray(lengths)), **kwargs)
        else:
            packed = pack_padded_sequence(tm(x), torch.as_tensor(np.asarray(lengths)), batch_first=bf,
                                          enforce_sorted=False)
            out, hidden = m(packed, hx_arg, **kwargs)
            out, _ = pad_packed_sequence(out, batch_first=bf, total_length=T)
        out = tm(out)
        hidden = tuple(hidden) if spec.lstm else (hidden,)
        res: dict[str, Any] = {"output": _np(out), "hidden": tuple(_np(h) for h in hidden)}
        if want_grad:
            cots = [torch.as_tensor(np.asarray(g), dtype=self.dtype, device=self.device)
                    for g in (grad_output, *grad_hidden)]
            torch.autograd.backward([out, *hidden], cots)
            res["input"] = _np(x.grad)
            res["hx"] = tuple(_np(h.grad) for h in hxt)
            res.update((n, _np(p.grad)) for n, p in m.named_parameters() if p.grad is not None)
            m.zero_grad(set_to_none=True)
        return res


def _np(t) -> np.ndarray | None:
    if t is None:
        return None
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


# -- the report ---------------------------------------------------------------


@dataclass
class TensorResult:
    """One compared tensor."""

    name: str
    kind: str  # "forward" or "gradient"
    max_abs: float
    rel: float
    rtol: float
    atol: float
    passed: bool
    note: str = ""  # why it failed without numbers: shape, missing, non-finite
    per_step: np.ndarray | None = None  # (T,) max abs error per time step, where the tensor has a time axis


@dataclass
class Divergence:
    """Where a candidate first goes wrong.

    kind: "step" (the step function is wrong), "sequence" (steps are right,
    their chaining is not: order, lengths, state carry), "dropout"/"stacking"
    (layers are right alone, not stacked), "final state" (h_n/c_n assembly),
    "gradient" (the BPTT carry or a parameter gradient).
    ``time`` is a time index (not a processing index); ``gate`` a gate letter
    in torch's names (LSTM i f g o, GRU r z n), or the quantity: "c", "h",
    "dropout", "input", "dh", "dc", or a gradient's tensor name.
    """

    kind: str
    layer: int
    direction: int  # 0 forward, 1 reverse
    time: int | None
    gate: str
    batch: int | None = None
    error: float = float("nan")
    detail: str = ""

    def __str__(self) -> str:
        where = f"layer {self.layer}, {'reverse' if self.direction else 'forward'} direction"
        where += f", time step {self.time}" if self.time is not None else ""
        where += f" (batch row {self.batch})" if self.batch is not None else ""
        return f"{self.kind}: {where}, {self.gate}: {self.detail}"


@dataclass
class CompareReport:
    spec: Spec
    candidate: str
    dtype: str
    device: str
    T: int
    B: int
    lengths: list | None
    tensors: list[TensorResult]
    forward: Divergence | None = None
    gradient: Divergence | None = None
    step_errors: dict[str, np.ndarray] = field(default_factory=dict)  # label -> (T,) errors, for the picture

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tensors)

    def __bool__(self) -> bool:
        return self.passed

    def failures(self) -> list[TensorResult]:
        return [t for t in self.tensors if not t.passed]

    def __str__(self) -> str:
        fwd = next((t for t in self.tensors if t.kind == "forward"), None)
        grd = next((t for t in self.tensors if t.kind == "gradient"), None)
        lines = [f"compare {self.candidate} against reference {self.spec}",
                 f"  T={self.T} B={self.B}" + (f" lengths={self.lengths}" if self.lengths is not None else "")
                 + f", {self.dtype} on {self.device}"]
        if fwd:
            lines.append(f"  tolerance forward rtol {fwd.rtol:.0e} atol {fwd.atol:.0e}"
                         + (f", gradient rtol {grd.rtol:.0e} atol {grd.atol:.0e}" if grd else "")
                         + "   (max|a - d| <= atol + rtol * max|d|)")
        width = max(len(t.name) for t in self.tensors) + 2
        lines.append(f"  {'tensor':<{width}}{'max abs err':>12}{'rel err':>12}  status")
        for t in self.tensors:
            status = "ok" if t.passed else "FAIL"
            nums = f"{t.max_abs:>12.2e}{t.rel:>12.2e}" if not math.isnan(t.max_abs) else f"{'-':>12}{'-':>12}"
            lines.append(f"  {t.name:<{width}}{nums}  {status}" + (f"  ({t.note})" if t.note else ""))
        n_fail = len(self.failures())
        lines.append(f"RESULT: {'MATCH' if self.passed else 'MISMATCH'} "
                     f"({len(self.tensors) - n_fail}/{len(self.tensors)} tensors within tolerance)")
        if self.forward:
            lines.append(f"  first forward divergence  -> {self.forward}")
        if self.gradient:
            lines.append(f"  first gradient divergence -> {self.gradient}")
        if not self.passed and not self.forward and not self.gradient:
            lines.append("  not localised (see the tensors above)")
        return "\n".join(lines)


# -- comparison helpers -------------------------------------------------------


def _err(actual: Any, desired: np.ndarray, rows: np.ndarray | None = None) -> tuple[float, float, str]:
    """(max abs error, norm-wise relative error, note); rows: optional (B,) bool on axis -2."""
    if actual is None:
        return float("nan"), float("nan"), "not provided"
    a = np.asarray(actual, dtype=np.float64)
    d = np.asarray(desired, dtype=np.float64)
    if a.shape != d.shape:
        return float("nan"), float("nan"), f"shape {a.shape} != expected {d.shape}"
    if rows is not None:
        a, d = a[..., rows, :], d[..., rows, :]
    if a.size == 0:
        return 0.0, 0.0, ""
    if not np.isfinite(a).all():
        return float("inf"), float("inf"), "non-finite values"
    err = float(np.abs(a - d).max())
    scale = float(np.abs(d).max())
    return err, (err / scale if scale > 0 else err), ""


def _ok(actual, desired, tol: tuple[float, float], rows=None) -> tuple[bool, float]:
    err, _, note = _err(actual, desired, rows)
    if note and note != "not provided":
        return False, float("inf")
    if note:
        return True, 0.0
    d = np.asarray(desired, dtype=np.float64)
    scale = float(np.abs(d[..., rows, :] if rows is not None else d).max(initial=0.0))
    return err <= tol[1] + tol[0] * scale, err


def _tensor(name, kind, actual, desired, tol, per_step_axis: int | None = None) -> TensorResult:
    rtol, atol = tol
    err, rel, note = _err(actual, desired)
    scale = float(np.abs(np.asarray(desired, dtype=np.float64)).max(initial=0.0))
    passed = not note and err <= atol + rtol * scale
    per_step = None
    if per_step_axis is not None and not note:
        diff = np.abs(np.asarray(actual, np.float64) - np.asarray(desired, np.float64))
        per_step = np.moveaxis(diff, per_step_axis, 0).reshape(diff.shape[per_step_axis], -1).max(axis=1)
    return TensorResult(name, kind, err, rel, rtol, atol, passed, note, per_step)


# -- running both sides -------------------------------------------------------


@dataclass
class _Problem:
    spec: Spec
    params: dict  # float64 (already rounded to the candidate's dtype)
    x: np.ndarray  # (T, B, I)
    hx: tuple
    lengths: np.ndarray | None
    masks: list | None  # L-1 keep masks of 0/1, (T, B, D*P)
    grad_output: np.ndarray | None
    grad_hidden: tuple | None


class _Runner:
    """Runs candidate and reference on sub-problems; casts to the candidate's dtype and back."""

    def __init__(self, fn, dtype: np.dtype, layout: str):
        self.fn, self.dtype, self.layout = fn, dtype, layout

    def cand(self, pb: _Problem) -> dict:
        c = lambda a: None if a is None else np.asarray(a, dtype=self.dtype)
        params = {k: c(v) for k, v in pb.params.items()}
        if self.layout != "torch":
            from .layouts import export_state_dict

            params = export_state_dict(self.layout, pb.spec, params)
        try:
            res = self.fn(pb.spec, params, c(pb.x), tuple(c(h) for h in pb.hx), c(pb.grad_output),
                          None if pb.grad_hidden is None else tuple(c(g) for g in pb.grad_hidden),
                          lengths=pb.lengths, dropout_masks=None if pb.masks is None else [c(m) for m in pb.masks])
        except CandidateError:
            raise
        except Exception as e:
            raise CandidateError(f"the candidate raised {type(e).__name__}: {e}") from e
        res = dict(res)
        if self.layout != "torch" and pb.grad_output is not None:
            from .layouts import import_gradients

            nested = {k: res.pop(k) for k in list(res) if k not in ("output", "hidden", "input", "hx")}
            res.update(import_gradients(self.layout, pb.spec, nested))
        return res

    @staticmethod
    def ref(pb: _Problem) -> tuple[dict, Any, Any]:
        m = pb.spec.reference(pb.params)
        out, hidden, tape = m.forward(pb.x, pb.hx if pb.spec.lstm else pb.hx[0], lengths=pb.lengths,
                                      dropout_masks=pb.masks)
        res = {"output": out, "hidden": tuple(hidden) if pb.spec.lstm else (hidden,)}
        if pb.grad_output is not None:
            g = m.backward(tape, pb.grad_output, pb.grad_hidden if pb.spec.lstm else pb.grad_hidden[0])
            res.update(g)
            res["hx"] = tuple(g["hx"]) if pb.spec.lstm else (g["hx"],)
        return res, tape, m


def _valid(lengths, T: int, B: int) -> np.ndarray:
    """(T, B) bool: True on valid steps."""
    if lengths is None:
        return np.ones((T, B), dtype=bool)
    return np.arange(T)[:, None] < np.asarray(lengths)[None, :]


def _layer_of(name: str) -> int:
    return int(re.search(r"_l(\d+)(_reverse)?$", name).group(1))


def _layer_params(params: Mapping, layer: int) -> dict:
    """Layer ``layer``'s parameters, renamed to layer 0."""
    return {re.sub(r"_l\d+", "_l0", k): v for k, v in params.items() if _layer_of(k) == layer}


def _ref_states(tape, spec: Spec, layer: int, d: int, final: tuple) -> list[list[np.ndarray]]:
    """[h states, c states]: T+1 arrays each, in processing order (states[0] = initial)."""
    lt = tape.layers[layer][d]
    hs = list(lt.states)
    if not spec.lstm:
        return [hs]
    idx = layer * spec.D + d
    cs = [c.c_prev for c in lt.caches] + [final[1][idx]]
    return [hs, cs]


def _time(k: int, d: int, T: int) -> int:
    return k if d == 0 else T - 1 - k


# -- forward localisation -----------------------------------------------------


def _localise_forward(run: _Runner, pb: _Problem, tape, ref_res, ftol) -> tuple[Divergence | None, dict]:
    spec, T, B = pb.spec, pb.x.shape[0], pb.x.shape[1]
    D, P = spec.D, spec.P
    valid = _valid(pb.lengths, T, B)
    curves: dict[str, np.ndarray] = {}
    states = {(l, d): _ref_states(tape, spec, l, d, ref_res["hidden"]) for l in range(spec.num_layers) for d in range(D)}
    for layer in range(spec.num_layers):
        sub = spec.layer(layer)
        lp = _layer_params(pb.params, layer)
        x_l = tape.layers[layer][0].x  # (T, B, I_l), after dropout
        hx_l = tuple(h[layer * D:(layer + 1) * D] for h in pb.hx)
        iso = _Problem(sub, lp, x_l, hx_l, pb.lengths, None, None, None)
        c_iso, r_iso = run.cand(iso), run.ref(iso)[0]
        seq = _first_output_divergence(c_iso["output"], r_iso["output"], valid, pb.lengths, D, P, ftol)
        final_bad = None
        if seq is None:
            for which, (ca, ra) in enumerate(zip(c_iso["hidden"], r_iso["hidden"])):
                for d in range(D):
                    ok, e = _ok(None if ca is None else np.asarray(ca)[d:d + 1], ra[d:d + 1], ftol)
                    if not ok and final_bad is None:
                        final_bad = (d, "h_n" if which == 0 else "c_n", e)
            if final_bad is None:
                continue
        # Something in this layer is wrong: probe each step from the reference's state.
        step_err = np.zeros((D, T))
        first = None  # (k, d, t)
        for t in range(T):
            hx_probe = tuple(np.stack([states[(layer, d)][s][t if d == 0 else T - 1 - t] for d in range(D)])
                             for s in range(len(pb.hx)))
            probe = _Problem(sub, lp, x_l[t:t + 1], hx_probe, None, None, None, None)
            c_p, r_p = run.cand(probe), run.ref(probe)[0]
            for d in range(D):
                k = t if d == 0 else T - 1 - t
                for ca, ra in zip(c_p["hidden"], r_p["hidden"]):
                    ok, e = _ok(None if ca is None else np.asarray(ca)[d:d + 1], ra[d:d + 1], ftol, valid[t])
                    step_err[d, t] = max(step_err[d, t], e)
                    if not ok and (first is None or (k, d) < first[:2]):
                        first = (k, d, t)
        for d in range(D):
            curves[f"h,c step l{layer} {'rev' if d else 'fwd'} (teacher-forced)"] = step_err[d]
        if first is not None:
            k, d, t = first
            hx_probe = tuple(np.stack([states[(layer, dd)][s][t if dd == 0 else T - 1 - t] for dd in range(D)])
                             for s in range(len(pb.hx)))
            rows = valid[t]
            gate, how = _isolate_gate(run, sub, lp, x_l[t:t + 1], hx_probe, d, rows, ftol)
            b = int(np.flatnonzero(rows)[0]) if rows.any() else None
            return Divergence("step", layer, d, t, gate, b, float(step_err[d, t]),
                              f"the step function differs from a correct state (error {step_err[d, t]:.2e}); {how}"), curves
        if seq is not None:
            d, t, b, e = seq
            return Divergence("sequence", layer, d, t, "h", b, e,
                              f"every step is right from a correct state (teacher-forced), but the layer run over the "
                              f"sequence differs here (error {e:.2e}): check the step order, lengths and state carry"), curves
        d, name, e = final_bad
        return Divergence("final state", layer, d, None, name, None, e,
                          f"outputs agree but the returned {name} differs (error {e:.2e})"), curves
    # Every layer is right alone: the stacking (or dropout between layers) is wrong.
    for depth in range(2, spec.num_layers + 1):
        sub = replace(spec, num_layers=depth)
        params = {k: v for k, v in pb.params.items() if _layer_of(k) < depth}
        hx_d = tuple(h[:depth * D] for h in pb.hx)
        masks = None if pb.masks is None else pb.masks[:depth - 1]
        probe = _Problem(sub, params, pb.x, hx_d, pb.lengths, masks, None, None)
        c_p, r_p = run.cand(probe), run.ref(probe)[0]
        seq = _first_output_divergence(c_p["output"], r_p["output"], valid, pb.lengths, D, P, ftol)
        if seq is not None:
            d, t, b, e = seq
            label = "dropout" if spec.dropout_active else "input"
            return Divergence("dropout" if spec.dropout_active else "stacking", depth - 1, d, t, label, b, e,
                              f"layers {depth - 2} and {depth - 1} are right alone; layer {depth - 1}'s input "
                              f"(layer {depth - 2}'s output{' after dropout' if spec.dropout_active else ''}) "
                              f"is not (error {e:.2e})"), curves
    # Outputs agree: the returned final states are assembled wrongly.
    c_full = run.cand(replace(pb, grad_output=None, grad_hidden=None))
    for which, name in enumerate(("h_n", "c_n")[:len(pb.hx)]):
        ca = tuple(c_full.get("hidden") or ())
        for idx in range(spec.num_layers * D):
            ok, e = _ok(ca[which][idx:idx + 1] if which < len(ca) else None, ref_res["hidden"][which][idx:idx + 1], ftol)
            if not ok:
                return Divergence("final state", idx // D, idx % D, None, name, None, e,
                                  f"every output agrees but {name}[{idx}] differs (error {e:.2e}): check the order "
                                  "of layers and directions in h_n"), curves
    return None, curves


def _first_output_divergence(cand_out, ref_out, valid, lengths, D, P, tol):
    """(direction, time, batch row, error) of the first differing output, in each row's processing order
    (padding positions, which must be zero, count after every valid step)."""
    if cand_out is None or np.shape(cand_out) != np.shape(ref_out):
        return (0, 0, 0, float("inf"))
    a, r = np.asarray(cand_out, np.float64), np.asarray(ref_out, np.float64)
    T = a.shape[0]
    rtol, atol = tol
    best = None  # (processing index, direction, row, time, error)
    for d in range(D):
        sl = slice(d * P, (d + 1) * P)
        diff = np.abs(a[..., sl] - r[..., sl]).max(axis=-1)  # (T, B)
        scale = np.abs(r[..., sl]).max(initial=0.0)
        bad = (diff > atol + rtol * scale) | ~np.isfinite(diff)
        for b, t in zip(*np.nonzero(bad.T)):
            n = int(lengths[b]) if lengths is not None else T
            k = (t if d == 0 else n - 1 - t) if t < n else T + t
            cand = (int(k), d, int(b), int(t), float(diff[t, b]))
            if best is None or cand[:3] < best[:3]:
                best = cand
    if best is None:
        return None
    return best[1], best[3], best[2], best[4]


def _pinned(params: dict, spec: Spec, d: int, keep: int | None) -> dict:
    """Direction d's gates pinned to sigmoid = tanh = 1/sqrt(2), except gate ``keep``."""
    H = spec.hidden_size
    sfx = "_reverse" if d else ""
    out = dict(params)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        k = f"{name}_l0{sfx}"
        w = np.array(params[k], dtype=np.float64)
        for j in range(len(GATES[spec.mode])):
            if j == keep:
                continue
            w[j * H:(j + 1) * H] = _PIN if name == "bias_ih" else 0.0
        out[k] = w
    return out


def _isolate_gate(run, sub, lp, x, hx, d, rows, tol) -> tuple[str, str]:
    gates = GATES[sub.mode]

    def differs(params) -> tuple[bool, bool]:
        probe = _Problem(sub, params, x, hx, None, None, None, None)
        c, r = run.cand(probe), run.ref(probe)[0]
        bad = [not _ok(None if ca is None else np.asarray(ca)[d:d + 1], ra[d:d + 1], tol, rows)[0]
               for ca, ra in zip(c["hidden"], r["hidden"])]
        return bad[0], (bad[1] if len(bad) > 1 else False)

    if not gates:
        return "h", "h' = act(W_ih x + b_ih + W_hh h + b_hh) differs"
    if not sub.bias:
        h_bad, c_bad = differs(lp)
        return ("c" if c_bad else "h"), "gates not isolated (bias=False: gates cannot be pinned)"
    h_bad, c_bad = differs(_pinned(lp, sub, d, None))
    if h_bad or c_bad:
        q = "c" if c_bad else "h"
        eq = {"c": "c' = f * c + i * g", "h": "h' = o * tanh(c')" + (" then W_hr" if sub.proj_size else "")
              if sub.lstm else "h' = (1 - z) * n + z * h"}[q]
        return q, f"with every gate pinned to the same value the cell still differs in {q}: check {eq}"
    for j, g in enumerate(gates):
        if any(differs(_pinned(lp, sub, d, j))):
            return g, (f"with only gate {g}'s rows real (the others pinned) the step differs: check gate {g} (its "
                       "rows, activation, biases, and where it enters the cell)")
    return "h", "no single gate reproduces it (an interaction between gates)"


# -- gradient localisation ----------------------------------------------------


def _layer_douts(tape, spec: Spec, grad_output: np.ndarray, grad_hidden: tuple) -> list[np.ndarray]:
    """The reference's gradient at each layer's output (T, B, D*P), top layer first computed."""
    D, P, L = spec.D, spec.P, spec.num_layers
    douts: list = [None] * L
    dout = grad_output
    for layer in reversed(range(L)):
        douts[layer] = dout
        dx = None
        for d in range(D):
            idx = layer * D + d
            dxd, _, _ = layer_backward(dout[..., d * P:(d + 1) * P], tuple(g[idx] for g in grad_hidden),
                                       tape.layers[layer][d])
            dx = dxd if dx is None else dx + dxd
        if layer > 0 and tape.dropout[layer - 1] is not None:
            dx = dx * tape.dropout[layer - 1]
        dout = dx
    return douts


def _localise_gradient(run: _Runner, pb: _Problem, tape, ref_res, gtol) -> tuple[Divergence | None, dict]:
    spec, T, B = pb.spec, pb.x.shape[0], pb.x.shape[1]
    D = spec.D
    valid = _valid(pb.lengths, T, B)
    curves: dict[str, np.ndarray] = {}
    douts = _layer_douts(tape, spec, pb.grad_output, pb.grad_hidden)
    for layer in range(spec.num_layers):
        sub = spec.layer(layer)
        lp = _layer_params(pb.params, layer)
        x_l = tape.layers[layer][0].x
        hx_l = tuple(h[layer * D:(layer + 1) * D] for h in pb.hx)
        gh_l = tuple(g[layer * D:(layer + 1) * D] for g in pb.grad_hidden)
        iso = _Problem(sub, lp, x_l, hx_l, pb.lengths, None, douts[layer], gh_l)
        c_iso, r_iso = run.cand(iso), run.ref(iso)[0]
        bad_names = [n for n in ["input", *lp] if not _ok(c_iso.get(n), r_iso[n], gtol)[0]]
        bad_names += ["hx"] if any(not _ok(ca, ra, gtol)[0] for ca, ra in zip(c_iso.get("hx", (None,) * 2),
                                                                              r_iso["hx"])) else []
        if not bad_names:
            continue
        states = [_ref_states(tape, spec, layer, d, ref_res["hidden"]) for d in range(D)]
        first = None
        for d in range(D):
            errs = np.zeros(T)
            for k in reversed(range(T)):  # BPTT order
                t = _time(k, d, T)
                e, bad = _carry_probe(run, sub, lp, x_l, hx_l, gh_l, douts[layer], states, pb.lengths, valid, d, k, t,
                                      gtol)
                errs[t] = max(e.values())
                if bad and (first is None or T - 1 - k < first[0]):
                    first = (T - 1 - k, d, t, bad, e)
            curves[f"dh,dc carry l{layer} {'rev' if d else 'fwd'}"] = errs
        if first is not None:
            _, d, t, bad, e = first
            return Divergence("gradient", layer, d, t, ", ".join(bad), None, max(e[q] for q in bad),
                              "backward through this step (the first in BPTT order whose carry differs) gives the "
                              "wrong gradient at the state before it: " +
                              ", ".join(f"{q} error {e[q]:.2e}" for q in bad)), curves
        name = bad_names[0]
        if name == "input":
            seq = _first_output_divergence(c_iso["input"], r_iso["input"], valid, None, 1, x_l.shape[-1], gtol)
            t = None if seq is None else seq[1]
            return Divergence("gradient", layer, 0, t, "dx", None, float("nan"),
                              "the BPTT carries agree but the gradient at the layer's input differs "
                              "(check dx = dgates W_ih)"), curves
        return Divergence("gradient", layer, 1 if name.endswith("_reverse") else 0, None, name.replace("_l0", f"_l{layer}"),
                          None, float("nan"), "the BPTT carries agree but this gradient differs "
                          "(check how it is summed over steps)"), curves
    return (Divergence("gradient", spec.num_layers - 1, 0, None, "dropout" if spec.dropout_active else "input", None,
                       float("nan"), "every layer's gradients are right alone; the gradient passed between layers "
                       "is not") if spec.num_layers > 1 else None), curves


def _carry_probe(run, sub, lp, x_l, hx_l, gh_l, dout, states, lengths, valid, d, k, t, tol):
    """Gradient at the state before processing step k of direction d, from a run that starts there."""
    T = x_l.shape[0]
    window = slice(t, T) if d == 0 else slice(0, t + 1)
    sub_len = None
    if lengths is not None:
        ln = np.asarray(lengths)
        sub_len = np.clip(ln - t, 1, None) if d == 0 else np.minimum(ln, t + 1)
    hx = tuple(np.stack([states[dd][s][k] if dd == d else hx_l[s][dd] for dd in range(sub.D)])
               for s in range(len(hx_l)))
    P = sub.P
    g_out = np.zeros_like(dout[window])
    g_out[..., d * P:(d + 1) * P] = dout[window][..., d * P:(d + 1) * P]
    g_hid = tuple(np.stack([g[dd] if dd == d else np.zeros_like(g[dd]) for dd in range(sub.D)]) for g in gh_l)
    probe = _Problem(sub, lp, x_l[window], hx, sub_len, None, g_out, g_hid)
    c, r = run.cand(probe), run.ref(probe)[0]
    errs, bad = {}, []
    for q, ca, ra in zip(("dh", "dc"), c.get("hx", (None, None)), r["hx"]):
        ok, e = _ok(None if ca is None else np.asarray(ca)[d:d + 1], ra[d:d + 1], tol, valid[t])
        errs[q] = e
        if not ok:
            bad.append(q)
    return errs, bad


# -- the entry point ----------------------------------------------------------


def compare(
    candidate: Any,
    reference_module: Any = None,
    input: Any = None,
    hx: Any = "random",
    *,
    lengths: Sequence[int] | None = None,
    dropout_masks: Sequence[Any] | None = None,
    seed: int = 0,
    seq_len: int = 5,
    batch: int = 3,
    dtype: Any = None,
    layout: str = "torch",
    factory: Callable[[Spec], Any] | None = None,
    gradients: bool = True,
    localise: bool = True,
) -> CompareReport:
    """Run ``candidate`` and the reference on the same weights, inputs and cotangents.

    Args:
        candidate: a torch module (torch's names and call signature) or a
            :class:`CandidateFn` (see the module docstring).
        reference_module: where configuration and weights come from: a reference
            RNN/GRU/LSTM, a torch.nn RNN/GRU/LSTM (converted), a :class:`Spec` or a
            dict of Spec fields (weights drawn at torch's init scale from ``seed``),
            or None to take both from a torch module candidate.
        input: (T, B, I) time-major, or None to draw U(-1, 1) of (seq_len, batch, I).
        hx: "random" (default: U(-1, 1), so h_0/c_0 gradients are exercised), None
            (zeros), or the states as torch takes them, (L*D, B, P) [and (L*D, B, H)].
        lengths: B ints in [1, T] (packed sequences), or None.
        dropout_masks: L-1 keep masks of 0/1, (T, B, D*P); drawn from ``seed`` when
            the configuration is in training mode with dropout and none are given.
        seed: seeds every drawn value: weights, data, cotangents, masks.
        dtype: the candidate's dtype (default: a torch module's, else float64).
        layout: "torch", or a layout of ``torch_impl.layouts`` in which function
            candidates receive their weights and return their weight gradients.
        factory: builds a torch module candidate for another Spec (localisation).
        gradients: also compare gradients (False for forward-only candidates).
        localise: find the first divergence when something fails.
    """
    rng = np.random.default_rng(seed)
    device = "cpu"
    if hasattr(candidate, "named_parameters"):
        if layout != "torch":
            raise ValueError("layout: torch module candidates use torch's layout; layout= is for function candidates")
        fn: Any = TorchCandidate(candidate, factory)
        name = fn.name
        dtype = np.dtype(str(fn.dtype).replace("torch.", "")) if dtype is None else np.dtype(dtype)
        device = fn.device.type
    elif callable(candidate):
        fn, name = candidate, getattr(candidate, "__name__", type(candidate).__name__)
        dtype = np.dtype(dtype or np.float64)
    else:
        raise TypeError(f"candidate: expected a torch module or a callable, got {type(candidate).__name__}")
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")

    spec, params = _spec_and_params(reference_module, fn, seed)
    if isinstance(fn, TorchCandidate) and fn.spec.training != spec.training:
        fn.spec = replace(fn.spec, training=spec.training)
    rnd = lambda a: np.asarray(a, dtype=np.float64).astype(dtype).astype(np.float64)
    params = {k: rnd(v) for k, v in params.items()}
    x = rng.uniform(-1, 1, (seq_len, batch, spec.input_size)) if input is None else _np(input)
    if x.ndim != 3 or x.shape[-1] != spec.input_size:
        raise ValueError(f"input: expected (T, B, {spec.input_size}) time-major, got shape {x.shape}")
    x = rnd(x)
    T, B = x.shape[:2]
    shapes = spec.state_shapes(B)
    if isinstance(hx, str) and hx == "random":
        hx = tuple(rng.uniform(-1, 1, s) for s in shapes)
    elif hx is None:
        hx = tuple(np.zeros(s) for s in shapes)
    else:
        hx = tuple(_np(h) for h in (hx if spec.lstm else (hx,)))
    hx = tuple(rnd(h) for h in hx)
    for h, s in zip(hx, shapes):
        if h.shape != s:
            raise ValueError(f"hx: expected shape {s}, got {h.shape}")
    lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
    masks = None
    if spec.dropout_active:
        masks = ([(rng.random((T, B, spec.D * spec.P)) >= spec.dropout).astype(np.float64)
                  for _ in range(spec.num_layers - 1)] if dropout_masks is None
                 else [np.asarray(m, dtype=np.float64) for m in dropout_masks])
    elif dropout_masks is not None:
        raise ValueError("dropout_masks: given, but the configuration applies no dropout (training, dropout > 0, "
                         "num_layers > 1)")
    g_out = rng.standard_normal((T, B, spec.D * spec.P))
    g_hid = tuple(rng.standard_normal(s) for s in shapes)
    if not gradients:
        g_out, g_hid = None, None
    else:
        g_out, g_hid = rnd(g_out), tuple(rnd(g) for g in g_hid)

    pb = _Problem(spec, params, x, hx, lengths, masks, g_out, g_hid)
    run = _Runner(fn, dtype, layout)
    ref_res, tape, _ = run.ref(pb)
    cand_res = run.cand(pb)
    ftol, gtol = candidate_tol(dtype, device, "forward"), candidate_tol(dtype, device, "gradient")

    tensors = [_tensor("output", "forward", cand_res.get("output"), ref_res["output"], ftol, 0)]
    ch = tuple(cand_res.get("hidden") or ())
    for k, nm in enumerate(("h_n", "c_n")[:len(hx)]):
        tensors.append(_tensor(nm, "forward", ch[k] if k < len(ch) else None, ref_res["hidden"][k], ftol))
    if gradients:
        tensors.append(_tensor("grad input", "gradient", cand_res.get("input"), ref_res["input"], gtol, 0))
        chx = tuple(cand_res.get("hx") or ())
        for k, nm in enumerate(("grad h_0", "grad c_0")[:len(hx)]):
            tensors.append(_tensor(nm, "gradient", chx[k] if k < len(chx) else None, ref_res["hx"][k], gtol))
        for p in params:
            tensors.append(_tensor(f"grad {p}", "gradient", cand_res.get(p), ref_res[p], gtol))
    report = CompareReport(spec, name, dtype.name, device, T, B, None if lengths is None else lengths.tolist(),
                           tensors)
    out = tensors[0]
    if out.per_step is not None:
        report.step_errors["output"] = out.per_step
    if gradients and tensors[len(hx) + 1].per_step is not None:
        report.step_errors["grad input"] = tensors[len(hx) + 1].per_step
    if localise and not report.passed:
        fwd_bad = any(not t.passed for t in tensors if t.kind == "forward")
        if fwd_bad:
            report.forward, curves = _localise_forward(run, pb, tape, ref_res, ftol)
        else:
            report.gradient, curves = _localise_gradient(run, pb, tape, ref_res, gtol)
        report.step_errors.update(curves)
    return report


def _spec_and_params(ref: Any, fn: Any, seed: int) -> tuple[Spec, dict]:
    if ref is None:
        if not isinstance(fn, TorchCandidate):
            raise ValueError("reference_module: required for function candidates (a reference module, Spec or dict)")
        return fn.spec, {k: _np(v) for k, v in fn.module.state_dict().items()}
    if isinstance(ref, RNNBase):
        return Spec.of(ref), ref.state_dict()
    if hasattr(ref, "named_parameters"):
        return Spec.of(ref), {k: _np(v) for k, v in ref.state_dict().items()}
    if isinstance(ref, Mapping):
        ref = Spec(**ref)
    if isinstance(ref, Spec):
        return ref, ref.reference(seed=seed).state_dict()
    raise TypeError(f"reference_module: expected a reference or torch module, a Spec or a dict, got {type(ref).__name__}")


# -- the picture --------------------------------------------------------------


def plot_errors(report: CompareReport, path: str) -> str:
    """Error per time step per tensor (log scale) as a PNG at ``path``; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    floor = 1e-18
    for label, errs in report.step_errors.items():
        ax.semilogy(np.arange(len(errs)), np.maximum(errs, floor), marker="o", ms=3, label=label)
    fwd = next((t for t in report.tensors if t.kind == "forward"), None)
    if fwd is not None:
        ax.axhline(fwd.atol, color="grey", ls=":", lw=1, label="atol (forward)")
    for div, color in ((report.forward, "red"), (report.gradient, "purple")):
        if div is not None and div.time is not None:
            ax.axvline(div.time, color=color, ls="--", lw=1,
                       label=f"first divergence: l{div.layer} {'rev' if div.direction else 'fwd'} t={div.time} {div.gate}")
    ax.set_xlabel("time step t")
    ax.set_ylabel("max abs error")
    ax.set_title(f"{report.candidate} vs reference {report.spec}: {'MATCH' if report.passed else 'MISMATCH'}",
                 fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
