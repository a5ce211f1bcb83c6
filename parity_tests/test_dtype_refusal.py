"""A module given an array of another floating dtype refuses it, as torch's does.

torch refuses an input (or h) whose dtype is not the module's ("input dtype (torch.float64)
does not match weight dtype (torch.float32). Convert input: ..., or convert model: ...")
instead of computing in the module's dtype silently: for someone checking gradients, a
float64 input to a float32 module would lose precision without a word. Each case below runs
the same call on torch.nn and on the reference and asserts that one refuses exactly when the
other does. The few places where the reference decides otherwise, on purpose, are listed
with their reason in ``DELIBERATE``, and held too.

Shapes: T time, B batch, I input, H hidden.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

import reference

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence

T, B, I, H = 5, 2, 3, 4
LAYERS = {"LSTM": (reference.LSTM, torch.nn.LSTM), "GRU": (reference.GRU, torch.nn.GRU),
          "RNN": (reference.RNN, torch.nn.RNN)}
CELLS = {"LSTMCell": (reference.LSTMCell, torch.nn.LSTMCell), "GRUCell": (reference.GRUCell, torch.nn.GRUCell),
         "RNNCell": (reference.RNNCell, torch.nn.RNNCell)}
F16, F32, F64 = "float16", "float32", "float64"


class Case(NamedTuple):
    name: str
    module: str  # a key of LAYERS or CELLS
    dtype: str  # the module's
    input: str = ""  # the input's dtype ("" = the module's)
    h: str = ""  # h0's dtype ("" = hx not given)
    c: str = ""  # c0's dtype (LSTM, LSTMCell)
    lengths: str = ""  # lengths' dtype ("" = none): packed input for torch
    unbatched: bool = False
    batch_first: bool = False


CASES = [
    *(Case(f"{m}-input-{x}-into-{d}", m, d, input=x) for m in (*LAYERS, *CELLS)
      for d, x in ((F32, F64), (F64, F32), (F32, F16))),
    *(Case(f"{m}-input-{d}-into-{d}", m, d) for m in (*LAYERS, *CELLS) for d in (F32, F64)),
    *(Case(f"{m}-h-{x}-into-{d}", m, d, h=x) for m in (*LAYERS, *CELLS) for d, x in ((F32, F64), (F64, F32))),
    *(Case(f"{m}-unbatched-input-{F64}", m, F32, input=F64, unbatched=True) for m in (*LAYERS, *CELLS)),
    *(Case(f"{m}-unbatched-h-{F64}", m, F32, h=F64, unbatched=True) for m in (*LAYERS, *CELLS)),
    *(Case(f"{m}-batch-first-input-{F64}", m, F32, input=F64, batch_first=True) for m in LAYERS),
    *(Case(f"{m}-packed-input-{F64}", m, F32, input=F64, lengths="int64") for m in LAYERS),
    *(Case(f"{m}-packed-h-{F64}", m, F32, h=F64, lengths="int64") for m in LAYERS),
    *(Case(f"{m}-lengths-{k}", m, F32, lengths=k) for m in LAYERS for k in ("int64", "int32", "uint8")),
    # LSTM's c: torch widens a narrower one (exactly) and refuses a wider one in a layer
    Case("LSTM-c-float64-into-float32", "LSTM", F32, h=F32, c=F64),
    Case("LSTM-c-float32-into-float64", "LSTM", F64, h=F64, c=F32),
    Case("LSTM-c-float16-into-float64", "LSTM", F64, h=F64, c=F16),
    Case("LSTMCell-c-float32-into-float64", "LSTMCell", F64, h=F64, c=F32),
    Case("LSTMCell-c-float16-into-float32", "LSTMCell", F32, h=F32, c=F16),
]

# Where the reference refuses what torch accepts, or the other way, on purpose.
DELIBERATE = {
    # torch computes the step in float64 and returns float64 states; the reference computes in
    # its own dtype only, and rounding c down would lose precision without a word.
    Case("LSTMCell-c-float64-into-float32", "LSTMCell", F32, h=F32, c=F64): "reference refuses",
    # torch's oneDNN LSTM refuses a float16 c in a float32 layer; its own kernel (oneDNN off)
    # and its LSTMCell widen it exactly, as the reference does.
    Case("LSTM-c-float16-into-float32", "LSTM", F32, h=F32, c=F16): "reference accepts",
    # torch truncates float lengths (3.5 -> 3) and reads True as 1; the reference asks for integers.
    Case("RNN-lengths-float64", "RNN", F32, lengths="float64"): "reference refuses",
    Case("RNN-lengths-bool", "RNN", F32, lengths="bool"): "reference refuses",
}


def _arrays(case: Case) -> dict:
    """The call's arrays, as NumPy, in the case's dtypes (batch-major where batch_first)."""
    rng = np.random.default_rng(0)
    is_cell = case.module in CELLS
    x_shape = (I,) if is_cell and case.unbatched else (B, I) if is_cell else (T, I) if case.unbatched \
        else (B, T, I) if case.batch_first else (T, B, I)
    h_shape = (H,) if is_cell and case.unbatched else (B, H) if is_cell else (1, H) if case.unbatched else (1, B, H)
    out = {"input": rng.uniform(-1, 1, x_shape).astype(case.input or case.dtype)}
    if case.h or case.c:
        out["h"] = rng.uniform(-1, 1, h_shape).astype(case.h or case.dtype)
        if case.module.startswith("LSTM"):
            out["c"] = rng.uniform(-1, 1, h_shape).astype(case.c or case.dtype)
    if case.lengths:
        out["lengths"] = np.array([T, 3]).astype(case.lengths) if case.lengths != "bool" else np.array([True, True])
    return out


def _hx(case: Case, h, c):
    if h is None:
        return None
    return (h, c) if case.module.startswith("LSTM") else h


def torch_refuses(case: Case) -> bool:
    a = _arrays(case)
    make = (CELLS if case.module in CELLS else LAYERS)[case.module][1]
    kw = {"batch_first": True} if case.batch_first else {}
    m = make(I, H, **kw).to(getattr(torch, case.dtype))
    t = {k: torch.from_numpy(v) for k, v in a.items()}
    x = t["input"]
    if "lengths" in t:
        x = pack_padded_sequence(x, t["lengths"], batch_first=case.batch_first, enforce_sorted=False)
    try:
        with torch.no_grad():
            m(x, _hx(case, t.get("h"), t.get("c")))
    except (RuntimeError, ValueError, TypeError):
        return True
    return False


def reference_refuses(case: Case, library: str = "numpy") -> bool:
    a = _arrays(case)
    make = (CELLS if case.module in CELLS else LAYERS)[case.module][0]
    kw = {"batch_first": True} if case.batch_first else {}
    m = make(I, H, dtype=np.dtype(case.dtype), seed=0, **kw)
    if library == "torch":
        a = {k: v if k == "lengths" else torch.from_numpy(v) for k, v in a.items()}
    extra = {"lengths": a["lengths"]} if "lengths" in a else {}
    try:
        m.forward(a["input"], _hx(case, a.get("h"), a.get("c")), **extra)
    except TypeError as e:
        assert "dtype" in str(e) or "lengths" in str(e), e
        return True
    return False


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_reference_refuses_exactly_where_torch_does(case):
    expected = torch_refuses(case)
    assert reference_refuses(case) == expected, (f"{case.name}: torch {'refuses' if expected else 'accepts'} "
                                                 f"this call, the reference does not")
    assert reference_refuses(case, "torch") == expected, f"{case.name}, given torch tensors"


@pytest.mark.parametrize("case", list(DELIBERATE), ids=[c.name for c in DELIBERATE])
def test_the_deliberate_differences_from_torch_hold(case):
    refuses = DELIBERATE[case] == "reference refuses"
    assert torch_refuses(case) != refuses, f"{case.name}: torch now agrees with the reference; move it to CASES"
    assert reference_refuses(case) == refuses


def test_the_cases_include_refusals_and_acceptances():
    outcomes = [torch_refuses(c) for c in CASES]
    assert sum(outcomes) >= 30 and len(outcomes) - sum(outcomes) >= 15


@pytest.mark.parametrize("make", [lambda dt: reference.LSTM(I, H, dtype=dt), lambda dt: reference.GRUCell(I, H, dtype=dt)],
                         ids=["LSTM", "GRUCell"])
def test_the_refusal_names_both_dtypes_and_both_fixes(make):
    x = np.zeros((T, B, I) if isinstance(make(np.float32), reference.LSTM) else (B, I))
    with pytest.raises(TypeError) as e:
        make(np.float32).forward(x)
    assert str(e.value) == ("input: numpy dtype float64 does not match the module's dtype float32. Convert input: "
                            "input.astype(numpy.float32), or convert the module: module.astype(numpy.float64)")
    with pytest.raises(TypeError, match=r"torch dtype float32 .* module's dtype float64\. Convert input: "
                                        r"input\.to\(torch\.float64\), or convert the module: "
                                        r"module\.astype\(numpy\.float32\)"):
        make(np.float64).forward(torch.from_numpy(x.astype(np.float32)))
    with pytest.raises(TypeError, match=r"float16 .* Convert input: input\.astype\(numpy\.float32\) \(a module "
                                        r"computes in float32 or float64\)"):
        make(np.float32).forward(x.astype(np.float16))


def test_both_fixes_work():
    m = reference.LSTM(I, H, dtype=np.float32, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (T, B, I))  # float64
    out32 = m.forward(x.astype(np.float32))[0]
    out64 = m.astype(np.float64).forward(x)[0]
    assert out32.dtype == np.float32 and out64.dtype == np.float64
    np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=1e-6)


def test_lists_have_no_dtype_and_take_the_modules():
    """torch's modules take tensors only; the reference also takes lists (NumPy's way): a list
    has no dtype of its own, so it is converted to the module's, as torch.tensor(list) takes
    the default dtype."""
    x = np.random.default_rng(0).uniform(-1, 1, (T, B, I))
    for dtype in (np.float32, np.float64):
        m = reference.LSTM(I, H, dtype=dtype, seed=0)
        zeros = np.zeros((1, B, H)).tolist()
        out, (h_n, c_n), _ = m.forward(x.tolist(), (zeros, zeros))
        assert out.dtype == dtype and h_n.dtype == dtype and c_n.dtype == dtype
        np.testing.assert_array_equal(out, m.forward(x.astype(dtype))[0])


def test_gradients_of_another_dtype_are_cast_as_torch_casts_them():
    """torch's autograd takes an upstream gradient of another floating dtype and casts it; so does
    backward. Only what forward computes with must match."""
    out = torch.nn.GRU(I, H)(torch.zeros(T, B, I))[0]
    (g,) = torch.autograd.grad(out, [out], torch.ones(T, B, H, dtype=torch.float64))
    assert g.dtype == torch.float32
    m = reference.GRU(I, H, dtype=np.float32, seed=0)
    _, _, tape = m.forward(np.zeros((T, B, I), np.float32))
    grads = m.backward(tape, np.ones((T, B, H)), np.ones((1, B, H)))
    assert grads["input"].dtype == np.float32


def test_a_refused_call_changes_nothing():
    """A refused forward draws no dropout mask: the next call draws what a fresh module draws."""
    m, fresh = (reference.LSTM(I, H, num_layers=2, dropout=0.5, dtype=np.float32, seed=0) for _ in range(2))
    with pytest.raises(TypeError):
        m.forward(np.zeros((T, B, I)))
    x = np.zeros((T, B, I), np.float32)
    np.testing.assert_array_equal(m.forward(x)[2].dropout_masks[0], fresh.forward(x)[2].dropout_masks[0])
