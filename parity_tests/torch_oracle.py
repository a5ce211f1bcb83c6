"""Run torch.nn on a configuration, the same way the reference is run.

Everything here is the *desired* side of a comparison: torch's modules, torch's
autograd, torch's packing. Results come back as NumPy arrays in a dict keyed like
the reference's backward ("input", "hx", parameter names) plus "output" and
"hidden".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from torch_impl import to_torch


def _leaf(a: np.ndarray, dtype, device) -> torch.Tensor:
    return torch.tensor(a, dtype=dtype, device=device, requires_grad=True)


def _tuple(v: Any) -> tuple:
    return v if isinstance(v, tuple) else (v,)


def run_cell(ref_cell, x, hx, cotangent, device: str = "cpu") -> dict[str, Any]:
    m = to_torch(ref_cell, device)
    dtype = next(m.parameters()).dtype
    xt = _leaf(x, dtype, device)
    if hx is None:  # torch's default, but we still want its gradient: pass explicit zeros
        lead = x.shape[:-1]
        hx = tuple(np.zeros(lead + (ref_cell.hidden_size,)) for _ in range(2)) if type(ref_cell).__name__ == "LSTMCell" \
            else np.zeros(lead + (ref_cell.hidden_size,))
    hxt = tuple(_leaf(h, dtype, device) for h in _tuple(hx))
    out = m(xt, hxt if len(hxt) == 2 else hxt[0])
    outs = _tuple(out)
    torch.autograd.backward(outs, [torch.tensor(c, dtype=dtype, device=device) for c in _tuple(cotangent)])
    res = {"hidden": tuple(o.detach() for o in outs) if len(outs) == 2 else outs[0].detach(),
           "input": xt.grad, "hx": tuple(h.grad for h in hxt) if len(hxt) == 2 else hxt[0].grad}
    res.update({n: p.grad for n, p in m.named_parameters()})
    return res


def run_layer(ref_module, x, hx, lengths, grad_output, grad_hidden, device: str = "cpu") -> dict[str, Any]:
    m = to_torch(ref_module, device)
    dtype = next(m.parameters()).dtype
    lstm = type(ref_module).__name__ == "LSTM"
    batched = x.ndim == 3
    if hx is None:
        DL = ref_module.num_layers * ref_module.num_directions
        B = (x.shape[0] if ref_module.batch_first else x.shape[1]) if batched else None
        lead = (DL, B) if batched else (DL,)
        h0 = np.zeros(lead + (ref_module.output_size,))
        hx = (h0, np.zeros(lead + (ref_module.hidden_size,))) if lstm else h0
    xt = _leaf(x, dtype, device)
    hxt = tuple(_leaf(h, dtype, device) for h in _tuple(hx))
    hx_arg = hxt if lstm else hxt[0]
    if lengths is not None:
        T = x.shape[1] if ref_module.batch_first else x.shape[0]
        packed = pack_padded_sequence(xt, torch.as_tensor(lengths), batch_first=ref_module.batch_first,
                                      enforce_sorted=False)
        out_packed, hidden = m(packed, hx_arg)
        out, _ = pad_packed_sequence(out_packed, batch_first=ref_module.batch_first, total_length=T)
    else:
        out, hidden = m(xt, hx_arg)
    hid = _tuple(hidden)
    torch.autograd.backward([out, *hid], [torch.tensor(g, dtype=dtype, device=device)
                                          for g in (grad_output, *_tuple(grad_hidden))])
    res = {"output": out.detach(), "hidden": tuple(h.detach() for h in hid) if lstm else hid[0].detach(),
           "input": xt.grad, "hx": tuple(h.grad for h in hxt) if lstm else hxt[0].grad}
    res.update({n: p.grad for n, p in m.named_parameters()})
    return res


def paper_gru(x, h0, params: dict, num_layers: int, bidirectional: bool, lengths=None):
    """The paper's GRU, n = tanh(W_in x + b_in + W_hn (r * h) + b_hn), in explicit torch ops:
    the independent oracle for ``reference.GRU(reset_after=False)`` (torch.nn has no such GRU).

    x (T, B, I) and h0 (L*D, B, H) tensors, params keyed like torch's GRU; lengths B ints or None.
    Written step by step, plainly, with its own loop; differentiated by autograd.
    """
    T = x.shape[0]
    D = 2 if bidirectional else 1
    valid = None if lengths is None else (torch.arange(T)[:, None] < torch.as_tensor(lengths)[None, :])[..., None]
    finals, inp = [], x
    for layer in range(num_layers):
        outs = []
        for d, sfx in enumerate(["", "_reverse"][:D]):
            k = f"l{layer}{sfx}"
            w_ih, w_hh = params[f"weight_ih_{k}"], params[f"weight_hh_{k}"]
            b_ih, b_hh = params.get(f"bias_ih_{k}"), params.get(f"bias_hh_{k}")
            W_ir, W_iz, W_in = w_ih.chunk(3)
            W_hr, W_hz, W_hn = w_hh.chunk(3)
            zeros = torch.zeros(w_ih.shape[0], dtype=x.dtype)
            b_ir, b_iz, b_in = (b_ih if b_ih is not None else zeros).chunk(3)
            b_hr, b_hz, b_hn = (b_hh if b_hh is not None else zeros).chunk(3)
            h = h0[layer * D + d]
            out = [None] * T
            for t in (range(T - 1, -1, -1) if d == 1 else range(T)):
                xt = inp[t]
                r = torch.sigmoid(xt @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
                z = torch.sigmoid(xt @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
                n = torch.tanh(xt @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
                new = (1 - z) * n + z * h
                h = new if valid is None else torch.where(valid[t], new, h)
                out[t] = h if valid is None else torch.where(valid[t], h, torch.zeros_like(h))
            outs.append(torch.stack(out))
            finals.append(h)
        inp = torch.cat(outs, dim=-1)
    return inp, torch.stack(finals)
