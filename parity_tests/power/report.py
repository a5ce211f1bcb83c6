"""The power study's tables and figure, generated into docs/low_precision.md (every table) and docs/verify.md
(the T = 100 summary) from its results file.

The tables sit between ``<!-- power table: <results file> [view=power|summary|correct|torch] -->`` and
``<!-- end power table -->``; ``update`` rewrites them from the file, ``stale`` names those
that differ (the test checks none does).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "parity_tests" / "power" / "results" / "power.json"
DOCUMENT = ROOT / "docs" / "low_precision.md"
DOCUMENTS = (DOCUMENT, ROOT / "docs" / "verify.md")
FIGURE = ROOT / "docs" / "figures" / "low_precision_power.png"
BEGIN = re.compile(r"^<!-- power table: (?P<path>\S+)(?: view=(?P<view>\w+))? -->$")
END = "<!-- end power table -->"
BLOCK = re.compile(r"^(?P<begin><!-- power table: (?P<path>\S+)(?: view=(?P<view>\w+))? -->)$.*?^" + END + "$",
                   re.MULTILINE | re.DOTALL)
ORDER = ("float64", "float32", "tf32", "float16", "bfloat16")
BUG_NAMES = {"bias": "forget-gate bias + size", "weight grad": "grad weight_hh x (1 + size)",
             "carry": "carry dc x (1 - size)", "state": "c rounded to a narrower format"}


def load(path: Path = RESULTS) -> dict:
    return json.loads(path.read_text())


def cells(doc: dict) -> list[dict]:
    """The cells in table order: precision (widest first), then T."""
    return sorted(doc["cells"].values(), key=lambda c: (ORDER.index(c["precision"]), c["T"]))


def size_text(bug: str, size: float | None) -> str:
    if size is None:
        return "not caught"
    if bug == "state":
        return f"{round(-math.log2(size)) - 1} bits"
    return f"{size:.0e}".replace("e-0", "e-").replace("e+00", "")


def gain_text(bug: str, envelope: float | None, anchor: float | None) -> str:
    """How many times smaller a bug the envelope catches than the anchor."""
    if envelope is None:
        return "-"
    if anchor is None:
        return "only the envelope"
    return f"{anchor / envelope:.3g}"  # the state bug's sizes are unit roundoffs: 2 per bit


def _false(cell: dict, rule: str) -> tuple[int, int]:
    """(correct draws a rule failed, correct draws) over the cell's correct kernels."""
    return sum(f[rule] for f in cell["correct"].values()), sum(f["draws"] for f in cell["correct"].values())


def _rule_text(bug: str, size: float | None, cell: dict, rule: str, allowed: float) -> str:
    """A rule's smallest caught size, with the share of correct draws it failed where that is above ``allowed``."""
    failed, draws = _false(cell, rule)
    text = size_text(bug, size)
    return text if failed <= allowed * draws else f"{text} (fails {failed} of {draws} correct)"


def _rules_row(cell: dict, bug: str, by: dict) -> str:
    """The smallest size each rule catches (envelope, fixed tolerance, 2x one draw) and the envelope's gain,
    as table cells."""
    env, fixed, twox = (by[m]["power"] for m in ("envelope", "fixed tolerance", "2x one draw"))
    return (f"{_rule_text(bug, env, cell, 'envelope', 0)} | {size_text(bug, fixed)} "
            f"| {_rule_text(bug, twox, cell, '2x one draw', 0.05)} | {gain_text(bug, env, fixed)}")


def power_table(doc: dict) -> list[str]:
    head = ("| precision | T | bug (size) | trials | envelope | fixed tolerance, atol loosened | 2x one draw "
            "| fixed tolerance's size / envelope's |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for c in cells(doc):
        for bug, by in c["bugs"].items():
            lines.append(f"| {c['precision']} | {c['T']} | {BUG_NAMES[bug]} | {len(by['envelope']['trials'])} "
                         f"| {_rules_row(c, bug, by)} |")
    return lines


def summary_table(doc: dict) -> list[str]:
    """Every precision at T = 100: the smallest bug each rule catches, and the envelope's gain."""
    lines = ["| precision | bug (size) | envelope | fixed tolerance, atol loosened | 2x one draw | fixed / envelope |",
             "|---|---|---|---|---|---|"]
    for c in cells(doc):
        if c["T"] != 100:
            continue
        lines.extend(f"| {c['precision']} | {BUG_NAMES[bug]} | {_rules_row(c, bug, by)} |"
                     for bug, by in c["bugs"].items())
    return lines


def correct_table(doc: dict) -> list[str]:
    lines = [("| precision | T | kernel | declared | correct draws | largest multiple, factor 1 "
              "| false MISMATCH: envelope | 2x one draw | torch.testing's defaults |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for c in cells(doc):
        for kernel, f in c["correct"].items():
            declared = c["claims"][kernel]["declared"].replace("storage ", "").replace("compute ", "").replace(
                "accumulation ", "")
            lines.append(f"| {c['precision']} | {c['T']} | {kernel} | {declared} | {f['draws']} "
                         f"| {f['largest multiple']:.2f} | {f['envelope']} | {f['2x one draw']} | {f['torch.testing']} |")
    return lines


def torch_table(doc: dict) -> list[str]:
    lines = ["| module | storage | T | draws | largest multiple of the envelope | where |", "|---|---|---|---|---|---|"]
    for r in doc["torch modules"]:
        lines.append(f"| {r['module']} | {r['storage']} | {r['T']} | {r['draws']} | {r['largest multiple']:.2f} "
                     f"| {r['at']} |")
    return lines


VIEWS = {"power": power_table, "summary": summary_table, "correct": correct_table, "torch": torch_table}


def provenance(doc: dict, path: str) -> str:
    env = doc["environment"]
    seconds = sum(c["envelope seconds"] + c["correct seconds"] + c["bug seconds"] for c in doc["cells"].values())
    seconds += sum(r["seconds"] for r in doc.get("torch modules", ()))
    return (f"<sub>Generated by `python -m parity_tests.power --update` from `{path}`: {env['cpu']}, one thread "
            f"per cell, torch {env['torch']}, NumPy {env['numpy']}; the cells took {seconds / 60:.0f} min of one "
            f"core; envelope factors {', '.join(f'{k} {v:g}' for k, v in doc['factors'].items())}.</sub>")


def regenerate(text: str, root: Path = ROOT) -> str:
    """``text`` with every power table rewritten from its results file."""
    begins = [m for m in map(BEGIN.match, text.split("\n")) if m]
    blocks = list(BLOCK.finditer(text))
    if len(blocks) != len(begins):
        raise ValueError(f"a power table with no '{END}' line")

    def table(m: re.Match) -> str:
        view = m.group("view") or "power"
        if view not in VIEWS:
            raise ValueError(f"view: expected one of {sorted(VIEWS)}, got {view!r}")
        doc = load(root / m.group("path"))
        return "\n".join([m.group("begin"), "", *VIEWS[view](doc), "", provenance(doc, m.group("path")), "", END])

    return BLOCK.sub(table, text)


def stale(path: Path | None = None, root: Path = ROOT) -> list[Path]:
    """The documents (``path``, or every one of DOCUMENTS) whose tables differ from their results file."""
    return [p for p in ((path,) if path else DOCUMENTS) if regenerate(p.read_text(), root) != p.read_text()]


def update(path: Path | None = None, root: Path = ROOT) -> bool:
    """Rewrite the tables (of ``path``, or of every one of DOCUMENTS); True when anything changed."""
    changed = False
    for p in (path,) if path else DOCUMENTS:
        text = p.read_text()
        new = regenerate(text, root)
        if new != text:
            p.write_text(new)
            changed = True
    return changed


def plot_power(doc: dict, path: Path = FIGURE) -> Path:
    """The smallest bug caught in 95% of trials against T, per bug, precision and rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bugs = list(next(iter(doc["cells"].values()))["bugs"])
    fig, axes = plt.subplots(1, len(bugs), figsize=(3.2 * len(bugs), 3.6), dpi=110, squeeze=False)
    styles = {"envelope": "-", "fixed tolerance": "--", "2x one draw": ":"}
    colours = dict(zip(ORDER, ("tab:grey", "tab:blue", "tab:purple", "tab:orange", "tab:red"), strict=True))
    for ax, bug in zip(axes[0], bugs, strict=True):
        for precision in ORDER:
            rows = [c for c in cells(doc) if c["precision"] == precision]
            if not rows:
                continue
            for method, ls in styles.items():
                ts = [c["T"] for c in rows if c["bugs"][bug][method]["power"] is not None]
                ys = [c["bugs"][bug][method]["power"] for c in rows if c["bugs"][bug][method]["power"] is not None]
                ax.loglog(ts, ys, ls, marker="o", ms=3, color=colours[precision],
                          label=f"{precision}" if method == "envelope" else None)
        ax.set_title(BUG_NAMES[bug], fontsize=8)
        ax.set_xlabel("T")
        ax.set_xticks([10, 100, 1000], ["10", "100", "1000"])
    axes[0, 0].set_ylabel("smallest size caught in 95% of trials")
    handles = [plt.Line2D([], [], color="black", ls=ls, label=m) for m, ls in styles.items()]
    axes[0, -1].legend(handles=axes[0, 0].get_legend_handles_labels()[0] + handles, fontsize=6, loc="best")
    fig.suptitle("Power: the smallest planted bug each rule catches (lower is better)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def summary(doc: dict) -> dict[str, Any]:
    """The goal cell's figures: bfloat16 at T = 100."""
    cell = doc["cells"].get("bfloat16 T=100")
    if cell is None:
        return {}
    return {bug: (by["envelope"]["power"], by["fixed tolerance"]["power"]) for bug, by in cell["bugs"].items()}
