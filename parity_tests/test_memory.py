"""Memory before work: the modules' estimate holds against measured peak RSS, and a size that does not fit is
refused, naming the estimate and the sizes, before anything is allocated.

The sweep (``parity_tests/memory_sweep.py``) runs each case in a fresh process;
on one machine (2 cores, NumPy 2.4, OpenBLAS, glibc) it measured, peak RSS growth
against the estimate:

    case                                        measured MiB  estimate MiB  ratio
    LSTM T=100 B=64 H=128 L=1 D=1 float64               97.9          85.5   1.15
    GRU T=100 B=64 H=128 L=1 D=1 float64               110.6          90.7   1.22
    RNN T=200 B=64 H=128 L=1 D=1 float64                54.1          51.9   1.04
    LSTM T=50 B=32 H=128 L=2 D=2 float64                77.3          77.9   0.99
    GRU T=60 B=32 H=128 L=2 D=2 float32                 38.7          40.7   0.95
    LSTM T=100 B=64 H=128 L=1 D=1 float32               50.8          42.8   1.19
    RNN T=100 B=64 H=128 L=3 D=2 float32                73.7          73.5   1.00
    LSTM T=100 B=64 H=128 L=1 D=1 float64 lengths      135.4         123.0   1.10
    LSTM T=100 B=64 H=128 L=2 D=1 float64 P=64         157.0         132.8   1.18

(single-threaded BLAS, as the mutant runner sets it: 0.80 to 1.10), and for the
verifier's main check of torch.nn's module (``--verifier``):

    LSTM T=100 B=64 H=128 L=1 D=1 float64              164.1         153.0   1.07
    GRU T=100 B=64 H=128 L=1 D=1 float32               145.6         156.9   0.93
    LSTM T=100 B=32 H=128 L=2 D=2 float64              199.0         222.6   0.89

so the stated factor is 1.5 either way (docs/validation.md).
"""

from __future__ import annotations

import math
import os
import sys
import tracemalloc

import numpy as np
import pytest

import reference
from reference.memory import (
    Estimate,
    MemoryLimitError,
    available_bytes,
    check_memory,
    estimate,
    memory_limit,
)

FACTOR = 1.5  # measured / estimated lies in [1 / FACTOR, FACTOR]


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.access("/proc/self/clear_refs", os.W_OK),
                    reason="peak RSS is reset and read through Linux's /proc/self")
def test_the_estimate_holds_against_peak_rss_over_a_sweep():
    from parity_tests.memory_sweep import sweep

    rows = sweep()
    for r in rows:
        ratio = r["measured"] / r["estimated"]
        assert 1 / FACTOR <= ratio <= FACTOR, (r, ratio)
        assert r["estimated"] > 30 * 2**20, r  # the tape dominates RSS noise


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.access("/proc/self/clear_refs", os.W_OK),
                    reason="peak RSS is reset and read through Linux's /proc/self")
def test_the_verifiers_estimate_holds_against_peak_rss():
    pytest.importorskip("torch")
    from parity_tests.memory_sweep import sweep

    for r in sweep(verifier=True):
        ratio = r["measured"] / r["estimated"]
        assert 1 / FACTOR <= ratio <= FACTOR, (r, ratio)


def test_the_parts_add_up_and_scale_with_every_size():
    cfg = reference.LSTM(8, 16, num_layers=2, bidirectional=True).config
    est = estimate(cfg, 10, 4, np.float64)
    assert est.bytes == sum(est.parts.values()) and set(est.parts) == {"tape", "output", "backward"}
    assert est.sizes == "LSTM(I=8, H=16, L=2, D=2), T=10, B=4, float64"
    assert estimate(cfg, 10, 4, np.float32).bytes * 2 == est.bytes
    grads = 8 * sum(math.prod(s) for s in cfg.parameter_shapes().values())  # the one term T and B do not scale
    for T, B in ((20, 4), (10, 8)):
        assert estimate(cfg, T, B, np.float64).bytes - grads == pytest.approx(2 * (est.bytes - grads), rel=0.05)
    assert estimate(cfg, 10, 4, np.float64, lengths=True).bytes > est.bytes


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_forward_refuses_past_the_limit_before_allocating(mode):
    m = getattr(reference, mode)(8, 16, dtype=np.float32, seed=0)
    x = np.broadcast_to(np.float32(0.5), (1000, 2000, 8))  # 16 MB of input, read-only, never copied
    tracemalloc.start()
    try:
        with memory_limit(2**20), pytest.raises(MemoryLimitError) as e:
            m.forward(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, peak
    text = str(e.value)
    assert isinstance(e.value, ValueError)
    shown = "RNN_TANH" if mode == "RNN" else mode
    assert f"forward + backward of {shown}(I=8, H=16, L=1, D=1), T=1000, B=2000, float32 needs about" in text, text
    assert "tape " in text and "backward " in text and "1 MiB allowed (memory_limit)" in text, text


def test_batch_first_and_unbatched_inputs_are_sized_as_they_are():
    m = reference.GRU(3, 4, batch_first=True)
    with memory_limit(10**4), pytest.raises(MemoryLimitError, match="T=7, B=50"):
        m.forward(np.zeros((50, 7, 3)))
    with memory_limit(10**4), pytest.raises(MemoryLimitError, match="T=70, B=1"):
        m.forward(np.zeros((70, 3)))
    with memory_limit(10**4), pytest.raises(MemoryLimitError, match="T=7, B=50"):
        m.forward(np.zeros((50, 7, 3)).tolist())  # a list: sized once converted


def test_the_default_limit_is_the_memory_available(monkeypatch):
    m = reference.LSTM(3, 4)
    monkeypatch.setattr("reference.memory.available_bytes", lambda: 1000)
    with pytest.raises(MemoryLimitError, match="1000 bytes available"):
        m.forward(np.zeros((5, 3, 3)))
    with memory_limit(math.inf):  # on purpose
        out, _, tape = m.forward(np.zeros((5, 3, 3)))
        assert m.backward(tape, np.ones_like(out))["input"].shape == (5, 3, 3)


def test_the_constructor_refuses_parameters_that_do_not_fit():
    with memory_limit(10**6), pytest.raises(MemoryLimitError) as e:
        reference.LSTM(256, 30000)
    assert "building the parameters of LSTM(I=256, H=30000, L=1, D=1), float64 parameters needs about" in str(e.value)
    with memory_limit(10**6), pytest.raises(MemoryLimitError, match="building the parameters"):
        reference.GRUCell(256, 30000)


def test_a_refusal_changes_nothing():
    m = reference.LSTM(3, 4, seed=0)
    before, rng = m.state_dict(), m._rng.bit_generator.state
    with memory_limit(10), pytest.raises(MemoryLimitError):
        m.forward(np.zeros((5, 3, 3)))
    assert all(np.array_equal(v, m.state_dict()[k]) for k, v in before.items()) and m._rng.bit_generator.state == rng


def test_the_limit_is_checked_and_per_block():
    for bad in (0, -1, math.nan, "lots", True):
        with pytest.raises(ValueError, match="memory_limit: expected"), memory_limit(bad):
            pass
    with memory_limit(10):
        with memory_limit(math.inf):
            reference.LSTM(3, 4).forward(np.zeros((2, 1, 3)))
        with pytest.raises(MemoryLimitError):
            reference.LSTM(3, 4).forward(np.zeros((2, 1, 3)))
    assert available_bytes() > 0


def test_check_memory_names_each_part():
    with memory_limit(100), pytest.raises(MemoryLimitError) as e:
        check_memory(Estimate(3 * 2**30, {"tape": 2 * 2**30, "output": 2**30}, "X(sizes)"), "the work")
    assert str(e.value).startswith("memory: the work of X(sizes) needs about 3 GiB (tape 2 GiB, output 1 GiB); "
                                   "100 bytes allowed (memory_limit)")


def test_arrays_on_an_accelerator_are_not_checked_against_host_memory():
    from reference.memory import on_host

    assert on_host("cpu") and on_host("array_api_strict.Device('CPU_DEVICE')")
    assert not on_host("cuda:0") and not on_host("mps")
