"""When a timing cannot be trusted, and how a run says so.

A timing is flagged, in its result record's ``unreliable`` (a list of reasons), when

- the machine was busy: the 1-minute load average, at the start or at the end of the run,
  was above the machine's cores (other work then shared the CPUs with the timed calls;
  every record of the run is flagged);
- its spread (the interquartile range of its calls over their median) is above
  ``SPREAD_LIMIT``: the calls disagree with one another more than the machines'
  ordinary noise (single timings move by 10-20% on the shared 2-core machines this
  project runs on; the quiet full run's step spreads were 1-10%);
- it is inconsistent: a forward, backward or inference phase took longer than the step
  that contains it (the step is the forward and the backward, timed together), which
  no quiet machine produces; both the phase and the step are flagged.

The run prints a banner naming them (``banner``), results.json and the CSV carry the flags,
the report's tables mark each number drawn from a flagged record with ``MARK``, and the
figures hatch its bar. The report flags an older results file the same way, from the
spreads, phases and load average it recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SPREAD_LIMIT = 0.25  # above the 10-20% a single timing moves by on a shared machine
MARK = "†"
CONTAINED = ("inference", "forward", "backward")  # phases no longer than the step


def load_averages(settings: dict) -> tuple[float | None, float | None]:
    """(start, end) 1-minute load averages of a run: the numbers it recorded, or, in a file
    written before they were, read from its ``load_average`` sentence."""
    if "load_average_start" in settings:
        return settings["load_average_start"], settings.get("load_average_end")
    found = re.fullmatch(r"([\d.]+) at the start, ([\d.]+) at the end", settings.get("load_average") or "")
    return (float(found[1]), float(found[2])) if found else (None, None)


def load_reasons(load: tuple[float | None, float | None], cores: int | None) -> list[str]:
    """Why the whole run is flagged, if the machine was busier than its cores."""
    if not cores:
        return []
    return [f"load average {value:.1f} at the {when} is above the machine's {cores} cores"
            for when, value in zip(("start", "end"), load) if value is not None and value > cores]


def _config(r: dict) -> tuple:
    return tuple(r.get(k) for k in ("impl", "cell", "T", "B", "I", "H", "P", "dtype", "tf32", "device"))


def flag(results: Iterable[dict], load: tuple[float | None, float | None], cores: int | None) -> list[dict]:
    """The records, each timed one with ``unreliable``: its reasons (load, spread, an
    inconsistent phase), or an empty list. The records given are not changed."""
    results = [dict(r) for r in results]
    busy = load_reasons(load, cores)
    groups: dict[tuple, dict[str, dict]] = {}  # one implementation on one configuration: its phases
    for r in results:
        if r.get("phase") and r.get("ms") is not None:
            groups.setdefault(_config(r), {})[r["phase"]] = r
    for phases in groups.values():
        step = phases.get("step")
        longer = [p for p in CONTAINED if step and p in phases and phases[p]["ms"] > step["ms"]]
        for phase, r in phases.items():
            reasons = list(busy)
            if (r.get("spread") or 0.0) > SPREAD_LIMIT:
                reasons.append(f"spread {r['spread']:.0%} is above {SPREAD_LIMIT:.0%}")
            for p in longer if phase == "step" else [phase] if phase in longer else []:
                reasons.append(f"inconsistent: {p} {phases[p]['ms']:.3g} ms is longer than its step "
                               f"{step['ms']:.3g} ms")
            r["unreliable"] = reasons
    return results


def is_flagged(record: dict | None) -> bool:
    return bool(record and record.get("unreliable"))


def _name(r: dict) -> str:
    size = f"T{r['T']} B{r['B']} H{r['H']}" + (f" P{r['P']}" if r.get("P") else "")
    return f"{r['impl']} {r['cell']} {size} {r['dtype']} {r['phase']}"


def banner(results: list[dict], load: tuple[float | None, float | None], cores: int | None, shown: int = 6) -> str | None:
    """The console's warning, or None when every timing can be trusted."""
    flagged = [r for r in results if is_flagged(r)]
    if not flagged:
        return None
    lines = ["UNRELIABLE TIMINGS: these numbers cannot be trusted as measured"]
    lines += [f"  {reason}: another load shared the CPUs" for reason in load_reasons(load, cores)]
    own = [(r, [x for x in r["unreliable"] if not x.startswith("load average")]) for r in flagged]
    own = [(r, reasons) for r, reasons in own if reasons]
    for r, reasons in own[:shown]:
        lines.append(f"  {_name(r)}: {'; '.join(reasons)}")
    if len(own) > shown:
        lines.append(f"  ... and {len(own) - shown} more")
    lines.append(f'  {len(flagged)} of {sum(1 for r in results if r.get("phase") and r.get("ms") is not None)} '
                 f'timings flagged: results.json marks them ("unreliable"), tables with {MARK}, figures hatch them')
    rule = "!" * min(100, max(len(line) for line in lines))
    return "\n".join([rule, *lines, rule])
