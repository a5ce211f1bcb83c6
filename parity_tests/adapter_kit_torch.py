"""The conformance kit's builders for torch modules and for the function protocol (see adapter_kit.py).

A planted bug lives in :class:`KitLSTM`, torch's equations written out (``broken_candidates.HandLSTM``),
in gate f of the layer whose input has ``bug_width`` features and of direction ``bug_direction``, so it
travels with the one-layer modules localisation rebuilds from the class. The function protocol runs the
same modules behind ``fn(spec, params, input, hx, grad_output, grad_hidden, *, lengths, dropout_masks)``,
gradients by ``torch.autograd``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from adapter_kit import CASES, SCALE, VALUE, Expect, H, I, Skip, keywords
from broken_candidates import HandGRU, HandLSTM
from torch import nn

from reference.verify import Spec
from torch_impl import load_into


class KitLSTM(HandLSTM):
    """HandLSTM with one bug in gate f (None: correct): "preact", its pre-activation scaled by 1.25; "grad", its
    gradient stopped (forward exact); "value", its pre-activation + 0.5 where input feature 0 is VALUE."""

    bug: str | None = None
    bug_width, bug_direction = I, 0

    def _step(self, x, h, c, layer, sfx):
        if self.bug is None or x.shape[-1] != self.bug_width or (1 if sfx else 0) != self.bug_direction:
            return super()._step(x, h, c, layer, sfx)
        w = {n: self._w(layer, sfx, n) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        pre = x @ w["weight_ih"].T + w["bias_ih"] + h @ w["weight_hh"].T + w["bias_hh"]  # (B, 4H)
        i, f, g, o = pre.split(self.hidden_size, dim=1)
        if self.bug == "preact":
            f = 1.25 * f
        if self.bug == "value":
            f = f + 0.5 * (x[:, :1] == VALUE).to(f.dtype)
        f = torch.sigmoid(f)
        if self.bug == "grad":
            f = f.detach()
        c = f * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def kit_class(bug: str | None = None, width: int = I, direction: int = 0) -> type:
    return type(f"KitLSTM_{bug}", (KitLSTM,), {"bug": bug, "bug_width": width, "bug_direction": direction})


class QuietLSTM(nn.LSTM):
    """A subclass whose forward is its own and the maths torch's: it counts its calls."""

    calls = 0

    def forward(self, input, hx=None):
        type(self).calls += 1
        return super().forward(input, hx)


class ScaledLSTM(nn.LSTM):
    """A subclass whose own forward scales the output by 1 + 1e-3 (h_n and c_n untouched)."""

    def forward(self, input, hx=None):
        output, hidden = super().forward(input, hx)
        if isinstance(output, nn.utils.rnn.PackedSequence):
            return output._replace(data=output.data * SCALE), hidden
        return output * SCALE, hidden


class LastStepCLSTM(nn.LSTM):
    """A subclass that returns c_n from the last step of the padded input, whatever each row's length."""

    def forward(self, input, hx=None):
        output, (h_n, c_n) = super().forward(input, hx)
        if isinstance(input, nn.utils.rnn.PackedSequence):
            padded, _ = nn.utils.rnn.pad_packed_sequence(input)
            _, (_, c_n) = super().forward(padded, hx)
        return output, (h_n, c_n)


def with_biases(m: nn.Module, seed: int = 0) -> nn.Module:
    """``m`` with every weight drawn at torch's scale and the biases non-zero (a zero bias hides where it goes)."""
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(m.hidden_size)
    load_into(m, {n: rng.uniform(-k, k, p.shape) for n, p in m.named_parameters()})
    return m


LOW_PRECISION_MATCH = Expect("MATCH")  # torch modules and functions are judged against the rounding envelope


class TorchKit:
    """torch modules: torch.nn, subclasses of it, and KitLSTM for the planted gate bugs."""

    def expect(self, case: str) -> Expect:
        return LOW_PRECISION_MATCH if case in ("bfloat16", "float16") else CASES[case]

    def module(self, case: str) -> nn.Module:
        kw: dict[str, Any] = {}
        if case == "reverse":
            raise Skip("torch.nn has no layer of one reverse direction")
        if case == "GRU paper form":
            raise Skip("torch.nn.GRU has only torch's form (reset after W_hn)")
        if case == "an option the reference lacks":
            raise Skip("every option of torch.nn's recurrent modules is one the reference has")
        cls: Any = {"subclass, same maths": QuietLSTM, "subclass scales the output": ScaledLSTM,
                    "subclass c_n from the last step": LastStepCLSTM, "GRU torch form": nn.GRU}.get(case, nn.LSTM)
        if case in ("layer 1 gate f", "two layers"):
            kw["num_layers"] = 2
        if case in ("bidirectional", "reverse direction gate f"):
            kw["bidirectional"] = True
        bug = {"layer 1 gate f": "preact", "gradient of gate f stopped": "grad", "reverse direction gate f": "preact",
               "gate f on one input value": "value"}.get(case)
        if bug is not None:
            width = H if case == "layer 1 gate f" else I
            cls = kit_class(bug, width, 1 if case == "reverse direction gate f" else 0)
        m = with_biases(cls(I, H, **kw))
        dtype = {"float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(case)
        return m.to(dtype) if dtype is not None else m

    def build(self, case: str):
        return self.module(case), keywords(case)


def as_function(cls: type, dtype: torch.dtype):
    """A CandidateFn running class ``cls`` built for each Spec, on the params given, gradients by autograd."""

    def fn(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        m = cls(spec.input_size, spec.hidden_size, **spec.torch_kwargs()).to(dtype)
        load_into(m, params)
        tensor = lambda a: torch.tensor(np.asarray(a), dtype=dtype, requires_grad=True)
        x, states = tensor(input), tuple(tensor(h) for h in hx)
        kw = {} if lengths is None else {"lengths": torch.as_tensor(lengths)}
        out, hidden = m(x, states if spec.lstm else states[0], **kw)
        hidden = tuple(hidden) if spec.lstm else (hidden,)
        res: dict[str, Any] = {"output": out.detach().numpy(), "hidden": tuple(h.detach().numpy() for h in hidden)}
        if grad_output is None and grad_hidden is None:
            return res
        pairs = [(t, g) for t, g in zip((out, *hidden), (grad_output, *(grad_hidden or ())), strict=False)
                 if g is not None]
        named = dict(m.named_parameters())
        grads = torch.autograd.grad([t for t, _ in pairs], [x, *states, *named.values()],
                                    [torch.as_tensor(np.asarray(g), dtype=dtype) for _, g in pairs],
                                    allow_unused=True)
        zero = lambda g, t: (torch.zeros_like(t) if g is None else g).numpy()
        res["input"] = zero(grads[0], x)
        res["hx"] = tuple(zero(g, s) for g, s in zip(grads[1:1 + len(states)], states, strict=True))
        res.update((n, zero(g, p)) for (n, p), g in zip(named.items(), grads[1 + len(states):], strict=True))
        return res

    return fn


class FunctionKit:
    """The function protocol: explicit torch equations (HandLSTM, HandGRU, KitLSTM) behind a function, checked
    against a Spec on drawn weights."""

    def expect(self, case: str) -> Expect:
        return LOW_PRECISION_MATCH if case in ("bfloat16", "float16") else CASES[case]

    def build(self, case: str):
        if case == "subclass, same maths":
            raise Skip("a function has no class of its own to subclass; its code is what runs")
        if case in ("subclass scales the output", "subclass c_n from the last step"):  # the same bugs, in a function
            fn = as_function(KitLSTM, torch.float32)
            planted = scaled(fn) if case == "subclass scales the output" else c_n_from_the_last_step(fn)
            return planted, keywords(case, reference_module=Spec("LSTM", I, H), weights="draw", dtype="float32")
        if case == "an option the reference lacks":
            raise Skip("a function runs whatever configuration it is given")
        spec = Spec("GRU" if case.startswith("GRU") else "LSTM", I, H,
                    num_layers=2 if case in ("layer 1 gate f", "two layers") else 1,
                    bidirectional=case in ("bidirectional", "reverse direction gate f"), reverse=case == "reverse",
                    reset_after=case != "GRU paper form")
        bug = {"layer 1 gate f": "preact", "gradient of gate f stopped": "grad", "reverse direction gate f": "preact",
               "gate f on one input value": "value"}.get(case)
        cls = {"reverse": ReverseLSTM, "GRU torch form": HandGRU, "GRU paper form": PaperGRU}.get(case) or \
            kit_class(bug, H if case == "layer 1 gate f" else I, 1 if case == "reverse direction gate f" else 0)
        dtype = "float64" if case == "float64" else case if case in ("bfloat16", "float16") else "float32"
        fn = as_function(cls, torch.float64 if dtype == "float64" else torch.float32)
        return fn, keywords(case, reference_module=spec, weights="draw", dtype=dtype)


def scaled(fn):
    """``fn`` whose output is scaled by 1 + 1e-3 (its gradients those of the scaled output)."""
    def planted(spec, params, input, hx, grad_output, grad_hidden, **kw):
        res = dict(fn(spec, params, input, hx, None if grad_output is None else grad_output * SCALE, grad_hidden,
                      **kw))
        res["output"] = res["output"] * SCALE
        return res

    return planted


def c_n_from_the_last_step(fn):
    """``fn`` whose c_n is the state after the last step of the padded input, whatever each row's length."""
    def planted(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, **kw):
        res = dict(fn(spec, params, input, hx, grad_output, grad_hidden, lengths=lengths, **kw))
        whole = fn(spec, params, input, hx, None, None, lengths=None, **kw)
        res["hidden"] = (res["hidden"][0], whole["hidden"][1])
        return res

    return planted


class PaperGRU(HandGRU):
    """HandGRU in the paper's form: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)."""

    paper_reset = True


class ReverseLSTM(KitLSTM):
    """One direction that runs from the last step: the bidirectional module's reverse half alone."""

    def forward(self, input, hx=None, *, lengths=None, dropout_masks=None):
        flipped = torch.flip(input, dims=[0]) if lengths is None else _flip_valid(input, lengths)
        out, hidden = super().forward(flipped, hx, lengths=lengths)
        return (torch.flip(out, dims=[0]) if lengths is None else _flip_valid(out, lengths)), hidden


def _flip_valid(x, lengths):
    """Each row's valid steps reversed, padding left in place."""
    idx = torch.stack([torch.cat([torch.arange(int(n) - 1, -1, -1), torch.arange(int(n), x.shape[0])])
                       for n in lengths], dim=1)  # (T, B)
    return torch.gather(x, 0, idx[..., None].expand_as(x))
