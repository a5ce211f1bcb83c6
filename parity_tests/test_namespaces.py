"""The one core on every array library: NumPy, torch tensors (CPU, CUDA) and array-api-strict.

array-api-strict implements the array API standard and nothing else, so a core
that runs on it uses only the standard. Desired values are torch.nn's, as in
test_layers / test_cells; every module and option is drawn. Results must come
back in the library (and on the device) they went in with.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, to_numpy
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import cell_configs, layer_configs
from tolerances import tol

import reference

torch = pytest.importorskip("torch")
from torch_oracle import run_cell, run_layer

_with_fixture = settings(parent=settings.default, suppress_health_check=list(settings.default.suppress_health_check))


def _strict():
    return pytest.importorskip("array_api_strict")


LIBRARIES = ["torch", "array-api-strict", pytest.param("torch-cuda", marks=pytest.mark.cuda)]


@pytest.fixture(params=LIBRARIES)
def library(request):
    if request.param == "torch-cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if request.param == "array-api-strict":
        _strict()
    return request.param


def _converter(library: str, dtype: str):
    """NumPy array (or None, or a tuple of them) -> the library's array, and a check of what came back."""
    if library.startswith("torch"):
        device = "cuda" if library == "torch-cuda" else "cpu"

        def conv(a):
            return torch.tensor(np.asarray(a), dtype=getattr(torch, dtype), device=device)

        def is_native(a):
            return isinstance(a, torch.Tensor) and a.device.type == device
    else:
        xp = _strict()

        def conv(a):
            return xp.asarray(np.asarray(a, dtype=dtype))

        def is_native(a):
            return type(a).__module__.startswith("array_api_strict")

    def tree(a):
        if a is None:
            return None
        return tuple(tree(v) for v in a) if isinstance(a, tuple) else conv(a)

    return tree, is_native


def _numpy(a):
    if type(a).__module__.startswith("array_api_strict"):
        return np.asarray(a)
    return to_numpy(a)


def _device(library: str) -> str:
    return "cuda" if library == "torch-cuda" else "cpu"


@_with_fixture
@given(cfg=layer_configs())
def test_layers_run_on_every_library(library, cfg):
    module = cfg.build()
    x, hx, lengths, g_out, g_hid = cfg.data()
    want = run_layer(module, x, hx, lengths, g_out, g_hid)
    conv, is_native = _converter(library, cfg.dtype)
    output, hidden, tape = module.forward(conv(x), conv(hx), lengths=lengths)
    grads = module.backward(tape, conv(g_out), conv(g_hid))
    fwd, grad = tol(cfg.dtype, _device(library), "forward"), tol(cfg.dtype, _device(library), "gradient")
    ctx = dict(config=cfg, repro=cfg.repro() + f"  # on {library}")
    got = {"output": output, "hidden": hidden, **grads}
    for name, value in got.items():
        for k, part in enumerate(value if isinstance(value, tuple) else (value,)):
            assert is_native(part), f"{name}[{k}] came back as {type(part).__name__}, not from {library}"
            desired = want[name][k] if isinstance(want[name], tuple) else want[name]
            assert_close(f"{name}[{k}]", _numpy(part), desired, *(fwd if name in ("output", "hidden") else grad),
                         **ctx)


@_with_fixture
@given(cfg=cell_configs())
def test_cells_run_on_every_library(library, cfg):
    cell = cfg.build()
    x, hx, cot = cfg.data()
    if hx is None:  # torch_oracle passes explicit zeros to get their gradient; so do we
        zeros = np.zeros(x.shape[:-1] + (cfg.hidden_size,))
        hx = (zeros, zeros) if cfg.kind == "LSTMCell" else zeros
    want = run_cell(cell, x, hx, cot)
    conv, is_native = _converter(library, cfg.dtype)
    hidden, tape = cell.forward(conv(x), conv(hx))
    grads = cell.backward(tape, conv(cot))
    fwd, grad = tol(cfg.dtype, _device(library), "forward"), tol(cfg.dtype, _device(library), "gradient")
    for name, value in {"hidden": hidden, **grads}.items():
        for k, part in enumerate(value if isinstance(value, tuple) else (value,)):
            assert is_native(part), f"{name}[{k}] came back as {type(part).__name__}, not from {library}"
            desired = want[name][k] if isinstance(want[name], tuple) else want[name]
            assert_close(f"{name}[{k}]", _numpy(part), desired, *(fwd if name == "hidden" else grad), config=cfg)


@given(p=st.sampled_from([0.3, 1.0]), mode=st.sampled_from(["RNN", "GRU", "LSTM"]))
def test_dropout_masks_move_with_the_call(library, p, mode):
    """Given keep masks, every library computes the NumPy result."""
    m = getattr(reference, mode)(3, 4, num_layers=3, dropout=p, bidirectional=True, seed=0)
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 8))
    masks = [(rng.random((5, 2, 8)) > 0.5).astype(np.float64) for _ in range(2)]
    out, _, tape = m.forward(x, dropout_masks=masks)
    want = m.backward(tape, g)
    conv, _ = _converter(library, "float64")
    out2, _, tape2 = m.forward(conv(x), dropout_masks=[conv(k) for k in masks])
    got = m.backward(tape2, conv(g))
    assert_close("output", _numpy(out2), out, 1e-13, 1e-15)
    for name in want:
        if name != "hx":
            assert_close(name, _numpy(got[name]), want[name], 1e-12, 1e-15)


def test_weights_move_once_per_library_and_version():
    m = reference.LSTM(3, 4, seed=0)
    x = torch.zeros(2, 1, 3, dtype=torch.float64)
    m.forward(x)
    first = m._snapshot(reference._namespace.placement_of(x=x))
    m.forward(x)
    assert m._snapshot(reference._namespace.placement_of(x=x)) is first  # cached
    m.load_state_dict(m.state_dict())
    assert m._snapshot(reference._namespace.placement_of(x=x)) is not first  # a new version moves again


# -- bad input -----------------------------------------------------------------------

def test_two_libraries_in_one_call_are_named():
    m = reference.LSTM(3, 4)
    x = np.zeros((2, 1, 3))
    with pytest.raises(TypeError, match=r"input is a numpy array but hx\[0\] is a torch array"):
        m.forward(x, (torch.zeros(1, 1, 4, dtype=torch.float64), np.zeros((1, 1, 4))))
    _, _, tape = m.forward(torch.zeros(2, 1, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="forward ran on torch"):
        m.backward(tape, np.zeros((2, 1, 4)))


def test_gradients_from_another_library_than_forward_are_refused():
    strict = _strict()
    m = reference.GRU(3, 4)
    _, _, tape = m.forward(np.zeros((2, 1, 3)))
    with pytest.raises(TypeError, match="array-api-strict|array_api_strict"):
        m.backward(tape, strict.zeros((2, 1, 4), dtype=strict.float64))


@pytest.mark.cuda
def test_two_devices_in_one_call_are_named():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    m = reference.GRU(3, 4)
    with pytest.raises(ValueError, match="on cuda.* but hx is on cpu|on cpu.* but hx is on cuda"):
        m.forward(torch.zeros(2, 1, 3, device="cuda"), torch.zeros(1, 1, 4))


def test_tensors_that_require_grad_are_refused_by_name():
    m = reference.RNN(3, 4)
    x = torch.zeros(2, 1, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="input: a torch tensor that requires grad.*detach"):
        m.forward(x)


def test_unusual_torch_tensors_work_or_are_refused_by_name():
    m = reference.LSTM(3, 4, seed=0)
    x = torch.randn(2, 1, 3, dtype=torch.float64)
    want = m(x.numpy())[0]
    # a negative view (torch's lazy negation bit) computes like its materialised value
    neg = torch._neg_view(-x)
    assert neg.is_neg()
    assert_close("negative view", m(neg)[0].numpy(), want, 1e-15, 0)
    # bfloat16 and float16 are floating dtypes other than the module's: refused by name, as torch refuses them
    for low in (torch.bfloat16, torch.float16):
        with pytest.raises(TypeError, match=f"input: torch dtype {str(low)[6:]} does not match the module's dtype "
                                            r"float64\. Convert input: input\.to\(torch\.float64\)"):
            m(x.to(low))
    with pytest.raises(TypeError, match="input: expected real floating values, got a torch array of dtype torch.int64"):
        m(torch.zeros(2, 1, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="complex"):
        m(torch.zeros(2, 1, 3, dtype=torch.complex64))


def test_a_device_without_float64_is_a_clear_error(monkeypatch):
    """torch on Apple's MPS has no float64; simulated with a namespace whose info lists none."""
    from reference._namespace import Placement, float_dtype

    class Info:
        def dtypes(self, device=None, kind=None):
            return {"float32": "f4"}

    class NoFloat64:
        float32 = "f4"

        def __array_namespace_info__(self):
            return Info()

    with pytest.raises(ValueError, match="dtype: this module is float64, but fakelib on gpu0 has no float64"):
        float_dtype(Placement(NoFloat64(), "gpu0", "fakelib"), np.dtype(np.float64))
    assert float_dtype(Placement(NoFloat64(), "gpu0", "fakelib"), np.dtype(np.float32)) == "f4"
