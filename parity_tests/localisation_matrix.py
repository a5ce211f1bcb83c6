"""The localisation matrix: one bug planted in one gate or quantity of one layer and direction, and the place
the verifier names for it.

Every cell (RNN tanh and relu, GRU in torch's form and the paper's, LSTM with and without projection), every
gate and quantity (LSTM i f g o c h W_hr, GRU r z n h, RNN h, the biases), every layer and direction of a
2-layer bidirectional stack, forward and backward. The candidate is one small torch module,
:class:`PlantedBug`, the equations of reference/*_cell.py with autograd and one bug switched on:

forward (the output is wrong)
    ``preact``  the gate's pre-activation scaled by 1.25;
    ``act``     the gate's activation replaced (sigmoid -> Keras's hard sigmoid clip(0.2 a + 0.5, 0, 1),
                tanh -> sigmoid, relu -> leaky relu 0.1; LSTM's h: tanh(c') -> clip(c', -1, 1));
    ``scale``   the gate's output scaled by 1.1 (LSTM's c: c' = 1.1 (f c + i g));
    ``bias``    the gate's block of bias_ih not added (bias_hh: added twice);
    ``rows``    the gate's block of weight_ih read with its rows rolled by one (W_hr: its rows rolled);
    ``carry``   GRU's h: h' = (1 - z) n + h (z dropped from the carried state);
backward (the output is right, a gradient is not)
    ``act``     the activation's derivative written wrong (sigmoid: s for s (1 - s), tanh: 1 - t for 1 - t^2,
                relu: 1 everywhere; LSTM's c: the derivative of tanh(c'), so the gradient reaching c' is
                the first one wrong, and the verdict names c);
    ``scale``   the gradient reaching the gate's output scaled by 1.1 (the same function as a wrong gradient
                at its pre-activation, so a pre-activation kind would be a second name for this one);
    ``bias``    the gradient of the gate's block of bias_ih scaled by 1.1 (bias_hh: every block);
    ``rows``    the gradient of the gate's block of weight_ih scaled by 1.1 (W_hr: of weight_hr);
    ``carry``   the gradient carried to the state before the step scaled by 1.1 (LSTM's c: dc_prev = 1.1 dc f;
                LSTM's h: dh_prev; GRU's h: the z h term's dh_prev).

The bug lives in the layer whose input has the planted layer's width (layer 0 reads I = 3 features, layer 1
D * P = 4), in one direction, so it travels with the sub-problems localisation poses (that layer alone,
T = 1 steps), which the module is rebuilt for.

When it starts. The bug is triggered by the state entering the step, as real bugs are triggered by data:
``start=0`` every step; ``start=1`` (forward bugs) only where that state is not the sentinel h_0 (every
entry 0.25) that the planted direction starts from, so the first step is right and the bug starts at the
second; ``start=1`` (backward bugs) only where it is: the first step of the direction alone, which BPTT
reaches last. (A zero h_0 would not do: a relu state is often exactly zero, and GRU's paper form reads r
only through r * h.)

Conditional bugs (``condition``, forward, the gate's pre-activation scaled by 1.25) fire where the input takes a
value (``value``: feature 0 equals VALUE, at one step of one row), on a sign (``sign``: feature 0 negative, at
another), in one batch row (``row``), or at one step of each direction's processing (``step``: its third). The
value and the sign are planted in the input :func:`inputs` draws (layer 0's; layer 1 reads layer 0's outputs),
the row and the step in either layer. A step-conditional bug never fires in a one-step probe: the verdict
finds it where the step runs as the step it is. Each is named at its gate.

"First in time order" is the order the pass computes: the forward pass in each direction's processing order
(forward direction t = 0, 1, ...; reverse direction t = T - 1, T - 2, ...), the backward pass in BPTT order
(forward direction t = T - 1 down; reverse direction t = 0 up). Teacher-forced steps see every buggy step
wrong on its own, so the verdict must be the first of them in that order: :func:`expected_time`.

RNN relu's biases are shifted (+1 on unit 0, -1 on unit 1, in each bias), so every step has a live unit and a
dead one: on a step of dead units only a scale bug changes nothing, on one of live units only a wrong
derivative below 0 changes nothing, and the first step a bug acts on must be a step it shows on.

The verdict must name (layer, direction, gate, time) exactly; a gate's bias bug is named at the bias
("bias_ih"), its detail naming the gate's block. The one place where no observation can: an
output scale on LSTM's i or on g, since the cell sees them only as the product i * g (1.1 i * g = i * 1.1 g);
the verdict must then name both, "i, g".

    python -m parity_tests.localisation_matrix              # every case: prints misses and "N/N hits"
    python -m parity_tests.localisation_matrix --covering   # the cases CI runs
    python -m parity_tests.localisation_matrix --seed 3     # other weights, data and cotangents
"""

from __future__ import annotations

import argparse
import collections
import itertools
import math
import sys
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from reference.verify import compare

T, B, I = 4, 2, 3  # I: the input size, in the project's shape alphabet
SENTINEL = 0.25  # every entry of h_0 in the planted direction of a later-starting bug: no step reaches it again
VALUE, VALUE_AT = 0.5, (2, 0)  # a conditional bug fires where input feature 0 is VALUE: at (time, row) VALUE_AT only
NEGATIVE_AT = (1, 1)  # ... or where it is negative: at (time, row) NEGATIVE_AT only; every other entry is in [0.1, 1]
ROW, STEP = 1, 2  # ... or in batch row ROW; or at each direction's third processed step (index STEP)
CONDITIONS = ("value", "sign", "row", "step")
# cell -> (mode, hidden_size, proj_size, reset_after): layer 1 reads D * P = 4 features, layer 0 I = 3
CELLS = {
    "RNN_TANH": ("RNN_TANH", 2, 0, True),
    "RNN_RELU": ("RNN_RELU", 2, 0, True),
    "GRU": ("GRU", 2, 0, True),
    "GRU_paper": ("GRU", 2, 0, False),
    "LSTM": ("LSTM", 2, 0, True),
    "LSTM_proj": ("LSTM", 3, 2, True),
}
GATES = {"RNN_TANH": ("h",), "RNN_RELU": ("h",), "GRU": ("r", "z", "n"), "LSTM": ("i", "f", "g", "o")}
SIGMOID_GATES = set("rzifo")
FORWARD_GATE_KINDS = ("preact", "act", "scale", "bias", "rows")
BACKWARD_GATE_KINDS = ("act", "scale", "bias", "rows")
# the quantities that are not one gate's activation, and the kinds that apply to them
QUANTITY_KINDS = {
    ("LSTM", "c"): {"forward": ("scale",), "backward": ("act", "carry")},
    ("LSTM", "h"): {"forward": ("act",), "backward": ("carry",)},
    ("GRU", "h"): {"forward": ("carry",), "backward": ("carry",)},
    ("LSTM_proj", "W_hr"): {"forward": ("rows",), "backward": ("rows",)},
}


@dataclass(frozen=True)
class Bug:
    """One planted bug: ``quantity`` (a gate letter, "c", "h", "W_hr" or "bias_hh") of layer ``layer``,
    direction ``direction``, ``kind`` in pass ``pass_`` ("forward" or "backward"), from ``start``."""

    cell: str
    quantity: str
    kind: str
    layer: int
    direction: int
    pass_: str
    start: int
    condition: str = "state"  # "state": the start rule below; else one of CONDITIONS (forward bugs)

    def __str__(self) -> str:
        when = f"start={self.start}" if self.condition == "state" else f"on {self.condition}"
        return f"{self.cell} {self.pass_} {self.quantity}:{self.kind} l{self.layer} " \
               f"{'rev' if self.direction else 'fwd'} {when}"


# -- the candidate -------------------------------------------------------------------------------


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the gradient scaled by 1.1 where ``on``."""

    @staticmethod
    def forward(ctx, a, on):
        ctx.save_for_backward(on)
        return a.clone()

    @staticmethod
    def backward(ctx, g):
        (on,) = ctx.saved_tensors
        return torch.where(on, 1.1 * g, g), None


_ACT = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
_BAD_ACT = {"sigmoid": lambda a: torch.clamp(0.2 * a + 0.5, 0.0, 1.0), "tanh": torch.sigmoid,
            "relu": lambda a: torch.nn.functional.leaky_relu(a, 0.1)}
_DERIV = {"sigmoid": lambda y, a: y * (1 - y), "tanh": lambda y, a: 1 - y * y, "relu": lambda y, a: (a > 0).to(a)}
_BAD_DERIV = {"sigmoid": lambda y, a: y, "tanh": lambda y, a: 1 - y, "relu": lambda y, a: torch.ones_like(a)}


class _WrongDerivative(torch.autograd.Function):
    """act(a) forward; backward with the wrong derivative where ``on``."""

    @staticmethod
    def forward(ctx, a, on, act):
        y = _ACT[act](a)
        ctx.save_for_backward(a, y, on)
        ctx.act = act
        return y

    @staticmethod
    def backward(ctx, g):
        a, y, on = ctx.saved_tensors
        d = torch.where(on, _BAD_DERIV[ctx.act](y, a), _DERIV[ctx.act](y, a))
        return g * d, None, None


class PlantedBug(nn.Module):
    """torch.nn.RNN/GRU/LSTM written out (time-major, no lengths), with ``bug`` planted (None: correct).

    The bug acts in the layer whose input is ``bug_width`` wide, in direction ``bug.direction``.
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, dropout=0.0, bidirectional=False,
                 proj_size=0, reset_after=True, bug: Bug | None = None, bug_width: int | None = None):
        super().__init__()
        self.mode, self.reset_after = mode, reset_after
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, False, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.bug, self.bug_width = bug, bug_width
        self._active: Bug | None = None  # the bug, while the layer and direction it lives in run
        self.G = {"GRU": 3, "LSTM": 4}.get(mode, 1)
        D, P, k = 2 if bidirectional else 1, proj_size or hidden_size, 1 / math.sqrt(hidden_size)
        for layer in range(num_layers):
            for sfx in ["", "_reverse"][:D]:
                shapes = {"weight_ih": (self.G * hidden_size, input_size if layer == 0 else D * P),
                          "weight_hh": (self.G * hidden_size, P),
                          "bias_ih": (self.G * hidden_size,), "bias_hh": (self.G * hidden_size,)}
                if proj_size:
                    shapes["weight_hr"] = (P, hidden_size)
                for name, shape in shapes.items():
                    setattr(self, f"{name}_l{layer}{sfx}", nn.Parameter(torch.empty(shape).uniform_(-k, k)))

    @classmethod
    def for_spec(cls, spec, bug: Bug | None, bug_width: int | None, dtype: torch.dtype = torch.float64):
        """The module for another configuration (localisation's factory), the bug travelling with it."""
        return cls(spec.mode, spec.input_size, spec.hidden_size, spec.num_layers, spec.bias, spec.dropout,
                   spec.bidirectional, spec.proj_size, spec.reset_after, bug, bug_width).to(dtype)

    # -- one step ------------------------------------------------------------------------------

    def _here(self, q: str, pass_: str, *kinds: str) -> bool:
        b = self._active
        return b is not None and b.quantity == q and b.pass_ == pass_ and (not kinds or b.kind in kinds)

    def _gate(self, q: str, act: str, x, h, w, j: int, on, hidden_term=None):
        """Gate q's value: act(x W_ih_q + b_ih_q + h W_hh_q + b_hh_q), or with GRU n's ``hidden_term``."""
        H = self.hidden_size
        rows = slice(j * H, (j + 1) * H)
        w_ih, b_ih = w["weight_ih"][rows], w["bias_ih"][rows]
        if self._here(q, "forward", "rows"):
            w_ih = torch.where(on.any(), torch.roll(w_ih, 1, dims=0), w_ih)
        if self._here(q, "backward", "rows"):
            w_ih = _ScaleGrad.apply(w_ih, on.any())
        if self._here(q, "backward", "bias"):
            b_ih = _ScaleGrad.apply(b_ih, on.any())
        xw = x @ w_ih.T + b_ih  # (B, H)
        if self._here(q, "forward", "bias"):
            xw = torch.where(on, xw - b_ih, xw)
        hw = h @ w["weight_hh"][rows].T + w["bias_hh"][rows] if hidden_term is None else hidden_term  # (B, H)
        pre = xw + hw
        if self._here(q, "forward", "preact"):
            pre = torch.where(on, 1.25 * pre, pre)
        if self._here(q, "backward", "act"):
            v = _WrongDerivative.apply(pre, on, act)
        else:
            v = _ACT[act](pre)
        if self._here(q, "forward", "act"):
            v = torch.where(on, _BAD_ACT[act](pre), v)
        if self._here(q, "forward", "scale"):
            v = torch.where(on, 1.1 * v, v)
        if self._here(q, "backward", "scale"):
            v = _ScaleGrad.apply(v, on)
        return v

    def _plain(self, x, h, c, w):
        """One step of torch's equations, every gate at once (the layers and directions without the bug)."""
        H = self.hidden_size
        xw = x @ w["weight_ih"].T + w["bias_ih"]  # (B, G*H)
        hw = h @ w["weight_hh"].T + w["bias_hh"]  # (B, G*H)
        if self.mode.startswith("RNN"):
            return (torch.tanh if self.mode == "RNN_TANH" else torch.relu)(xw + hw), None
        if self.mode == "GRU":
            rz = torch.sigmoid(xw[:, :2 * H] + hw[:, :2 * H])
            r, z = rz[:, :H], rz[:, H:]
            if self.reset_after:
                hidden = r * hw[:, 2 * H:]
            else:
                hidden = (r * h) @ w["weight_hh"][2 * H:].T + w["bias_hh"][2 * H:]
            n = torch.tanh(xw[:, 2 * H:] + hidden)
            return (1 - z) * n + z * h, None
        pre = xw + hw
        i, f, o = torch.sigmoid(pre[:, :H]), torch.sigmoid(pre[:, H:2 * H]), torch.sigmoid(pre[:, 3 * H:])
        c_new = f * c + i * torch.tanh(pre[:, 2 * H:3 * H])
        m = o * torch.tanh(c_new)
        return (m @ w["weight_hr"].T if self.proj_size else m), c_new

    def _step(self, x, h, c, w, on):
        if on is None:
            return self._plain(x, h, c, w)
        H = self.hidden_size
        if self._here("bias_hh", "forward"):
            w = dict(w, bias_hh=torch.where(on.any(), 2 * w["bias_hh"], w["bias_hh"]))
        if self._here("bias_hh", "backward"):
            w = dict(w, bias_hh=_ScaleGrad.apply(w["bias_hh"], on.any()))
        if self.mode.startswith("RNN"):
            return self._gate("h", "tanh" if self.mode == "RNN_TANH" else "relu", x, h, w, 0, on), None
        if self.mode == "GRU":
            r = self._gate("r", "sigmoid", x, h, w, 0, on)
            z = self._gate("z", "sigmoid", x, h, w, 1, on)
            w_hn, b_hn = w["weight_hh"][2 * H:], w["bias_hh"][2 * H:]
            hidden = r * (h @ w_hn.T + b_hn) if self.reset_after else (r * h) @ w_hn.T + b_hn  # (B, H)
            n = self._gate("n", "tanh", x, h, w, 2, on, hidden_term=hidden)
            carried = _ScaleGrad.apply(h, on) if self._here("h", "backward", "carry") else h
            h_new = (1 - z) * n + z * carried
            if self._here("h", "forward", "carry"):
                h_new = torch.where(on, (1 - z) * n + h, h_new)
            return h_new, None
        h = _ScaleGrad.apply(h, on) if self._here("h", "backward", "carry") else h
        i, f, g, o = (self._gate(q, "tanh" if q == "g" else "sigmoid", x, h, w, j, on) for j, q in enumerate("ifgo"))
        c_in = _ScaleGrad.apply(c, on) if self._here("c", "backward", "carry") else c
        c_new = f * c_in + i * g
        if self._here("c", "forward", "scale"):
            c_new = torch.where(on, 1.1 * c_new, c_new)
        tc = _WrongDerivative.apply(c_new, on, "tanh") if self._here("c", "backward", "act") else torch.tanh(c_new)
        if self._here("h", "forward", "act"):
            tc = torch.where(on, torch.clamp(c_new, -1.0, 1.0), tc)
        m = o * tc  # (B, H)
        if not self.proj_size:
            return m, c_new
        w_hr = w["weight_hr"]
        if self._here("W_hr", "forward", "rows"):
            w_hr = torch.where(on.any(), torch.roll(w_hr, 1, dims=0), w_hr)
        if self._here("W_hr", "backward", "rows"):
            w_hr = _ScaleGrad.apply(w_hr, on.any())
        return m @ w_hr.T, c_new

    def _trigger(self, h, x, k: int):
        """(B, 1) bool: the rows the bug acts on at this step (its input x, its index k in processing order),
        from the state entering it or from its condition."""
        condition = self.bug.condition
        if condition == "value":
            return x[:, :1] == VALUE
        if condition == "sign":
            return x[:, :1] < 0
        if condition == "row":
            return (torch.arange(x.shape[0]) == ROW)[:, None]
        if condition == "step":
            return torch.full((x.shape[0], 1), k == STEP)
        first = (h == SENTINEL).all(dim=-1, keepdim=True)
        if self.bug.start == 0:
            return torch.ones_like(first)
        return ~first if self.bug.pass_ == "forward" else first

    def forward(self, input, hx=None, *, dropout_masks=None):
        x = input  # (T, B, I)
        steps, batch = x.shape[:2]
        D, P, H = 2 if self.bidirectional else 1, self.proj_size or self.hidden_size, self.hidden_size
        lstm = self.mode == "LSTM"
        if hx is None:
            z = torch.zeros(self.num_layers * D, batch, P, dtype=x.dtype)
            hx = (z, torch.zeros(self.num_layers * D, batch, H, dtype=x.dtype)) if lstm else z
        h0, c0 = hx if lstm else (hx, None)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d, sfx in enumerate(["", "_reverse"][:D]):
                names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
                w = {n: getattr(self, f"{n}_l{layer}{sfx}") for n in names if hasattr(self, f"{n}_l{layer}{sfx}")}
                planted = self.bug is not None and x.shape[-1] == self.bug_width and d == self.bug.direction
                self._active = self.bug if planted else None
                h, c = h0[layer * D + d], (c0[layer * D + d] if lstm else None)
                out = [None] * steps
                for k, t in enumerate(range(steps - 1, -1, -1) if d else range(steps)):
                    on = self._trigger(h, x[t], k) if planted else None
                    h, c = self._step(x[t], h, c, w, on)
                    out[t] = h
                outs.append(torch.stack(out))
                h_n.append(h)
                c_n.append(c)
            x = torch.cat(outs, dim=-1)  # (T, B, D*P)
            if dropout_masks is not None and layer < self.num_layers - 1:
                x = x * dropout_masks[layer] / (1 - self.dropout)
        self._active = None
        return x, ((torch.stack(h_n), torch.stack(c_n)) if lstm else torch.stack(h_n))


# -- the cases and the expected verdicts -----------------------------------------------------------


def quantities(cell: str) -> list[tuple[str, str, str]]:
    """(quantity, pass, kind) for every bug planted in ``cell``."""
    mode = CELLS[cell][0]
    out = []
    for q in GATES[mode]:
        out += [(q, "forward", k) for k in FORWARD_GATE_KINDS] + [(q, "backward", k) for k in BACKWARD_GATE_KINDS]
    for (owner, q), kinds in QUANTITY_KINDS.items():
        if owner in (mode, cell):
            out += [(q, p, k) for p, ks in kinds.items() for k in ks]
    out += [("bias_hh", "forward", "bias"), ("bias_hh", "backward", "bias")]
    return out


def all_bugs() -> list[Bug]:
    """Every cell x quantity x kind x layer x direction x start: the full matrix."""
    return [Bug(cell, q, k, layer, d, p, start) for cell in CELLS for q, p, k in quantities(cell)
            for layer, d, start in itertools.product((0, 1), (0, 1), (0, 1))]


def covering_bugs() -> list[Bug]:
    """Every cell x quantity x kind (forward and backward) x layer x direction once, each (cell, quantity,
    kind) at both starts (two of its four places each): what CI runs; ``all_bugs`` runs every start too."""
    out = []
    for cell in CELLS:
        for idx, (q, p, k) in enumerate(quantities(cell)):
            out += [Bug(cell, q, k, layer, d, p, (layer + d + idx) % 2) for layer in (0, 1) for d in (0, 1)]
    return out


def conditional_bugs() -> list[Bug]:
    """One gate of each cell, its pre-activation wrong on each condition, in each direction (the value and the
    sign in layer 0, the row and the step in both layers)."""
    gates = {"RNN_TANH": "h", "GRU": "r", "GRU_paper": "n", "LSTM": "f", "LSTM_proj": "g"}
    return [Bug(cell, q, "preact", layer, d, "forward", 0, condition) for cell, q in gates.items()
            for condition in CONDITIONS for layer in ((0,) if condition in ("value", "sign") else (0, 1))
            for d in (0, 1)]


def inputs(seed: int = 0) -> np.ndarray:
    """(T, B, I) input: feature 0 in [0.1, 1] but VALUE at VALUE_AT and negative at NEGATIVE_AT; the others in
    [-1, 1]."""
    rng = np.random.default_rng(seed + 2)
    x = rng.uniform(-1, 1, (T, B, I))
    x[..., 0] = rng.uniform(0.1, 1, (T, B))
    x[VALUE_AT + (0,)] = VALUE
    x[NEGATIVE_AT + (0,)] = -0.3
    return x


def expected_time(bug: Bug) -> int:
    """The first buggy step in the order the pass computes (see the module docstring)."""
    if bug.condition in ("value", "sign"):
        return (VALUE_AT if bug.condition == "value" else NEGATIVE_AT)[0]
    if bug.condition == "step":
        return STEP if bug.direction == 0 else T - 1 - STEP
    k = bug.start if bug.pass_ == "forward" else (0 if bug.start == 0 else T - 1)  # position in that order
    forward_t = bug.direction == 0 if bug.pass_ == "forward" else bug.direction == 1  # order runs t = 0 up
    return k if forward_t else T - 1 - k


def expected_gate(bug: Bug) -> str:
    if bug.kind == "bias" and bug.quantity != "bias_hh":
        return "bias_ih"  # and the detail names the block
    if bug.pass_ == "forward" and bug.kind == "scale" and bug.quantity in ("i", "g"):
        return "i, g"  # the cell sees them only as i * g
    return bug.quantity


def spec_kwargs(cell: str) -> dict:
    mode, hidden, proj, reset_after = CELLS[cell]
    return {"mode": mode, "input_size": I, "hidden_size": hidden, "num_layers": 2, "bidirectional": True,
            "proj_size": proj, "reset_after": reset_after}


def build(cell: str, bug: Bug | None, dropout: float = 0.0, seed: int = 0, dtype: torch.dtype = torch.float64
          ) -> PlantedBug:
    kw = spec_kwargs(cell)
    torch.manual_seed(seed)
    width = None if bug is None else (I if bug.layer == 0 else 2 * (kw["proj_size"] or kw["hidden_size"]))
    m = PlantedBug(kw["mode"], I, kw["hidden_size"], 2, True, dropout, True, kw["proj_size"], kw["reset_after"],
                   bug, width).to(dtype)
    if kw["mode"] == "RNN_RELU":  # unit 0 alive and unit 1 dead at every step: a step of only one kind hides a bug
        with torch.no_grad():
            for name, p in m.named_parameters():
                if name.startswith("bias"):
                    p += torch.tensor([1.0, -1.0], dtype=p.dtype)
    return m.train(dropout > 0)


def initial_states(cell: str, bug: Bug | None, seed: int = 0) -> tuple:
    """Random (L*D, B, P) [and (L*D, B, H)] states; h_0 = SENTINEL for the planted direction of a later-starting bug."""
    kw = spec_kwargs(cell)
    P, H = kw["proj_size"] or kw["hidden_size"], kw["hidden_size"]
    rng = np.random.default_rng(seed + 1)
    h0 = rng.uniform(-1, 1, (4, B, P))
    if bug is not None and bug.start:
        h0[bug.layer * 2 + bug.direction] = SENTINEL
    return (h0, rng.uniform(-1, 1, (4, B, H))) if kw["mode"] == "LSTM" else h0


def run(bug: Bug | None, cell: str | None = None, dropout: float = 0.0, seed: int = 0,
        dtype: torch.dtype = torch.float64):
    """compare() on the planted candidate (``cell`` for a correct one), its module in ``dtype`` (bfloat16 and
    float16: judged against the rounding envelope, each sub-problem against its own)."""
    cell = bug.cell if bug is not None else cell
    m = build(cell, bug, dropout, seed, dtype)
    width = m.bug_width
    return compare(m, hx=initial_states(cell, bug, seed), input=inputs(seed), seed=seed,
                   factory=lambda s: PlantedBug.for_spec(s, bug, width, dtype))


def verdict(bug: Bug, report) -> str:
    """'' when the report names the planted place exactly, else what is wrong with it."""
    if report.passed:
        return "MATCH (the bug went unnoticed)"
    forward_failed = report.forward_failed
    if forward_failed != (bug.pass_ == "forward"):
        return f"the {'forward' if forward_failed else 'backward'} pass failed"
    div = report.forward if bug.pass_ == "forward" else report.gradient
    if div is None:
        return f"not localised: {report.stopped or 'no divergence'}"
    want = (bug.layer, bug.direction, expected_time(bug), expected_gate(bug))
    got = (div.layer, div.direction, div.time, div.gate)
    if got != want:
        return f"named (layer, direction, time, gate) {got}, planted {want}: {div}"
    if bug.kind == "bias" and bug.quantity not in ("bias_hh", "h") and f"block {bug.quantity}" not in div.detail:
        return f"named {div.gate} without its block {bug.quantity}: {div}"
    return ""


DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def main(argv: list[str] | None = None) -> int:
    """Every case of the full matrix (``--covering``: CI's set; ``--every N``: every Nth case of it; ``--seed N``:
    other weights and data; ``--dtype bfloat16``: the planted module in bfloat16); prints each miss, the misses by
    kind and "N/N hits"."""
    parser = argparse.ArgumentParser(prog="python -m parity_tests.localisation_matrix")
    parser.add_argument("--covering", action="store_true", help="only the cases CI runs")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="every Nth case only")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights, data and cotangents")
    parser.add_argument("--dtype", choices=DTYPES, default="float64", help="the planted module's dtype")
    args = parser.parse_args(argv)
    bugs = ((covering_bugs() if args.covering else all_bugs()) + conditional_bugs())[::args.every]
    misses = collections.Counter()
    for bug in bugs:
        why = verdict(bug, run(bug, seed=args.seed, dtype=DTYPES[args.dtype]))
        if why:
            misses[_kind_of_miss(why)] += 1
            print(f"MISS {bug}: {why}", flush=True)
    print(", ".join(f"{n} {kind}" for kind, n in misses.items()) or "no misses")
    print(f"{len(bugs) - sum(misses.values())}/{len(bugs)} hits")
    return 1 if misses else 0


def _kind_of_miss(why: str) -> str:
    for start, kind in (("MATCH", "not seen (MATCH)"), ("the ", "seen in the other pass"),
                        ("not localised", "not placed"), ("named", "placed wrong")):
        if why.startswith(start):
            return kind
    return "other"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
