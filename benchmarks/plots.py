"""PNG figures, one per question, one colour per implementation in every figure:

- ``step-ratio.png``: each implementation's forward + backward step over torch.nn's, per
  configuration, one panel per dtype (the main figure);
- ``phase-ratio.png``: the same for the forward and the backward alone, a panel each;
- ``scaling.png`` (a scaling sweep, drawn instead of the two above): each implementation's
  step over torch.nn's against each swept axis (T, B, H), a panel per axis, dtype and cell.

Every figure says in its title what ran where (suite, threads, machine, kernels, commit:
``caption``), and in its legend what the floor is: the time of the reference's matrix
products alone (the ``gemm-floor`` implementation), so its bar or line is that time over
torch.nn's, like every other. A timing flagged unreliable (``trust.py``) is hatched.

``python -m benchmarks.report --plots RESULTS.json`` draws them again from a results file.
"""

from __future__ import annotations

from pathlib import Path

from .config import BASELINE, FLOOR
from .trust import SPREAD_LIMIT, is_flagged

# One colour per implementation, the same in every figure (tab10 hues, the floor grey); a
# baseline revision (reference@REV) is pink.
IMPL_COLOURS = {"torch-nn": "#1f77b4", "reference": "#ff7f0e", FLOOR: "#7f7f7f", "reference-torch": "#2ca02c",
                "torch-function": "#d62728", "torch-autograd": "#9467bd", "jax": "#8c564b"}
BASELINE_REV_COLOUR = "#e377c2"
CELL_NAMES = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN tanh", "RNN_RELU": "RNN relu"}
FLOOR_LABEL = "floor: the reference's matrix products alone"
FLAGGED_LABEL = (f"hatched: timing flagged unreliable (spread > {SPREAD_LIMIT:.0%}, load average > cores, "
                 "or a phase longer than its step)")
HATCH = "////"


def colour(impl: str) -> str:
    return IMPL_COLOURS.get(impl, BASELINE_REV_COLOUR if impl.startswith("reference@") else "#17becf")


def impl_label(impl: str) -> str:
    return FLOOR_LABEL if impl == FLOOR else impl


def _label(r: dict) -> str:
    size = f"T{r['T']} B{r['B']}" + (f" I{r['I']}" if r["I"] != r["H"] else "") + f" H{r['H']}"
    size += f" P{r['P']}" if r.get("P") else ""
    return f"{CELL_NAMES.get(r['cell'], r['cell'])}\n{size}" + (" tf32" if r.get("tf32") else "") + (
        f" {r['device']}" if r["device"] != "cpu" else "")


def _impls(rows: list[dict]) -> list[str]:
    """The implementations that have a ratio, in the colour table's order, then any others."""
    seen = list(dict.fromkeys(r["impl"] for r in rows))
    return [i for i in IMPL_COLOURS if i in seen] + [i for i in seen if i not in IMPL_COLOURS]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10, 20, 50, 100, 200)
MARGIN = 1.6  # the log axis runs this factor beyond the smallest and largest bar, and beyond 1


def _log_ticks(ax, values: list[float], crowded: float = 50) -> None:
    """A log axis holding every value and the torch.nn = 1 line clear of the frame, labelled with
    plain ratios (0.5, 1, 2) instead of powers of ten; over a span above ``crowded`` (a factor,
    smaller for a short panel) the in-between ticks (0.3, 0.7, 1.5, 3) are left out."""
    from matplotlib.ticker import NullFormatter

    lo, hi = min(values + [1.0]) / MARGIN, max(values + [1.0]) * MARGIN
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    wide = hi / lo > crowded
    ticks = [t for t in RATIO_TICKS if lo <= t <= hi and not (wide and t in (0.3, 0.7, 1.5, 3))]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.yaxis.set_minor_formatter(NullFormatter())


def _baseline_record(rows: list[dict], r: dict) -> dict | None:
    """torch.nn's record that ``r``'s ratio divides by."""
    key = lambda x: (x["cell"], x["T"], x["B"], x["I"], x["H"], x.get("P"), x["dtype"], x.get("tf32"), x["device"],
                     x["phase"])
    return next((b for b in rows if b["impl"] == BASELINE and key(b) == key(r)), None)


def _ratio_bars(ax, rows: list[dict], all_rows: list[dict], impls: list[str], labels: list[str]) -> bool:
    """Grouped bars on a log axis: one group per configuration, one bar per implementation; a
    bar is hatched when its timing or torch.nn's is flagged. Returns whether any was."""
    width = 0.8 / max(len(impls), 1)
    hatched = False
    for k, impl in enumerate(impls):
        recs = {_label(r): r for r in rows if r["impl"] == impl}
        xs = [i + (k - (len(impls) - 1) / 2) * width for i, lab in enumerate(labels) if lab in recs]
        shown = [recs[lab] for lab in labels if lab in recs]
        bars = ax.bar(xs, [r["ratio_to_torch"] for r in shown], width, color=colour(impl))
        for bar, r in zip(bars, shown):
            if is_flagged(r) or is_flagged(_baseline_record(all_rows, r)):
                bar.set_hatch(HATCH)
                bar.set_edgecolor("k")
                hatched = True
    ax.axhline(1.0, color="k", lw=1)
    _log_ticks(ax, [r["ratio_to_torch"] for r in rows])
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    return hatched


def _legend_handles(plt, impls: list[str], hatched: bool) -> tuple[list, list[str]]:
    handles = [plt.Line2D([], [], color="k", lw=1)] + [plt.Rectangle((0, 0), 1, 1, color=colour(i)) for i in impls]
    labels = ["torch.nn (= 1)", *map(impl_label, impls)]
    if hatched:
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="k", hatch=HATCH))
        labels.append(FLAGGED_LABEL)
    return handles, labels


def _columns(entries: int) -> int:
    """Legend columns: one row up to five entries, else rows of three (the floor's label is long)."""
    return entries if entries <= 5 else 3


def _title(fig, title: str, caption: str, width_in: float) -> None:
    """The question on the first line, what ran where below it, wrapped to the figure's width."""
    import textwrap

    lines = [title, *textwrap.wrap(caption, width=int(width_in * 11))]
    fig.suptitle("\n".join(lines), fontsize=10)


def _ratio_figure(rows: list[dict], phases: tuple[str, ...], title: str, caption: str, path: Path) -> Path | None:
    plt = _pyplot()
    all_rows = rows
    rows = [r for r in rows if r.get("ratio_to_torch") and r["impl"] != BASELINE and r["phase"] in phases]
    if not rows:
        return None
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    impls = _impls(rows)
    labels = {dt: list(dict.fromkeys(_label(r) for r in rows if r["dtype"] == dt)) for dt in dtypes}
    # One column of panels, a row per (dtype, phase): side by side, wide groups shrink past reading.
    width = max(9.0, 0.25 * len(impls) * max(len(v) for v in labels.values()) + 1.5)
    panels = [(dt, phase) for dt in dtypes for phase in phases]
    fig, grid = plt.subplots(len(panels), 1, figsize=(width, 3.0 * len(panels) + 1.4), squeeze=False,
                             layout="constrained")
    hatched = False
    for ax, (dt, phase) in zip(grid[:, 0], panels):
        hatched |= _ratio_bars(ax, [r for r in rows if r["dtype"] == dt and r["phase"] == phase], all_rows, impls,
                               labels[dt])
        ax.set_title(f"{dt}" + (f", {phase}" if len(phases) > 1 else ""), fontsize=10)
        ax.set_ylabel("time / torch.nn's time")
    _title(fig, title, caption, width)
    fig.legend(*_legend_handles(plt, impls, hatched), loc="outside lower center", ncol=_columns(len(impls) + 1 + hatched),
               fontsize=9, frameon=False)
    fig.savefig(path, dpi=100, bbox_inches="tight")  # "tight": a legend wider than a narrow figure is kept
    plt.close(fig)
    return path


def plot_results(results: list[dict], out: Path, prefix: str = "", caption: str = "") -> list[Path]:
    """Every figure the results hold, as ``out/<prefix><name>.png``: a scaling sweep's one figure
    (ratios against each axis; its ratio bars would be dozens of groups no one can read), or
    else the step and phase ratios. ``caption``: what ran where, under each title."""
    timed = [r for r in results if r.get("phase") and r.get("ms")]
    scaling = plot_scaling(timed, out / f"{prefix}scaling.png", caption)
    if scaling is not None:
        return [scaling]
    figures = [
        _ratio_figure(timed, ("step",), "forward + backward step over torch.nn's (below 1 is faster; log scale)",
                      caption, out / f"{prefix}step-ratio.png"),
        _ratio_figure(timed, ("forward", "backward"), "forward (training, with tape) and backward over torch.nn's "
                      "(below 1 is faster; log scale)", caption, out / f"{prefix}phase-ratio.png"),
    ]
    return [f for f in figures if f is not None]


def axis_points(results: list[dict], axis: str, base: dict) -> list[dict]:
    """The results on one swept axis: the other axes at the base point (I = H throughout)."""
    others = [a for a in base if a != axis]
    return [r for r in results if all(r[a] == base[a] for a in others) and r["I"] == r["H"] and not r.get("P")]


def plot_scaling(results: list[dict], path: Path, caption: str = "") -> Path | None:
    """One panel per (swept axis, dtype, cell): each implementation's step over torch.nn's
    against the axis (log x, log ratio), torch.nn the line at 1, a flagged point marked with a
    black cross. None unless the results hold a scaling sweep (at least 3 points on some axis)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from .config import SCALING_AXES, SCALING_BASE

    steps = [r for r in results if r.get("phase") == "step" and r.get("ms")]
    cells = list(dict.fromkeys(r["cell"] for r in steps))
    dtypes = list(dict.fromkeys(r["dtype"] for r in steps))
    axes_used = [a for a in SCALING_AXES
                 if any(len({r[a] for r in axis_points(steps, a, SCALING_BASE) if r["cell"] == c}) >= 3 for c in cells)]
    if not axes_used:
        return None
    plt = _pyplot()
    rows_of_panels = [(axis, dtype) for axis in axes_used for dtype in dtypes]
    fig, grid = plt.subplots(len(rows_of_panels), len(cells), figsize=(3.4 * len(cells) + 0.6,
                             2.5 * len(rows_of_panels) + 1.6), squeeze=False, layout="constrained")
    impls = [i for i in _impls(steps) if i != BASELINE]
    flagged_any = False
    for i, (axis, dtype) in enumerate(rows_of_panels):
        for j, cell in enumerate(cells):
            ax = grid[i][j]
            pts = [r for r in axis_points(steps, axis, SCALING_BASE) if r["cell"] == cell and r["dtype"] == dtype]
            ratios = []
            for impl in impls:
                line = sorted((r[axis], r["ratio_to_torch"], is_flagged(r) or is_flagged(_baseline_record(steps, r)))
                              for r in pts if r["impl"] == impl and r.get("ratio_to_torch"))
                if not line:
                    continue
                xs, ys, _ = zip(*line)
                ax.plot(xs, ys, "o-", color=colour(impl), ms=3, lw=1.2)
                bad = [(x, y) for x, y, f in line if f]
                if bad:
                    ax.plot(*zip(*bad), "x", color="k", ms=8, mew=1.5)
                    flagged_any = True
                ratios += ys
            ax.axhline(1.0, color=colour(BASELINE), lw=1.2)
            ax.set_xscale("log")
            _log_ticks(ax, list(ratios), crowded=8)  # a 2.5-inch panel
            ax.set_xticks(sorted({r[axis] for r in pts}))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            fixed = " ".join(f"{a}{v}" for a, v in SCALING_BASE.items() if a != axis)
            ax.set_title(f"{CELL_NAMES.get(cell, cell)} {dtype}: {axis} ({fixed})", fontsize=9)
            ax.set_xlabel(axis)
            if j == 0:
                ax.set_ylabel("step / torch.nn's step")
            ax.grid(True, which="major", alpha=0.3)
    handles = [plt.Line2D([], [], color=colour(BASELINE), lw=1.2)]
    handles += [plt.Line2D([], [], color=colour(i), marker="o", ms=3, lw=1.2) for i in impls]
    labels = ["torch.nn (= 1)", *map(impl_label, impls)]
    if flagged_any:
        handles.append(plt.Line2D([], [], color="k", marker="x", ls="none", ms=8, mew=1.5))
        labels.append(FLAGGED_LABEL.replace("hatched", "cross"))
    _title(fig, "each implementation's step over torch.nn's against T, B and H (below 1 is faster; log scales)",
           caption, fig.get_figwidth())
    fig.legend(handles, labels, loc="outside lower center", ncol=_columns(len(labels)), fontsize=9, frameon=False)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path
