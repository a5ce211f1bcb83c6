"""Bad input, edge cases and numeric hazards, one case table per entry point.

Every case states the exception the reference raises and the argument its
message must name. Where torch raises a ValueError for the same call, the
reference raises ValueError too (``test_*_agrees_with_torch``); where torch is
silent or raises something accidental (RuntimeError, IndexError,
AttributeError), the reference is stricter. The only deliberate departures are
wrong *types* (an int array, dropout=True), which are TypeError here and a
ValueError in torch; they are listed in ``TYPE_NOT_VALUE``.

On every error: the module's parameters, its generator and its training flag
are unchanged, and the caller's arrays are not written.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch_oracle import run_cell, run_layer

import reference
from reference.module import ParameterModule
from torch_impl import from_torch, load_into, to_torch

T, B, I, H, P = 5, 2, 3, 4, 2  # P: LSTM proj_size

# Calls torch answers with ValueError and the reference with TypeError, because the
# mistake is one of type (torch reports a dtype mismatch or a non-number as a value).
TYPE_NOT_VALUE = {"dropout-bool", "dropout-str", "input-int", "input-bool", "input-complex", "hx-int"}


class Case(NamedTuple):
    id: str
    call: Callable  # (module, data) -> kwargs, or for constructors () -> (args, kwargs)
    exc: type
    match: str  # the argument the message must name
    only: tuple = ()  # restrict to these modes / classes


def _case_params(cases, kinds):
    return [pytest.param(kind, c, id=f"{kind}-{c.id}") for kind in kinds for c in cases if not c.only or kind in c.only]


# -- helpers -------------------------------------------------------------------

def _layer(mode: str, dtype=np.float64):
    """Two layers, bidirectional, dropout in training mode: forward draws from the generator."""
    kw = dict(proj_size=P) if mode == "LSTM" else {}
    return getattr(reference, mode)(I, H, num_layers=2, bidirectional=True, dropout=0.5, dtype=dtype, seed=0, **kw)


def _layer_data(m) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    DL, Pm = m.num_layers * m.num_directions, m.output_size
    h, c = rng.uniform(-1, 1, (DL, B, Pm)), rng.uniform(-1, 1, (DL, B, H))
    return dict(x=rng.uniform(-1, 1, (T, B, I)), h=h, c=c, hx=(h, c) if m.mode == "LSTM" else h,
                go=rng.standard_normal((T, B, m.num_directions * Pm)), DL=DL, P=Pm)


def _cell(kind: str, dtype=np.float64):
    return getattr(reference, kind)(I, H, dtype=dtype, seed=0)


def _cell_data(m) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    h, c = rng.uniform(-1, 1, (B, H)), rng.uniform(-1, 1, (B, H))
    return dict(x=rng.uniform(-1, 1, (B, I)), h=h, c=c, hx=(h, c) if isinstance(m, reference.LSTMCell) else h)


def _snapshot(m) -> tuple:
    return m.state_dict(), copy.deepcopy(m._rng.bit_generator.state), getattr(m, "training", None)


def _assert_unchanged(m, snap) -> None:
    sd, rng, training = snap
    now = m.state_dict()
    assert list(now) == list(sd) and all(np.array_equal(now[k], sd[k]) for k in sd), "parameters changed"
    assert m._rng.bit_generator.state == rng, "generator state changed"
    assert getattr(m, "training", None) == training, "training flag changed"


def _copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if type(value) in (list, tuple):  # not tapes (NamedTuples): those are checked by identity of owner
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _assert_same(value, before) -> None:
    if isinstance(value, np.ndarray):
        assert value.dtype == before.dtype and np.array_equal(value, before, equal_nan=value.dtype.kind in "fc"), \
            "an input array was written"
    elif type(value) in (list, tuple):
        for v, b in zip(value, before, strict=True):
            _assert_same(v, b)
    elif isinstance(value, dict):
        for k in value:
            _assert_same(value[k], before[k])


def _raises_cleanly(m, fn: Callable, args: Any, exc: type, match: str) -> None:
    """fn(args) raises exc naming `match`, and neither m nor args changed."""
    snap, before = _snapshot(m), _copy(args)
    with pytest.raises(exc, match=match):
        fn(args)
    _assert_unchanged(m, snap)
    _assert_same(args, before)


def _torch_exception(fn: Callable) -> type | None:
    try:
        fn()
    except Exception as e:  # noqa: BLE001 -- any class: we only record which
        return type(e)
    return None


def _t(value):
    """numpy -> torch, keeping the dtype (so torch sees the same mistake)."""
    if isinstance(value, (tuple, list)):
        return type(value)(_t(v) for v in value)
    return torch.as_tensor(value) if isinstance(value, np.ndarray) else value


# -- constructors --------------------------------------------------------------

CTOR_CASES = [
    Case("input_size-zero", lambda: ((0, H), {}), ValueError, "input_size"),
    Case("input_size-negative", lambda: ((-3, H), {}), ValueError, "input_size"),
    Case("hidden_size-zero", lambda: ((I, 0), {}), ValueError, "hidden_size"),
    Case("hidden_size-negative", lambda: ((I, -1), {}), ValueError, "hidden_size"),
    Case("input_size-float", lambda: ((3.0, H), {}), TypeError, "input_size"),
    Case("hidden_size-str", lambda: ((I, "4"), {}), TypeError, "hidden_size"),
    Case("bias-int", lambda: ((I, H), dict(bias=1)), TypeError, "bias"),
    Case("bias-None", lambda: ((I, H), dict(bias=None)), TypeError, "bias"),
    Case("dtype-float16", lambda: ((I, H), dict(dtype=np.float16)), TypeError, "dtype"),
    Case("dtype-int", lambda: ((I, H), dict(dtype="int32")), TypeError, "dtype"),
    Case("dtype-torch-half", lambda: ((I, H), dict(dtype=torch.float16)), TypeError, "dtype"),
    Case("seed-negative", lambda: ((I, H), dict(seed=-1)), ValueError, "seed"),
    Case("seed-float", lambda: ((I, H), dict(seed=1.5)), TypeError, "seed"),
    Case("num_layers-zero", lambda: ((I, H), dict(num_layers=0)), ValueError, "num_layers", ("RNN", "GRU", "LSTM")),
    Case("num_layers-float", lambda: ((I, H), dict(num_layers=2.0)), TypeError, "num_layers", ("RNN", "GRU", "LSTM")),
    Case("dropout-negative", lambda: ((I, H), dict(dropout=-0.1)), ValueError, "dropout", ("RNN", "GRU", "LSTM")),
    Case("dropout-above-one", lambda: ((I, H), dict(dropout=1.5)), ValueError, "dropout", ("RNN", "GRU", "LSTM")),
    Case("dropout-nan", lambda: ((I, H), dict(dropout=float("nan"))), ValueError, "dropout", ("RNN", "GRU", "LSTM")),
    Case("dropout-bool", lambda: ((I, H), dict(dropout=True)), TypeError, "dropout", ("RNN", "GRU", "LSTM")),
    Case("dropout-str", lambda: ((I, H), dict(dropout="0.5")), TypeError, "dropout", ("RNN", "GRU", "LSTM")),
    Case("batch_first-int", lambda: ((I, H), dict(batch_first=1)), TypeError, "batch_first", ("RNN", "GRU", "LSTM")),
    Case("bidirectional-str", lambda: ((I, H), dict(bidirectional="yes")), TypeError, "bidirectional",
         ("RNN", "GRU", "LSTM")),
    Case("nonlinearity-unknown", lambda: ((I, H), dict(nonlinearity="sigmoid")), ValueError, "nonlinearity",
         ("RNN", "RNNCell")),
    Case("nonlinearity-not-str", lambda: ((I, H), dict(nonlinearity=None)), ValueError, "nonlinearity",
         ("RNN", "RNNCell")),
    Case("proj_size-equal-hidden", lambda: ((I, H), dict(proj_size=H)), ValueError, "proj_size", ("LSTM",)),
    Case("proj_size-above-hidden", lambda: ((I, H), dict(proj_size=H + 1)), ValueError, "proj_size", ("LSTM",)),
    Case("proj_size-negative", lambda: ((I, H), dict(proj_size=-1)), ValueError, "proj_size", ("LSTM",)),
    Case("proj_size-float", lambda: ((I, H), dict(proj_size=2.0)), TypeError, "proj_size", ("LSTM",)),
    Case("proj_size-not-lstm", lambda: ((I, H), dict(proj_size=2)), ValueError, "proj_size", ("RNN", "GRU")),
]
ALL_CLASSES = ("RNN", "GRU", "LSTM", "RNNCell", "GRUCell", "LSTMCell")


@pytest.mark.parametrize("cls,case", _case_params(CTOR_CASES, ALL_CLASSES))
def test_constructor_rejects(cls, case):
    args, kwargs = case.call()
    gen = np.random.default_rng(7)  # a caller's generator must not be drawn from by a failing constructor
    kwargs = {"seed": gen, **kwargs}
    before = copy.deepcopy(gen.bit_generator.state)
    with pytest.raises(case.exc, match=case.match):
        getattr(reference, cls)(*args, **kwargs)
    assert gen.bit_generator.state == before


@pytest.mark.parametrize("cls,case", _case_params([c for c in CTOR_CASES if c.match not in ("seed", "dtype")],
                                                   ALL_CLASSES))
def test_constructor_agrees_with_torch(cls, case):
    args, kwargs = case.call()
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore", UserWarning)
        torch_exc = _torch_exception(lambda: getattr(torch.nn, cls)(*args, **kwargs))
    if torch_exc is ValueError and case.id not in TYPE_NOT_VALUE:
        assert case.exc is ValueError


def test_dropout_with_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        reference.GRU(I, H, dropout=0.5)


# -- layer forward -------------------------------------------------------------

def _swap(pair):
    return (pair[1], pair[0])


FORWARD_CASES = [
    Case("input-1d", lambda m, d: dict(input=d["x"][0, 0]), ValueError, "input"),
    Case("input-4d", lambda m, d: dict(input=d["x"][None]), ValueError, "input"),
    Case("input-0d", lambda m, d: dict(input=np.float64(1.0)), ValueError, "input"),
    Case("input-features", lambda m, d: dict(input=np.zeros((T, B, I + 1))), ValueError, "input"),
    Case("input-T0", lambda m, d: dict(input=np.zeros((0, B, I))), ValueError, "input"),
    Case("input-T0-unbatched", lambda m, d: dict(input=np.zeros((0, I))), ValueError, "input"),
    Case("input-int", lambda m, d: dict(input=np.ones((T, B, I), dtype=np.int64)), TypeError, "input"),
    Case("input-bool", lambda m, d: dict(input=np.ones((T, B, I), dtype=bool)), TypeError, "input"),
    Case("input-complex", lambda m, d: dict(input=d["x"] + 0j), TypeError, "input"),
    Case("input-object", lambda m, d: dict(input=np.array([[[None] * I] * B] * T)), TypeError, "input"),
    Case("input-ragged", lambda m, d: dict(input=[[1.0, 2.0], [3.0]]), ValueError, "input"),
    Case("input-str", lambda m, d: dict(input="abc"), TypeError, "input"),
    Case("hx-wrong-size", lambda m, d: dict(input=d["x"], hx=np.zeros((d["DL"], B, d["P"] + 1))), ValueError, "hx",
         ("RNN", "GRU")),
    Case("hx-wrong-batch", lambda m, d: dict(input=d["x"], hx=np.zeros((d["DL"], B + 1, d["P"]))), ValueError, "hx",
         ("RNN", "GRU")),
    Case("hx-wrong-layers", lambda m, d: dict(input=d["x"], hx=np.zeros((1, B, d["P"]))), ValueError, "hx",
         ("RNN", "GRU")),
    Case("hx-2d-batched", lambda m, d: dict(input=d["x"], hx=d["h"][:, 0]), ValueError, "hx", ("RNN", "GRU")),
    Case("hx-3d-unbatched", lambda m, d: dict(input=d["x"][:, 0], hx=d["h"]), ValueError, "hx", ("RNN", "GRU")),
    Case("hx-int", lambda m, d: dict(input=d["x"], hx=np.zeros(d["h"].shape, dtype=np.int32)), TypeError, "hx",
         ("RNN", "GRU")),
    Case("hx-pair", lambda m, d: dict(input=d["x"], hx=(d["h"], d["h"])), TypeError, "hx", ("RNN", "GRU")),
    Case("hx-not-pair", lambda m, d: dict(input=d["x"], hx=d["h"]), TypeError, "hx", ("LSTM",)),
    Case("hx-1-tuple", lambda m, d: dict(input=d["x"], hx=(d["h"],)), TypeError, "hx", ("LSTM",)),
    Case("hx-3-tuple", lambda m, d: dict(input=d["x"], hx=(d["h"], d["c"], d["c"])), TypeError, "hx", ("LSTM",)),
    Case("hx-c-None", lambda m, d: dict(input=d["x"], hx=(d["h"], None)), TypeError, "hx", ("LSTM",)),
    Case("hx-h-sized-H", lambda m, d: dict(input=d["x"], hx=(d["c"], d["c"])), ValueError, r"hx\[0\]", ("LSTM",)),
    Case("hx-c-sized-P", lambda m, d: dict(input=d["x"], hx=(d["h"], d["h"])), ValueError, r"hx\[1\]", ("LSTM",)),
    Case("hx-swapped", lambda m, d: dict(input=d["x"], hx=_swap(d["hx"])), ValueError, r"hx\[0\]", ("LSTM",)),
    Case("hx-c-wrong-batch", lambda m, d: dict(input=d["x"], hx=(d["h"], d["c"][:, :1])), ValueError, r"hx\[1\]",
         ("LSTM",)),
    Case("hx-2d-batched-lstm", lambda m, d: dict(input=d["x"], hx=(d["h"][:, 0], d["c"][:, 0])), ValueError,
         r"hx\[0\]", ("LSTM",)),
    Case("lengths-count", lambda m, d: dict(input=d["x"], lengths=[T, T, T]), ValueError, "lengths"),
    Case("lengths-zero", lambda m, d: dict(input=d["x"], lengths=[T, 0]), ValueError, "lengths"),
    Case("lengths-negative", lambda m, d: dict(input=d["x"], lengths=[T, -1]), ValueError, "lengths"),
    Case("lengths-above-T", lambda m, d: dict(input=d["x"], lengths=[T + 1, 2]), ValueError, "lengths"),
    Case("lengths-float", lambda m, d: dict(input=d["x"], lengths=[T, 2.5]), TypeError, "lengths"),
    Case("lengths-integral-float", lambda m, d: dict(input=d["x"], lengths=np.array([T, 2.0])), TypeError, "lengths"),
    Case("lengths-bool", lambda m, d: dict(input=d["x"], lengths=[True, True]), TypeError, "lengths"),
    Case("lengths-2d", lambda m, d: dict(input=d["x"], lengths=[[T, 2]]), ValueError, "lengths"),
    Case("lengths-scalar", lambda m, d: dict(input=d["x"], lengths=T), ValueError, "lengths"),
    Case("lengths-unbatched", lambda m, d: dict(input=d["x"][:, 0], lengths=[T]), ValueError, "lengths"),
    Case("masks-when-inactive", lambda m, d: dict(input=d["x"], dropout_masks=[np.ones((T, B, 2 * d["P"]))], _eval=1),
         ValueError, "dropout_masks"),
    Case("masks-count", lambda m, d: dict(input=d["x"], dropout_masks=[]), ValueError, "dropout_masks"),
    Case("masks-shape", lambda m, d: dict(input=d["x"], dropout_masks=[np.ones((T, B, 1))]), ValueError,
         "dropout_masks"),
    Case("masks-not-binary", lambda m, d: dict(input=d["x"], dropout_masks=[np.full((T, B, 2 * d["P"]), 2.0)]),
         ValueError, "dropout_masks"),
    Case("masks-str", lambda m, d: dict(input=d["x"], dropout_masks=[np.full((T, B, 2 * d["P"]), "1")]),
         TypeError, "dropout_masks"),
]
MODES = ("RNN", "GRU", "LSTM")


def _forward_kwargs(mode, case):
    m = _layer(mode)
    kwargs = case.call(m, _layer_data(m))
    if kwargs.pop("_eval", False):
        m.eval()
    return m, kwargs


@pytest.mark.parametrize("mode,case", _case_params(FORWARD_CASES, MODES))
def test_forward_rejects(mode, case):
    m, kwargs = _forward_kwargs(mode, case)
    _raises_cleanly(m, lambda kw: m.forward(**kw), kwargs, case.exc, case.match)


@pytest.mark.parametrize("mode,case", _case_params([c for c in FORWARD_CASES if not c.id.startswith("masks")], MODES))
def test_call_rejects(mode, case):
    m, kwargs = _forward_kwargs(mode, case)
    _raises_cleanly(m, lambda kw: m(**kw), kwargs, case.exc, case.match)


def _torch_layer_call(tm, input, hx=None, lengths=None, batch_first=False):
    x = _t(np.asarray(input)) if not isinstance(input, str) else input
    if lengths is None:
        return tm(x, _t(hx))
    packed = pack_padded_sequence(x, torch.as_tensor(lengths), batch_first=batch_first, enforce_sorted=False)
    return pad_packed_sequence(tm(packed, _t(hx))[0], total_length=T)


@pytest.mark.parametrize("mode,case", _case_params([c for c in FORWARD_CASES if not c.id.startswith("masks")], MODES))
def test_forward_agrees_with_torch(mode, case):
    m, kwargs = _forward_kwargs(mode, case)
    torch_exc = _torch_exception(lambda: _torch_layer_call(to_torch(m), **kwargs))
    if torch_exc is ValueError and case.id not in TYPE_NOT_VALUE:
        assert case.exc is ValueError
    assert torch_exc is not None or case.id.startswith("lengths"), "torch accepts this: the case is not an error"


def test_unknown_keyword_is_a_type_error():
    m = _layer("GRU")
    with pytest.raises(TypeError):
        m.forward(np.zeros((T, B, I)), length=[T, T])


# -- layer backward, train/eval ------------------------------------------------

BACKWARD_CASES = [
    Case("tape-other-module", lambda m, d, tape: dict(tape=_layer(type(m).__name__).forward(d["x"])[2], grad_output=d["go"]),
         ValueError, "tape"),
    Case("tape-None", lambda m, d, tape: dict(tape=None, grad_output=d["go"]), TypeError, "tape"),
    Case("tape-cell", lambda m, d, tape: dict(tape=reference.GRUCell(I, H).forward(d["x"][0])[1]), TypeError, "tape"),
    Case("grad_output-shape", lambda m, d, tape: dict(tape=tape, grad_output=d["go"][:, :, :1]), ValueError,
         "grad_output"),
    Case("grad_output-batch-first", lambda m, d, tape: dict(tape=tape, grad_output=d["go"].swapaxes(0, 1)),
         ValueError, "grad_output"),
    Case("grad_output-int", lambda m, d, tape: dict(tape=tape, grad_output=np.ones(d["go"].shape, int)), TypeError,
         "grad_output"),
    Case("grad_hidden-shape", lambda m, d, tape: dict(tape=tape, grad_hidden=d["h"][:1]), ValueError, "grad_hidden",
         ("RNN", "GRU")),
    Case("grad_hidden-pair", lambda m, d, tape: dict(tape=tape, grad_hidden=(d["h"], d["h"])), TypeError,
         "grad_hidden", ("RNN", "GRU")),
    Case("grad_hidden-not-pair", lambda m, d, tape: dict(tape=tape, grad_hidden=d["h"]), TypeError, "grad_hidden",
         ("LSTM",)),
    Case("grad_hidden-c-shape", lambda m, d, tape: dict(tape=tape, grad_hidden=(d["h"], d["h"])), ValueError,
         r"grad_hidden\[1\]", ("LSTM",)),
]


@pytest.mark.parametrize("mode,case", _case_params(BACKWARD_CASES, MODES))
def test_backward_rejects(mode, case):
    m = _layer(mode)
    d = _layer_data(m)
    tape = m.forward(d["x"], d["hx"])[2]
    _raises_cleanly(m, lambda kw: m.backward(**kw), case.call(m, d, tape), case.exc, case.match)


def test_tape_of_a_float32_twin_is_rejected():
    a, b = _layer("LSTM"), _layer("LSTM")
    tape = a.forward(np.zeros((T, B, I)))[2]
    with pytest.raises(ValueError, match="another module"):
        b.backward(tape)


@pytest.mark.parametrize("mode", [1, "eval", None, np.float64(1.0)])
def test_train_rejects_non_bool(mode):
    m = _layer("GRU")
    _raises_cleanly(m, lambda a: m.train(a), mode, TypeError, "mode")


# -- cells ---------------------------------------------------------------------

CELL_FORWARD_CASES = [
    Case("input-0d", lambda m, d: dict(input=np.float64(1.0)), ValueError, "input"),
    Case("input-3d", lambda m, d: dict(input=d["x"][None]), ValueError, "input"),
    Case("input-features", lambda m, d: dict(input=np.zeros((B, I + 1))), ValueError, "input"),
    Case("input-int", lambda m, d: dict(input=np.ones((B, I), dtype=np.int32)), TypeError, "input"),
    Case("input-complex", lambda m, d: dict(input=d["x"] + 0j), TypeError, "input"),
    Case("input-bool", lambda m, d: dict(input=np.ones((B, I), dtype=bool)), TypeError, "input"),
    Case("hx-wrong-size", lambda m, d: dict(input=d["x"], hx=np.zeros((B, H + 1))), ValueError, "hx",
         ("RNNCell", "GRUCell")),
    Case("hx-wrong-batch", lambda m, d: dict(input=d["x"], hx=np.zeros((B + 1, H))), ValueError, "hx",
         ("RNNCell", "GRUCell")),
    Case("hx-1d-batched", lambda m, d: dict(input=d["x"], hx=d["h"][0]), ValueError, "hx", ("RNNCell", "GRUCell")),
    Case("hx-2d-unbatched", lambda m, d: dict(input=d["x"][0], hx=d["h"]), ValueError, "hx", ("RNNCell", "GRUCell")),
    Case("hx-pair", lambda m, d: dict(input=d["x"], hx=(d["h"], d["c"])), TypeError, "hx", ("RNNCell", "GRUCell")),
    Case("hx-not-pair", lambda m, d: dict(input=d["x"], hx=d["h"]), TypeError, "hx", ("LSTMCell",)),
    Case("hx-1-tuple", lambda m, d: dict(input=d["x"], hx=(d["h"],)), TypeError, "hx", ("LSTMCell",)),
    Case("hx-h-None", lambda m, d: dict(input=d["x"], hx=(None, d["c"])), TypeError, "hx", ("LSTMCell",)),
    Case("hx-c-wrong-batch", lambda m, d: dict(input=d["x"], hx=(d["h"], d["c"][:1])), ValueError, r"hx\[1\]",
         ("LSTMCell",)),
]
CELLS = ("RNNCell", "GRUCell", "LSTMCell")


@pytest.mark.parametrize("kind,case", _case_params(CELL_FORWARD_CASES, CELLS))
@pytest.mark.parametrize("entry", ["forward", "__call__"])
def test_cell_forward_rejects(kind, case, entry):
    m = _cell(kind)
    _raises_cleanly(m, lambda kw: getattr(m, entry)(**kw), case.call(m, _cell_data(m)), case.exc, case.match)


@pytest.mark.parametrize("kind,case", _case_params(CELL_FORWARD_CASES, CELLS))
def test_cell_forward_agrees_with_torch(kind, case):
    m = _cell(kind)
    kwargs = case.call(m, _cell_data(m))
    torch_exc = _torch_exception(lambda: to_torch(m)(_t(kwargs["input"]), _t(kwargs.get("hx"))))
    if torch_exc is ValueError and case.id not in TYPE_NOT_VALUE:
        assert case.exc is ValueError


CELL_BACKWARD_CASES = [
    Case("tape-other-cell", lambda m, d, tape: dict(tape=_cell(type(m).__name__).forward(d["x"])[1]), ValueError,
         "tape"),
    Case("tape-layer", lambda m, d, tape: dict(tape=_layer("GRU").forward(np.zeros((T, B, I)))[2]), TypeError,
         "tape"),
    Case("grad-shape", lambda m, d, tape: dict(tape=tape, grad_hidden=np.zeros((B, H + 1))), ValueError,
         "grad_hidden", ("RNNCell", "GRUCell")),
    Case("grad-unbatched", lambda m, d, tape: dict(tape=tape, grad_hidden=np.zeros(H)), ValueError, "grad_hidden",
         ("RNNCell", "GRUCell")),
    Case("grad-pair", lambda m, d, tape: dict(tape=tape, grad_hidden=(d["h"], d["c"])), TypeError, "grad_hidden",
         ("RNNCell", "GRUCell")),
    Case("grad-not-pair", lambda m, d, tape: dict(tape=tape, grad_hidden=d["h"]), TypeError, "grad_hidden",
         ("LSTMCell",)),
    Case("grad-c-shape", lambda m, d, tape: dict(tape=tape, grad_hidden=(d["h"], d["c"][:1])), ValueError,
         r"grad_hidden\[1\]", ("LSTMCell",)),
    Case("grad-int", lambda m, d, tape: dict(tape=tape, grad_hidden=(np.ones((B, H), int), None)), TypeError,
         r"grad_hidden\[0\]", ("LSTMCell",)),
]


@pytest.mark.parametrize("kind,case", _case_params(CELL_BACKWARD_CASES, CELLS))
def test_cell_backward_rejects(kind, case):
    m = _cell(kind)
    d = _cell_data(m)
    tape = m.forward(d["x"], d["hx"])[1]
    _raises_cleanly(m, lambda kw: m.backward(**kw), case.call(m, d, tape), case.exc, case.match)


# -- state_dict / load_state_dict ----------------------------------------------

def _bad_shape(sd):
    sd = dict(sd)
    last = list(sd)[-1]
    sd[last] = np.zeros(sd[last].shape + (1,))
    return sd


LOAD_CASES = [
    Case("not-a-mapping", lambda sd: list(sd.values()), TypeError, "state_dict"),
    Case("missing-key", lambda sd: dict(list(sd.items())[1:]), ValueError, "missing"),
    Case("extra-key", lambda sd: {**sd, "weight_xx": np.zeros(1)}, ValueError, "unexpected"),
    Case("wrong-shape-last", _bad_shape, ValueError, "state_dict"),  # earlier keys are fine: nothing may be copied
    Case("transposed", lambda sd: {k: v.T for k, v in sd.items()}, ValueError, "state_dict"),
    Case("complex", lambda sd: {k: v + 0j for k, v in sd.items()}, TypeError, "state_dict"),
    Case("bool", lambda sd: {k: v > 0 for k, v in sd.items()}, TypeError, "state_dict"),
    Case("str", lambda sd: {k: "x" for k in sd}, TypeError, "state_dict"),
]


@pytest.mark.parametrize("kind,case", _case_params(LOAD_CASES, ALL_CLASSES))
def test_load_state_dict_rejects(kind, case):
    m = _layer(kind) if kind in MODES else _cell(kind)
    other = _layer(kind) if kind in MODES else _cell(kind)
    new = {k: v + 1 for k, v in other.state_dict().items()}  # different values, so a partial copy would show
    _raises_cleanly(m, m.load_state_dict, case.call(new), case.exc, case.match)


def test_state_dict_round_trip_and_copies():
    m = _layer("LSTM")
    sd = m.state_dict()
    sd["weight_ih_l0"][...] = 0  # a copy: the module must not see this
    assert not np.array_equal(m.state_dict()["weight_ih_l0"], sd["weight_ih_l0"])
    ints = {k: np.ones(v.shape, dtype=np.int64) for k, v in sd.items()}  # integers load (torch copies them too)
    before = _copy(ints)
    m.load_state_dict(ints)
    _assert_same(ints, before)
    assert all(v.dtype == np.float64 and (v == 1).all() for v in m.state_dict().values())


# -- gradient checks -----------------------------------------------------------

_A = {"a": np.array([0.5, -0.25])}
_COT = np.ones(2)
_SQ = lambda a: a**2

GRADCHECK_CASES = [
    Case("ng-fn", lambda: (reference.numerical_gradient, ("nope", _A, _COT), {}), TypeError, "fn"),
    Case("ng-arrays", lambda: (reference.numerical_gradient, (_SQ, [1.0], _COT), {}), TypeError, "arrays"),
    Case("ng-int-array", lambda: (reference.numerical_gradient, (_SQ, {"a": np.array([1, 2])}, _COT), {}), TypeError,
         "arrays"),
    Case("ng-eps-zero", lambda: (reference.numerical_gradient, (_SQ, _A, _COT), dict(eps=0.0)), ValueError, "eps"),
    Case("ng-eps-nan", lambda: (reference.numerical_gradient, (_SQ, _A, _COT), dict(eps=float("nan"))), ValueError,
         "eps"),
    Case("ng-cotangent-shape", lambda: (reference.numerical_gradient, (_SQ, _A, np.ones(3)), {}), ValueError,
         "cotangents"),
    Case("cg-analytic-missing", lambda: (reference.check_gradients, (_SQ, _A, {}, _COT), {}), ValueError, "analytic"),
    Case("cg-analytic-shape", lambda: (reference.check_gradients, (_SQ, _A, {"a": np.ones(3)}, _COT), {}),
         ValueError, "analytic"),
    Case("cg-rtol-negative", lambda: (reference.check_gradients, (_SQ, _A, {"a": np.ones(2)}, _COT),
                                      dict(rtol=-1.0)), ValueError, "rtol"),
    Case("cg-atol-str", lambda: (reference.check_gradients, (_SQ, _A, {"a": np.ones(2)}, _COT), dict(atol="0")),
         TypeError, "atol"),
    Case("vjp-seed-negative", lambda: (reference.check_vjp, (_SQ, _A, {"a": np.ones(2)}, _COT), dict(seed=-1)),
         ValueError, "seed"),
    Case("vjp-seed-float", lambda: (reference.check_vjp, (_SQ, _A, {"a": np.ones(2)}, _COT), dict(seed=0.5)),
         TypeError, "seed"),
    Case("vjp-analytic-not-mapping", lambda: (reference.check_vjp, (_SQ, _A, [np.ones(2)], _COT), {}), TypeError,
         "analytic"),
    Case("cmg-module", lambda: (reference.check_module_gradients, (torch.nn.GRU(I, H), np.zeros((T, B, I))), {}),
         TypeError, "module"),
    Case("cmg-method", lambda: (reference.check_module_gradients, (_cell("GRUCell"), np.zeros((B, I))),
                                dict(method="exact")), ValueError, "method"),
    Case("cmg-input-int", lambda: (reference.check_module_gradients, (_cell("GRUCell"), np.zeros((B, I), int)), {}),
         TypeError, "input"),
    Case("cmg-input-features", lambda: (reference.check_module_gradients, (_cell("GRUCell"), np.zeros((B, I + 1))),
                                        {}), ValueError, "input"),
    Case("cmg-hx-shape", lambda: (reference.check_module_gradients, (_layer("GRU"), np.zeros((T, B, I)),
                                                                     np.zeros((1, B, H))), {}), ValueError, "hx"),
    Case("cmg-lstm-hx-single", lambda: (reference.check_module_gradients, (_cell("LSTMCell"), np.zeros((B, I)),
                                                                           np.zeros((B, H))), {}), TypeError, "hx"),
    Case("cmg-lengths-unbatched", lambda: (reference.check_module_gradients, (_layer("RNN"), np.zeros((T, I))),
                                           dict(lengths=[T])), ValueError, "lengths"),
    Case("cmg-seed", lambda: (reference.check_module_gradients, (_cell("RNNCell"), np.zeros((B, I))),
                              dict(seed=np.random.default_rng(0))), TypeError, "seed"),
    Case("cmg-eps", lambda: (reference.check_module_gradients, (_cell("RNNCell"), np.zeros((B, I))), dict(eps=-1e-6)),
         ValueError, "eps"),
]


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=[c.id for c in GRADCHECK_CASES])
def test_gradcheck_rejects(case):
    fn, args, kwargs = case.call()
    before = _copy((args, kwargs))
    modules = [a for a in args if isinstance(a, ParameterModule)]
    snaps = [_snapshot(m) for m in modules]
    with pytest.raises(case.exc, match=case.match):
        fn(*args, **kwargs)
    for m, s in zip(modules, snaps, strict=True):
        _assert_unchanged(m, s)
    _assert_same((args, kwargs), before)


def test_gradcheck_leaves_module_and_inputs_untouched():
    m = _layer("LSTM")
    x = np.random.default_rng(0).uniform(-1, 1, (3, 2, I))
    before, snap = x.copy(), _snapshot(m)
    assert reference.check_module_gradients(m, x, lengths=[3, 1], method="vjp")
    _assert_unchanged(m, snap)
    _assert_same(x, before)


# -- converters ----------------------------------------------------------------

def _torch_gru():
    return torch.nn.GRU(I, H, num_layers=2).double()


CONVERT_CASES = [
    Case("from-not-module", lambda: (from_torch, (reference.GRU(I, H),), {}), TypeError, "module"),
    Case("from-linear", lambda: (from_torch, (torch.nn.Linear(2, 2),), {}), TypeError, "module"),
    Case("from-half", lambda: (from_torch, (torch.nn.GRU(I, H).half(),), {}), TypeError, "module"),
    Case("to-torch-module", lambda: (to_torch, (_torch_gru(),), {}), TypeError, "ref_module"),
    Case("to-str", lambda: (to_torch, ("GRU",), {}), TypeError, "module"),
    Case("to-dtype-numpy", lambda: (to_torch, (reference.GRU(I, H),), dict(dtype=np.float32)), TypeError, "dtype"),
    Case("to-dtype-half", lambda: (to_torch, (reference.GRU(I, H),), dict(dtype=torch.float16)), TypeError, "dtype"),
    Case("to-device-unknown", lambda: (to_torch, (reference.GRU(I, H),), dict(device="gpu0")), ValueError, "device"),
    Case("to-device-type", lambda: (to_torch, (reference.GRU(I, H),), dict(device=1.5)), TypeError, "device"),
    Case("load-missing", lambda: (load_into, (_torch_gru(), {}), {}), ValueError, "state"),
    Case("load-shape", lambda: (load_into, (_torch_gru(), _bad_shape(reference.GRU(I, H, 2).state_dict())), {}),
         ValueError, "state"),
    Case("load-complex", lambda: (load_into, (_torch_gru(), {k: v + 0j for k, v in
                                                             reference.GRU(I, H, 2).state_dict().items()}), {}),
         TypeError, "state"),
    Case("load-not-mapping", lambda: (load_into, (_torch_gru(), [1]), {}), TypeError, "state"),
]
if not torch.cuda.is_available():
    CONVERT_CASES.append(Case("to-device-cuda-absent", lambda: (to_torch, (reference.GRU(I, H),), dict(device="cuda")),
                              ValueError, "device"))


@pytest.mark.parametrize("case", CONVERT_CASES, ids=[c.id for c in CONVERT_CASES])
def test_convert_rejects(case):
    fn, args, kwargs = case.call()
    torch_modules = [a for a in args if isinstance(a, torch.nn.Module)]
    before = [{k: v.clone() for k, v in tm.state_dict().items()} for tm in torch_modules]
    with pytest.raises(case.exc, match=case.match):
        fn(*args, **kwargs)
    for tm, sd in zip(torch_modules, before, strict=True):  # a failed load copies nothing
        assert all(torch.equal(tm.state_dict()[k], v) for k, v in sd.items())


# -- what works: B = 0, casting, no mutation -----------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_empty_batch_forward_and_backward_as_torch(mode, batch_first):
    m = getattr(reference, mode)(I, H, num_layers=2, bidirectional=True, batch_first=batch_first, seed=0,
                                 **(dict(proj_size=P) if mode == "LSTM" else {}))
    x = np.zeros((0, T, I) if batch_first else (T, 0, I))
    out, hidden, tape = m.forward(x)
    ref_hidden = hidden if mode == "LSTM" else (hidden,)
    grads = m.backward(tape, np.ones(out.shape), tuple(np.ones(h.shape) for h in ref_hidden) if mode == "LSTM"
                       else np.ones(hidden.shape))
    go = np.zeros(out.shape)
    gh = tuple(np.zeros(h.shape) for h in ref_hidden)
    t = run_layer(m, x, None, None, go, gh if mode == "LSTM" else gh[0])
    assert out.shape == tuple(t["output"].shape) and grads["input"].shape == tuple(t["input"].shape)
    for h, th in zip(ref_hidden, t["hidden"] if mode == "LSTM" else (t["hidden"],), strict=True):
        assert h.shape == tuple(th.shape)
    for k in m.state_dict():  # nothing to sum over: zero, as torch
        assert grads[k].shape == tuple(t[k].shape) and not grads[k].any() and not t[k].any()
    m.forward(x, lengths=[])  # no lengths for no sequences
    m.forward(x, lengths=np.zeros(0, dtype=np.int64))


@pytest.mark.parametrize("kind", CELLS)
def test_empty_batch_cells_as_torch(kind):
    m = _cell(kind)
    x = np.zeros((0, I))
    _, tape = m.forward(x)
    cot = tuple(np.zeros((0, H)) for _ in range(2)) if kind == "LSTMCell" else np.zeros((0, H))
    grads = m.backward(tape, cot)
    t = run_cell(m, x, None, cot)
    assert grads["input"].shape == tuple(t["input"].shape) == (0, I)
    assert all(grads[k].shape == tuple(t[k].shape) and not grads[k].any() for k in m.state_dict())


@pytest.mark.parametrize("in_dtype", [np.float16, np.float32, np.float64, np.longdouble])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_floats_of_another_precision_are_refused_and_lists_take_the_modules(in_dtype, dtype):
    """As torch: an input of another floating dtype is a TypeError naming both (test_dtype_refusal.py
    holds the rule case by case against torch); a list has no dtype and takes the module's."""
    m = _layer("GRU", dtype).eval()
    x = np.random.default_rng(0).uniform(-1, 1, (T, B, I))
    if np.dtype(in_dtype) != np.dtype(dtype):
        with pytest.raises(TypeError, match=f"input: numpy dtype {np.dtype(in_dtype).name} does not match the "
                                            f"module's dtype {np.dtype(dtype).name}"):
            m(x.astype(in_dtype))
    out, hidden = m(x.astype(dtype))
    from_list, _ = m(x.astype(dtype).tolist())
    assert out.dtype == hidden.dtype == from_list.dtype == dtype
    assert np.array_equal(out, from_list)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_float64_beyond_float32_range_converted_to_float32_saturates_the_gates():
    """1e300 is inf in float32: converted as the refusal says (``x.astype(numpy.float32)``, torch's
    ``.to(torch.float32)``), it saturates the gates without a NaN, as in torch."""
    m = _layer("LSTM", np.float32).eval()
    x = np.random.default_rng(0).uniform(-1, 1, (T, B, I))
    x[0, :, 0] = 1e300
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)
    out, _ = m(x)
    assert np.isfinite(out).all()
    t = run_layer(m, x, None, None, np.zeros(out.shape), (np.zeros((4, B, P)), np.zeros((4, B, H))))
    assert torch.isfinite(t["output"]).all()


@pytest.mark.parametrize("mode", MODES)
def test_inputs_are_not_written_on_success(mode):
    m = _layer(mode)
    d = _layer_data(m)
    args = dict(input=d["x"], hx=d["hx"], lengths=np.array([T, 3]))
    before = _copy(args)
    _, hidden, tape = m.forward(**args)
    gh = tuple(np.ones(h.shape) for h in hidden) if mode == "LSTM" else np.ones(hidden.shape)
    grads_in = dict(grad_output=d["go"], grad_hidden=gh)
    grads_before = _copy(grads_in)
    m.backward(tape, **grads_in)
    _assert_same(args, before)
    _assert_same(grads_in, grads_before)


# -- NaN and Inf, as torch -----------------------------------------------------

def _finite(a) -> np.ndarray:
    return np.isfinite(np.asarray(a.detach() if hasattr(a, "detach") else a))


def _nonfinite_layer_case(mode, dtype, poison, nonlinearity="tanh"):
    kw = dict(proj_size=P) if mode == "LSTM" else {}
    if mode == "RNN":
        kw["nonlinearity"] = nonlinearity
    m = getattr(reference, mode)(I, H, num_layers=2, bidirectional=True, dtype=dtype, seed=3, **kw)
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (T, 3, I)).astype(dtype)
    DL, Pm = 4, m.output_size
    h0 = rng.uniform(-1, 1, (DL, 3, Pm)).astype(dtype)
    hx = (h0, rng.uniform(-1, 1, (DL, 3, H)).astype(dtype)) if mode == "LSTM" else h0
    lengths = [T, T - 2, T]
    poison(x, hx)
    go = rng.standard_normal((T, 3, 2 * Pm))
    gh = tuple(rng.standard_normal(h.shape) for h in hx) if mode == "LSTM" else rng.standard_normal(h0.shape)
    out, hidden, tape = m.forward(x, hx, lengths=lengths)
    grads = m.backward(tape, go, gh)
    return grads | {"output": out, "hidden": hidden}, run_layer(m, x, hx, lengths, go, gh)


def _nan_in_row_1(x, hx):
    x[1, 1, 0] = np.nan


def _nan_in_padding(x, hx):
    x[T - 1, 1, :] = np.nan  # row 1 has length T - 2: never read, as torch's packing never reads it
    x[T - 2, 1, 0] = np.inf


def _inf_inputs(x, hx):
    x[0, 0, 0] = np.inf
    x[2, 2, 1] = -np.inf


def _inf_state(x, hx):
    h = hx[0] if isinstance(hx, tuple) else hx
    h[0, 2, 0] = np.inf


@pytest.mark.parametrize("poison", [_nan_in_row_1, _nan_in_padding, _inf_inputs, _inf_state],
                         ids=["nan-row", "nan-padding", "inf-input", "inf-state"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", MODES)
def test_non_finite_values_behave_as_torch(mode, dtype, poison):
    ours, theirs = _nonfinite_layer_case(mode, dtype, poison)
    for name in ["output", "input", *[k for k in ours if k.startswith(("weight", "bias"))]]:
        assert np.array_equal(_finite(ours[name]), _finite(theirs[name])), name
    for name in ("hidden", "hx"):
        for a, b in zip(*(v if isinstance(v, tuple) else (v,) for v in (ours[name], theirs[name])), strict=True):
            assert np.array_equal(_finite(a), _finite(b)), name
    if poison is _nan_in_row_1:  # the NaN stays in its batch row: rows 0 and 2 finite, forward and backward
        assert _finite(ours["output"])[:, [0, 2]].all() and not _finite(ours["output"])[:, 1].all()
        assert _finite(ours["input"])[:, [0, 2]].all()
    if poison is _nan_in_padding:
        assert _finite(ours["output"]).all() and _finite(ours["input"]).all()


def test_nan_state_carried_through_padding_stays_out_of_weight_gradients():
    m = reference.RNN(1, 1, nonlinearity="relu", bias=False, seed=0)
    x = np.array([[[np.nan], [0.0]], [[0.0], [0.0]]])  # (T=2, B=2, I=1); row 0 is NaN at its only valid step
    out, hidden, tape = m.forward(x, lengths=[1, 1])
    grads = m.backward(tape, np.ones(out.shape), np.ones(hidden.shape))
    t = run_layer(m, x, None, [1, 1], np.ones(out.shape), np.ones(hidden.shape))
    assert torch.isfinite(t["weight_hh_l0"]).all()
    assert np.isfinite(grads["weight_hh_l0"]).all()


def test_relu_overflow_to_inf_as_torch():
    m = reference.RNN(I, H, nonlinearity="relu", dtype=np.float32, seed=0)
    m.load_state_dict({k: np.abs(v) * 100 for k, v in m.state_dict().items()})
    x = np.full((30, 1, I), 1e3, dtype=np.float32)
    out, _, _ = m.forward(x)
    t = run_layer(m, x, None, None, np.zeros(out.shape), np.zeros((1, 1, H)))
    assert np.isinf(out).any()
    assert np.array_equal(np.isinf(out), np.isinf(t["output"].numpy()))
    assert np.array_equal(np.isnan(out), np.isnan(t["output"].numpy()))


@pytest.mark.parametrize("kind", CELLS)
def test_cells_saturate_on_inf_without_nan(kind):
    m = _cell(kind)
    x = np.array([[np.inf, -np.inf, 1.0], [0.5, 0.5, 0.5]])
    hidden, _ = m.forward(x)
    t = run_cell(m, x, None, (np.ones((2, H)),) * 2 if kind == "LSTMCell" else np.ones((2, H)))
    for a, b in zip(*(v if isinstance(v, tuple) else (v,) for v in (hidden, t["hidden"])), strict=True):
        assert np.array_equal(_finite(a), _finite(b))
    assert _finite(hidden[0] if isinstance(hidden, tuple) else hidden)[1].all()


def test_sigmoid_is_silent_and_exact_in_the_tails():
    from reference.activations import sigmoid
    x = np.array([-1e4, -800.0, -50.0, 0.0, 50.0, 800.0, 1e4, np.inf, -np.inf, np.nan])
    with np.errstate(over="ignore"):  # exp(-x) overflowing to inf is the correct limit, silenced by callers
        s = sigmoid(np, x.copy())
    assert np.array_equal(s[[0, 1, 7, 8]], [0.0, 0.0, 1.0, 0.0]) and s[3] == 0.5 and np.isnan(s[9])
    assert s[2] == pytest.approx(np.exp(-50.0), rel=1e-15, abs=0)  # approx's default abs 1e-12 would pass a 0 here
