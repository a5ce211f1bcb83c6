"""torch's own test inputs: every sample of torch's module tests, through the reference as a drop-in.

torch ships the sample inputs of its module tests (``torch.testing._internal.common_modules``:
the ``ModuleInfo`` entries of ``nn.RNN``, ``nn.GRU``, ``nn.LSTM`` and the three cells, each with
its constructor arguments and forward arguments, unbatched inputs, initial states, packed
sequences). Each sample runs twice beside the torch module it was written for:

* the reference module (``from_torch``: same configuration, training mode and weights) on the
  sample's tensors as NumPy arrays, a PackedSequence given as padded input and lengths;
* ``torch_impl.rnn_bptt`` (the core's hand-written backward as an autograd Function) on the
  sample's torch tensors, where torch.nn takes the same call (layers, not cells).

Outputs, final states and every gradient (input, each initial state, each parameter) must equal
torch's, per named tensor, within the tolerance table; cotangents are random, one per output.
An input torch accepts and the reference refuses fails here.
"""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from helpers import assert_close
from tolerances import tol
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from torch_impl import from_torch, module_config, rnn_bptt

EXPORT = Path(__file__).with_name("torch_samples.py")
CELLS = ("RNNCell", "GRUCell", "LSTMCell")
DTYPES = {"float64": torch.float64, "float32": torch.float32}

pytestmark = pytest.mark.skipif(importlib.util.find_spec("expecttest") is None,
                                reason="torch's module-test helpers need expecttest (in the test extra)")


class Sample(NamedTuple):
    id: str
    module: str  # torch.nn's class name
    dtype: str
    args: tuple
    kwargs: dict
    input: np.ndarray  # as the sample gives it; a PackedSequence as its (T, B, I) padded data
    lengths: np.ndarray | None  # the PackedSequence's lengths
    hx: tuple | None  # the initial states given, as arrays
    hx_pair: bool  # given as a pair (LSTM's (h_0, c_0))


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[Sample]:
    """torch's samples, exported by a process of its own (see torch_samples.py for why)."""
    out = tmp_path_factory.mktemp("torch_samples") / "samples.pkl"
    r = subprocess.run([sys.executable, str(EXPORT), str(out)], capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(out, "rb") as f:  # written just now by the line above
        return [Sample(**d) for d in pickle.load(f)]


def test_torch_gives_samples_of_every_module_and_form(samples):
    """The sweep covers what it claims: all six modules in both dtypes, packed, unbatched, states given."""
    assert {(s.module, s.dtype) for s in samples} == {(m, d) for m in ("RNN", "GRU", "LSTM", *CELLS) for d in DTYPES}
    assert any(s.lengths is not None for s in samples)
    assert any(s.input.ndim == 2 for s in samples if s.module not in CELLS)
    assert any(s.hx is not None and s.hx_pair for s in samples if s.module == "LSTM")
    assert len(samples) >= 250, len(samples)

def _module(s: Sample) -> torch.nn.Module:
    """The torch module the sample was written for, seeded, with non-zero random biases."""
    torch.manual_seed(sum(map(ord, s.id)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # oneDNN's note about projections
        m = getattr(torch.nn, s.module)(*s.args, **s.kwargs).to(DTYPES[s.dtype])
    with torch.no_grad():  # a zero bias cannot tell bias_ih from bias_hh
        for name, p in m.named_parameters():
            if name.startswith("bias"):
                p.uniform_(-0.5, 0.5)
    return m.train()  # torch's samples are the same in both modes (no dropout): see torch_samples.py


def _padded(s: Sample, batch_first: bool) -> np.ndarray:
    """The input as the module takes it padded: a PackedSequence's data in the module's layout."""
    return np.swapaxes(s.input, 0, 1).copy() if s.lengths is not None and batch_first else s.input


def _leaf(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, requires_grad=True)


class TorchRun(NamedTuple):
    outputs: dict[str, torch.Tensor]  # "output" (padded), "h_n", "c_n"; "h'", "c'" for cells
    grads: dict[str, torch.Tensor]  # "input", "hx[i]" where given, then the parameters
    cotangents: dict[str, np.ndarray]  # one random array per output


def _output_names(s: Sample) -> tuple[str, ...]:
    if s.module in CELLS:
        return ("h'", "c'") if s.module == "LSTMCell" else ("h'",)
    return ("output", "h_n", "c_n") if s.module == "LSTM" else ("output", "h_n")


def _torch_call(s: Sample, m: torch.nn.Module, x: torch.Tensor, hx: tuple | None, batch_first: bool) -> tuple:
    """Call torch.nn's module as the sample does (a PackedSequence packed from x); outputs padded."""
    inp = x if s.lengths is None else pack_padded_sequence(x, torch.from_numpy(s.lengths), batch_first=batch_first,
                                                           enforce_sorted=False)
    args = () if hx is None else (hx if s.hx_pair else hx[0],)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = m(inp, *args)
    return _flat_result(s, result, x.shape[1 if batch_first else 0], batch_first)


def _flat_result(s: Sample, result, T: int, batch_first: bool) -> tuple:
    if s.module in CELLS:
        return result if isinstance(result, tuple) else (result,)
    out, hidden = result
    if not isinstance(out, torch.Tensor):
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    return (out, *(hidden if isinstance(hidden, tuple) else (hidden,)))


def _vjp(outputs: dict[str, torch.Tensor], cot: dict[str, np.ndarray], leaves: dict[str, torch.Tensor]) -> dict:
    """<cotangent, output> differentiated by autograd: one gradient per leaf (zeros where unused)."""
    loss = sum((v * torch.from_numpy(cot[k])).sum() for k, v in outputs.items())
    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return {k: torch.zeros_like(v) if g is None else g for (k, v), g in zip(leaves.items(), grads, strict=True)}


def _torch_run(s: Sample, m: torch.nn.Module) -> TorchRun:
    """torch.nn on the sample, with one random cotangent per output; gradients by autograd."""
    batch_first = bool(getattr(m, "batch_first", False))
    x = _leaf(_padded(s, batch_first))
    hx = None if s.hx is None else tuple(_leaf(a) for a in s.hx)
    outputs = dict(zip(_output_names(s), _torch_call(s, m, x, hx, batch_first), strict=True))
    rng = np.random.default_rng(sum(map(ord, s.id)))
    cot = {k: rng.standard_normal(tuple(v.shape)).astype(s.input.dtype) for k, v in outputs.items()}
    leaves = {"input": x, **{f"hx[{i}]": t for i, t in enumerate(hx or ())}, **dict(m.named_parameters())}
    return TorchRun(outputs, _vjp(outputs, cot, leaves), cot)


def _reference_run(s: Sample, m: torch.nn.Module, cot: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """The reference module (``from_torch``) on NumPy arrays: outputs, and gradients for the same cotangents."""
    ref = from_torch(m)
    hx = None if s.hx is None else (s.hx if s.hx_pair else s.hx[0])
    if s.module in CELLS:
        hidden, tape = ref.forward(s.input, hx)
        values = hidden if isinstance(hidden, tuple) else (hidden,)
        g = ref.backward(tape, tuple(cot.values()) if s.hx_pair or s.module == "LSTMCell" else cot["h'"])
    else:
        out, hidden, tape = ref.forward(_padded(s, ref.batch_first), hx, lengths=s.lengths)
        values = (out, *(hidden if isinstance(hidden, tuple) else (hidden,)))
        g = ref.backward(tape, cot["output"], (cot["h_n"], cot["c_n"]) if s.module == "LSTM" else cot["h_n"])
    hx_grads = g["hx"] if isinstance(g["hx"], tuple) else (g["hx"],)
    grads = {"input": g["input"], **{f"hx[{i}]": v for i, v in enumerate(hx_grads)},
             **{k: v for k, v in g.items() if k not in ("input", "hx")}}
    return dict(zip(cot, values, strict=True)), grads


def _check_all(s: Sample, want: TorchRun, outputs: dict, grads: dict) -> None:
    """Every output and every gradient torch returned, per named tensor, in the table's tolerance."""
    for name, value in want.outputs.items():
        assert_close(f"{s.id} {name}", outputs[name], value, *tol(s.dtype, "cpu", "forward"))
    for name, value in want.grads.items():
        assert_close(f"{s.id} d{name}", grads[name], value, *tol(s.dtype, "cpu", "gradient"))


@pytest.mark.parametrize("module", ["RNN", "GRU", "LSTM", *CELLS])
def test_every_torch_sample_through_the_reference_module(samples, module):
    """The NumPy reference, given what torch's module tests give torch.nn, returns what torch.nn returns."""
    for s in (s for s in samples if s.module == module):
        m = _module(s)
        want = _torch_run(s, m)
        _check_all(s, want, *_reference_run(s, m, want.cotangents))


@pytest.mark.parametrize("module", ["RNN", "GRU", "LSTM"])
def test_every_torch_layer_sample_through_the_bptt_function(samples, module):
    """torch_impl.rnn_bptt takes torch.nn's call on torch tensors: torch's results, the core's backward."""
    for s in (s for s in samples if s.module == module):
        m = _module(s)
        want = _torch_run(s, m)
        kwargs = module_config(m)
        x = _leaf(_padded(s, kwargs["batch_first"]))
        hx = None if s.hx is None else tuple(_leaf(a) for a in s.hx)
        params = {k: v.detach().clone().requires_grad_(True) for k, v in m.named_parameters()}
        lengths = None if s.lengths is None else torch.from_numpy(s.lengths)
        result = rnn_bptt(m.mode, x, None if hx is None else hx if s.hx_pair else hx[0], params, lengths=lengths,
                          **kwargs)  # padded input and lengths: torch.nn's pack -> module -> unpack
        outputs = dict(zip(_output_names(s), _flat_result(s, result, 0, kwargs["batch_first"]), strict=True))
        leaves = {"input": x, **{f"hx[{i}]": t for i, t in enumerate(hx or ())}, **params}
        _check_all(s, want, outputs, _vjp(outputs, want.cotangents, leaves))


def test_a_wrong_result_fails_the_check(samples):
    """The comparison can fail: one parameter gradient off by 1e-6 relative is caught and named."""
    s = next(s for s in samples if s.module == "LSTM" and s.dtype == "float64" and s.hx is not None)
    m = _module(s)
    want = _torch_run(s, m)
    outputs, grads = _reference_run(s, m, want.cotangents)
    grads["weight_hh_l1"] = grads["weight_hh_l1"] * (1 + 1e-6)
    with pytest.raises(AssertionError, match="dweight_hh_l1"):
        _check_all(s, want, outputs, grads)
