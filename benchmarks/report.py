"""The results as people read them: a table on stdout, JSON and CSV files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .kernel import describe

COLUMNS = ("cell", "size", "dtype", "device", "impl", "infer ms", "fwd ms", "bwd ms", "step ms", "spread",
           "step GF/s", "% peak", "fwd x", "step x", "floor x", "us/t", "mem MB", "tape/min", "status")


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def summary_lines(results: list[dict]) -> list[list[str]]:
    """One line per (row, implementation): the phases side by side.

    "x" columns are ratios on the same device (below 1 is faster): over torch nn's time
    ("fwd x", "step x") and over the GEMM floor's ("floor x", the step's). "us/t" is the
    step's (else the inference's) microseconds per time step; "mem MB" the peak resident
    memory of one forward + backward over what the process held before it.
    """
    lines, groups = [], {}
    for r in results:
        key = (r["cell"], r["T"], r["B"], r["I"], r["H"], r.get("P", 0), r["dtype"], r.get("tf32"), r["device"],
               r["impl"])
        groups.setdefault(key, {})[r["phase"]] = r
    for (cell, T, B, I, H, P, dtype, tf32, device, impl), phases in groups.items():
        any_r = next(iter(phases.values()))
        step, fwd = phases.get("step", {}), phases.get("forward", {})
        main = step or phases.get("inference", {})
        spreads = [p.get("spread") for p in phases.values() if p.get("spread") is not None]
        mem = any_r.get("step_peak_rss_bytes")
        lines.append([cell, f"T{T} B{B} I{I} H{H}" + (f" P{P}" if P else ""),
                      dtype + (" tf32" if tf32 else ""),
                      device, impl,
                      _fmt(phases.get("inference", {}).get("ms"), ".1f"), _fmt(fwd.get("ms"), ".1f"),
                      _fmt(phases.get("backward", {}).get("ms"), ".1f"), _fmt(step.get("ms"), ".1f"),
                      f"{100 * max(spreads):.0f}%" if spreads else "-",
                      _fmt(step.get("gflops"), ".1f"), _fmt(step.get("pct_peak"), ".0f"),
                      _fmt(fwd.get("ratio_to_torch"), ".2f"), _fmt(step.get("ratio_to_torch"), ".2f"),
                      _fmt(step.get("ratio_to_floor"), ".2f"), _fmt(main.get("us_per_step"), ".1f"),
                      _fmt(None if mem is None else mem / 2 ** 20, ".1f"),
                      _fmt(fwd.get("tape_ratio"), ".2f"), any_r.get("status") or ""])
    return lines


def format_table(results: list[dict]) -> str:
    lines = [list(COLUMNS)] + summary_lines(results)
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1] for line in lines)


def format_processes(processes: dict[str, dict]) -> str:
    """One line per implementation process: the kernels it loaded."""
    return "\n".join(f"  {impl:<16} {describe(block)}" for impl, block in processes.items())


def write_json(path: Path, env: dict, peaks: dict, settings: dict, results: list[dict]) -> None:
    doc = {"settings": settings, "environment": env,
           "matmul_peaks": [{"device": d, "dtype": t, **{k: v for k, v in p.items() if k != "type"}}
                            for (d, t), p in peaks.items()],
           "rows": results}
    path.write_text(json.dumps(doc, indent=1, default=str))


def write_csv(path: Path, results: list[dict]) -> None:
    fields = []
    for r in results:
        fields += [k for k in r if k not in fields]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(results)
