"""Launch the worker processes and turn their records into result rows.

Order: check (environment, matrix-product peaks, then validate every row) -> time.
Each implementation runs in its own process (NumPy's BLAS threads left spinning in
a shared process inflate torch's timings, ~40% measured here), and the processes
stay up for the whole run. Rows are timed one at a time, side by side: for each
row, every implementation in turn, in alternating rounds whose samples are pooled.
So a row's ratio is taken from timings seconds apart, not minutes: on a shared
machine the load drifts on that scale.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .config import BASELINE, IMPLS, PHASES, Row
from .measure import matmul_flops, summary
from .worker import THREAD_VARS

ROOT = Path(__file__).resolve().parent.parent
# Pause between two jobs: an idle NumPy process's BLAS thread spins for 0.11 s of CPU
# after its last product before it sleeps (torch's pool: under 0.01 s), measured here.
SETTLE_S = 0.15
# glibc settings that keep freed memory in the process (both are needed): otherwise every
# call's fresh buffers are page-faulted in again, which on this machine cost up to 20 us a
# page and moved a row by up to 1.5x, by cliffs in glibc's heuristics rather than by the
# implementation. The same for every implementation; --system-allocator leaves glibc as is.
KEEP_FREED_MEMORY = {"MALLOC_TRIM_THRESHOLD_": "4000000000", "MALLOC_MMAP_THRESHOLD_": "4000000000"}


class Worker:
    """One ``python -m benchmarks.worker`` process, taking jobs one line at a time."""

    def __init__(self, threads: int, keep_freed_memory: bool = True):
        env = dict(os.environ, **{k: str(threads) for k in THREAD_VARS})
        if keep_freed_memory:
            env = {**KEEP_FREED_MEMORY, **env}  # a value the caller set wins
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)

    def run(self, job: dict) -> Iterator[dict]:
        """Send one job; yield its records until the worker says it is done (or dies)."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps(job) + "\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            for line in self.proc.stdout:
                if line.startswith("{"):
                    rec = json.loads(line)
                    if rec["type"] == "done":
                        return
                    yield rec
        yield {"type": "crash", "job": job["kind"], "impl": job.get("impl"), "returncode": self.proc.wait()}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()


def check(rows: list[Row], threads: int, on_record: Callable[[dict], None],
          keep_freed_memory: bool = True) -> tuple[dict, dict, dict]:
    """(environment block, {(device, dtype): matrix-product peak}, {(impl, row): validation record})."""
    job = {"kind": "check", "threads": threads, "peaks": sorted({(r.device, r.dtype) for r in rows}),
           "items": [{"row": r.as_dict(), "impls": list(IMPLS[r.device])} for r in rows]}
    env, peaks, valid = {}, {}, {}
    worker = Worker(threads, keep_freed_memory)
    for rec in worker.run(job):
        if rec["type"] == "env":
            env = rec["env"]
        elif rec["type"] == "peak":
            peaks[(rec["device"], rec["dtype"])] = rec
            on_record(rec)
        elif rec["type"] == "valid":
            valid[(rec["impl"], Row(**rec["row"]))] = rec
            on_record(rec)
    worker.close()
    return env, peaks, valid


def _pool(records: list[dict]) -> dict:
    """One timing record from a row's rounds: every round's samples pooled per phase."""
    first = dict(records[0])
    errors = [r["error"] for r in records if "error" in r]
    if errors:
        return {**first, "error": errors[0], "phases": {}}
    times = {ph: [t for r in records for t in r["times_ms"][ph]] for ph in first["times_ms"]}
    first["phases"] = {ph: summary([t * 1e-3 for t in ts]) for ph, ts in times.items()}
    first["rounds"] = len(records)
    del first["times_ms"]
    return first


def time_all(rows: list[Row], valid: dict, repeat: int, rounds: int, threads: int,
             on_record: Callable[[dict], None], keep_freed_memory: bool = True) -> dict:
    """{(impl, row): timing record}: row by row, each implementation in turn, ``rounds``
    times, ceil(repeat / rounds) calls per phase each time."""
    per_round = math.ceil(repeat / rounds)
    workers: dict[str, Worker] = {}
    out = {}
    try:
        for row in rows:
            impls = [i for i in IMPLS[row.device] if valid.get((i, row), {}).get("valid")]
            records: dict[str, list[dict]] = {i: [] for i in impls}
            for k in range(rounds):
                for impl in impls:
                    if impl not in workers or workers[impl].proc.poll() is not None:
                        workers[impl] = Worker(threads, keep_freed_memory)
                    job = {"kind": "time", "impl": impl, "row": row.as_dict(), "repeat": per_round,
                           "threads": threads, "memory": k == 0}
                    for rec in workers[impl].run(job):
                        if rec["type"] == "crash":
                            rec = {"type": "time", "impl": impl, "row": row.as_dict(), "phases": {},
                                   "error": f"worker exited with code {rec['returncode']}", "times_ms": {}}
                        records[impl].append(rec)
                    time.sleep(SETTLE_S)
            for impl, recs in records.items():
                out[(impl, row)] = _pool(recs)
                on_record(out[(impl, row)])
    finally:
        for w in workers.values():
            w.close()
    return out


def result_rows(rows: list[Row], valid: dict, timed: dict, peaks: dict) -> list[dict]:
    """One flat record per (row, implementation, phase), with the derived columns."""
    results = []
    for row in rows:
        for impl in IMPLS[row.device]:
            v = valid.get((impl, row), {"status": "not run"})
            t = timed.get((impl, row), {})
            base = timed.get((BASELINE, row), {}).get("phases", {})
            peak = peaks.get((row.device, row.dtype), {}).get("peak")
            common = {**row.as_dict(), "impl": impl, "status": v.get("status"), "max_rel_error": v.get("max_rel_error"),
                      "peak_gflops": peak, "tf32": json.dumps(t.get("tf32")) if t.get("tf32") else None}
            if "error" in t:
                common["status"] = f"error: {t['error']}"
            if not t.get("phases"):
                results.append({**common, "phase": None})
                continue
            for phase in PHASES:
                s = t["phases"].get(phase)
                if s is None:
                    continue
                flops = matmul_flops(row, phase)
                gflops = flops / (s["ms"] * 1e-3) / 1e9
                ref_ms = base.get(phase, {}).get("ms")
                rec = {**common, "phase": phase, **s,
                       "tokens_per_s": row.T * row.B / (s["ms"] * 1e-3), "gflops": gflops,
                       "pct_peak": 100 * gflops / peak if peak else None,
                       "ratio_to_torch": s["ms"] / ref_ms if ref_ms else None}
                if "tape_bytes" in t and phase == "forward":
                    rec.update(tape_bytes=t["tape_bytes"], min_activation_bytes=t["min_activation_bytes"],
                               tape_ratio=t["tape_bytes"] / t["min_activation_bytes"],
                               forward_peak_bytes=t["forward_peak_bytes"])
                results.append(rec)
    return results
