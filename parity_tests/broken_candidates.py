"""Candidates for the verifier (``reference.verify.compare``): one correct hand-written torch module and
deliberately broken variants of it, each a one-line change behind a class flag
(localisation builds smaller modules of the same class, so the bug travels with it).

``HandRNN`` is torch.nn.RNN/GRU/LSTM written out with autograd: torch's
parameter names and constructor, ``forward(input, hx=None, *, lengths=None,
dropout_masks=None) -> (output, hidden)``, padded input with ``lengths``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class HandRNN(nn.Module):
    """The explicit equations of torch's recurrent layers (see reference/*_cell.py)."""

    MODE = "LSTM"  # "RNN_TANH", "RNN_RELU", "GRU", "LSTM"
    # Bugs, off in the correct candidate:
    gate_order = None  # LSTM: the gate order the candidate reads the rows in, e.g. "figo"
    paper_reset = False  # GRU: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)
    merged_bias = False  # GRU: n = tanh(W_in x + b_in + b_hn + r * (W_hn h))
    no_cell_tanh = False  # LSTM: h = o * c
    proj_on_c = False  # LSTM with proj_size: h = (W_hr o) * tanh(W_hr c)
    reverse_off_by_one = False  # reverse direction starts one step late: at t = length, not length - 1
    dropout_scale_bug = False  # multiplies by (1 - p) instead of dividing
    no_bias_ih = False  # bias_ih is never added
    reset_tanh = False  # GRU: r = tanh(...) instead of sigmoid(...)
    wrong_sigmoid_grad = None  # a gate letter: its sigmoid's backward forgets the (1 - s) factor
    detached_reverse = False  # the reverse direction detaches h before every step
    buggy_directions = (0, 1)  # the gate_order bug only in these directions
    expose_mode = True  # False: no .mode attribute (a user class; the CLI's --mode says what it is)

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, nonlinearity="tanh"):
        super().__init__()
        self.cell = self.MODE
        if self.cell.startswith("RNN"):
            self.cell = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        if self.expose_mode:
            self.mode = self.cell
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        G = {"GRU": 3, "LSTM": 4}.get(self.cell, 1)
        P, D, k = proj_size or hidden_size, 2 if bidirectional else 1, 1 / math.sqrt(hidden_size)
        for layer in range(num_layers):
            for sfx in ["", "_reverse"][:D]:
                shapes = {"weight_ih": (G * hidden_size, input_size if layer == 0 else D * P),
                          "weight_hh": (G * hidden_size, P)}
                if bias:
                    shapes.update(bias_ih=(G * hidden_size,), bias_hh=(G * hidden_size,))
                if proj_size:
                    shapes["weight_hr"] = (P, hidden_size)
                for name, shape in shapes.items():
                    setattr(self, f"{name}_l{layer}{sfx}", nn.Parameter(torch.empty(shape).uniform_(-k, k)))

    def _w(self, layer, sfx, name):
        return getattr(self, f"{name}_l{layer}{sfx}", None)

    def _sigmoid(self, gate):
        return _SigmoidWithoutOneMinus.apply if gate == self.wrong_sigmoid_grad else torch.sigmoid

    def _step(self, x, h, c, layer, sfx):
        w_ih, w_hh = self._w(layer, sfx, "weight_ih"), self._w(layer, sfx, "weight_hh")
        b_ih, b_hh = self._w(layer, sfx, "bias_ih"), self._w(layer, sfx, "bias_hh")
        xw = x @ w_ih.T + (b_ih if b_ih is not None and not self.no_bias_ih else 0)  # (B, G*H)
        if self.cell == "GRU":
            H = self.hidden_size
            bh = b_hh if b_hh is not None else torch.zeros(3 * H, dtype=h.dtype, device=h.device)
            order = self.gate_order or "rzn"
            xr, xz, xn = (dict(zip(order, xw.split(H, dim=1), strict=True))[k] for k in "rzn")
            wr, wz, wn = (dict(zip(order, w_hh.split(H, dim=0), strict=True))[k] for k in "rzn")
            br, bz, bn = (dict(zip(order, bh.split(H), strict=True))[k] for k in "rzn")
            r = (torch.tanh if self.reset_tanh else self._sigmoid("r"))(xr + h @ wr.T + br)
            z = self._sigmoid("z")(xz + h @ wz.T + bz)
            if self.paper_reset:
                n = torch.tanh(xn + (r * h) @ wn.T + bn)
            elif self.merged_bias:
                n = torch.tanh(xn + bn + r * (h @ wn.T))
            else:
                n = torch.tanh(xn + r * (h @ wn.T + bn))
            return (1 - z) * n + z * h, None
        pre = xw + h @ w_hh.T + (b_hh if b_hh is not None else 0)
        if self.cell.startswith("RNN"):
            return (torch.tanh(pre) if self.cell == "RNN_TANH" else torch.relu(pre)), None
        H = self.hidden_size
        order = self.gate_order if self.gate_order and (1 if sfx else 0) in self.buggy_directions else "ifgo"
        blocks = dict(zip(order, pre.split(H, dim=1), strict=True))
        i, f, o = (self._sigmoid(g)(blocks[g]) for g in "ifo")
        g = torch.tanh(blocks["g"])
        c = f * c + i * g
        w_hr = self._w(layer, sfx, "weight_hr")
        if self.proj_on_c and w_hr is not None:
            return (o @ w_hr.T) * torch.tanh(c @ w_hr.T), c
        h = o * (c if self.no_cell_tanh else torch.tanh(c))
        return (h @ w_hr.T if w_hr is not None else h), c

    def forward(self, input, hx=None, *, lengths=None, dropout_masks=None):
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
        T, B = x.shape[:2]
        D, P, H = 2 if self.bidirectional else 1, self.proj_size or self.hidden_size, self.hidden_size
        lstm = self.cell == "LSTM"
        if hx is None:
            z = torch.zeros(self.num_layers * D, B, P, dtype=x.dtype, device=x.device)
            hx = (z, torch.zeros(self.num_layers * D, B, H, dtype=x.dtype, device=x.device)) if lstm else z
        h0, c0 = (hx if lstm else (hx, None))
        lengths = torch.full((B,), T) if lengths is None else torch.as_tensor(lengths)
        steps = torch.arange(T)[:, None]  # (T, 1)
        valid = (steps < lengths[None, :]).to(x.dtype)[..., None]  # (T, B, 1)
        late = (steps <= lengths[None, :]).to(x.dtype)[..., None] if self.reverse_off_by_one else valid
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d, sfx in enumerate(["", "_reverse"][:D]):
                idx = layer * D + d
                h, c = h0[idx], (c0[idx] if lstm else None)
                out = [None] * T
                for t in (range(T - 1, -1, -1) if d else range(T)):
                    m = late[t] if d else valid[t]  # padded rows keep their state
                    if d and self.detached_reverse:
                        h = h.detach()
                    h_new, c_new = self._step(x[t], h, c, layer, sfx)
                    h = m * h_new + (1 - m) * h
                    c = m * c_new + (1 - m) * c if lstm else None
                    out[t] = h * valid[t]
                outs.append(torch.stack(out))
                h_n.append(h)
                c_n.append(c)
            x = torch.cat(outs, dim=-1)  # (T, B, D*P)
            if dropout_masks is not None and layer < self.num_layers - 1:
                mask = dropout_masks[layer]
                mask = mask.transpose(0, 1) if self.batch_first else mask
                scale = (1 - self.dropout) if self.dropout_scale_bug else 1 / (1 - self.dropout)
                x = x * mask * scale
        output = x.transpose(0, 1) if self.batch_first else x
        h_n = torch.stack(h_n)
        return output, ((h_n, torch.stack(c_n)) if lstm else h_n)


class _SigmoidWithoutOneMinus(torch.autograd.Function):
    """sigmoid, whose backward returns dy * s instead of dy * s * (1 - s)."""

    @staticmethod
    def forward(ctx, a):
        s = torch.sigmoid(a)
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, dy):
        (s,) = ctx.saved_tensors
        return dy * s


class HandLSTM(HandRNN):
    MODE = "LSTM"


class HandGRU(HandRNN):
    MODE = "GRU"


class HandRNNTanh(HandRNN):
    MODE = "RNN_TANH"


class SwappedGatesLSTM(HandLSTM):
    """Reads the gate rows as f, i, g, o (torch's order is i, f, g, o)."""

    gate_order = "figo"


class ReverseSwappedGatesLSTM(HandLSTM):
    """Reads the gate rows as i, f, o, g in the reverse direction only."""

    gate_order = "ifog"
    buggy_directions = (1,)


class SwappedGatesGRU(HandGRU):
    """Reads the rows as z, r, n (a port from Keras's z, r, h order without reordering)."""

    gate_order = "zrn"


class PaperResetGRU(HandGRU):
    """The reset gate in the paper's position: W_hn (r * h) instead of r * (W_hn h + b_hn)."""

    paper_reset = True


class MergedBiasGRU(HandGRU):
    """One merged bias b_ih + b_hh added outside the reset product (b_hn escapes r)."""

    merged_bias = True


class NoCellTanhLSTM(HandLSTM):
    """h = o * c: the tanh on the cell output is missing."""

    no_cell_tanh = True


class ProjOnCellLSTM(HandLSTM):
    """The projection applied to o and to c before the tanh: h = (W_hr o) * tanh(W_hr c)."""

    proj_on_c = True


class ReverseOffByOneLSTM(HandLSTM):
    """With lengths, the reverse direction starts at t = length (a padding step), one step too late."""

    reverse_off_by_one = True


class NoBiasIhLSTM(HandLSTM):
    """Drops bias_ih: the pre-activation is W_ih x + W_hh h + b_hh."""

    no_bias_ih = True


class NoBiasIhGRU(HandGRU):
    """Drops bias_ih."""

    no_bias_ih = True


class TanhResetGRU(HandGRU):
    """The reset gate through tanh instead of sigmoid."""

    reset_tanh = True


class WrongUpdateGradGRU(HandGRU):
    """Backward only: the update gate's sigmoid derivative misses its (1 - z) factor."""

    wrong_sigmoid_grad = "z"


class WrongForgetGradLSTM(HandLSTM):
    """Backward only: the forget gate's sigmoid derivative misses its (1 - f) factor."""

    wrong_sigmoid_grad = "f"


class DetachedReverseLSTM(HandLSTM):
    """Backward only: the reverse direction detaches its carry (no gradient to earlier states)."""

    detached_reverse = True


class MyLSTM(HandLSTM):
    """A user's class as the README's CLI example has it: no .mode attribute."""

    expose_mode = False


class DropoutScaleLSTM(HandLSTM):
    """Scales kept units by (1 - p) instead of 1 / (1 - p)."""

    dropout_scale_bug = True


# -- a NumPy candidate behind the function protocol, in the i, f, o, g layout ---------------------


def numpy_lstm(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None,
               forget_carry_bug=False):
    """One-layer unidirectional LSTM in NumPy with its own BPTT, weights in the "ifog" layout
    (``{"l0": {"Wx": (I, 4H), "Wh": (H, 4H), "b": (4H,)}}``, gates i, f, o, g: CS231n's
    convention). ``forget_carry_bug`` drops the forget gate from the cell-state carry in backward."""
    if spec.mode != "LSTM" or spec.num_layers != 1 or spec.bidirectional or spec.proj_size or lengths is not None:
        raise NotImplementedError("numpy_lstm: one layer, one direction, no projection, no lengths")
    w = params["l0"]
    Wx, Wh, b = w["Wx"], w["Wh"], w["b"]
    H = Wh.shape[0]
    sig = lambda a: 1 / (1 + np.exp(-a))
    h, c = hx[0][0], hx[1][0]
    cache, outs = [], []
    for x_t in input:
        a = x_t @ Wx + h @ Wh + b  # (B, 4H)
        i, f, o, g = sig(a[:, :H]), sig(a[:, H:2 * H]), sig(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        cache.append((x_t, h, c, i, f, o, g, np.tanh(c_new)))
        h, c = h_new, c_new
        outs.append(h)
    res = {"output": np.stack(outs), "hidden": (h[None], c[None])}
    if grad_output is None:
        return res
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dx = np.zeros_like(input)
    dh, dc = grad_hidden[0][0].copy(), grad_hidden[1][0].copy()
    for t in reversed(range(len(cache))):
        x_t, h_prev, c_prev, i, f, o, g, tc = cache[t]
        dh = dh + grad_output[t]
        do = dh * tc
        dc = dc + dh * o * (1 - tc ** 2)
        di, df, dg = dc * g, dc * c_prev, dc * i
        da = np.concatenate([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)], axis=1)
        dx[t] = da @ Wx.T
        dWx += x_t.T @ da
        dWh += h_prev.T @ da
        db += da.sum(0)
        dh = da @ Wh.T
        dc = dc if forget_carry_bug else dc * f
    res.update({"input": dx, "hx": (dh[None], dc[None]), "l0": {"Wx": dWx, "Wh": dWh, "b": db}})
    return res


def numpy_lstm_forget_carry_bug(spec, params, input, hx, grad_output, grad_hidden, **kw):
    return numpy_lstm(spec, params, input, hx, grad_output, grad_hidden, forget_carry_bug=True, **kw)


def factory(input_size, hidden_size, **kwargs):
    """For the CLI tests: ``--candidate parity_tests.broken_candidates:factory`` (a correct LSTM)."""
    return HandLSTM(input_size, hidden_size, **kwargs).double()


def broken_factory(input_size, hidden_size, **kwargs):
    """For the CLI tests: an LSTM with its i and f rows swapped."""
    return SwappedGatesLSTM(input_size, hidden_size, **kwargs).double()


def numpy_factory(input_size, hidden_size, **kwargs):
    """For the CLI tests (--layout ifog): the NumPy function candidate."""
    return numpy_lstm


class FixedLengthSwappedLSTM(SwappedGatesLSTM):
    """Swapped gates, and runs only sequences of 6 steps (like a model exported at one shape)."""

    def forward(self, input, hx=None, **kwargs):
        if input.shape[1 if self.batch_first else 0] != 6:
            raise RuntimeError("this model was exported for 6 steps only")
        return super().forward(input, hx, **kwargs)


def fixed_length_broken_factory(input_size, hidden_size, **kwargs):
    """For the CLI tests: localisation cannot pose its T=1 steps."""
    return FixedLengthSwappedLSTM(input_size, hidden_size, **kwargs).double()
