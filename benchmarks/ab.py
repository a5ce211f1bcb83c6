"""python -m benchmarks.ab: this tree's reference against a previous revision's, in one process.

    python -m benchmarks.ab --baseline-ref 21291b4            # the quick suite's rows, 2 threads
    python -m benchmarks.ab --baseline-ref HEAD~1 --suite small --threads 1 --reps 20

``--baseline-ref`` in ``python -m benchmarks`` runs each revision in its own process
and reports medians: the right figure against torch.nn, but on a shared machine two
processes can land in different quiet spells, and a 5% question drowns in a 20%
spread. Here both revisions are imported into one process (the old one under another
package name, from a temporary worktree), fed the same arrays, and timed alternately,
call after call; each reports its fastest forward + backward. Noise only ever adds
time, so the minimum over many alternating calls is the closest either gets to its
own cost, measured under the same conditions. Which goes first alternates. Nothing else
runs in the process: torch's OpenMP threads spin for a while after each call and would
slow whichever call came next.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from . import baseline
from .config import suite as suite_rows

ROOT = Path(__file__).resolve().parents[1]
MODULES = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN", "RNN_RELU": "RNN"}


def load_reference(root: Path, name: str) -> ModuleType:
    """The ``reference`` package under ``root``, imported as ``name`` (its imports are relative)."""
    spec = importlib.util.spec_from_file_location(name, root / "reference" / "__init__.py",
                                                  submodule_search_locations=[str(root / "reference")])
    if spec is None or spec.loader is None:
        raise ValueError(f"no reference package under {root}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _step(reference: ModuleType, row, x: np.ndarray, dout: np.ndarray, state: dict | None):
    kwargs = {"nonlinearity": "relu"} if row.cell == "RNN_RELU" else {}
    module = getattr(reference, MODULES[row.cell])(row.I, row.H, dtype=np.dtype(row.dtype), **kwargs)
    if state is not None:
        module.load_state_dict(state)

    def step():
        _, _, tape = module.forward(x)
        module.backward(tape, dout)

    return module, step


def compare(new: ModuleType, old: ModuleType, row, reps: int) -> dict:
    """Fastest forward + backward of each revision on one row, alternating, same weights and arrays."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (row.T, row.B, row.I)).astype(row.dtype)  # (T, B, I)
    dout = rng.standard_normal((row.T, row.B, row.H)).astype(row.dtype)  # (T, B, H)
    module, new_step = _step(new, row, x, dout, None)
    _, old_step = _step(old, row, x, dout, {k: np.asarray(v) for k, v in module.state_dict().items()})
    best = {"new": float("inf"), "old": float("inf")}
    with np.errstate(all="ignore"):
        for step in (new_step, old_step):  # warm-up
            step()
        for rep in range(reps):  # the order alternates too: neither always follows the other
            pairs = (("new", new_step), ("old", old_step))
            for name, step in pairs if rep % 2 == 0 else pairs[::-1]:
                start = time.perf_counter()
                step()
                best[name] = min(best[name], time.perf_counter() - start)
    return {"new_ms": best["new"] * 1e3, "old_ms": best["old"] * 1e3, "ratio": best["new"] / best["old"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-ref", metavar="GITREV", required=True, help="the revision to compare with")
    parser.add_argument("--suite", default="quick", choices=("quick", "small", "goals"), help="whose CPU rows")
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2)")
    parser.add_argument("--reps", type=int, default=30, help="alternating calls per revision (default 30)")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    rows = [r for r in suite_rows(args.suite).rows if r.device == "cpu" and not r.P]
    new = load_reference(ROOT, "reference_this_tree")
    try:
        with baseline.worktree(ROOT, args.baseline_ref) as (short, path):
            old = load_reference(path, f"reference_{short}")
            print(f"fastest forward + backward over {args.reps} alternating calls, {args.threads} threads; "
                  f"new = this tree, old = {short}")
            for row in rows:
                got = compare(new, old, row, args.reps if row.T * row.B * row.H < 2_000_000 else max(4, args.reps // 3))
                print(f"{row.cell:9} T{row.T} B{row.B} H{row.H} {row.dtype}:  new {got['new_ms']:8.2f} ms   "
                      f"old {got['old_ms']:8.2f} ms   new / old {got['ratio']:.3f}", flush=True)
    except ValueError as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
