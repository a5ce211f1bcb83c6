"""python -m benchmarks: validate every implementation against torch.nn, then time it.

    python -m benchmarks                                  # quick suite (about 2 min on 2 cores)
    python -m benchmarks --suite full --cells LSTM GRU --dtypes float32 --devices cpu
    python -m benchmarks --suite small                    # microseconds per time step, small layers
    python -m benchmarks --suite scaling --repeat 2       # time against T, B and H; scaling.png
    python -m benchmarks --suite gpu                      # one GPU, under 8 minutes; skips without CUDA
    python -m benchmarks --baseline-ref HEAD~3            # adds a row for that revision's reference
    python -m benchmarks --suite goals --dtypes float32 bfloat16 --impls torch-function   # bfloat16 beside float32
    python -m benchmarks --repeat 9 --threads 2 --out bench_results/

Writes <out>/results.json, results.csv and PNG figures; prints a table. Where
OPENBLAS_CORETYPE pins a lower kernel than the CPU supports, the workers run without
it (--keep-blas-env keeps it); each implementation process reports the kernel it loaded.
A timing that cannot be trusted (a busy machine, a wide spread, a phase longer than its
step: trust.py) is flagged in the files and named in a banner at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import os
import subprocess
import sys
import time
from pathlib import Path

from . import baseline, kernel, plots, report, runner, trust
from .config import ALL_DTYPES, ALL_IMPLS, BASELINE, CELLS, DEVICES, SUITES, Row, select, suite
from .measure import RSS_METHOD
from .progress import Progress
from .worker import REFERENCE_ROOT_VAR

DEFAULT_REPEAT = {"smoke": 2, "quick": 4, "full": 6, "goals": 6, "small": 6, "scaling": 2, "gpu": 6}
DEFAULT_ROUNDS = {"smoke": 1, "quick": 2, "full": 3, "goals": 3, "small": 2, "scaling": 1, "gpu": 2}
GPU_SKIP = "CUDA is not available: the gpu suite needs a CUDA device; nothing was timed"


def _choices(name: str, allowed: tuple[str, ...]):
    """An argparse type whose error lists the choices (argparse exits 2 with it)."""
    def parse(value: str) -> str:
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"unknown {name} {value!r}: choose from {', '.join(allowed)}")
        return value
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    ap.add_argument("--suite", type=_choices("suite", SUITES), default="quick", help=f"one of {', '.join(SUITES)}")
    ap.add_argument("--cells", nargs="+", type=_choices("cell", CELLS), help="default: every cell of the suite")
    ap.add_argument("--dtypes", nargs="+", type=_choices("dtype", ALL_DTYPES),
                    help="default: every dtype of the suite (bfloat16 and float16 rows run torch implementations only)")
    ap.add_argument("--devices", nargs="+", type=_choices("device", DEVICES),
                    help="default: cpu, and cuda when available")
    ap.add_argument("--impls", nargs="+", type=_choices("implementation", ALL_IMPLS),
                    help="time only these of the suite's implementations (torch-nn, the baseline, always runs)")
    ap.add_argument("--repeat", type=int, help="timed calls per phase after warm-up (median reported); "
                    f"default {DEFAULT_REPEAT}")
    ap.add_argument("--rounds", type=int, help="alternating rounds per row; the repeats are split over them "
                    f"and pooled; default {DEFAULT_ROUNDS}")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                    else os.cpu_count(), help="BLAS/OpenMP/torch threads, equal for every implementation")
    ap.add_argument("--system-allocator", action="store_true",
                    help="leave glibc's malloc as configured (default: keep freed memory in each process, "
                    "so page faults do not swamp the timings; recorded in the environment block)")
    ap.add_argument("--keep-blas-env", action="store_true",
                    help="time with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE as configured (default: where they pin a "
                    "lower kernel than the CPU supports, the timing processes run without them)")
    ap.add_argument("--baseline-ref", metavar="GITREV",
                    help="also time the reference of that git revision (a temporary worktree), row reference@REV")
    ap.add_argument("--out", type=Path, default=Path("bench_results"), help="directory for JSON, CSV and PNG")
    args = ap.parse_args(argv)
    if args.repeat is not None and args.repeat < 1 or args.rounds is not None and args.rounds < 1:
        ap.error(f"--repeat and --rounds: expected positive counts, got {args.repeat} and {args.rounds}")
    if args.threads < 1:
        ap.error(f"--threads: expected a positive count, got {args.threads}")
    return args


def _on_record(prefix: str):
    count = [0]

    def on_record(rec: dict) -> None:
        if rec["type"] == "peak":
            print(f"matrix-product peak {rec['device']} {rec['dtype']}: {rec['peak']:.1f} GFLOP/s (N={rec['n']})",
                  flush=True)
            return
        count[0] += 1
        name = Row(**rec["row"]).name
        if rec["type"] == "valid":
            err = rec.get("max_rel_error")
            detail = rec["status"] + (f" (max rel error {err:.1e})" if err else "")
            if rec.get("tf32_max_rel_error") is not None:
                detail += f"; with TF32 {rec['tf32_max_rel_error']:.1e}"
        else:
            detail = rec.get("error") or "  ".join(f"{k} {v['ms']:.1f} ms" for k, v in rec["phases"].items())
        print(f"[{prefix} {count[0]}] {rec['impl']:<16} {name:<44} {detail}", flush=True)

    return on_record


def blas_note(removed: dict, why: str | None, keep: bool) -> str | None:
    """The line the run prints about OpenBLAS's pin, or None when nothing was pinned lower."""
    if why is None:
        return None
    if keep:
        return f"OpenBLAS: {why}; timed as configured (--keep-blas-env)"
    return (f"OpenBLAS: {why}; the worker processes run without {', '.join(removed)} "
            "(the CPU's own kernels; --keep-blas-env keeps them)")


def source_revision(root: Path) -> str | None:
    """The commit the run measured (``git describe``-style: the short hash, ``-dirty`` when the
    tree has uncommitted changes to tracked files), or None outside a git checkout."""
    try:
        run = functools.partial(subprocess.run, cwd=root, capture_output=True, text=True, check=True)
        commit = run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    revision = source_revision(runner.ROOT)  # at the start: the tree may change during a long run
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    busy = trust.load_reasons((load_start, None), os.cpu_count())
    if busy:
        print(f"warning: {busy[0]}; every timing of this run will be flagged unreliable", flush=True)
    s = suite(args.suite)
    rows = select(s.rows, args.cells, args.dtypes, args.devices)
    repeat = args.repeat or DEFAULT_REPEAT[args.suite]
    rounds = args.rounds or DEFAULT_ROUNDS[args.suite]
    env, removed, why = kernel.child_env(os.environ, kernel.cpu_flags(), args.keep_blas_env)
    note = blas_note(removed, why, args.keep_blas_env)
    with contextlib.ExitStack() as stack:
        impl_env, extra = {}, ()
        if args.baseline_ref:
            try:
                short, path = stack.enter_context(baseline.worktree(runner.ROOT, args.baseline_ref))
            except ValueError as e:
                print(f"python -m benchmarks: error: {e}", file=sys.stderr)
                return 2
            extra = (baseline.impl_name(short),)
            impl_env[extra[0]] = {REFERENCE_ROOT_VAR: str(path)}
            print(f"baseline: {extra[0]} imports reference from a worktree of {args.baseline_ref}", flush=True)

        def impls_of(row: Row) -> tuple[str, ...]:
            listed = s.impls.get(row.device, ()) + (extra if row.device == "cpu" else ())
            return tuple(i for i in listed if not args.impls or i in args.impls or i == BASELINE)

        print(f"suite {args.suite}: {len(rows)} rows listed, {args.threads} threads, {repeat} repeats "
              f"in {rounds} rounds", flush=True)
        if note:
            print(note, flush=True)
        session = stack.enter_context(contextlib.closing(
            runner.Session(args.threads, env, not args.system_allocator, impl_env)))
        progress = Progress(runner.check_cost(rows) + runner.total_cost(rows, impls_of, s.phases, repeat, rounds),
                            len(rows))
        machine, peaks = runner.check(session, rows, _on_record("check"), progress)
        print(f"CPU low precision: {kernel.describe_capability(machine.get('cpu_low_precision', {}))}", flush=True)
        if not machine.get("cuda_available") and any(r.device == "cuda" for r in rows):
            if args.suite == "gpu":
                progress.close()
                print(GPU_SKIP, flush=True)
                return 0
            print(f"CUDA not available: {sum(r.device == 'cuda' for r in rows)} GPU rows skipped", flush=True)
            rows = [r for r in rows if r.device != "cuda"]
            progress.resize(progress.done + runner.total_cost(rows, impls_of, s.phases, repeat, rounds), len(rows))
        valid, processes = runner.validate_all(session, rows, impls_of, _on_record("check"), progress)
        progress.resize(progress.done + runner.timing_cost(rows, impls_of, valid, s.phases, repeat, rounds), len(rows))
        print("kernels per implementation process:\n" + report.format_processes(processes), flush=True)
        timed = runner.time_all(session, rows, impls_of, valid, repeat, rounds, _on_record("time"), s.phases, progress)
        progress.close()
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    load = (load_start, load_end)
    results = trust.flag(runner.result_rows(rows, impls_of, valid, timed, peaks), load, machine.get("cpu_count"))
    args.out.mkdir(parents=True, exist_ok=True)
    machine["processes"] = processes
    settings = {"suite": args.suite, "repeat": repeat, "rounds": rounds, "phases": list(s.phases),
                "warmup": ">= 1 call and 0.25 s before a job's first phase, >= 1 call and 0.05 s before the others",
                "threads": args.threads, "cells": args.cells, "dtypes": args.dtypes, "devices": args.devices,
                "impls": args.impls,
                "keep_blas_env": args.keep_blas_env, "blas_env_removed": removed, "blas_env_note": note,
                "baseline_ref": args.baseline_ref, "memory_method": RSS_METHOD,
                "commit": revision, "date": started,
                # a shared machine: how busy it was (1-minute load average, against settings' threads)
                "load_average": (f"{load_start:.1f} at the start, {load_end:.1f} at the end"
                                 if load_start is not None else None),
                "load_average_start": load_start, "load_average_end": load_end, "spread_limit": trust.SPREAD_LIMIT,
                "seconds": round(time.perf_counter() - start, 1)}
    doc = report.results_doc(machine, peaks, settings, results)
    report.write_json(args.out / "results.json", doc)
    report.write_csv(args.out / "results.csv", results)
    figures = plots.plot_results(results, args.out, caption=report.caption(doc))
    print()
    print(report.format_table(results))
    if note:
        print(note)
    warning = trust.banner(results, load, machine.get("cpu_count"))
    if warning:
        print("\n" + warning)
    print(f"\nwrote {args.out}/results.json, results.csv and {len(figures)} figures "
          f"in {settings['seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
