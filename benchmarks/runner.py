"""Launch the worker processes and turn their records into result rows.

Order: check (environment, matrix-product peaks, torch.nn's results per row) ->
each implementation validates every row in its own process -> time. Each
implementation runs in its own process (NumPy's BLAS threads left spinning in a
shared process inflate torch's timings, ~40% measured here), and the processes stay
up for the whole run, so the process that validated is the one that times. Rows are
timed one at a time, side by side: for each row, every implementation in turn, in
alternating rounds whose samples are pooled. So a row's ratio is taken from timings
seconds apart, not minutes: on a shared machine the load drifts on that scale.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from .config import BASELINE, FLOOR, PHASES, Row
from .measure import matmul_flops, summary
from .progress import STARTUP_S, Progress, desired_cost, job_cost, validation_cost
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


def worker_env(base: Mapping[str, str], threads: int, keep_freed_memory: bool = True,
               extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A worker's environment: ``base`` (already without a lowered OpenBLAS pin, see
    kernel.child_env), the thread counts, the allocator setting, the source root first on
    PYTHONPATH, and ``extra`` (the baseline reference's directory)."""
    env = dict(base, **{k: str(threads) for k in THREAD_VARS})
    if keep_freed_memory:
        env = {**KEEP_FREED_MEMORY, **env}  # a value the caller set wins
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra or {})
    return env


class Worker:
    """One ``python -m benchmarks.worker`` process, taking jobs one line at a time."""

    def __init__(self, env: Mapping[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=dict(env), cwd=ROOT)

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


class Session:
    """The run's settings and its live workers (one per implementation)."""

    def __init__(self, threads: int, env: Mapping[str, str], keep_freed_memory: bool = True,
                 impl_env: Mapping[str, Mapping[str, str]] | None = None, workdir: Path | None = None):
        self.threads, self.env, self.keep = threads, dict(env), keep_freed_memory
        self.impl_env = dict(impl_env or {})
        self.workers: dict[str, Worker] = {}
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="bench-desired-")
        self.dir = str(workdir or self._tmp.name)
        self.desired_errors: dict[str, str] = {}

    def env_for(self, impl: str | None) -> dict[str, str]:
        return worker_env(self.env, self.threads, self.keep, self.impl_env.get(impl))

    def worker(self, impl: str) -> Worker:
        w = self.workers.get(impl)
        if w is None or w.proc.poll() is not None:
            w = self.workers[impl] = Worker(self.env_for(impl))
        return w

    def close(self) -> None:
        for w in self.workers.values():
            w.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def check(session: Session, rows: list[Row], on_record: Callable[[dict], None],
          progress: Progress | None = None) -> tuple[dict, dict]:
    """(environment block, {(device, dtype): matrix-product peak}); leaves torch.nn's results per
    row in the session's directory for the workers to validate against."""
    job = {"kind": "check", "threads": session.threads, "peaks": sorted({(r.device, r.dtype) for r in rows}),
           "rows": [r.as_dict() for r in rows], "dir": session.dir}
    env, peaks = {}, {}
    startup = 2 * STARTUP_S  # start-up and peaks: counted with the first row
    worker = Worker(session.env_for(None))
    for rec in worker.run(job):
        if rec["type"] == "env":
            env = rec["env"]
        elif rec["type"] == "peak":
            peaks[(rec["device"], rec["dtype"])] = rec
            on_record(rec)
        elif rec["type"] == "desired":
            if rec.get("error"):
                session.desired_errors[Row(**rec["row"]).name] = rec["error"]
            if progress:
                progress.advance(startup + desired_cost(Row(**rec["row"])), label="torch.nn results")
                startup = 0.0
        elif rec["type"] == "crash":
            raise RuntimeError(f"the check process exited with code {rec['returncode']}")
    worker.close()
    return env, peaks


def validate_all(session: Session, rows: list[Row], impls_of: Callable[[Row], tuple[str, ...]],
                 on_record: Callable[[dict], None], progress: Progress | None = None) -> tuple[dict, dict]:
    """({(impl, row): validation record}, {impl: kernel block of its process}): each implementation
    validates its rows in the process that will time them."""
    valid, processes = {}, {}
    impls = list(dict.fromkeys(i for r in rows for i in impls_of(r)))
    for impl in impls:
        mine = [r for r in rows if impl in impls_of(r)]
        job = {"kind": "validate", "impl": impl, "threads": session.threads, "dir": session.dir,
               "rows": [r.as_dict() for r in mine], "desired_errors": session.desired_errors}
        startup = STARTUP_S  # counted with the process's first record
        for rec in session.worker(impl).run(job):
            if rec["type"] == "valid":
                row = Row(**rec["row"])
                valid[(impl, row)] = rec
                on_record(rec)
                if progress:
                    progress.advance(startup + validation_cost(row), label=f"validate {impl}")
                    startup = 0.0
            elif rec["type"] == "process":
                processes[impl] = rec["env"]
            elif rec["type"] == "crash":
                for r in mine:
                    valid.setdefault((impl, r), {"type": "valid", "impl": impl, "row": r.as_dict(), "valid": False,
                                                 "status": f"error: worker exited with code {rec['returncode']}"})
    return valid, processes


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


def time_all(session: Session, rows: list[Row], impls_of: Callable[[Row], tuple[str, ...]], valid: dict,
             repeat: int, rounds: int, on_record: Callable[[dict], None], phases: tuple[str, ...] = PHASES,
             progress: Progress | None = None) -> dict:
    """{(impl, row): timing record}: row by row, each implementation in turn, ``rounds``
    times, ceil(repeat / rounds) calls per phase each time; the first round also measures memory."""
    per_round = math.ceil(repeat / rounds)
    out = {}
    for row in rows:
        impls = [i for i in impls_of(row) if valid.get((i, row), {}).get("valid")]
        records: dict[str, list[dict]] = {i: [] for i in impls}
        for k in range(rounds):
            for impl in impls:
                job = {"kind": "time", "impl": impl, "row": row.as_dict(), "repeat": per_round,
                       "threads": session.threads, "memory": k == 0, "phases": list(phases)}
                for rec in session.worker(impl).run(job):
                    if rec["type"] == "crash":
                        rec = {"type": "time", "impl": impl, "row": row.as_dict(), "phases": {},
                               "error": f"worker exited with code {rec['returncode']}", "times_ms": {}}
                    records[impl].append(rec)
                if progress:
                    progress.advance(job_cost(row, phases, per_round), rows=0, label="time")
                time.sleep(SETTLE_S)
        for impl, recs in records.items():
            out[(impl, row)] = _pool(recs)
            on_record(out[(impl, row)])
        if progress:
            progress.advance(0.0, rows=1, label="time")
    return out


def check_cost(rows: list[Row]) -> float:
    """The estimated seconds of the check process: start-up, peaks, torch.nn's results per row."""
    return 2 * STARTUP_S + sum(desired_cost(r) for r in rows)


def timing_cost(rows: list[Row], impls_of: Callable[[Row], tuple[str, ...]], valid: dict, phases: tuple[str, ...],
                repeat: int, rounds: int) -> float:
    """The estimated seconds of timing the rows that validated."""
    per_round = math.ceil(repeat / rounds)
    return sum(rounds * job_cost(r, phases, per_round) for r in rows for i in impls_of(r)
               if valid.get((i, r), {}).get("valid"))


def total_cost(rows: list[Row], impls_of: Callable[[Row], tuple[str, ...]], phases: tuple[str, ...],
               repeat: int, rounds: int) -> float:
    """The estimated seconds of validating and timing every row (progress.py's napkin maths)."""
    per_round = math.ceil(repeat / rounds)
    processes = len({i for r in rows for i in impls_of(r)})
    return processes * STARTUP_S + sum(len(impls_of(r)) * (validation_cost(r) + rounds * job_cost(r, phases, per_round))
                                       for r in rows)


ENVELOPE_FIELDS = ("envelope_multiple", "validated_at", "validation_s")  # a low-precision row's validation
MEMORY_FIELDS = ("setup_rss_bytes", "step_peak_rss_bytes", "cuda_max_memory_bytes")


def result_rows(rows: list[Row], impls_of: Callable[[Row], tuple[str, ...]], valid: dict, timed: dict,
                peaks: dict) -> list[dict]:
    """One flat record per (row, implementation, phase), with the derived columns:
    ratio_to_torch (over torch.nn's time), ratio_to_floor (over the GEMM floor's), us_per_step."""
    results = []
    for row in rows:
        for impl in impls_of(row):
            v = valid.get((impl, row), {"status": "not run"})
            t = timed.get((impl, row), {})
            base = timed.get((BASELINE, row), {}).get("phases", {})
            floor = timed.get((FLOOR, row), {}).get("phases", {})
            peak = peaks.get((row.device, row.dtype), {}).get("peak")
            common = {**row.as_dict(), "impl": impl, "status": v.get("status"), "max_rel_error": v.get("max_rel_error"),
                      "tf32_max_rel_error": v.get("tf32_max_rel_error"), "peak_gflops": peak,
                      **{k: v.get(k) for k in ENVELOPE_FIELDS if k in v},
                      "tf32_setting": json.dumps(t.get("tf32")) if t.get("tf32") else None,
                      **{k: t.get(k) for k in MEMORY_FIELDS}}
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
                base_ms, floor_ms = base.get(phase, {}).get("ms"), floor.get(phase, {}).get("ms")
                rec = {**common, "phase": phase, **s,
                       "us_per_step": 1e3 * s["ms"] / row.T,
                       "tokens_per_s": row.T * row.B / (s["ms"] * 1e-3), "gflops": gflops,
                       "pct_peak": 100 * gflops / peak if peak else None,
                       "ratio_to_torch": s["ms"] / base_ms if base_ms else None,
                       "ratio_to_floor": s["ms"] / floor_ms if floor_ms else None}
                if "tape_bytes" in t and phase == "forward":
                    rec.update(tape_bytes=t["tape_bytes"], min_activation_bytes=t["min_activation_bytes"],
                               tape_ratio=t["tape_bytes"] / t["min_activation_bytes"],
                               forward_peak_bytes=t["forward_peak_bytes"])
                results.append(rec)
    return results
