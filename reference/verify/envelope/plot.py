"""The picture of a low-precision verdict: each tensor's error against the rounding envelope, on a log scale.

One row per tensor with a time axis (``output``, ``grad input``) and one row for the
tensors without one. Left: the candidate's error per step, against the band the
rounding models spanned over their draws and the envelope's limit (dashed), in the
statistic that came nearest its limit (for the tensors without a time axis: the
largest |error|). Right: the candidate's multiple of the envelope, its largest over
the three statistics, with the line at 1 it must stay under. An error that grows
like rounding runs along the band; a bug leaves it.
"""

from __future__ import annotations

import textwrap

import numpy as np

from .judge import EnvelopeVerdict
from .statistics import STATISTICS

FLOOR = 1e-30  # a log scale shows an exact zero here
LABELS = ("max |error|", "rms error", "scale |<e, v>| / <v, v>")


def plot_envelope(verdict: EnvelopeVerdict, path: str, title: str = "") -> str:
    """Draw ``verdict`` as a PNG at ``path`` (needs matplotlib); returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = verdict.envelope
    timed = [t for t in verdict.tensors if t.time_axis]
    whole = [t for t in verdict.tensors if not t.time_axis]
    rows = len(timed) + bool(whole)
    fig, axes = plt.subplots(rows, 2, figsize=(11, 2.8 * rows), dpi=110, squeeze=False,
                             gridspec_kw={"width_ratios": (3, 2)})
    for row, tv in enumerate(timed):
        te = env.tensors[tv.name]
        s = int(np.argmax(tv.multiples.max(axis=1)))  # the statistic nearest its limit
        models = te.model_errors[:, :, s, :]  # (M, N, T) every model and draw
        steps = np.arange(tv.errors.shape[1])
        ax = axes[row, 0]
        ax.fill_between(steps, np.maximum(models.min(axis=(0, 1)), FLOOR), np.maximum(models.max(axis=(0, 1)), FLOOR),
                        color="tab:blue", alpha=0.25, lw=0, label=f"rounding models ({env.draws} draws)")
        ax.semilogy(steps, np.maximum(te.limits[s], FLOOR), "--", color="tab:blue", lw=1, label="envelope")
        ax.semilogy(steps, np.maximum(tv.errors[s], FLOOR), color="black", lw=1, label="candidate")
        ax.set_ylabel(f"{tv.name}\n{LABELS[s]}")
        ax.set_xlabel("time step t")
        ax.legend(fontsize=7, loc="best")
        _multiples(axes[row, 1], steps, tv.multiples, "time step t")
    if whole:
        ax = axes[-1, 0]
        x = np.arange(len(whole))
        for k, tv in enumerate(whole):
            te = env.tensors[tv.name]
            lo, hi = te.model_errors[:, :, 0, 0].min(), te.model_errors[:, :, 0, 0].max()
            ax.vlines(k, max(lo, FLOOR), max(hi, FLOOR), color="tab:blue", alpha=0.5, lw=6,
                      label="rounding models" if k == 0 else None)
            ax.plot(k, max(te.limits[0, 0], FLOOR), "_", color="tab:blue", ms=16, label="envelope" if k == 0 else None)
            ax.plot(k, max(tv.errors[0, 0], FLOOR), "o", color="black", ms=4, label="candidate" if k == 0 else None)
        ax.set_yscale("log")
        ax.set_xticks(x, [t.name.replace("grad ", "d ") for t in whole], rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("max |error|")
        ax.legend(fontsize=7, loc="best")
        _multiples(axes[-1, 1], x, np.concatenate([t.multiples for t in whole], axis=1), "",
                   [t.name.replace("grad ", "d ") for t in whole])
    fig.suptitle(textwrap.shorten(title or str(verdict), 240, placeholder=" ..."), fontsize=8, wrap=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _multiples(ax, x: np.ndarray, multiples: np.ndarray, xlabel: str, ticks: list[str] | None = None) -> None:
    """The largest multiple over the statistics at each x, marked by the statistic that gave it."""
    largest = multiples.max(axis=0)  # (S,)
    which = multiples.argmax(axis=0)  # (S,)
    shown = np.clip(np.where(np.isfinite(largest), largest, 1e6), FLOOR, None)
    for s, name in enumerate(STATISTICS):
        on = which == s
        ax.semilogy(x[on], shown[on], "o" if ticks else ".", ms=3, label=name)
    ax.axhline(1.0, color="red", lw=1)
    ax.set_ylabel("multiple of envelope")
    ax.set_xlabel(xlabel)
    if ticks is not None:
        ax.set_xticks(x, ticks, rotation=30, ha="right", fontsize=7)
    ax.legend(fontsize=7, loc="best", title="largest by", title_fontsize=7)
