"""Launch the worker processes and turn their records into result rows.

Order: check (environment, matrix-product peaks, then validate every row) -> time each
implementation in its own process, on the rows it validated on. One process per
implementation: NumPy's BLAS threads left spinning in a shared process inflate
torch's timings (~40% measured here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from .config import BASELINE, IMPLS, PHASES, Row
from .measure import matmul_flops
from .worker import THREAD_VARS

ROOT = Path(__file__).resolve().parent.parent


def run_job(job: dict, threads: int) -> Iterator[dict]:
    """Run one worker job in a fresh interpreter; yield its records as they arrive."""
    env = dict(os.environ, **{k: str(threads) for k in THREAD_VARS})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    proc.stdin.write(json.dumps(job))
    proc.stdin.close()
    for line in proc.stdout:
        if line.startswith("{"):
            yield json.loads(line)
    if proc.wait() != 0:
        yield {"type": "crash", "job": job["kind"], "impl": job.get("impl"), "returncode": proc.returncode}


def check(rows: list[Row], threads: int, on_record: Callable[[dict], None]) -> tuple[dict, dict, dict]:
    """(environment block, {(device, dtype): matrix-product peak}, {(impl, row): validation record})."""
    job = {"kind": "check", "threads": threads, "peaks": sorted({(r.device, r.dtype) for r in rows}),
           "items": [{"row": r.as_dict(), "impls": list(IMPLS[r.device])} for r in rows]}
    env, peaks, valid = {}, {}, {}
    for rec in run_job(job, threads):
        if rec["type"] == "env":
            env = rec["env"]
        elif rec["type"] == "peak":
            peaks[(rec["device"], rec["dtype"])] = rec
            on_record(rec)
        elif rec["type"] == "valid":
            valid[(rec["impl"], Row(**rec["row"]))] = rec
            on_record(rec)
    return env, peaks, valid


def time_all(rows: list[Row], valid: dict, repeat: int, threads: int, on_record: Callable[[dict], None]) -> dict:
    """{(impl, row): timing record}, one process per (device, implementation)."""
    out = {}
    for device in sorted({r.device for r in rows}):
        for impl in IMPLS[device]:
            todo = [r for r in rows if r.device == device and valid.get((impl, r), {}).get("valid")]
            if not todo:
                continue
            job = {"kind": "time", "impl": impl, "rows": [r.as_dict() for r in todo], "repeat": repeat,
                   "threads": threads}
            for rec in run_job(job, threads):
                if rec["type"] == "time":
                    out[(impl, Row(**rec["row"]))] = rec
                    on_record(rec)
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
