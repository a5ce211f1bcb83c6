"""What every implementation hands the timer: the three timed phases and its results, or why it cannot run.

Its own module so that an optional implementation (jax_impl.py) and the registry of all of them
(impls.py) both depend on it, and not on each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class Prepared(NamedTuple):
    infer: Callable[[], Any]  # forward without keeping anything for backward
    forward: Callable[[], Any]  # forward that records what backward needs; returns it
    backward: Callable[[Any], Any]  # backward from what forward returned (repeatable)
    results: Callable[[], dict] | None  # name -> array after one forward + backward; None: nothing to validate
    sync: Callable[[], None]  # wait for the device
    tape: Callable[[Any], Any] | None = None  # what forward returned -> the reference's tape
    caller: tuple = ()  # what the caller owns (module, input, states): not counted in the tape's bytes
    step: Callable[[], Any] | None = None  # a fused forward + backward; default backward(forward())
    candidate: Any = None  # what compare() judges at a low-precision row: a torch module or a function


class Unavailable(Exception):
    """This implementation cannot run this row (missing module, device, ...)."""
