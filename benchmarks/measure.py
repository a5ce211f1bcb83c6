"""Clocks, FLOP counts and byte counts: the napkin maths next to every result."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .config import GATES, ITEMSIZE, LOW_PRECISION, Row


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
    """Matrix-product FLOPs of one call: forward 2*G*H*(I+P)*B*T (the input and the
    recurrent product; P = proj_size or H), plus 2*H*P*B*T for an LSTM projection;
    backward twice that (gradients at the inputs and at the weights)."""
    P = row.P or row.H
    forward = 2.0 * GATES[row.cell] * row.H * (row.I + P) * row.B * row.T + (2.0 * row.H * P * row.B * row.T
                                                                              if row.P else 0.0)
    return {"inference": forward, "forward": forward, "backward": 2 * forward, "step": 3 * forward}[phase]


def min_activation_bytes(row: Row) -> int:
    """The least BPTT must keep from forward: every tensor backward cannot rebuild
    without a matrix product or a transcendental function, counted per step:

        every cell   h_{t-1}, the input of W_hh, for dW_hh       (T states, h_0 included)
        RNN          h_t, the derivative's source (tanh' = 1 - h^2, relu' = [h > 0]): adds h_T
        GRU          r, z, n and W_hn h + b_hn (dr needs it; rebuilding it is a product)
        LSTM         i, f, g, o, c_{t-1} and tanh(c_t) (with a projection, h_{t-1} is (B, P)
                     and W_hr's input o * tanh(c_t) is rebuilt elementwise)

        every cell   x, the input of W_ih, for dW_ih              (T B I)

    so RNN (T+1)BH, GRU 5TBH, LSTM TB(6H + P) elements, plus TBI for the input. The input is
    counted because BPTT needs it; the reference's tape keeps its own copy of it (so a later
    write into the caller's array cannot change a gradient), and that copy is counted in the tape.
    """
    T, B, H = row.T, row.B, row.H
    elements = {"RNN_TANH": (T + 1) * B * H, "RNN_RELU": (T + 1) * B * H, "GRU": 5 * T * B * H,
                "LSTM": T * B * (6 * H + (row.P or H))}[row.cell] + T * B * row.I
    return elements * ITEMSIZE[row.dtype]


def retained_bytes(obj: Any, exclude: tuple = (), skip_objects: tuple = ()) -> int:
    """Bytes of every distinct NumPy buffer an object keeps alive (views count their whole base).

    Walks tuples, lists, dicts, NamedTuples and plain objects' attributes; arrays in
    ``exclude`` (the caller's input, the module's weights) and objects in ``skip_objects``
    (the module a tape points back to) are not counted.
    """
    skip = {id(_owner(a)) for a in exclude}
    skip_obj = {id(o) for o in skip_objects}
    seen: dict[int, int] = {}
    visited: set[int] = set()

    def walk(o):
        if id(o) in visited or id(o) in skip_obj:
            return
        visited.add(id(o))
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
        elif hasattr(o, "__dict__") and not isinstance(o, type):
            for item in vars(o).values():
                walk(item)
        elif hasattr(o, "__slots__"):
            for name in o.__slots__:
                walk(getattr(o, name, None))

    walk(obj)
    return sum(seen.values())


def arrays_in(obj: Any) -> list[np.ndarray]:
    """Every NumPy array reachable from obj (the same walk as ``retained_bytes``)."""
    found: list[np.ndarray] = []
    visited: set[int] = set()

    def walk(o):
        if id(o) in visited:
            return
        visited.add(id(o))
        if isinstance(o, np.ndarray):
            found.append(o)
        elif isinstance(o, (tuple, list)):
            for item in o:
                walk(item)
        elif isinstance(o, dict):
            for item in o.values():
                walk(item)
        elif hasattr(o, "__dict__") and not isinstance(o, type):
            for item in vars(o).values():
                walk(item)

    walk(obj)
    return found


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
    """GFLOP/s of a square matrix product, the best of NumPy and torch on this device (torch's
    alone in bfloat16 and float16).

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
    low = dtype in LOW_PRECISION  # torch's product only: NumPy has no bfloat16
    a, b = (rng.standard_normal((n, n)).astype("float32" if low else dtype) for _ in range(2))
    if device == "cpu" and not low:
        out["numpy"] = flops / min(time_calls(lambda: a @ b, lambda: None, repeat)) / 1e9
    ta, tb = (torch.tensor(m, device=device, dtype=getattr(torch, dtype)) for m in (a, b))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out["torch"] = flops / min(time_calls(lambda: ta @ tb, sync, repeat)) / 1e9
    out["peak"] = max(out.values())
    out["n"] = n
    return out


# Peak resident memory per row. The workers persist over the whole run (rows are timed side
# by side), and their allocator keeps freed memory, so a process-wide high-water mark would
# hold the largest row seen so far. Instead, after a row is timed: free what it held, hand
# freed heap back to the system (glibc's malloc_trim), reset the kernel's high-water mark to
# the current resident set (/proc/self/clear_refs, Linux >= 4.0), then prepare the row afresh
# and run one forward + backward. Reported: the peak over the resident set just before the
# step (inputs, weights and the implementation's set-up already resident), and that set-up's
# own increment. Memory an allocator caches from earlier rows and reuses is not counted.
RSS_METHOD = ("VmHWM - VmRSS around one forward + backward in the timing process, after malloc_trim(0) "
              "and a high-water reset (/proc/self/clear_refs 5)")


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def peak_rss_bytes() -> int | None:
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def reset_peak_rss() -> bool:
    """Set the high-water mark to the current resident set; False where the kernel has no such reset."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: freed memory stays counted as resident
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def step_memory(prepare: Callable[[], Any], run: Callable[[Any], Any]) -> dict[str, int | None]:
    """{"setup_rss_bytes", "step_peak_rss_bytes"}: resident-set growth while ``prepare()`` builds
    the row, and the peak over the resident set while ``run(prepared)`` does one forward + backward."""
    if not reset_peak_rss():
        return {"setup_rss_bytes": None, "step_peak_rss_bytes": None}
    before = rss_bytes()
    prepared = prepare()
    reset_peak_rss()  # set-up scratch that malloc_trim hands back is not the step's
    ready = rss_bytes()
    result = run(prepared)
    peak = peak_rss_bytes()
    del result, prepared
    return {"setup_rss_bytes": ready - before, "step_peak_rss_bytes": peak - ready}
