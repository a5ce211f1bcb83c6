"""python -m benchmarks.calls: array-library calls per time step of the reference.

    python -m benchmarks.calls                      # this tree
    python -m benchmarks.calls --baseline-ref HEAD~3   # and a previous revision, side by side

At small sizes (B = 1, H = 8) a step's time is the Python loop's: each NumPy call
costs about a microsecond whatever its size, so the number of calls per step is
the figure to cut. Counted here, not timed: every ufunc call (``a * b``,
``np.exp``, ``@``) and every NumPy function that dispatches on arrays (``concat``,
``stack``, ``where``, ``reshape``) made during ``forward`` and ``backward`` of a
module, over T = 40 steps minus T = 20 steps, divided by 20. What does not grow
with T (the input projection, the weight products, per-block work) cancels out;
the pairwise bias-gradient sum grows like log T and leaves a few hundredths.

How: while counting, NumPy's array constructors (``empty``, ``zeros``, ``asarray``,
...) return a subclass whose ``__array_ufunc__`` and ``__array_function__`` count,
so every array the module makes or is given is counted, whatever the revision's
code style (in place with ``out=`` or one expression per equation). Indexing and
item assignment are not calls of the array library and are not counted.

Each revision is counted in its own process (``reference`` imported from that
revision's worktree; see ``benchmarks.baseline``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CELLS = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
CONSTRUCTORS = ("empty", "zeros", "ones", "empty_like", "zeros_like", "ones_like", "full", "asarray", "array",
                "ascontiguousarray", "asanyarray")


class Counted(np.ndarray):
    """An ndarray whose library calls are counted in ``Counted.calls`` by name."""

    calls: ClassVar[collections.Counter] = collections.Counter()

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        Counted.calls[ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"] += 1
        inputs = tuple(_plain(a) for a in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(_plain(a) for a in kwargs["out"])
        return _counted(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types, args, kwargs):
        Counted.calls[func.__name__] += 1
        return _counted(func(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()}))


def _plain(a: Any) -> Any:
    if isinstance(a, Counted):
        return a.view(np.ndarray)
    if isinstance(a, (list, tuple)):
        return type(a)(_plain(x) for x in a)
    return a


def _counted(a: Any) -> Any:
    if isinstance(a, np.ndarray) and not isinstance(a, Counted):
        return a.view(Counted)
    if isinstance(a, tuple):
        return tuple(_counted(x) for x in a)
    return a


@contextmanager
def counting() -> Iterator[collections.Counter]:
    """Inside the block, NumPy's constructors return ``Counted`` arrays; yields the counter.

    The core keeps a few constants it made once (``reference.activations._ONES``); made inside
    the block they would be ``Counted`` and outlive it, turning every later result of the
    process into one. They are made anew inside the block and put back as they were after it.
    """
    from reference import activations

    saved = {name: getattr(np, name) for name in CONSTRUCTORS}
    saved_ones = dict(activations._ONES)
    activations._ONES.clear()

    def wrap(make):
        return lambda *args, **kwargs: _counted(make(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()}))

    for name, make in saved.items():
        setattr(np, name, wrap(make))
    Counted.calls.clear()
    try:
        yield Counted.calls
    finally:
        for name, make in saved.items():
            setattr(np, name, make)
        activations._ONES.clear()
        activations._ONES.update(saved_ones)


def count_module(cell: str, T: int, B: int = 2, H: int = 8) -> tuple[collections.Counter, collections.Counter]:
    """(forward calls, backward calls) of one forward and one backward of the module, by name."""
    import reference

    kwargs = {"nonlinearity": "relu" if cell == "RNN_RELU" else "tanh"} if cell.startswith("RNN") else {}
    module = getattr(reference, cell.split("_")[0])(H, H, **kwargs)
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((T, B, H)), rng.standard_normal((T, B, H))
    with np.errstate(all="ignore"), counting() as calls:
        _, _, tape = module.forward(x)
        forward = collections.Counter(calls)
        calls.clear()
        module.backward(tape, dout)
        backward = collections.Counter(calls)
    return forward, backward


def per_step(cell: str) -> dict:
    """Calls per step, forward and backward, with the breakdown by name."""
    (f20, b20), (f40, b40) = count_module(cell, 20), count_module(cell, 40)
    out: dict = {}
    for phase, short, long in (("forward", f20, f40), ("backward", b20, b40)):
        names = {k: (long[k] - short[k]) / 20 for k in set(long) | set(short) if long[k] != short[k]}
        out[phase] = {"total": sum(names.values()), "by_name": dict(sorted(names.items()))}
    out["step"] = out["forward"]["total"] + out["backward"]["total"]
    return out


def _child() -> None:
    print(json.dumps({cell: per_step(cell) for cell in CELLS}))


def _run(root: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", "from benchmarks.calls import _child; _child()"], env=env,
                          capture_output=True, text=True, check=False, cwd=root)
    if proc.returncode:
        raise RuntimeError(f"counting the reference at {root} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    from . import baseline

    parser = argparse.ArgumentParser(prog="python -m benchmarks.calls", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-ref", metavar="GITREV", help="also count the reference of that git revision")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args(argv)
    columns = {"this tree": _run(ROOT)}
    if args.baseline_ref:
        try:
            with baseline.worktree(ROOT, args.baseline_ref) as (short, path):
                columns[f"@{short}"] = _run(path)
        except ValueError as err:
            parser.error(str(err))
    if args.json:
        print(json.dumps(columns, indent=1))
        return 0
    names = list(columns)
    print(f"{'cell':10}" + "".join(f"{n + ' fwd/bwd/step':>28}" for n in names))
    for cell in CELLS:
        cells = [columns[n][cell] for n in names]
        print(f"{cell:10}" + "".join(
            f"{c['forward']['total']:>10.0f}{c['backward']['total']:>9.0f}{c['step']:>9.0f}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
