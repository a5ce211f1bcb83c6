"""The results as people read them: a table on stdout, JSON and CSV files, and the
Markdown tables of the README and docs/, generated from a results file.

    python -m benchmarks.report --markdown benchmarks/results/cpu-2core-full.json --view ratios --rows goals
    python -m benchmarks.report --update          # rewrite every generated table in README.md and docs/
    python -m benchmarks.report --check           # exit 1 naming each table that differs from its file
    python -m benchmarks.report --plots benchmarks/results/cpu-2core-full.json   # its PNG figures beside it
    python -m benchmarks.report --plots benchmarks/results/cpu-2core-full.json --rows goals   # ...-goals-*.png

A generated table sits between two markers, the first naming its results file (relative
to benchmarks/) and its view; everything between them is the command's output:

    <!-- table: results/cpu-2core-full.json view=ratios rows=goals -->
    ...
    <!-- end table -->
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from . import trust
from .config import BASELINE, FLOOR, LOW_PRECISION, SCALING_AXES, SCALING_BASE
from .kernel import describe, describe_capability
from .trust import MARK

COLUMNS = ("cell", "size", "dtype", "device", "impl", "infer ms", "fwd ms", "bwd ms", "step ms", "spread",
           "step GF/s", "% peak", "fwd x", "step x", "step / floor", "us/t", "mem MB", "tape/min", "status")


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def summary_lines(results: list[dict]) -> list[list[str]]:
    """One line per (row, implementation): the phases side by side.

    "x" columns are ratios over torch nn's time on the same device (below 1 is faster);
    "step / floor" is the step over the floor's (the reference's matrix products alone). "us/t"
    is the step's (else the inference's) microseconds per time step; "mem MB" the peak resident
    memory of one forward + backward over what the process held before it. "status" ends with
    the reasons a timing was flagged unreliable (trust.py), if any.
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
        doubts = list(dict.fromkeys(_doubt(ph, x) for ph, p in phases.items() for x in p.get("unreliable") or ()
                                    if not x.startswith("inconsistent") or ph == "step"))  # the step names it
        status = "; ".join([any_r.get("status") or "", *(["unreliable: " + ", ".join(doubts)] if doubts else [])])
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
                      _fmt(fwd.get("tape_ratio"), ".2f"), status])
    return lines


def _doubt(phase: str, reason: str) -> str:
    """One reason in a line's status: a busy machine once for the line, the others by phase."""
    if reason.startswith("load average"):
        return "the machine was busy (load average above its cores)"
    return reason if reason.startswith("inconsistent") else f"{phase} {reason}"


def format_table(results: list[dict]) -> str:
    lines = [list(COLUMNS)] + summary_lines(results)
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1] for line in lines)


def format_processes(processes: dict[str, dict]) -> str:
    """One line per implementation process: the kernels it loaded."""
    return "\n".join(f"  {impl:<16} {describe(block)}" for impl, block in processes.items())


def results_doc(env: dict, peaks: dict, settings: dict, results: list[dict]) -> dict:
    """What results.json holds: the settings, the environment, the peaks and every record."""
    return {"settings": settings, "environment": env,
            "matmul_peaks": [{"device": d, "dtype": t, **{k: v for k, v in p.items() if k != "type"}}
                             for (d, t), p in peaks.items()],
            "rows": results}


def write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=1, default=str))


def write_csv(path: Path, results: list[dict]) -> None:
    """One line per record; a list (a flag's reasons) as one cell, its items joined by '; '."""
    fields = []
    for r in results:
        fields += [k for k in r if k not in fields]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows({k: "; ".join(v) if isinstance(v, list) else v for k, v in r.items()} for r in results)


# --- Markdown tables from a results file -----------------------------------------------------------------------

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DOCUMENTS = ("README.md", "docs/*.md")  # where generated tables live
BEGIN = re.compile(r"^<!-- table: (?P<path>\S+)(?P<options>(?: \w+=\S+)*) -->$")
END = "<!-- end table -->"
CELL_NAMES = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN tanh", "RNN_RELU": "RNN relu"}
# --rows: which configurations a table shows. "goals": the rows the speed goals are stated at.
ROW_FILTERS: dict[str, Callable[[dict], bool]] = {
    "all": lambda r: True,
    "goals": lambda r: (r["T"], r["B"]) == (100, 64) and r["I"] == r["H"] in (256, 512) and not r.get("P"),
    "others": lambda r: not ((r["T"], r["B"]) == (100, 64) and r["I"] == r["H"] in (256, 512) and not r.get("P")),
}


def load(path: Path) -> dict:
    """A results file, its records flagged where a timing cannot be trusted (trust.py): the
    flags it recorded, or, in a file written before they were, the same flags from its data."""
    doc = json.loads(Path(path).read_text())
    doc["rows"] = trust.flag(doc["rows"], trust.load_averages(doc.get("settings", {})),
                             doc.get("environment", {}).get("cpu_count"))
    return doc


def _configs(rows: list[dict], keep: Callable[[dict], bool]) -> list[tuple[tuple, dict[str, dict[str, dict]]]]:
    """[(configuration key, {impl: {phase: record}})] in the file's order; a baseline revision's
    rows (reference@REV) are left out: the tables describe the tree that was measured."""
    groups: dict[tuple, dict[str, dict[str, dict]]] = {}
    for r in rows:
        if not keep(r) or r["impl"].startswith("reference@"):
            continue
        key = (r["cell"], r["T"], r["B"], r["I"], r["H"], r.get("P", 0), r["dtype"], bool(r.get("tf32")), r["device"])
        groups.setdefault(key, {}).setdefault(r["impl"], {})[r["phase"]] = r
    return list(groups.items())


def config_name(key: tuple, *, with_T: bool = True) -> str:
    cell, T, B, I, H, P, dtype, tf32, device = key
    size = (f"T{T} " if with_T else "") + f"B{B}" + (f" I{I}" if I != H else "") + f" H{H}" + (f" P{P}" if P else "")
    return f"{CELL_NAMES.get(cell, cell)} {size} {dtype}" + (" tf32" if tf32 else "") + (
        f" {device}" if device != "cpu" else "")


def _get(impls: dict, impl: str, phase: str, field: str):
    return impls.get(impl, {}).get(phase, {}).get(field)


DIVIDES_BY = {"ratio_to_torch": BASELINE, "ratio_to_floor": FLOOR}  # a ratio is as reliable as both its timings


def _cell(impls: dict, impl: str, phase: str, field: str, spec: str) -> str:
    """One number of a table, marked when a timing it is drawn from is flagged unreliable."""
    value = _fmt(_get(impls, impl, phase, field), spec)
    sources = [impls.get(impl, {}).get(phase)]
    if field in DIVIDES_BY:
        sources.append(impls.get(DIVIDES_BY[field], {}).get(phase))
    return value + MARK if value != "-" and any(trust.is_flagged(r) for r in sources) else value


def _ratio(a, b):
    return None if a is None or not b else a / b


def _status(impls: dict) -> str:
    """'' when every implementation validated (or was only unavailable), else what failed."""
    bad = []
    for impl, phases in impls.items():
        status = next(iter(phases.values())).get("status") or ""
        if status not in ("baseline", "") and not status.startswith(("ok", "floor", "unavailable")):
            bad.append(f"{impl}: {status}")
    return "; ".join(bad)


def _ratios_view(configs) -> tuple[list[str], list[list[str]]]:
    """One line per configuration: torch.nn's step, every implementation's step over it (the
    floor's too: the reference's matrix products alone), the reference's phases over torch.nn's,
    its step over the floor's, and its memory."""
    present = {impl for _, impls in configs for impl, phases in impls.items() if phases.get("step", {}).get("ms")}
    others = [i for i in ("reference-torch", "torch-function", "torch-autograd", "jax") if i in present]
    header = ["row", "torch.nn step ms", "reference step x", "fwd x", "bwd x", "floor x", "reference / floor",
              *[f"{i} x" for i in others], "tape / min", "fwd peak / tape", "mem / torch.nn", "spread"]
    lines = []
    for key, impls in configs:
        spreads = [_get(impls, i, "step", "spread") for i in ("torch-nn", "reference")]
        fwd_rec = impls.get("reference", {}).get("forward", {})
        lines.append([config_name(key), _cell(impls, "torch-nn", "step", "ms", ".1f"),
                      *[_cell(impls, "reference", ph, "ratio_to_torch", ".2f") for ph in ("step", "forward", "backward")],
                      _cell(impls, FLOOR, "step", "ratio_to_torch", ".2f"),
                      _cell(impls, "reference", "step", "ratio_to_floor", ".2f"),
                      *[_cell(impls, i, "step", "ratio_to_torch", ".2f") for i in others],
                      _fmt(fwd_rec.get("tape_ratio"), ".3f"),
                      _fmt(_ratio(fwd_rec.get("forward_peak_bytes"), fwd_rec.get("tape_bytes")), ".2f"),
                      _fmt(_ratio(_get(impls, "reference", "step", "step_peak_rss_bytes"),
                                  _get(impls, "torch-nn", "step", "step_peak_rss_bytes")), ".2f"),
                      "-" if None in spreads else f"{100 * max(spreads):.0f}%"])
        if _status(impls):
            lines[-1][0] += f" ({_status(impls)})"
    return header, lines


def _per_step_view(configs) -> tuple[list[str], list[list[str]]]:
    """Small layers over many steps: microseconds per time step, forward + backward."""
    present = {impl for _, impls in configs for impl, phases in impls.items() if phases.get("step", {}).get("ms")}
    others = [i for i in ("reference-torch", "torch-function") if i in present]
    header = ["row", "torch.nn µs/step", "reference µs/step", "step x", "fwd x", "bwd x", "floor x",
              "reference / floor", *[f"{i} x" for i in others]]
    lines = []
    for key, impls in configs:
        lines.append([config_name(key), _cell(impls, "torch-nn", "step", "us_per_step", ".1f"),
                      _cell(impls, "reference", "step", "us_per_step", ".1f"),
                      *[_cell(impls, "reference", ph, "ratio_to_torch", ".2f") for ph in ("step", "forward", "backward")],
                      _cell(impls, FLOOR, "step", "ratio_to_torch", ".2f"),
                      _cell(impls, "reference", "step", "ratio_to_floor", ".2f"),
                      *[_cell(impls, i, "step", "ratio_to_torch", ".2f") for i in others]])
        if _status(impls):
            lines[-1][0] += f" ({_status(impls)})"
    return header, lines


def _lines_view(rows: list[dict], keep: Callable[[dict], bool]) -> tuple[list[str], list[list[str]]]:
    """Every column of the printed table, one line per (configuration, implementation)."""
    kept = [r for r in rows if keep(r) and not r["impl"].startswith("reference@") and r.get("phase")]
    header = [c for c in COLUMNS if c not in ("device",)]
    keep_cols = [i for i, c in enumerate(COLUMNS) if c != "device"]
    return header, [[line[i] for i in keep_cols] for line in summary_lines(kept)]


SUMMARY = ("row", "torch.nn step ms", "reference step x", "floor x", "reference-torch x", "torch-function x",
           "torch-autograd x", "jax x", "spread")


def _summary_view(configs) -> tuple[list[str], list[list[str]]]:
    """The ratios view's step columns, narrow enough for the README: each implementation's step
    over torch.nn's, the bars of the step-ratio figure."""
    header, lines = _ratios_view(configs)
    keep = [i for i, h in enumerate(header) if h in SUMMARY]
    return [header[i] for i in keep], [[line[i] for i in keep] for line in lines]


def _ms(v) -> str:
    """Three significant figures, without an exponent (2390, not 2.39e+03)."""
    return "-" if v is None else f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def _sweep_view(configs) -> tuple[list[str], list[list[str]]]:
    """A scaling sweep, one line per (cell, dtype, axis): torch.nn's step time at each point of
    the axis (the others at the base point), then each implementation's step over it."""
    present = {impl for _, impls in configs for impl, phases in impls.items() if phases.get("step", {}).get("ms")}
    others = [i for i in ("reference", FLOOR, "jax") if i in present]
    header = ["cell", "dtype", "axis", "points", "torch.nn step ms",
              *[f"{'floor' if i == FLOOR else i} x" for i in others]]
    lines = []
    groups = list(dict.fromkeys((key[0], key[6]) for key, _ in configs))
    for cell, dtype in groups:
        for axis, values in SCALING_AXES.items():
            fixed = {a: v for a, v in SCALING_BASE.items() if a != axis}
            on_axis = {}
            for key, impls in configs:
                point = dict(zip(("T", "B", "H"), (key[1], key[2], key[4])))
                if (key[0], key[6]) == (cell, dtype) and key[3] == key[4] and not key[5] and all(
                        point[a] == v for a, v in fixed.items()) and point[axis] in values:
                    on_axis[point[axis]] = impls
            if len(on_axis) < 2:
                continue
            points = sorted(on_axis)
            series = [on_axis[p] for p in points]
            lines.append([CELL_NAMES.get(cell, cell), dtype,
                          f"{axis} ({' '.join(f'{a}{v}' for a, v in fixed.items())})",
                          " · ".join(map(str, points)),
                          " · ".join(_ms(_get(i, "torch-nn", "step", "ms"))
                                     + MARK * trust.is_flagged(i.get("torch-nn", {}).get("step")) for i in series),
                          *[" · ".join(_cell(i, impl, "step", "ratio_to_torch", ".2f") for i in series)
                            for impl in others]])
    return header, lines


def _over(a: dict | None, b: dict | None) -> str:
    """a's time over b's (two dtypes' records of one phase), marked when either is flagged unreliable."""
    value = _fmt(_ratio((a or {}).get("ms"), (b or {}).get("ms")), ".2f")
    return value + MARK if value != "-" and (trust.is_flagged(a) or trust.is_flagged(b)) else value


def _precision_view(configs) -> tuple[list[str], list[list[str]]]:
    """torch.nn in bfloat16 (and float16) against torch.nn in float32 on the same shape, from the same run:
    the speed training in that format gives on this machine. One line per shape with a low-precision row:
    torch.nn's float32 step, then per format its step, the step, forward and backward over float32's,
    torch-function's step over torch.nn's in that format, and torch.nn's validation (its largest error
    over the rounding envelope, at the T and B compare ran, and the seconds it took)."""
    shapes: dict[tuple, dict[str, dict]] = {}
    for key, impls in configs:
        shape = key[:6] + key[7:]
        shapes.setdefault(shape, {})[key[6]] = impls
    formats = [f for f in LOW_PRECISION if any(f in by_dtype for by_dtype in shapes.values())]
    header = ["row", "float32 step ms"]
    for f in formats:
        header += [f"{f} step ms", f"{f} / float32 step", "fwd", "bwd", f"torch-function x ({f})", "validated"]
    lines = []
    for shape, by_dtype in shapes.items():
        if not any(f in by_dtype for f in formats) or "float32" not in by_dtype:
            continue
        base = by_dtype["float32"].get("torch-nn", {})
        line = [config_name((*shape[:6], "", *shape[6:])).replace("  ", " ").strip(),
                _cell(by_dtype["float32"], "torch-nn", "step", "ms", ".1f")]
        for f in formats:
            low = by_dtype.get(f, {})
            nn = low.get("torch-nn", {})
            over = [_over(nn.get(ph), base.get(ph)) for ph in ("step", "forward", "backward")]
            any_r = next(iter(nn.values()), {})
            validated = ("-" if any_r.get("envelope_multiple") is None else
                         f"{any_r['envelope_multiple']:.2g}x at {any_r['validated_at']}, {any_r['validation_s']:.0f} s")
            line += [_cell(low, "torch-nn", "step", "ms", ".1f"), *over,
                     _cell(low, "torch-function", "step", "ratio_to_torch", ".2f"), validated]
            if _status(low):
                line[0] += f" ({f}: {_status(low)})"
        lines.append(line)
    return header, lines


VIEWS = {"ratios": _ratios_view, "precision": _precision_view, "summary": _summary_view, "per-step": _per_step_view, "sweep": _sweep_view,
         "lines": None}


def _machine(doc: dict) -> list[str]:
    """What ran where: threads, CPU, NumPy and its kernel, torch."""
    s, env = doc.get("settings", {}), doc.get("environment", {})
    blas = next((b for b in env.get("check_process", {}).get("blas", []) if b.get("user_api") == "blas"), {})
    threads = s.get("threads")
    return [f"{threads} thread{'s' if threads != 1 else ''}",
            f"{env.get('cpu_model')} ({env.get('cpu_count')} cores)",
            f"NumPy {env.get('numpy')} with {env.get('numpy_blas')}"
            + (f" ({blas['architecture']} kernel)" if blas.get("architecture") else ""),
            f"torch {env.get('torch')}" + (" (oneDNN RNN)" if env.get("torch_cpu_onednn_rnn") else "")]


def _commit(doc: dict) -> str:
    s = doc.get("settings", {})
    return (f"commit {s.get('commit') or 'not recorded'}" + (" (from git history)" if s.get("provenance_note") else "")
            + f", {s.get('date') or 'date not recorded'}")


def provenance(doc: dict, path: str) -> str:
    """The line under a table: what ran, where, when, on which commit."""
    s = doc.get("settings", {})
    peaks = {p["dtype"]: p["peak"] for p in doc.get("matmul_peaks", []) if p.get("device") == "cpu"}
    rounds = s.get("rounds")
    threads, *machine = _machine(doc)
    parts = [(f"`benchmarks/{path}`: suite {s.get('suite')}, {s.get('repeat')} repeats in {rounds} "
              f"round{'s' if rounds != 1 else ''}, {threads}"), *machine]
    if peaks:
        parts.append("matrix-product peak " + ", ".join(f"{v:.0f} GFLOP/s {k}" for k, v in sorted(peaks.items())))
    if any(r.get("dtype") in LOW_PRECISION for r in doc.get("rows", [])):
        parts.append("CPU low precision: " + describe_capability(doc.get("environment", {}).get("cpu_low_precision")
                                                                 or {}))
    if s.get("load_average"):
        parts.append(f"load average {s['load_average']}")
    parts.append(_commit(doc))
    if s.get("seconds"):
        parts.append(f"{s['seconds'] / 60:.0f} min")
    return "*" + "; ".join(parts) + ".*"


def caption(doc: dict) -> str:
    """The line under a figure's title: the suite, threads, machine, kernels and commit."""
    return f"suite {doc.get('settings', {}).get('suite')}, " + "; ".join([*_machine(doc), _commit(doc)])


def markdown(doc: dict, view: str = "ratios", rows: str = "all", path: str = "") -> str:
    """The Markdown table a results file gives for a view and a row filter, with its provenance line."""
    if view not in VIEWS:
        raise ValueError(f"view: expected one of {', '.join(VIEWS)}, got {view!r}")
    if rows not in ROW_FILTERS:
        raise ValueError(f"rows: expected one of {', '.join(ROW_FILTERS)}, got {rows!r}")
    keep = ROW_FILTERS[rows]
    if view == "lines":
        header, lines = _lines_view(doc["rows"], keep)
    else:
        header, lines = VIEWS[view](_configs([r for r in doc["rows"] if r.get("phase")], keep))
    if not lines:
        raise ValueError(f"{path or 'the results file'} has no timed rows for rows={rows}"
                         + (" (view=sweep needs a scaling run: two or more points on an axis)" if view == "sweep" else ""))
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    note = f"\n\n{FLAGGED_NOTE}" if any(MARK in cell for line in lines for cell in line) else ""
    return "\n".join(out) + "\n\n" + provenance(doc, path) + note


FLAGGED_NOTE = (f"*{MARK} drawn from a timing flagged unreliable: its spread above {trust.SPREAD_LIMIT:.0%}, the load "
                "average above the machine's cores, or a phase longer than its step (the results file's "
                "`unreliable` says which).*")


def _options(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split())


def documents(root: Path = ROOT) -> list[Path]:
    return sorted({p for pattern in DOCUMENTS for p in root.glob(pattern)})


def regenerate(text: str, bench_dir: Path = BENCH_DIR, name: str = "") -> tuple[str, list[str]]:
    """(the text with every generated table rewritten from its results file, the markers whose
    table changed, as 'name:line')."""
    lines, out, changed, k = text.split("\n"), [], [], 0
    while k < len(lines):
        line = lines[k]
        out.append(line)
        match = BEGIN.match(line)
        if not match:
            k += 1
            continue
        try:
            end = lines.index(END, k + 1)
        except ValueError:
            raise ValueError(f"{name}:{k + 1}: a generated table with no '{END}' line") from None
        opts = _options(match["options"])
        unknown = set(opts) - {"view", "rows"}
        if unknown:
            raise ValueError(f"{name}:{k + 1}: unknown option {sorted(unknown)}: expected view= and rows=")
        results = bench_dir / match["path"]
        if not results.exists():
            raise ValueError(f"{name}:{k + 1}: names {match['path']}, which is not in {bench_dir}")
        table = markdown(load(results), opts.get("view", "ratios"), opts.get("rows", "all"), match["path"])
        new = ["", *table.split("\n"), ""]
        if lines[k + 1:end] != new:
            changed.append(f"{name}:{k + 1}")
        out += new + [END]
        k = end + 1
    return "\n".join(out), changed


# A benchmark table's header: a ratio column ("step x"), a time ("ms", "µs/step") or a rate.
BENCH_HEADER = re.compile(r"^\|.*(?: x \|| ms \|| ms/| µs/step |GF/s)")


def unmarked_tables(text: str, name: str = "") -> list[str]:
    """Each benchmark table (as 'name:line') that does not sit between generated-table markers:
    a figure typed by hand, which nothing checks against a results file."""
    found, inside = [], False
    for number, line in enumerate(text.split("\n"), 1):
        if BEGIN.match(line):
            inside = True
        elif line == END:
            inside = False
        elif not inside and BENCH_HEADER.match(line):
            found.append(f"{name}:{number}")
    return found


def stale_tables(root: Path = ROOT) -> list[str]:
    """Each generated table (as 'file:line') that differs from what its results file gives."""
    stale = []
    for path in documents(root):
        _, changed = regenerate(path.read_text(), root / "benchmarks", str(path.relative_to(root)))
        stale += changed
    return stale


def update(root: Path = ROOT) -> list[str]:
    """Rewrite every generated table from its results file; returns those that changed."""
    changed = []
    for path in documents(root):
        text, now = regenerate(path.read_text(), root / "benchmarks", str(path.relative_to(root)))
        if now:
            path.write_text(text)
        changed += now
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n")[0])
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--markdown", type=Path, metavar="RESULTS.json", help="print that file's Markdown table")
    what.add_argument("--update", action="store_true", help="rewrite every generated table in README.md and docs/")
    what.add_argument("--check", action="store_true", help="exit 1 when a generated table differs from its file")
    what.add_argument("--plots", type=Path, metavar="RESULTS.json",
                      help="draw that file's figures beside it (<stem>-step-ratio.png; with --rows R, <stem>-R-...)")
    ap.add_argument("--view", choices=tuple(VIEWS), default="ratios")
    ap.add_argument("--rows", choices=tuple(ROW_FILTERS), default="all")
    args = ap.parse_args(argv)
    if args.markdown:
        try:
            rel = str(args.markdown.resolve().relative_to(BENCH_DIR))
        except ValueError:
            rel = str(args.markdown)
        print(markdown(load(args.markdown), args.view, args.rows, rel))
        return 0
    if args.plots:
        from . import plots

        doc = load(args.plots)
        stem = args.plots.with_suffix("")
        keep = ROW_FILTERS[args.rows]
        prefix = stem.name + ("" if args.rows == "all" else f"-{args.rows}") + "-"
        for path in plots.plot_results([r for r in doc["rows"] if keep(r)], stem.parent, prefix, caption(doc)):
            print(f"wrote {path}")
        return 0
    if args.update:
        changed = update(ROOT)
        print("\n".join(f"rewrote the table at {c}" for c in changed) or "every generated table is current")
        return 0
    stale = stale_tables(ROOT) + [f"{t} (typed, not generated)" for p in documents(ROOT)
                                  for t in unmarked_tables(p.read_text(), str(p.relative_to(ROOT)))]
    if stale:
        print("\n".join(f"{c}: differs from its results file" for c in stale)
              + "\nrun: python -m benchmarks.report --update", file=sys.stderr)
        return 1
    print("every generated table matches its results file")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
