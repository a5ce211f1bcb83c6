"""One check within its bounds: what it reads (``limits=``), what it allocates (``memory_limit=``) and how long
it runs (``timeout=``).

:func:`one_check` wraps an entry point (``compare``, ``load_model``, ``load_weights``,
``diff_weights``) so that everything it does, and every entry point it calls, counts
as one check: reads share one budget (:mod:`reference.verify.files`), the memory
limit holds for every forward it runs (:mod:`reference.memory`), and one deadline
covers the candidate's calls (:mod:`reference.verify.deadline`). An argument left
at None keeps what an enclosing check (or ``rnn-check``) set.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from ..memory import memory_limit
from .deadline import deadline
from .files import reading

F = TypeVar("F", bound=Callable[..., Any])


def one_check(fn: F) -> F:
    """Run ``fn`` as one check, within the ``limits=``, ``memory_limit=`` and ``timeout=`` it is called with."""
    @functools.wraps(fn)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        limit = kwargs.get("memory_limit")
        with reading(kwargs.get("limits")), \
                (contextlib.nullcontext() if limit is None else memory_limit(limit)), \
                deadline(kwargs.get("timeout")):
            return fn(*args, **kwargs)
    return bounded  # type: ignore[return-value]
