"""The results as people read them: a table on stdout, JSON and CSV files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

COLUMNS = ("cell", "size", "dtype", "device", "impl", "infer ms", "fwd ms", "bwd ms", "step ms", "spread",
           "step GF/s", "% peak", "fwd x", "step x", "tape/min", "status")


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def summary_lines(results: list[dict]) -> list[list[str]]:
    """One line per (row, implementation): the four phases side by side.

    "x" columns are the ratio to torch nn on the same device (below 1 is faster).
    """
    lines, groups = [], {}
    for r in results:
        key = (r["cell"], r["T"], r["B"], r["I"], r["H"], r["dtype"], r["device"], r["impl"])
        groups.setdefault(key, {})[r["phase"]] = r
    for (cell, T, B, I, H, dtype, device, impl), phases in groups.items():
        any_r = next(iter(phases.values()))
        step, fwd = phases.get("step", {}), phases.get("forward", {})
        spread = max((p.get("spread") or 0) for p in phases.values()) if phases.get("inference") else None
        lines.append([cell, f"T{T} B{B} I{I} H{H}", dtype, device, impl,
                      _fmt(phases.get("inference", {}).get("ms"), ".1f"), _fmt(fwd.get("ms"), ".1f"),
                      _fmt(phases.get("backward", {}).get("ms"), ".1f"), _fmt(step.get("ms"), ".1f"),
                      _fmt(None if spread is None else 100 * spread, ".0f") + ("%" if spread is not None else ""),
                      _fmt(step.get("gflops"), ".1f"), _fmt(step.get("pct_peak"), ".0f"),
                      _fmt(fwd.get("ratio_to_torch"), ".2f"), _fmt(step.get("ratio_to_torch"), ".2f"),
                      _fmt(fwd.get("tape_ratio"), ".2f"), any_r.get("status") or ""])
    return lines


def format_table(results: list[dict]) -> str:
    lines = [list(COLUMNS)] + summary_lines(results)
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1] for line in lines)


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
