"""A progress line with an estimated time left, on stderr.

Work is counted in estimated seconds, not in rows: a scaling suite's rows differ in
cost by 1000x. The estimate of a job (``job_cost``) is napkin maths; the ETA rescales
it by how long the finished work actually took, so a slow machine is not mispredicted.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from .config import Row
from .measure import matmul_flops

# Napkin constants: sustained matrix GFLOP/s and the per-time-step cost of a Python loop.
FLOPS_PER_S = {"cpu": 30e9, "cuda": 5e12}
PER_STEP_S = {"cpu": 60e-6, "cuda": 300e-6}
WARMUP_S = (0.25, 0.05)  # the first phase's warm-up, then each later phase's (worker.time_impl)
STARTUP_S = 3.0  # one worker process: the interpreter, NumPy and torch imported (2-3.5 s measured here)


def call_cost(row: Row, phase: str) -> float:
    """Estimated seconds of one call."""
    steps = row.T * (1 if phase in ("inference", "forward", "backward") else 2)
    return matmul_flops(row, phase) / FLOPS_PER_S[row.device] + steps * PER_STEP_S[row.device]


def job_cost(row: Row, phases: tuple[str, ...], repeat: int) -> float:
    """Estimated seconds of one timing job (warm-up included) on one implementation."""
    total = 0.0
    for k, phase in enumerate(phases):
        c = call_cost(row, phase)
        total += max(c, WARMUP_S[min(k, 1)]) + repeat * c
    return total


def validation_cost(row: Row) -> float:
    return 2 * call_cost(row, "step")


def desired_cost(row: Row) -> float:
    """torch.nn's results (and, for CUDA rows, the reference's on the CPU) in the check process."""
    return call_cost(row, "step") * (2 if row.device == "cuda" else 1)


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """``advance(cost)`` after each piece of work; prints ``[label] k/n rows, p%, elapsed, ETA``:
    in place on a terminal, otherwise a line at most every ``every_s`` seconds."""

    def __init__(self, total_cost: float, total_rows: int, stream: TextIO | None = None, label: str = "progress",
                 every_s: float = 5.0):
        self.total, self.rows, self.label = max(total_cost, 1e-9), total_rows, label
        self.done, self.rows_done = 0.0, 0
        self.start = time.perf_counter()
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every_s, self.last_print = every_s, -float("inf")

    def resize(self, total_cost: float, total_rows: int) -> None:
        """New totals once the work is known better (rows dropped, e.g. GPU rows without CUDA)."""
        self.total, self.rows = max(total_cost, self.done, 1e-9), total_rows

    def eta(self, elapsed: float) -> float | None:
        """Seconds left: the remaining estimated work at the rate observed so far."""
        if self.done <= 0:
            return None
        return elapsed * (self.total - self.done) / self.done

    def advance(self, cost: float, rows: int = 0, label: str | None = None) -> str:
        self.done = min(self.total, self.done + cost)
        self.rows_done += rows
        self.label = label or self.label
        elapsed = time.perf_counter() - self.start
        left = self.eta(elapsed)
        line = (f"[{self.label}] {self.rows_done}/{self.rows} rows, {100 * self.done / self.total:.0f}%, "
                f"elapsed {_clock(elapsed)}, ETA {'?' if left is None else _clock(left)}")
        if self.tty or elapsed - self.last_print >= self.every_s:
            self.stream.write(("\r" + line + " " * 8) if self.tty else line + "\n")
            self.stream.flush()
            self.last_print = elapsed
        return line

    def close(self) -> None:
        """The closing line: everything done, and how long it took."""
        line = f"[done] {self.rows_done}/{self.rows} rows in {_clock(time.perf_counter() - self.start)}"
        self.stream.write(("\r" + line + " " * 40 + "\n") if self.tty else line + "\n")
        self.stream.flush()
