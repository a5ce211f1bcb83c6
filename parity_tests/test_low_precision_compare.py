"""compare() and rnn-check at low precision: torch.nn's own bfloat16 and float16 kernels MATCH against the
rounding envelope, planted bugs MISMATCH naming the tensor and the step where the error leaves it, and
TF32 is judged where it is declared. Every verdict here is shown both ways."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from adapter_kit_torch import with_biases

from reference.verify import Spec, compare
from reference.verify.candidates import CandidateError
from reference.verify.cli import main as rnn_check
from reference.verify.low_precision import LowPrecisionReport, declared_precision

I, H, T, B = 5, 8, 12, 3
MODULES = {  # name: a torch.nn module of torch's own kernels
    "RNN tanh": lambda: torch.nn.RNN(I, H),
    "RNN relu": lambda: torch.nn.RNN(I, H, nonlinearity="relu"),
    "GRU": lambda: torch.nn.GRU(I, H),
    "LSTM": lambda: torch.nn.LSTM(I, H),
    "LSTM proj_size": lambda: torch.nn.LSTM(I, H, proj_size=3),
    "GRU 2 layers bidirectional": lambda: torch.nn.GRU(I, H, num_layers=2, bidirectional=True),
    "LSTM bidirectional": lambda: torch.nn.LSTM(I, H, bidirectional=True),
}
NARROW = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def _module(name: str, dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return with_biases(MODULES[name]()).to(dtype)


def _torch_lstm(m: torch.nn.LSTM, x, hx, weights: list) -> tuple:
    """torch's own LSTM kernel (one layer, time-major) on ``weights``, as torch.nn.LSTM.forward calls it."""
    if hx is None:
        hx = tuple(torch.zeros(1, x.shape[1], H, dtype=x.dtype) for _ in range(2))
    out = torch._VF.lstm(x, hx, weights, True, 1, 0.0, m.training, False, False)
    return out[0], (out[1], out[2])


class ForgetBias(torch.nn.LSTM):
    """torch.nn.LSTM whose forget gate reads its bias plus ``delta`` (the issue's bug); torch's kernel otherwise."""

    delta = 0.05

    def forward(self, x, hx=None):
        shift = torch.zeros_like(self.bias_ih_l0)
        shift[H:2 * H] = self.delta
        return _torch_lstm(self, x, hx, [self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0 + shift,
                                         self.bias_hh_l0])


class _ScaledGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w):
        return w.view_as(w)

    @staticmethod
    def backward(ctx, g):
        return g * 1.5


class WeightGradScaled(torch.nn.LSTM):
    """torch.nn.LSTM whose weight_hh_l0 gradient is 1.5 times too large; its forward is torch's."""

    def forward(self, x, hx=None):
        return _torch_lstm(self, x, hx, [self.weight_ih_l0, _ScaledGrad.apply(self.weight_hh_l0), self.bias_ih_l0,
                                         self.bias_hh_l0])


@pytest.mark.parametrize("storage", list(NARROW))
@pytest.mark.parametrize("name", list(MODULES))
def test_torch_kernels_at_low_precision_match(name, storage):
    m = _module(name, NARROW[storage])
    report = compare(m, seq_len=T, batch=B)
    assert isinstance(report, LowPrecisionReport) and report.passed, str(report)
    assert str(report.verdict).startswith(f"MATCH at {storage}: every error within the rounding envelope")
    assert f"declared: storage {storage}, compute {storage}, accumulation {storage}" in str(report)


@pytest.mark.parametrize("storage", list(NARROW))
def test_packed_sequences_at_low_precision_match(storage):
    report = compare(_module("LSTM bidirectional", NARROW[storage]), seq_len=T, batch=B, lengths=[12, 5, 9])
    assert report.passed and "lengths=[12, 5, 9]" in str(report), str(report)


@pytest.mark.parametrize("storage", list(NARROW))
def test_a_forget_gate_bias_bug_is_a_mismatch_naming_the_tensor_and_step(storage):
    torch.manual_seed(0)
    m = with_biases(ForgetBias(I, H)).to(NARROW[storage])
    report = compare(m, seq_len=T, batch=B)
    assert not report.passed, str(report)
    assert re.search(rf"MISMATCH at {storage}: output leaves the envelope at t = \d+ \([\d.]+x", str(report)), str(report)
    ForgetBias.delta = 0.0  # the same class without the bug: a MATCH
    try:
        assert compare(m, seq_len=T, batch=B).passed
    finally:
        ForgetBias.delta = 0.05


def test_a_gradient_only_bug_is_a_mismatch_in_that_gradient_alone():
    torch.manual_seed(0)
    m = with_biases(WeightGradScaled(I, H)).to(torch.bfloat16)
    report = compare(m, seq_len=T, batch=B)
    failed = [t.name for t in report.verdict.tensors if not t.passed]
    assert failed == ["grad weight_hh_l0"], str(report)
    assert "MISMATCH at bfloat16: grad weight_hh_l0 leaves the envelope" in str(report)


def _autocast_lstm_error() -> str:
    """'' where torch's CPU autocast runs an LSTM in bfloat16 here, else torch's error: it sends the LSTM to
    oneDNN, whose bfloat16 RNN needs AVX-512 (seen on an AVX2-only AMD EPYC: "could not create a primitive
    descriptor for the LSTM forward propagation primitive")."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(2, 3)(torch.zeros(1, 1, 2))
    except RuntimeError as e:
        return str(e)
    return ""


def test_a_float32_module_asked_for_bfloat16_runs_under_torch_autocast():
    """dtype='bfloat16' for a float32 module: torch's CPU autocast, judged at bfloat16; its bug still fails."""
    if error := _autocast_lstm_error():
        m = _module("LSTM", torch.float32)  # the verifier says the candidate raised, naming torch's error
        with pytest.raises(CandidateError, match=r"LSTM \(torch.autocast bfloat16\) raised RuntimeError"):
            compare(m, dtype="bfloat16", seq_len=T, batch=B)
        pytest.skip(f"torch's CPU autocast runs no bfloat16 LSTM on this CPU: {error[:80]}")
    m = _module("LSTM", torch.float32)
    report = compare(m, dtype="bfloat16", seq_len=T, batch=B)
    assert report.passed and report.candidate == "LSTM (torch.autocast bfloat16)", str(report)
    assert next(m.parameters()).dtype == torch.float32 and not torch.is_autocast_enabled("cpu")  # left as it was
    torch.manual_seed(0)
    bug = with_biases(ForgetBias(I, H))
    assert "MISMATCH at bfloat16: output leaves the envelope" in str(compare(bug, dtype="bfloat16", seq_len=T, batch=B))


def test_a_kernel_that_rounds_less_may_declare_it_and_is_judged_tighter():
    """compute='float32' (a fused kernel) gives a narrower envelope than the default claim."""
    m = _module("GRU", torch.bfloat16)
    wide = compare(m, seq_len=T, batch=B)
    narrow = compare(m, seq_len=T, batch=B, compute="float32")
    assert "compute float32, accumulation float32" in str(narrow)
    assert narrow.verdict.envelope.tensors["output"].limits.max() < wide.verdict.envelope.tensors["output"].limits.max()


def test_tf32_is_judged_where_declared():
    """A float32 module declared TF32: the envelope of TF32 products; a bug far above float32's noise still fails."""
    m = _module("LSTM", torch.float32)
    report = compare(m, seq_len=T, batch=B, compute="tf32")
    assert isinstance(report, LowPrecisionReport) and report.passed and report.precision.name == "tf32", str(report)
    torch.manual_seed(0)
    bug = with_biases(ForgetBias(I, H))
    assert not compare(bug, seq_len=T, batch=B, compute="tf32").passed
    assert not isinstance(compare(m, seq_len=T, batch=B, compute="float32"), LowPrecisionReport)  # as it is


def test_a_function_at_bfloat16_gets_float32_arrays_of_bfloat16_values():
    seen = {}

    def fn(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        seen["dtype"] = input.dtype
        seen["exact"] = np.array_equal(torch.from_numpy(input).bfloat16().float().numpy(), input)
        m = torch.nn.GRU(spec.input_size, spec.hidden_size)
        with torch.no_grad():
            for k, p in m.named_parameters():
                p.copy_(torch.from_numpy(params[k]))
        x, h = (torch.tensor(a, requires_grad=True) for a in (input, hx[0]))
        out, h_n = m(x, h)
        ws = list(m.parameters())
        grads = torch.autograd.grad((out, h_n), [x, h, *ws], (torch.from_numpy(grad_output),
                                                               torch.from_numpy(grad_hidden[0])))
        res = {"output": out.detach().numpy(), "hidden": (h_n.detach().numpy(),), "input": grads[0].numpy(),
               "hx": (grads[1].numpy(),)}
        res.update((k, g.numpy()) for (k, _), g in zip(m.named_parameters(), grads[2:], strict=True))
        return res

    report = compare(fn, Spec("GRU", I, H), dtype="bfloat16", weights="draw", seq_len=T, batch=B)
    assert seen == {"dtype": np.float32, "exact": True} and report.passed, str(report)


@pytest.mark.parametrize("kwargs, says", [
    (dict(compute="float64"), "compute: a kernel storing bfloat16 computes in float32 or bfloat16, got 'float64'"),
    (dict(compute="float32", accumulate="bfloat16"), "accumulate: a kernel storing bfloat16 and computing in float32"),
    (dict(compute=32), "compute: expected a format name"),
    (dict(dtype="float32"), "dtype: LSTM computes in bfloat16 (its weights' dtype); asked float32"),
])
def test_a_declaration_the_storage_does_not_allow_is_refused_by_name(kwargs, says):
    with pytest.raises((ValueError, TypeError), match=re.escape(says)):
        compare(_module("LSTM", torch.bfloat16), seq_len=T, batch=B, **kwargs)


def test_the_declaration_rule():
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    assert declared_precision(None, f32, None, None) is None and declared_precision(None, f64, "float64", None) is None
    assert str(declared_precision("bfloat16", f32, None, None)) == "storage bfloat16, compute bfloat16, accumulation bfloat16"
    assert str(declared_precision("float16", f32, "float32", None)) == "storage float16, compute float32, accumulation float32"
    assert declared_precision(None, f32, "tf32", None).name == "tf32"
    with pytest.raises(ValueError, match="compute: a kernel storing float64"):
        declared_precision(None, f64, "tf32", None)


def test_own_weights_on_both_sides_are_refused_at_low_precision():
    m = _module("LSTM", torch.bfloat16)
    with pytest.raises(ValueError, match="weights: at low precision"):
        compare(m, torch.nn.LSTM(I, H), seq_len=T, batch=B)
    assert compare(m, torch.nn.LSTM(I, H), weights="reference", seq_len=T, batch=B).passed


def test_the_cli_judges_low_precision_with_the_same_exit_codes(tmp_path, capsys):
    base = ["--candidate", "torch.nn:LSTM", "--mode", "LSTM", "--input-size", str(I), "--hidden-size", str(H),
            "--seq-len", str(T)]
    plot = tmp_path / "errors.png"
    assert rnn_check([*base, "--dtype", "bfloat16", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "MATCH at bfloat16" in out and plot.stat().st_size > 10_000, out
    assert rnn_check([*base, "--dtype", "float32", "--compute", "tf32"]) == 0
    assert "MATCH at tf32" in capsys.readouterr().out
    assert rnn_check([*base, "--dtype", "float64", "--compute", "tf32"]) == 2
    assert "compute: a kernel storing float64 computes in float64" in capsys.readouterr().err
    bug = tmp_path / "bug.py"
    bug.write_text("import torch\nfrom test_low_precision_compare import ForgetBias\n\n"
                   "def build(input_size, hidden_size, **kw):\n    return ForgetBias(input_size, hidden_size, **kw)\n")
    assert rnn_check([*base[:1], f"{bug}:build", *base[2:], "--dtype", "bfloat16"]) == 1
    assert "MISMATCH at bfloat16: output leaves the envelope" in capsys.readouterr().out


def in_bfloat16(fn):
    """``fn`` run on ml_dtypes.bfloat16 arrays (JAX's NumPy bfloat16), its results returned in bfloat16."""
    bf16 = pytest.importorskip("ml_dtypes").bfloat16
    cast = lambda a: None if a is None else np.asarray(a).astype(bf16)

    def run(spec, params, input, hx, grad_output, grad_hidden, **kw):
        res = fn(spec, {k: cast(v) for k, v in params.items()}, cast(input), tuple(cast(h) for h in hx),
                 cast(grad_output), None if grad_hidden is None else tuple(cast(g) for g in grad_hidden), **kw)
        return {k: tuple(cast(a) for a in v) if isinstance(v, tuple) else cast(v) for k, v in res.items()}

    return run


def test_a_numpy_lstm_in_ml_dtypes_bfloat16_matches_and_its_bug_does_not():
    """examples/my_numpy_lstm.py run on bfloat16 arrays returns bfloat16: judged at bfloat16; its BUG line is
    a MISMATCH in the gradients only."""
    from examples import my_numpy_lstm

    spec = Spec("LSTM", I, H)
    right = compare(in_bfloat16(my_numpy_lstm.my_lstm), spec, dtype="bfloat16", weights="draw", seq_len=T, batch=B,
                    lengths=[12, 7, 3])
    assert right.passed and str(right.verdict).startswith("MATCH at bfloat16"), str(right)
    wrong = compare(in_bfloat16(my_numpy_lstm.with_bug()), spec, dtype="bfloat16", weights="draw", seq_len=T,
                    batch=B, lengths=[12, 7, 3])
    failed = {t.name for t in wrong.verdict.tensors if not t.passed}
    assert failed and all(n.startswith("grad ") for n in failed), str(wrong)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_an_onnx_model_of_float16_weights_is_judged_at_float16(op, capsys):
    """ONNX Runtime's float16 node is a MATCH at float16; the same graph with its output scaled by 1.02 is a
    MISMATCH naming the output; rnn-check exits 0 and 1 on them."""
    pytest.importorskip("onnxruntime")
    from adapter_kit_onnx import chain

    right = compare(chain(f"{op}_f16", op, dtype=np.float16), seq_len=T, batch=B)
    assert right.passed and str(right.verdict).startswith("MATCH at float16"), str(right)
    scaled = chain(f"{op}_f16_scaled", op, dtype=np.float16, scale=1.02)
    wrong = compare(scaled, seq_len=T, batch=B)
    assert "MISMATCH at float16: output leaves the envelope at t = 0" in str(wrong), str(wrong)
    assert rnn_check(["--model", scaled, "--seq-len", str(T)]) == 1
    assert "MISMATCH at float16" in capsys.readouterr().out
