"""Low precision on CUDA, marked ``cuda``: run by ``bash .ci/cuda`` where a GPU is lent, skipped cleanly without one.

cuDNN's bfloat16 and float16 RNN, GRU and LSTM kernels MATCH against the rounding envelope; float32 with TF32
on is judged where it is declared (``compute="tf32"``) and fails the float32 table where it is not; TF32 off
MATCHes the table; a planted bug in a cuDNN float16 kernel is a MISMATCH placed at its gate. cuDNN computes
backward in training mode only, so every module runs in training mode with dropout 0 (as torch's own tests do).
"""

from __future__ import annotations

import pytest
import torch
from adapter_kit_torch import with_biases
from test_low_precision_compare import MODULES, NARROW, B, ForgetBias, H, I, T

from reference.verify import compare
from reference.verify.low_precision import LowPrecisionReport

pytestmark = pytest.mark.cuda

CUDNN = MODULES  # torch.nn's RNN, GRU and LSTM: cuDNN runs every one of them


@pytest.fixture(autouse=True)
def _gpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")


def _on_cuda(module: torch.nn.Module, dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return with_biases(module).to(device="cuda", dtype=dtype).train()


def _tf32(on: bool) -> None:
    """cuDNN's and cuBLAS's float32 products in TF32 (on) or IEEE float32 (off), through torch's newer
    ``fp32_precision`` settings where it has them, else the ``allow_tf32`` flags (conftest restores both)."""
    owners = [torch.backends.cuda.matmul, torch.backends.cudnn, getattr(torch.backends.cudnn, "rnn", None)]
    if any(o is not None and hasattr(o, "fp32_precision") for o in owners):
        for o in owners:
            if o is not None and hasattr(o, "fp32_precision"):
                o.fp32_precision = "tf32" if on else "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = on


@pytest.mark.parametrize("storage", list(NARROW))
@pytest.mark.parametrize("name", list(CUDNN))
def test_cudnn_kernels_at_low_precision_match(name, storage):
    report = compare(_on_cuda(CUDNN[name](), NARROW[storage]), seq_len=T, batch=B)
    assert isinstance(report, LowPrecisionReport) and report.passed, str(report)
    assert "cuda" in report.device and str(report.verdict).startswith(f"MATCH at {storage}"), str(report)


@pytest.mark.parametrize("storage", list(NARROW))
def test_cudnn_packed_bidirectional_lstm_at_low_precision_matches(storage):
    m = _on_cuda(torch.nn.LSTM(I, H, bidirectional=True), NARROW[storage])
    report = compare(m, seq_len=T, batch=B, lengths=[12, 5, 9])
    assert report.passed, str(report)


def test_tf32_is_judged_where_declared_and_fails_the_float32_table_where_not():
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("TF32 needs an Ampere or newer GPU")
    m = _on_cuda(torch.nn.LSTM(I, H), torch.float32)
    _tf32(True)
    declared = compare(m, compute="tf32", seq_len=T, batch=B)
    assert isinstance(declared, LowPrecisionReport) and declared.passed, str(declared)
    assert str(declared.verdict).startswith("MATCH at tf32"), str(declared)
    undeclared = compare(m, seq_len=T, batch=B)
    assert not undeclared.passed, str(undeclared)  # TF32's 10 mantissa bits are not float32's tolerance
    _tf32(False)
    assert compare(m, seq_len=T, batch=B).passed


def test_a_forget_gate_bug_in_a_cudnn_float16_kernel_is_placed_at_its_gate():
    m = _on_cuda(ForgetBias(I, H), torch.float16)
    report = compare(m, seq_len=T, batch=B)
    div = report.forward
    assert div is not None and (div.kind, div.layer, div.time, div.gate) == ("step", 0, 0, "f"), str(report)
    ForgetBias.delta = 0.0  # the same module without the bug: a MATCH
    try:
        assert compare(m, seq_len=T, batch=B).passed
    finally:
        ForgetBias.delta = 0.05
