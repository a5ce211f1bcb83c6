"""Draw docs/figures/unrolled_graph.png: a recurrent layer unrolled over three steps,
the forward pass in black, backpropagation through time in red.

    python docs/figures/unrolled_graph.py          # rewrites the PNG next to this script
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

OUT = Path(__file__).resolve().with_suffix(".png")
STEPS = ("t-1", "t", "t+1")
X0, DX = 2.2, 3.2  # x position of the first step, distance between steps
Y_X, Y_STEP, Y_H, Y_L = 0.6, 2.4, 4.2, 5.8  # rows: input, step, state/output, loss


def box(ax, x, y, text, face, w=1.5, h=0.7):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=face, ec="k", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=9)


def arrow(ax, a, b, colour="k", style="-", rad=0.0, lw=1.2):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=11, color=colour, ls=style, lw=lw,
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2))


def draw(path: Path = OUT) -> None:
    fig, ax = plt.subplots(figsize=(11, 5.6))
    ax.set_xlim(0, X0 + DX * 2 + 2.3)
    ax.set_ylim(-0.35, 6.6)
    ax.axis("off")
    box(ax, 0.6, Y_H, "$h_{t-2}$", "#f2f2f2", w=0.9)
    prev = (0.6 + 0.45, Y_H)
    for k, s in enumerate(STEPS):
        x = X0 + DX * k
        box(ax, x, Y_X, f"$x_{{{s}}}$", "#e8f0fb", w=1.0)
        box(ax, x, Y_STEP, f"step  ($W_{{ih}}, W_{{hh}}, b$)\n$xw_{{{s}}} = x_{{{s}}} W_{{ih}}^T + b$", "#fff5dd",
            w=2.3, h=1.0)
        box(ax, x, Y_H, f"$h_{{{s}}}$", "#f2f2f2", w=0.9)
        box(ax, x, Y_L, f"$L_{{{s}}}$", "#fde8e8", w=0.9)
        arrow(ax, (x, Y_X + 0.35), (x, Y_STEP - 0.5))
        arrow(ax, (x, Y_STEP + 0.5), (x, Y_H - 0.35))
        arrow(ax, (x, Y_H + 0.35), (x, Y_L - 0.35))
        arrow(ax, prev, (x - 0.75, Y_STEP + 0.5), rad=-0.25)  # h_{s-1} feeds step s
        # BPTT: the gradient at h_s gathers two contributions (its own loss; the next step, drawn by
        # that step), goes down into its own step, and out of it to h_{s-1}
        arrow(ax, (x + 0.25, Y_L - 0.35), (x + 0.25, Y_H + 0.35), colour="crimson", style="--")
        arrow(ax, (x + 0.25, Y_H - 0.35), (x + 0.25, Y_STEP + 0.5), colour="crimson", style="--")
        arrow(ax, (x - 1.1, Y_STEP + 0.5), (prev[0] - 0.2, Y_H - 0.35), colour="crimson", style="--", rad=-0.25)
        prev = (x + 0.45, Y_H)
        ax.text(x + 0.55, Y_H + 0.55, f"$dh_{{{s}}} = \\partial L/\\partial h_{{{s}}}$\n(own loss + next step)",
                fontsize=8.5, color="crimson", va="bottom")
    arrow(ax, (prev[0], Y_H + 0.12), (prev[0] + 0.8, Y_H + 0.12))
    arrow(ax, (prev[0] + 0.8, Y_H - 0.12), (prev[0], Y_H - 0.12), colour="crimson", style="--")
    ax.text(prev[0] + 0.85, Y_H, "next step\n(or $h_n$, $dh_n$)", fontsize=9, va="center")
    ax.text(0.1, 6.35, "forward: $h_s = \\mathrm{step}(xw_s, h_{s-1})$, the same weights at every step",
            fontsize=9)
    ax.text(0.1, -0.25, "backward (red, dashed): $dh_{s-1} = \\partial L_{s-1}/\\partial h_{s-1} + dh_s\\, J_s$,  "
            "$J_s = \\partial h_s/\\partial h_{s-1}$;   $dW = \\sum_s$ (the contribution of step $s$)",
            fontsize=9, color="crimson")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    draw()
    print(f"saved {OUT}")
