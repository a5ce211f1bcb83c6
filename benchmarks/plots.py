"""PNG figures, one per question, one colour per implementation in every figure:

- ``step-ratio.png``: each implementation's forward + backward step over torch.nn's, per
  configuration, one panel per dtype (the main figure);
- ``phase-ratio.png``: the same for the forward and the backward alone, a panel each;
- ``scaling.png`` (a scaling sweep, drawn instead of the two above): step time against each
  swept axis (T, B, H) per cell.

``python -m benchmarks.report --plots RESULTS.json`` draws them again from a results file.
"""

from __future__ import annotations

from pathlib import Path

from .config import BASELINE, FLOOR

# One colour per implementation, the same in every figure (tab10 hues, the floor grey); a
# baseline revision (reference@REV) is pink.
IMPL_COLOURS = {"torch-nn": "#1f77b4", "reference": "#ff7f0e", FLOOR: "#7f7f7f", "reference-torch": "#2ca02c",
                "torch-function": "#d62728", "torch-autograd": "#9467bd", "jax": "#8c564b"}
BASELINE_REV_COLOUR = "#e377c2"
CELL_NAMES = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN tanh", "RNN_RELU": "RNN relu"}


def colour(impl: str) -> str:
    return IMPL_COLOURS.get(impl, BASELINE_REV_COLOUR if impl.startswith("reference@") else "#17becf")


def _label(r: dict) -> str:
    size = f"T{r['T']} B{r['B']}" + (f" I{r['I']}" if r["I"] != r["H"] else "") + f" H{r['H']}"
    size += f" P{r['P']}" if r.get("P") else ""
    return f"{CELL_NAMES.get(r['cell'], r['cell'])}\n{size}" + (" tf32" if r.get("tf32") else "") + (
        f" {r['device']}" if r["device"] != "cpu" else "")


def _impls(rows: list[dict]) -> list[str]:
    """The implementations that have a ratio, in the colour table's order, then any others."""
    seen = list(dict.fromkeys(r["impl"] for r in rows))
    return [i for i in IMPL_COLOURS if i in seen] + [i for i in seen if i not in IMPL_COLOURS]


def _ratio_bars(ax, rows: list[dict], impls: list[str], labels: list[str]) -> None:
    """Grouped bars on a log axis: one group per configuration, one bar per implementation."""
    width = 0.8 / max(len(impls), 1)
    for k, impl in enumerate(impls):
        vals = {_label(r): r["ratio_to_torch"] for r in rows if r["impl"] == impl}
        xs = [i + (k - (len(impls) - 1) / 2) * width for i, lab in enumerate(labels) if lab in vals]
        ax.bar(xs, [vals[lab] for lab in labels if lab in vals], width, color=colour(impl), label=impl)
    ax.axhline(1.0, color="k", lw=1)
    _log_ticks(ax, [r["ratio_to_torch"] for r in rows])
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.grid(True, axis="y", which="both", alpha=0.3)


RATIO_TICKS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10, 20, 50, 100)


def _log_ticks(ax, values: list[float]) -> None:
    """A log axis labelled with plain ratios (0.5, 1, 2) instead of powers of ten."""
    from matplotlib.ticker import NullFormatter

    lo, hi = min(values + [1.0]) / 1.15, max(values + [1.0]) * 1.15
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    wide = hi / lo > 50  # over more than ~2 decades the in-between ticks (0.3, 0.7, 1.5, 3) collide
    ticks = [t for t in RATIO_TICKS if lo <= t <= hi and not (wide and t in (0.3, 0.7, 1.5, 3))]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.yaxis.set_minor_formatter(NullFormatter())


def _ratio_figure(rows: list[dict], phases: tuple[str, ...], title: str, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("ratio_to_torch") and r["impl"] != BASELINE and r["phase"] in phases]
    if not rows:
        return None
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    impls = _impls(rows)
    labels = {dt: list(dict.fromkeys(_label(r) for r in rows if r["dtype"] == dt)) for dt in dtypes}
    # One column of panels, a row per (dtype, phase): side by side, wide groups shrink past reading.
    width = max(7.0, 0.25 * len(impls) * max(len(v) for v in labels.values()) + 1.5)
    panels = [(dt, phase) for dt in dtypes for phase in phases]
    height = 3.2 * len(panels) + 1.0
    fig, grid = plt.subplots(len(panels), 1, figsize=(width, height), squeeze=False)
    for ax, (dt, phase) in zip(grid[:, 0], panels):
        _ratio_bars(ax, [r for r in rows if r["dtype"] == dt and r["phase"] == phase], impls, labels[dt])
        ax.set_title(f"{dt}" + (f", {phase}" if len(phases) > 1 else ""), fontsize=10)
        ax.set_ylabel("time / torch.nn's time")
    handles = [plt.Line2D([], [], color="k", lw=1)] + [plt.Rectangle((0, 0), 1, 1, color=colour(i)) for i in impls]
    top = 1 - 0.75 / height  # the title and the legend above the panels
    fig.suptitle(title, y=0.995, fontsize=11)
    fig.legend(handles, ["torch.nn (= 1)", *impls], loc="upper center", ncol=len(impls) + 1, fontsize=9,
               frameon=False, bbox_to_anchor=(0.5, top + 0.04))
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_results(results: list[dict], out: Path, prefix: str = "") -> list[Path]:
    """Every figure the results hold, as ``out/<prefix><name>.png``: a scaling sweep's one figure
    (step time against each axis; its ratio bars would be dozens of groups no one can read), or
    else the step and phase ratios."""
    timed = [r for r in results if r.get("phase") and r.get("ms")]
    scaling = plot_scaling(timed, out / f"{prefix}scaling.png")
    if scaling is not None:
        return [scaling]
    figures = [
        _ratio_figure(timed, ("step",), "forward + backward step over torch.nn's (below 1 is faster; log scale)",
                      out / f"{prefix}step-ratio.png"),
        _ratio_figure(timed, ("forward", "backward"), "forward (training, with tape) and backward over torch.nn's "
                      "(below 1 is faster; log scale)", out / f"{prefix}phase-ratio.png"),
    ]
    return [f for f in figures if f is not None]


def plot_all(results: list[dict], out: Path) -> list[Path]:
    return plot_results(results, out)


def axis_points(results: list[dict], axis: str, base: dict) -> list[dict]:
    """The results on one swept axis: the other axes at the base point (I = H throughout)."""
    others = [a for a in base if a != axis]
    return [r for r in results if all(r[a] == base[a] for a in others) and r["I"] == r["H"] and not r.get("P")]


def plot_scaling(results: list[dict], path: Path) -> Path | None:
    """One panel per (swept axis, cell): step time against the axis on log-log axes, a line per
    implementation (its colour) and dtype (float32 solid, float64 dashed). None unless the
    results hold a scaling sweep (at least 3 points on some axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .config import SCALING_AXES, SCALING_BASE

    steps = [r for r in results if r.get("phase") == "step" and r.get("ms")]
    cells = list(dict.fromkeys(r["cell"] for r in steps))
    panels = [(axis, cell) for axis in SCALING_AXES for cell in cells
              if len({r[axis] for r in axis_points(steps, axis, SCALING_BASE) if r["cell"] == cell}) >= 3]
    if not panels:
        return None
    axes_used = list(dict.fromkeys(a for a, _ in panels))
    fig, grid = plt.subplots(len(axes_used), len(cells), figsize=(3.6 * len(cells), 3.0 * len(axes_used) + 0.8),
                             squeeze=False)
    impls = _impls(steps)
    styles = {"float32": "o-", "float64": "s--"}
    for i, axis in enumerate(axes_used):
        for j, cell in enumerate(cells):
            ax = grid[i][j]
            pts = [r for r in axis_points(steps, axis, SCALING_BASE) if r["cell"] == cell]
            for impl in impls:
                for dtype, style in styles.items():
                    line = sorted((r[axis], r["ms"]) for r in pts if r["impl"] == impl and r["dtype"] == dtype)
                    if line:
                        ax.plot(*zip(*line), style, color=colour(impl), ms=3, lw=1.2)
            fixed = ", ".join(f"{a}={v}" for a, v in SCALING_BASE.items() if a != axis)
            ax.set(xscale="log", yscale="log", xlabel=axis)
            ax.set_title(f"{CELL_NAMES.get(cell, cell)}: {axis} ({fixed})", fontsize=9)
            if j == 0:
                ax.set_ylabel("step ms (fwd + bwd)")
            ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], color=colour(i), lw=3) for i in impls]
    handles += [Line2D([], [], color="k", marker=s[0], ls=s[1:]) for s in styles.values()]
    fig.legend(handles, impls + list(styles), loc="upper center", ncol=len(impls) + len(styles), fontsize=9,
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (3.0 * len(axes_used) + 0.8)))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
