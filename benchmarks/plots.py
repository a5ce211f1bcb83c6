"""PNG figures: time against problem size per implementation (log axes), one figure
per phase; the ratio to torch nn per configuration; and for the scaling suite, time
against each swept axis (T, B, H) per cell, every implementation with the GEMM floor."""

from __future__ import annotations

from pathlib import Path

PHASE_TITLES = {"inference": "inference forward (no tape)", "forward": "training forward (with tape)",
                "backward": "backward", "step": "forward + backward"}


def _size(r: dict) -> float:
    """A one-number size for the x axis: matrix-product FLOPs of one forward."""
    from .config import Row
    from .measure import matmul_flops

    return matmul_flops(Row(**{k: r[k] for k in ("cell", "T", "B", "I", "H", "dtype", "device", "P")}), "forward")


def plot_all(results: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in results if r.get("phase") and r.get("ms")]
    paths = []
    for phase, title in PHASE_TITLES.items():
        rows = [r for r in timed if r["phase"] == phase]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for key in sorted({(r["impl"], r["device"], r["dtype"]) for r in rows}):
            pts = sorted((_size(r), r["ms"]) for r in rows if (r["impl"], r["device"], r["dtype"]) == key)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=" ".join(key))
        ax.set(xscale="log", yscale="log", xlabel="forward matrix FLOPs per call (2·G·H·(I+P)·B·T)",
               ylabel="median time (ms)", title=title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / f"time_{phase}.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    ratios = [r for r in timed if r.get("ratio_to_torch") and r["impl"] != "torch-nn"]
    if ratios:
        labels = sorted({f"{r['cell']} {r['T']}/{r['B']}/{r['H']} {r['dtype'][5:]} {r['device']}" for r in ratios})
        series = sorted({(r["impl"], r["phase"]) for r in ratios})
        fig, ax = plt.subplots(figsize=(max(7, 0.6 * len(labels)), 4.5))
        width = 0.8 / len(series)
        for k, (impl, phase) in enumerate(series):
            vals = {f"{r['cell']} {r['T']}/{r['B']}/{r['H']} {r['dtype'][5:]} {r['device']}": r["ratio_to_torch"]
                    for r in ratios if (r["impl"], r["phase"]) == (impl, phase)}
            ax.bar([i + k * width for i in range(len(labels))], [vals.get(lab, 0) for lab in labels], width,
                   label=f"{impl} {phase}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels, rotation=45, ha="right", fontsize=7)
        ax.set(yscale="log", ylabel="time / torch nn time (same device)", title="ratio to torch nn (below 1 is faster)")
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        paths.append(out / "ratio_to_torch.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    scaling = plot_scaling(timed, out / "scaling.png")
    return paths + ([scaling] if scaling else [])


def axis_points(results: list[dict], axis: str, base: dict) -> list[dict]:
    """The results on one swept axis: the other axes at the base point (I = H throughout)."""
    others = [a for a in base if a != axis]
    return [r for r in results if all(r[a] == base[a] for a in others) and r["I"] == r["H"] and not r.get("P")]


def plot_scaling(results: list[dict], path: Path) -> Path | None:
    """One panel per (swept axis, cell): step time against the axis on log-log axes, a line per
    implementation and dtype (float32 solid, float64 dashed), the GEMM floor in grey. None
    unless the results hold a scaling sweep (at least 3 points on some axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .config import FLOOR, SCALING_AXES, SCALING_BASE

    steps = [r for r in results if r.get("phase") == "step" and r.get("ms")]
    cells = [c for c in dict.fromkeys(r["cell"] for r in steps)]
    panels = [(axis, cell) for axis in SCALING_AXES for cell in cells
              if len({r[axis] for r in axis_points(steps, axis, SCALING_BASE) if r["cell"] == cell}) >= 3]
    if not panels:
        return None
    axes_used = list(dict.fromkeys(a for a, _ in panels))
    fig, grid = plt.subplots(len(axes_used), len(cells), figsize=(3.6 * len(cells), 3.0 * len(axes_used)),
                             squeeze=False)
    impls = list(dict.fromkeys(r["impl"] for r in steps))
    colours = {impl: ("0.45" if impl == FLOOR else f"C{k}") for k, impl in enumerate(impls)}
    for i, axis in enumerate(axes_used):
        for j, cell in enumerate(cells):
            ax = grid[i][j]
            pts = [r for r in axis_points(steps, axis, SCALING_BASE) if r["cell"] == cell]
            for impl in impls:
                for dtype, style in (("float32", "o-"), ("float64", "s--")):
                    line = sorted((r[axis], r["ms"]) for r in pts if r["impl"] == impl and r["dtype"] == dtype)
                    if line:
                        ax.plot(*zip(*line), style, color=colours[impl], ms=3, lw=1.2 if impl != FLOOR else 2,
                                label=f"{impl} {dtype[5:]}")
            fixed = ", ".join(f"{a}={v}" for a, v in SCALING_BASE.items() if a != axis)
            ax.set(xscale="log", yscale="log", title=f"{cell}: {axis} ({fixed})", xlabel=axis)
            if j == 0:
                ax.set_ylabel("step ms (fwd + bwd)")
            ax.grid(True, which="both", alpha=0.3)
    handles, labels = grid[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
