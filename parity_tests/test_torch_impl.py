"""torch_impl and the core on torch tensors: the autograd Function, autograd through the core, converters.

Desired values are torch.nn's (CPU kernels or cuDNN) unless a test says otherwise:

* autograd through the core's forward ops (``rnn_forward``)  vs  torch.nn modules;
* the reference cells called on torch tensors (the core computing in torch)  vs  torch.nn cells;
* the BPTT Function  vs  torch.nn, vs autograd through the core's forward, vs the NumPy reference;
* gradcheck on the Function, gradgradcheck through the core's forward;
* converters round-trip exactly for the six classes and every option, loading in place;
* on CUDA, the size of the TF32 error when TF32 is left on.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from helpers import assert_close, in_dtype, to_numpy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from strategies import CellConfig, LayerConfig, cell_configs, layer_configs
from tolerances import tol
from torch_oracle import run_cell, run_layer

import reference
from torch_impl import from_torch, load_into, module_config, rnn_bptt, rnn_forward, to_torch

# The device fixture only names a device: sharing it across hypothesis examples is safe.
_with_device = settings(parent=settings.default,
                        suppress_health_check=[*settings.default.suppress_health_check,
                                               HealthCheck.function_scoped_fixture])

_TORCH = {"float32": torch.float32, "float64": torch.float64}

# Corner cases pinned: T = B = H = 1, and the deepest configuration (3 layers, both directions,
# projection, lengths, batch_first).
_TINY = LayerConfig(mode="GRU", input_size=1, hidden_size=1, num_layers=1, bias=True, batch_first=False,
                    bidirectional=False, nonlinearity="tanh", proj_size=0, seq_len=1, batch=1, use_lengths=False,
                    hx_given=True, dtype="float64", seed=0)
_DEEP = LayerConfig(mode="LSTM", input_size=3, hidden_size=4, num_layers=3, bias=True, batch_first=True,
                    bidirectional=True, nonlinearity="tanh", proj_size=2, seq_len=5, batch=3, use_lengths=True,
                    hx_given=True, dtype="float64", seed=1)
_DEEP32 = LayerConfig(**{**_DEEP.__dict__, "mode": "RNN", "proj_size": 0, "nonlinearity": "relu",
                         "dtype": "float32"})


def _leaf(a, dtype, device) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=dtype, device=device, requires_grad=True)


def _pair(v) -> tuple:
    return v if isinstance(v, tuple) else (v,)


def run_impl(fn, ref, x, hx, lengths, grad_output, grad_hidden, device, dropout_masks=None) -> dict:
    """Run rnn_forward or rnn_bptt with ref's config and weights; results keyed like torch_oracle.run_layer."""
    dtype = _TORCH[ref.dtype.name]
    lstm = ref.mode == "LSTM"
    params = {k: _leaf(v, dtype, device) for k, v in ref.state_dict().items()}
    xt = _leaf(x, dtype, device)
    hxt = None if hx is None else tuple(_leaf(h, dtype, device) for h in _pair(hx))
    masks = None if dropout_masks is None else [torch.as_tensor(m, device=device) for m in dropout_masks]
    out, hidden = fn(ref.mode, xt, hxt if lstm or hxt is None else hxt[0], params, **module_config(ref),
                     lengths=lengths, dropout_masks=masks)
    hid = _pair(hidden)
    cot = [torch.tensor(g, dtype=dtype, device=device) for g in (grad_output, *_pair(grad_hidden))]
    inputs = [xt, *(hxt or ()), *params.values()]
    grads = torch.autograd.grad([out, *hid], inputs, cot, allow_unused=True)
    res = {"output": out.detach(), "hidden": tuple(h.detach() for h in hid) if lstm else hid[0].detach(),
           "input": grads[0]}
    k = 1
    if hxt is not None:
        res["hx"] = grads[1:1 + len(hxt)] if lstm else grads[1]
        k += len(hxt)
    res.update(zip(params, grads[k:], strict=True))
    return res


def run_reference(ref, x, hx, lengths, grad_output, grad_hidden, dropout_masks=None) -> dict:
    out, hidden, tape = ref.forward(x, hx, lengths=lengths, dropout_masks=dropout_masks)
    res = ref.backward(tape, grad_output, grad_hidden)
    res.update(output=out, hidden=hidden)
    if hx is None:
        del res["hx"]
    return res


def compare(actual: dict, desired: dict, dtype: str, device: str, cfg, label: str) -> dict[str, float]:
    """assert_close on every key of ``desired`` (parameter gradients included); returns the largest
    relative error per kind."""
    worst = {"forward": 0.0, "gradient": 0.0}
    assert set(actual) >= set(desired) - {"hx"}, sorted(set(desired) - set(actual))
    for key, want in desired.items():
        if key not in actual:  # "hx" when the caller passed hx=None: no tensor to differentiate
            continue
        kind = "forward" if key in ("output", "hidden") else "gradient"
        rtol, atol = tol(dtype, device, kind)
        for j, (a, d) in enumerate(zip(_pair(actual[key]), _pair(want), strict=True)):
            assert a is not None, f"{label}: no gradient for {key}"
            rel = assert_close(f"{label}: {key}[{j}]", to_numpy(a), to_numpy(d), rtol, atol, config=cfg,
                               repro=cfg.repro() if hasattr(cfg, "repro") else "")
            worst[kind] = max(worst[kind], rel)
    return worst


# Largest relative errors seen by this module, per (comparison, dtype, device, kind); for the record.
MEASURED: dict[tuple, float] = {}


def _record(name: str, dtype: str, device: str, worst: dict[str, float]) -> None:
    for kind, rel in worst.items():
        key = (name, dtype, device, kind)
        MEASURED[key] = max(MEASURED.get(key, 0.0), rel)


def _layer_case(cfg: LayerConfig):
    ref = cfg.build()
    x, hx, lengths, gout, ghid = cfg.data()
    x, hx = in_dtype(ref.dtype, x, hx)  # the module's own dtype, as torch's modules ask
    return ref, x, hx, lengths, gout, ghid


# -- (a) equations vs torch.nn ------------------------------------------------------------


@_with_device
@given(cfg=layer_configs())
@example(cfg=_TINY)
@example(cfg=_DEEP)
@example(cfg=_DEEP32)
def test_equations_match_nn(device, cfg):
    ref, x, hx, lengths, gout, ghid = _layer_case(cfg)
    desired = run_layer(ref, x, hx, lengths, gout, ghid, device)
    actual = run_impl(rnn_forward, ref, x, hx, lengths, gout, ghid, device)
    _record("equations vs nn", cfg.dtype, device, compare(actual, desired, cfg.dtype, device, cfg, "equations"))


@_with_device
@given(cfg=cell_configs())
def test_cells_match_nn(device, cfg: CellConfig):
    ref = cfg.build()
    x, hx, cot = cfg.data()
    if hx is None:  # torch_oracle passes explicit zeros to get their gradient; so do we
        zeros = np.zeros(x.shape[:-1] + (cfg.hidden_size,))
        hx = (zeros, zeros) if cfg.kind == "LSTMCell" else zeros
    desired = run_cell(ref, x, hx, cot, device)
    dtype = _TORCH[cfg.dtype]

    def tensor(a):
        return None if a is None else torch.tensor(np.asarray(a), dtype=dtype, device=device)

    hidden, tape = ref.forward(tensor(x), tuple(map(tensor, hx)) if isinstance(hx, tuple) else tensor(hx))
    grads = ref.backward(tape, tuple(map(tensor, cot)) if isinstance(cot, tuple) else tensor(cot))
    for value in (*_pair(hidden), *(v for g in grads.values() for v in _pair(g))):
        assert isinstance(value, torch.Tensor) and value.device.type == device
    actual = {"hidden": hidden, **grads}
    _record("cells vs nn", cfg.dtype, device, compare(actual, desired, cfg.dtype, device, cfg, "core cells on tensors"))


# -- (b) the hand-written BPTT Function -----------------------------------------------------


@_with_device
@given(cfg=layer_configs())
@example(cfg=_TINY)
@example(cfg=_DEEP)
@example(cfg=_DEEP32)
def test_bptt_matches_nn_equations_and_reference(device, cfg):
    ref, x, hx, lengths, gout, ghid = _layer_case(cfg)
    actual = run_impl(rnn_bptt, ref, x, hx, lengths, gout, ghid, device)
    desired = run_layer(ref, x, hx, lengths, gout, ghid, device)
    _record("bptt vs nn", cfg.dtype, device, compare(actual, desired, cfg.dtype, device, cfg, "bptt vs nn"))
    autograd = run_impl(rnn_forward, ref, x, hx, lengths, gout, ghid, device)
    _record("bptt vs equations", cfg.dtype, device,
            compare(actual, autograd, cfg.dtype, device, cfg, "bptt vs autograd(equations)"))
    numpy_ref = run_reference(ref, x, hx, lengths, gout, ghid)
    _record("bptt vs numpy reference", cfg.dtype, device,
            compare(actual, numpy_ref, cfg.dtype, device, cfg, "bptt vs reference"))


def _dropout_case(cfg: LayerConfig, p: float):
    """A training-mode reference with dropout p, and keep masks in the output's layout."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = getattr(reference, cfg.mode)(cfg.input_size, cfg.hidden_size, dropout=p, dtype=cfg.dtype,
                                           seed=cfg.seed, **cfg.kwargs())
    x, hx, lengths, gout, ghid = cfg.data()
    x, hx = in_dtype(ref.dtype, x, hx)
    rng = np.random.default_rng(cfg.seed + 2)
    masks = [(rng.random(gout.shape) >= 0.5).astype(np.float64) for _ in range(cfg.num_layers - 1)]
    return ref, x, hx, lengths, gout, ghid, masks


@_with_device
@given(cfg=layer_configs(max_layers=3).filter(lambda c: c.num_layers > 1), p=st.sampled_from([0.3, 1.0]))
def test_dropout_masks_match_reference(device, cfg, p):
    """torch.nn cannot take given masks: the NumPy reference, given the same keep masks, is desired."""
    ref, x, hx, lengths, gout, ghid, masks = _dropout_case(cfg, p)
    desired = run_reference(ref, x, hx, lengths, gout, ghid, dropout_masks=masks)
    for name, fn in (("equations", rnn_forward), ("bptt", rnn_bptt)):
        actual = run_impl(fn, ref, x, hx, lengths, gout, ghid, device, dropout_masks=masks)
        _record(f"{name} vs numpy reference, dropout", cfg.dtype, device,
                compare(actual, desired, cfg.dtype, device, cfg, f"{name}, dropout p={p}"))


def test_dropout_drawn_and_refused(device):
    m = torch.nn.GRU(3, 4, num_layers=2, dropout=1.0).double().to(device)
    x = torch.randn(5, 2, 3, dtype=torch.float64, device=device)
    params, cfg = dict(m.named_parameters()), module_config(m)
    zeros = [torch.zeros(5, 2, 4, device=device)]
    for fn in (rnn_forward, rnn_bptt):
        drawn, _ = fn("GRU", x, None, params, **cfg)  # p = 1: every drawn mask is zero
        given, _ = fn("GRU", x, None, params, **cfg, dropout_masks=zeros)
        torch.testing.assert_close(drawn, given, rtol=0, atol=0)
        evaluated, _ = fn("GRU", x, None, params, **{**cfg, "training": False})
        torch.testing.assert_close(evaluated, m.eval()(x)[0], rtol=1e-13, atol=1e-15)
        m.train()
        with pytest.raises(ValueError, match="0s and 1s"):
            fn("GRU", x, None, params, **cfg, dropout_masks=[zeros[0] + 0.5])
        with pytest.raises(ValueError, match="no dropout is applied"):
            fn("GRU", x, None, params, **{**cfg, "training": False}, dropout_masks=zeros)


def test_params_fail_loudly():
    m = torch.nn.LSTM(3, 4, proj_size=2)
    params = dict(m.named_parameters())
    del params["weight_hr_l0"]
    for fn in (rnn_forward, rnn_bptt):
        with pytest.raises(ValueError, match="weight_hr_l0"):
            fn("LSTM", torch.randn(2, 3), None, params, **module_config(m))


# -- gradcheck on the Function, gradgradcheck through the equations ------------------------

_GRADCHECK_CASES = {
    "rnn_tanh": ("RNN", {}),
    "rnn_relu_bidirectional_2layers_nobias": ("RNN", {"nonlinearity": "relu", "bidirectional": True, "num_layers": 2,
                                                      "bias": False}),
    "gru_lengths_batch_first_bidirectional": ("GRU", {"batch_first": True, "bidirectional": True, "lengths": True}),
    "gru_dropout_masks_2layers": ("GRU", {"num_layers": 2, "dropout": 0.4}),
    "lstm_projection_lengths_bidirectional_2layers": ("LSTM", {"proj_size": 2, "bidirectional": True, "num_layers": 2,
                                                               "lengths": True}),
    "lstm_unbatched": ("LSTM", {"unbatched": True}),
}


def _small_problem(kind: str, opts: dict, device: str, T: int = 4, B: int = 3, I: int = 2, H: int = 3):
    """(fn of flat tensors, the flat float64 leaves) for a small random configuration."""
    opts = dict(opts)
    lengths = torch.tensor([2, T, 1][:B]) if opts.pop("lengths", False) else None
    unbatched = opts.pop("unbatched", False)
    gen = torch.Generator().manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        m = getattr(torch.nn, kind)(I, H, **opts)
    # Non-zero biases, torch's init scale: U(-1/sqrt(H), 1/sqrt(H)).
    params = {k: ((torch.rand(v.shape, generator=gen, dtype=torch.float64) * 2 - 1) / H ** 0.5).to(device)
              for k, v in m.named_parameters()}
    D, P = 2 if m.bidirectional else 1, m.proj_size or H
    lead = () if unbatched else (B,)
    x = torch.rand((T, *lead, I) if not m.batch_first or unbatched else (B, T, I), generator=gen,
                   dtype=torch.float64) * 2 - 1
    states = [torch.rand((D * m.num_layers, *lead, P), generator=gen, dtype=torch.float64) * 2 - 1]
    if kind == "LSTM":
        states.append(torch.rand((D * m.num_layers, *lead, H), generator=gen, dtype=torch.float64) * 2 - 1)
    cfg = module_config(m)
    out_shape = (T, *lead, D * P) if not m.batch_first or unbatched else (B, T, D * P)
    masks = [(torch.rand(out_shape, generator=gen) > 0.4).double().to(device) for _ in range(m.num_layers - 1)] \
        if cfg["dropout"] > 0 else None
    leaves = [t.to(device).requires_grad_() for t in (x, *states, *params.values())]
    names, n_states = list(params), len(states)

    def run(impl):
        def fn(x, *rest):
            hx = tuple(rest[:n_states]) if kind == "LSTM" else rest[0]
            p = dict(zip(names, rest[n_states:], strict=True))
            out, hidden = impl(m.mode, x, hx, p, **cfg, lengths=lengths, dropout_masks=masks)
            return (out, *_pair(hidden))
        return fn

    return run, leaves


@pytest.mark.parametrize("case", list(_GRADCHECK_CASES))
def test_gradcheck_bptt(device, case):
    kind, opts = _GRADCHECK_CASES[case]
    run, leaves = _small_problem(kind, opts, device)
    assert torch.autograd.gradcheck(run(rnn_bptt), leaves, eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("case", ["rnn_tanh", "gru_lengths_batch_first_bidirectional",
                                  "lstm_projection_lengths_bidirectional_2layers"])
def test_gradgradcheck_equations(device, case):
    kind, opts = _GRADCHECK_CASES[case]
    run, leaves = _small_problem(kind, opts, device, T=2, B=2, I=1, H=3)
    assert torch.autograd.gradgradcheck(run(rnn_forward), leaves, eps=1e-6, atol=1e-8, rtol=1e-6, fast_mode=True)


def test_bptt_is_differentiable_once():
    run, leaves = _small_problem("GRU", {}, "cpu", T=2, B=1, I=1, H=2)
    out = run(rnn_bptt)(*leaves)[0]
    (g,) = torch.autograd.grad(out.sum(), leaves[0], create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        torch.autograd.grad(g.sum(), leaves[-1])


# -- converters ----------------------------------------------------------------------------

_LAYER_OPTIONS = [{}, {"num_layers": 2}, {"bias": False}, {"batch_first": True}, {"dropout": 0.5, "num_layers": 2},
                  {"bidirectional": True}, {"num_layers": 3, "bidirectional": True, "batch_first": True, "bias": False}]
_ROUND_TRIP = (
    [("RNN", o) for o in _LAYER_OPTIONS + [{"nonlinearity": "relu", "bidirectional": True}]]
    + [("GRU", o) for o in _LAYER_OPTIONS]
    + [("LSTM", o) for o in _LAYER_OPTIONS + [{"proj_size": 2}, {"proj_size": 3, "num_layers": 2, "bidirectional": True}]]
    + [(c, o) for c in ("RNNCell", "GRUCell", "LSTMCell") for o in ({}, {"bias": False})]
    + [("RNNCell", {"nonlinearity": "relu"})]
)
_CONFIG_ATTRS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional",
                 "proj_size", "nonlinearity", "mode", "training")


def _config_of(m) -> dict:
    return {a: getattr(m, a) for a in _CONFIG_ATTRS if hasattr(m, a)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cls,opts", _ROUND_TRIP, ids=lambda v: v if isinstance(v, str) else
                         "-".join(f"{k}={x}" for k, x in v.items()) or "default")
def test_round_trip_exact(device, cls, opts, dtype, training):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = getattr(reference, cls)(5, 4, **opts, dtype=dtype, seed=3)
    if hasattr(ref, "train"):
        ref.train(training)
    tm = to_torch(ref, device=device)
    assert all(p.device.type == device and p.dtype == _TORCH[dtype] for p in tm.parameters())
    assert tm.training == (training if hasattr(ref, "train") else True)
    back = from_torch(tm)
    assert type(back) is type(ref) and _config_of(back) == _config_of(ref)
    for (k, a), (k2, b) in zip(ref.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and a.dtype == b.dtype and np.array_equal(a, b), k
    # and from torch's side: torch -> reference -> torch
    tm2 = to_torch(from_torch(tm), device=device)
    assert _config_of(tm2) == _config_of(tm)
    for (k, a), (k2, b) in zip(tm.state_dict().items(), tm2.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k


def test_to_torch_casts_dtype(device):
    ref = reference.LSTM(3, 4, proj_size=2, dtype="float64", seed=0)
    tm = to_torch(ref, device=device, dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in tm.parameters())
    back = from_torch(tm)
    assert back.dtype == np.float32
    for k, v in ref.state_dict().items():
        assert np.array_equal(back.state_dict()[k], v.astype(np.float32)), k


def test_load_into_is_in_place_and_flattens(device, monkeypatch):
    ref = reference.GRU(3, 4, num_layers=2, bidirectional=True, seed=0)
    tm = to_torch(ref, device=device)
    before = {k: (p, p.data_ptr()) for k, p in tm.named_parameters()}
    seen = []  # the weights each flatten_parameters() call saw
    original = torch.nn.GRU.flatten_parameters
    monkeypatch.setattr(torch.nn.GRU, "flatten_parameters", lambda self: (
        seen.append({k: p.detach().cpu().numpy().copy() for k, p in self.named_parameters()}), original(self)))
    other = reference.GRU(3, 4, num_layers=2, bidirectional=True, seed=1).state_dict()
    load_into(tm, other)
    assert len(seen) == 1
    for k, p in tm.named_parameters():
        assert p is before[k][0] and p.data_ptr() == before[k][1], k  # the same storage: cuDNN's buffer stays valid
        assert np.array_equal(p.detach().cpu().numpy(), other[k]), k
    seen.clear()
    to_torch(ref, device=device)
    loaded = ref.state_dict()
    # flatten_parameters runs after the weights are in (torch's constructor and .to() call it too, before)
    assert any(all(np.array_equal(s[k], loaded[k]) for k in loaded) for s in seen)


# -- CUDA: the size of the TF32 error --------------------------------------------------------


@pytest.mark.cuda
def test_tf32_error_on_cuda(record_property):
    """float32 cuDNN LSTM against the float64 reference, with TF32 off (the suite's setting) and on.

    cuDNN refuses backward in eval mode, so, as torch's own tests do, the module runs in
    training mode with dropout 0. TF32 keeps 10 mantissa bits (unit roundoff 2^-11, about 4.9e-4),
    so the expected relative error grows to around 1e-3; the IEEE float32 error stays near 1e-6.
    """
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("TF32 needs an Ampere or newer GPU")
    ref = reference.LSTM(64, 64, num_layers=2, dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (16, 8, 64))
    gout = rng.standard_normal((16, 8, 64))
    desired = run_reference(ref, x, None, None, gout, None)
    ref32 = reference.LSTM(64, 64, num_layers=2, dtype="float32", seed=0)
    errors = {}
    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = tf32  # restored by conftest's _no_tf32 fixture
        torch.backends.cuda.matmul.allow_tf32 = tf32
        got = run_layer(ref32, x.astype(np.float32), None, None, gout.astype(np.float32), None, "cuda")
        errors[tf32] = max(np.abs(to_numpy(got[k]) - desired[k]).max() / np.abs(desired[k]).max()
                           for k in ("output", "input", "weight_ih_l0", "weight_hh_l1"))
        record_property(f"tf32={tf32} max relative error", errors[tf32])
    print(f"float32 cuDNN LSTM vs float64 reference: TF32 off {errors[False]:.2e}, TF32 on {errors[True]:.2e}")
    assert errors[False] <= tol("float32", "cuda", "gradient")[0]
    assert errors[True] < 1e-2  # TF32's documented precision, with room for 2 layers and 16 steps
