"""Clocks, FLOP counts and byte counts: the napkin maths next to every result."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .config import GATES, Row


def time_calls(fn: Callable[[], Any], sync: Callable[[], None], repeat: int, warmup_s: float = 0.25) -> list[float]:
    """Seconds per call, ``repeat`` times after untimed warm-up calls (at least one, and
    until ``warmup_s`` has passed: thread pools, allocator and caches settle, which the
    first row of a process otherwise pays for); the device is synchronised before each
    clock read, so queued GPU work is counted."""
    start = time.perf_counter()
    for _ in range(20):
        fn()
        sync()
        if time.perf_counter() - start > warmup_s:
            break
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def summary(times: list[float]) -> dict[str, float]:
    """Median in ms, and the spread as the interquartile range relative to the median."""
    med = statistics.median(times)
    q = np.percentile(times, [25, 75]) if len(times) > 1 else (med, med)
    return {"ms": med * 1e3, "min_ms": min(times) * 1e3, "max_ms": max(times) * 1e3,
            "spread": float((q[1] - q[0]) / med) if med > 0 else 0.0, "repeats": len(times)}


def matmul_flops(row: Row, phase: str) -> float:
    """Matrix-product FLOPs of one call: forward 2*G*H*(I+H)*B*T (the input and the
    recurrent product); backward twice that (gradients at the inputs and at the weights)."""
    forward = 2.0 * GATES[row.cell] * row.H * (row.I + row.H) * row.B * row.T
    return {"inference": forward, "forward": forward, "backward": 2 * forward, "step": 3 * forward}[phase]


def min_activation_bytes(row: Row) -> int:
    """The least BPTT must keep from forward: every tensor backward cannot rebuild
    without a matrix product or a transcendental function, counted per step:

        every cell   h_{t-1}, the input of W_hh, for dW_hh       (T states, h_0 included)
        RNN          h_t, the derivative's source (tanh' = 1 - h^2, relu' = [h > 0]): adds h_T
        GRU          r, z, n and W_hn h + b_hn (dr needs it; rebuilding it is a product)
        LSTM         i, f, g, o, c_{t-1} and tanh(c_t)

    so RNN (T+1)BH, GRU 5TBH, LSTM 7TBH elements. The input x is the caller's and not counted.
    """
    T, B, H = row.T, row.B, row.H
    elements = {"RNN_TANH": (T + 1) * B * H, "RNN_RELU": (T + 1) * B * H, "GRU": 5 * T * B * H,
                "LSTM": 7 * T * B * H}[row.cell]
    return elements * np.dtype(row.dtype).itemsize


def retained_bytes(obj: Any, exclude: tuple = ()) -> int:
    """Bytes of every distinct buffer an object keeps alive (views count their whole base).

    Walks tuples, lists, dicts and NamedTuples; arrays in ``exclude`` (the input,
    the weights) are not counted.
    """
    skip = {id(_owner(a)) for a in exclude}
    seen: dict[int, int] = {}

    def walk(o):
        if isinstance(o, np.ndarray):
            base = _owner(o)
            if id(base) not in skip:
                seen[id(base)] = base.nbytes
        elif isinstance(o, (tuple, list)):
            for item in o:
                walk(item)
        elif isinstance(o, dict):
            for item in o.values():
                walk(item)

    walk(obj)
    return sum(seen.values())


def _owner(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def peak_traced_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes NumPy allocates during fn() (NumPy reports its buffers to tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    del result
    return peak


def matmul_peak(device: str, dtype: str, repeat: int = 20) -> dict[str, float]:
    """GFLOP/s of a square matrix product, the best of NumPy and torch on this device.

    N = 1024 on the CPU (large enough for BLAS to reach steady state, ~15 ms), 4096 on CUDA.
    The fastest of ``repeat`` calls, not the median: a peak is what the machine can do, and
    on a shared machine a median of a few calls measured the neighbours (one run's median
    came out at 163 GFLOP/s float32, below what torch's LSTM then sustained, 192).
    """
    import torch

    n = 4096 if device == "cuda" else 1024
    flops = 2.0 * n ** 3
    out = {}
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    if device == "cpu":
        out["numpy"] = flops / min(time_calls(lambda: a @ b, lambda: None, repeat)) / 1e9
    ta, tb = (torch.tensor(m, device=device) for m in (a, b))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out["torch"] = flops / min(time_calls(lambda: ta @ tb, sync, repeat)) / 1e9
    out["peak"] = max(out.values())
    out["n"] = n
    return out
