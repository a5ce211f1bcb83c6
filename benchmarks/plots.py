"""PNG figures: time against problem size per implementation (log axes), one figure
per phase; and the ratio to torch nn per configuration."""

from __future__ import annotations

from pathlib import Path

PHASE_TITLES = {"inference": "inference forward (no tape)", "forward": "training forward (with tape)",
                "backward": "backward", "step": "forward + backward"}


def _size(r: dict) -> float:
    """A one-number size for the x axis: matrix-product FLOPs of one forward."""
    from .config import GATES

    return 2.0 * GATES[r["cell"]] * r["H"] * (r["I"] + r["H"]) * r["B"] * r["T"]


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
        ax.set(xscale="log", yscale="log", xlabel="forward matrix FLOPs per call (2·G·H·(I+H)·B·T)",
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
    return paths
