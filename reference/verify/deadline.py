"""A time limit for a check: ``compare(..., timeout=)`` and ``rnn-check --timeout SECONDS``.

    with deadline(30):                 # CheckTimeout (a TimeoutError) after 30 s, naming the step
        with phase("the main check"):
            with step("backward"):
                ...

Stopping code that hangs. Python code cannot be killed from inside its own
process; it can be interrupted, between two bytecodes, by an exception. So:

* in the main thread (``rnn-check``, scripts, test runners), a SIGALRM timer
  (``signal.setitimer``) whose handler raises there at the next bytecode; a
  ``time.sleep``, a lock wait or a read is interrupted too, as Ctrl-C would
  interrupt it. A caller's own SIGALRM handler and timer are put back after;
* in any other thread (or without SIGALRM), a watchdog thread raises the
  exception in the checking thread at the deadline
  (``PyThreadState_SetAsyncExc``). This reaches Python code only: a candidate
  blocked inside one C call (a sleep, a lock, one long matrix product, an ONNX
  Runtime session) is stopped when that call returns.

Either way an import under way is never interrupted (a module left half
initialised would break every later check in the process): the deadline is
tried again every 50 ms until the import is done.

The exception raised into the running code derives from BaseException, so a
candidate's ``except Exception`` does not swallow it and the verifier's own
wrappers (which turn a candidate's exceptions into CandidateError) let it
through; at the deadline's boundary it becomes :class:`CheckTimeout`, which
names the step that was running. The check is then abandoned: its arrays are
dropped, and the user's objects are as the check left them (the verifier never
writes a candidate's parameters; a candidate stopped mid-call may hold whatever
state its own code had reached). A process that must be stopped whatever it
runs needs a process boundary: run ``rnn-check`` under ``timeout(1)`` as well.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any


class CheckTimeout(TimeoutError):
    """The check ran past its time limit; the message names the step that was running."""


class _Expired(BaseException):
    """Raised into the running code at the deadline; becomes CheckTimeout at the deadline's boundary."""


class Deadline:
    """One check's time limit and what it is running now."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.phase = "starting"
        self.step: str | None = None
        self.armed = True
        self.lock = threading.Lock()
        self.running: tuple[str, str | None] = (self.phase, self.step)  # what ran when the limit was reached

    def expire(self) -> None:
        """Disarm, and note what is running (the blocks that named it unwind before the message is made)."""
        self.armed = False
        self.running = (self.phase, self.step)

    def message(self) -> str:
        where, what = self.running
        inside = f"in the candidate's {what}" if what else "outside the candidate (the verifier's own work)"
        return (f"timeout: the check ran past its limit of {self.seconds:g} s (timeout=; rnn-check --timeout) during "
                f"{where}, {inside}")


_ACTIVE: ContextVar[Deadline | None] = ContextVar("deadline", default=None)


def check_seconds(seconds: Any, name: str = "timeout") -> float:
    """``seconds`` as a positive finite float; ValueError naming ``name`` otherwise."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name}: expected a positive number of seconds, got {seconds!r}")
    return float(seconds)


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise CheckTimeout if the block runs past ``seconds`` (None: no limit). Inside another deadline, the outer
    one stays in force."""
    if seconds is None or _ACTIVE.get() is not None:
        yield
        return
    d = Deadline(check_seconds(seconds))
    token = _ACTIVE.set(d)
    try:
        stop = _arm(d)
        try:
            yield
        finally:
            stop()  # an _Expired raised before it disarms is caught below like any other
    except _Expired:
        raise CheckTimeout(d.message()) from None
    finally:
        _ACTIVE.reset(token)


def _arm(d: Deadline):
    """Start the timer that raises _Expired in this thread at ``d.at``; returns the function that stops it."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        return _arm_alarm(d)
    return _arm_watchdog(d)


IMPORT_RETRY_SECONDS = 0.05  # an import under way is left to finish: the deadline is tried again this much later


def _importing(frame: Any) -> bool:
    """Whether ``frame`` runs inside an import (importlib's machinery is on its stack).

    An exception raised there would leave a module half-initialised in sys.modules
    (seen: torch imports sympy lazily inside its first ``autograd.grad``; stopped
    there, every later backward in the process failed), so the deadline waits for it."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _arm_alarm(d: Deadline):
    def on_alarm(signum: int, frame: Any) -> None:
        if d.armed and _importing(frame):
            signal.setitimer(signal.ITIMER_REAL, IMPORT_RETRY_SECONDS)
        elif d.armed:
            d.expire()
            raise _Expired

    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, d.seconds)

    def stop() -> None:
        d.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:  # the caller's own timer, less the time the check took
            signal.setitimer(signal.ITIMER_REAL, max(outer_delay - (time.monotonic() - start), 1e-3), outer_interval)

    return stop


def _arm_watchdog(d: Deadline):
    thread_id = threading.get_ident()
    cancel = threading.Event()
    fired = []

    def watch() -> None:
        wait = d.seconds
        while not cancel.wait(wait):
            with d.lock:
                if not d.armed:
                    return
                if _importing(sys._current_frames().get(thread_id)):
                    wait = IMPORT_RETRY_SECONDS
                    continue
                d.expire()
                fired.append(True)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(_Expired))
                return

    threading.Thread(target=watch, name="rnn-check deadline", daemon=True).start()

    def stop() -> None:
        cancel.set()
        with d.lock:
            d.armed = False
            if fired:  # raised but not yet delivered: the work is done, so withdraw it
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)

    return stop


@contextlib.contextmanager
def _naming(field: str, text: str) -> Iterator[None]:
    """Set the active deadline's ``field`` ("phase" or "step") to ``text`` in this block; no effect without one."""
    d = _ACTIVE.get()
    if d is None:
        yield
        return
    before = getattr(d, field)
    setattr(d, field, text)
    try:
        yield
    finally:
        setattr(d, field, before)


def phase(text: str) -> contextlib.AbstractContextManager[None]:
    """Name what the check runs in this block (for a timeout's message): "the main check", "loading the model"."""
    return _naming("phase", text)


def set_phase(text: str) -> None:
    """Name what the check runs from now on (localisation's probes, one after another)."""
    d = _ACTIVE.get()
    if d is not None:
        d.phase = text


def step(text: str) -> contextlib.AbstractContextManager[None]:
    """Name the candidate's step running in this block: "forward", "backward", ..."""
    return _naming("step", text)
