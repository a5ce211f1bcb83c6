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
