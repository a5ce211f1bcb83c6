"""python -m benchmarks: validate the reference against torch, then time it.

    python -m benchmarks                                  # quick suite (under 2 min on 2 cores)
    python -m benchmarks --suite full --cells LSTM GRU --dtypes float32 --devices cpu
    python -m benchmarks --repeat 9 --threads 2 --out bench_results/

Writes <out>/results.json, results.csv and PNG figures; prints a table.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from . import plots, report, runner
from .config import CELLS, DEVICES, DTYPES, select, suite_rows

DEFAULT_REPEAT = {"smoke": 2, "quick": 4, "full": 6}
DEFAULT_ROUNDS = {"smoke": 1, "quick": 2, "full": 3}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    ap.add_argument("--suite", choices=("quick", "full", "smoke"), default="quick")
    ap.add_argument("--cells", nargs="+", choices=CELLS, help="default: every cell of the suite")
    ap.add_argument("--dtypes", nargs="+", choices=DTYPES, help="default: both")
    ap.add_argument("--devices", nargs="+", choices=DEVICES, help="default: cpu, and cuda when available")
    ap.add_argument("--repeat", type=int, help="timed calls per phase after warm-up (median reported); "
                    f"default {DEFAULT_REPEAT}")
    ap.add_argument("--rounds", type=int, help="alternating rounds per row; the repeats are split over them "
                    f"and pooled; default {DEFAULT_ROUNDS}")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                    else os.cpu_count(), help="BLAS/OpenMP/torch threads, equal for every implementation")
    ap.add_argument("--system-allocator", action="store_true",
                    help="leave glibc's malloc as configured (default: keep freed memory in each process, "
                    "so page faults do not swamp the timings; recorded in the environment block)")
    ap.add_argument("--out", type=Path, default=Path("bench_results"), help="directory for JSON, CSV and PNG")
    return ap.parse_args(argv)


def _progress(prefix: str):
    count = [0]

    def on_record(rec: dict) -> None:
        if rec["type"] == "peak":
            print(f"matrix-product peak {rec['device']} {rec['dtype']}: {rec['peak']:.1f} GFLOP/s (N={rec['n']})",
                  flush=True)
            return
        count[0] += 1
        row = rec["row"]
        name = f"{row['cell']} T{row['T']} B{row['B']} I{row['I']} H{row['H']} {row['dtype']} {row['device']}"
        if rec["type"] == "valid":
            err = rec.get("max_rel_error")
            detail = rec["status"] + (f" (max rel error {err:.1e})" if err else "")
        else:
            detail = rec.get("error") or "  ".join(f"{k} {v['ms']:.1f} ms" for k, v in rec["phases"].items())
        print(f"[{prefix} {count[0]}] {rec['impl']:<16} {name:<40} {detail}", flush=True)

    return on_record


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    rows = select(suite_rows(args.suite), args.cells, args.dtypes, args.devices)
    repeat = args.repeat or DEFAULT_REPEAT[args.suite]
    rounds = args.rounds or DEFAULT_ROUNDS[args.suite]
    if repeat < 1 or rounds < 1:
        raise SystemExit(f"--repeat and --rounds: expected positive counts, got {repeat} and {rounds}")
    print(f"suite {args.suite}: {len(rows)} rows listed, {args.threads} threads, {repeat} repeats "
          f"in {rounds} rounds", flush=True)
    keep = not args.system_allocator
    env, peaks, valid = runner.check(rows, args.threads, _progress("check"), keep)
    if not env.get("cuda_available") and any(r.device == "cuda" for r in rows):
        print(f"CUDA not available: {sum(r.device == 'cuda' for r in rows)} GPU rows skipped", flush=True)
        rows = [r for r in rows if r.device != "cuda"]
    timed = runner.time_all(rows, valid, repeat, rounds, args.threads, _progress("time"), keep)
    results = runner.result_rows(rows, valid, timed, peaks)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"suite": args.suite, "repeat": repeat, "rounds": rounds, "warmup": ">= 1 call and 0.25 s per round",
                "threads": args.threads,
                "cells": args.cells, "dtypes": args.dtypes, "devices": args.devices,
                "seconds": round(time.perf_counter() - start, 1)}
    report.write_json(args.out / "results.json", env, peaks, settings, results)
    report.write_csv(args.out / "results.csv", results)
    figures = plots.plot_all(results, args.out)
    print()
    print(report.format_table(results))
    print(f"\nwrote {args.out}/results.json, results.csv and {len(figures)} figures "
          f"in {settings['seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
