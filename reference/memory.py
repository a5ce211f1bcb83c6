"""Memory before work: what a forward + backward will hold, estimated from the sizes alone, and the check.

    est = estimate(config, T=100, B=64, dtype=np.float64)    # Estimate: bytes, parts, the sizes
    check_memory(est)              # MemoryLimitError (a ValueError) when est.bytes > the limit
    with memory_limit(math.inf):   # on purpose: no check inside this block
        lstm.forward(x)

The modules check before they allocate: the constructor its parameters,
``forward`` the forward and the backward its tape is kept for (a tape exists to
be differentiated), so a size that does not fit is refused in microseconds,
not after minutes of work or by the kernel's OOM killer. The verifier adds its
own copies (``reference.verify.memory``).

What is counted, in elements of the module's dtype (T time, B batch, I input,
H hidden, P output, G gates, L layers, D directions, I_l layer l's input)::

    tape       per layer and direction: the states (T + 1) B (P [+ H for LSTM]) and the
               gate cache T B C, C = 5H (LSTM: o, i, f, g, tanh c), 4H (GRU: r, z, n, W_hn h),
               0 (RNN), plus the pre-activations (GH) in ONNX's general cells; per layer
               above the first its input T B D P; one input-projection block, T B G H / 8
    output     T B D P where it is a new array (two directions, or lengths: zeroed padding);
               else it is the tape's own state history
    backward   the parameters' gradients, and at the widest layer: one direction's histories
               T B (G H [+ G H for GRU's input-side gradient in torch's form] [+ P where the
               step's dh is kept: GRU in torch's form, projections] [+ G H + P zeroed copies
               with lengths]) + T B I_l per direction (its input gradient) [+ T B I_l, their
               sum] [+ T B D P below the top layer: the gradient arriving from above]
               + T B max(I_l, P), the workspace of the weight gradients' products

Measured against peak RSS (``parity_tests/test_memory.py`` holds the factor).
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, NamedTuple

import numpy as np

# Every ``config`` below is an RNNConfig, read for its sizes only; it is not imported, so that the modules that
# build configurations (recurrent.py, module.py) can import this one without a cycle.
RNNConfig = Any

# "available": the memory available when the check runs (the default); a number: that many bytes; math.inf: no check
_LIMIT: ContextVar[float | str] = ContextVar("memory_limit", default="available")


class MemoryLimitError(ValueError):
    """A forward + backward estimated to need more memory than the limit: raised before anything is allocated."""


class Estimate(NamedTuple):
    """Bytes a piece of work will hold at its peak, by part, and the sizes that produced them."""

    bytes: int
    parts: dict  # part name -> bytes
    sizes: str  # "LSTM(I=256, H=256, L=1, D=1), T=100, B=64, float64"

    def __add__(self, other: Any) -> Estimate:
        if not isinstance(other, Estimate):
            return NotImplemented
        parts = dict(self.parts)
        for k, v in other.parts.items():
            parts[k] = parts.get(k, 0) + v
        return Estimate(self.bytes + other.bytes, parts, self.sizes)


def describe(config: RNNConfig) -> str:
    """The sizes of a configuration in one short form: LSTM(I=256, H=256, L=1, D=1[, P=..])."""
    proj = f", P={config.proj_size}" if config.proj_size else ""
    return (f"{config.mode}(I={config.input_size}, H={config.hidden_size}{proj}, L={config.num_layers}, "
            f"D={config.num_directions})")


def parameter_elements(config: RNNConfig) -> int:
    return sum(math.prod(s) for s in config.parameter_shapes().values())


def _cache_width(config: RNNConfig) -> int:
    """Numbers per (step, batch row) a layer's gate cache keeps (see the module docstring)."""
    H, GH = config.hidden_size, config.gates * config.hidden_size
    width = {"LSTM": 5 * H, "GRU": (4 if config.reset_after else 3) * H}.get(config.mode, 0)
    return width + (GH if config.general else 0)


def forward_backward_elements(config: RNNConfig, T: int, B: int, lengths: bool = False) -> dict[str, int]:
    """Numbers held at the peak of a forward + backward, by part (the parameters themselves excluded)."""
    L, D, H, P = config.num_layers, config.num_directions, config.hidden_size, config.output_size
    GH = config.gates * H
    torch_gru = config.mode == "GRU" and config.reset_after
    state = P + (H if config.mode == "LSTM" else 0)
    per_direction = (T + 1) * B * state + T * B * _cache_width(config)
    tape = L * D * per_direction + (L - 1) * T * B * D * P + T * B * GH // 8
    histories = GH + (GH if torch_gru else 0) + (P if torch_gru or config.proj_size else 0) + \
        (GH + P if lengths else 0)
    widest_input = max(config.layer_input_size(layer) for layer in range(L))
    input_grads = (D + (1 if D == 2 else 0)) * widest_input
    from_above = D * P if L > 1 else 0  # the top layer's is the caller's grad_output
    workspace = max(widest_input, P)  # a matrix product's operand or result beyond the histories (measured)
    widest = T * B * (histories + input_grads + from_above + workspace)
    output = T * B * D * P if D == 2 or lengths else 0  # else the output is the tape's own state history
    return {"tape": tape, "output": output, "backward": parameter_elements(config) + widest}


def estimate(config: RNNConfig, T: int, B: int, dtype: Any, lengths: bool = False) -> Estimate:
    """What a forward + backward of ``config`` on T steps of B rows (``lengths``: with variable lengths) will
    hold at its peak, in bytes."""
    itemsize = np.dtype(dtype).itemsize
    parts = {k: v * itemsize for k, v in forward_backward_elements(config, T, B, lengths).items()}
    return Estimate(sum(parts.values()), parts, f"{describe(config)}, T={T}, B={B}, {np.dtype(dtype).name}")


def on_host(device: Any) -> bool:
    """Whether arrays on ``device`` live in this machine's memory (NumPy's, torch's CPU, ...), not an accelerator's."""
    return "cpu" in str(device).lower()  # "cpu", torch's device(type='cpu'), array-api-strict's CPU_DEVICE


def parameters_estimate(config: RNNConfig, dtype: Any) -> Estimate:
    """What building a module holds at its peak: its parameters, drawn in float64 and cast to ``dtype``."""
    n = parameter_elements(config)
    parts = {"parameters": n * (8 + np.dtype(dtype).itemsize)}
    return Estimate(parts["parameters"], parts, f"{describe(config)}, {np.dtype(dtype).name} parameters")


# -- the memory available, and the limit -------------------------------------------------------


def available_bytes() -> int:
    """Memory this process can still take: the least of the system's available memory (Linux's MemAvailable,
    else free physical pages), the cgroup's limit less its usage, and the address-space limit less the space
    in use."""
    found = [_meminfo_available(), _cgroup_available(), _address_space_left()]
    known = [v for v in found if v is not None]
    return min(known) if known else 2**63 - 1


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


def _address_space_left() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, ValueError, StopIteration):
        return None
    return max(soft - size, 0)


@contextlib.contextmanager
def memory_limit(limit: float | str = "available") -> Iterator[None]:
    """Within the block, work estimated above ``limit`` bytes is refused: "available" (the default, outside
    any block too: the memory available when the check runs), a number of bytes, or ``math.inf`` to run
    anything on purpose. Per thread and task (a context variable)."""
    checked = _checked_limit(limit)
    token = _LIMIT.set(checked)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def _checked_limit(limit: Any) -> float | str:
    if isinstance(limit, str) and limit == "available":
        return limit
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or math.isnan(limit) or limit <= 0:
        raise ValueError(f"memory_limit: expected 'available', a positive number of bytes or math.inf, got {limit!r}")
    return limit


def current_limit() -> tuple[float, str]:
    """(the limit in bytes now, how it was set: "available" or "set")."""
    limit = _LIMIT.get()
    return (float(available_bytes()), "available") if limit == "available" else (float(limit), "set")


def check_memory(est: Estimate, what: str = "forward + backward") -> None:
    """Raise MemoryLimitError, naming the estimate, its parts and the sizes, when ``est`` exceeds the limit."""
    limit, how = current_limit()
    if est.bytes <= limit:
        return
    parts = ", ".join(f"{name} {gib(v)}" for name, v in est.parts.items())
    where = "available" if how == "available" else "allowed (memory_limit)"
    raise MemoryLimitError(f"memory: {what} of {est.sizes} needs about {gib(est.bytes)} ({parts}); {gib(limit)} "
                           f"{where}: use smaller sizes, or run it on purpose within reference.memory_limit(math.inf) "
                           "(rnn-check --memory-limit none)")


def gib(n: float) -> str:
    """A byte count for people: 26.8 GiB, 310 MiB, 12 KiB."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"
