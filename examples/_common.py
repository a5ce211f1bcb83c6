"""What every example shares: one small sequence model written twice -- in NumPy
with the reference's hand-written backward, and in torch -- plus the training
loop, the step-by-step comparison and the loss plot.

Model (parameter names are the torch model's state_dict keys)::

    x     = embedding.weight[tokens]          or float inputs as they are
    out, h_n = rnn(x, hx, lengths)             RNN, GRU or LSTM from ``reference``
    feats = out (head "all")  or  concat_d h_n[last layer, d] (head "last", many-to-one)
    y     = feats fc.weight^T + fc.bias
    loss  = cross_entropy(y, target)  or  mse(y[..., 0], target)

The torch twin is built from the same weights: ``torch_impl.to_torch`` converts
the reference RNN, and the embedding and linear layers load the same arrays.
With ``lengths`` the torch side packs (``pack_padded_sequence``) and the NumPy
side passes ``lengths=``.

Shapes: T time, B batch, V vocabulary, E embedding, H hidden, D directions, C classes.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import reference
from reference import train as nt


@dataclass(frozen=True)
class Spec:
    cell: str  # "RNN", "GRU" or "LSTM"
    input_size: int  # vocabulary size with an embedding, else the feature size
    hidden_size: int
    out_features: int
    embedding_dim: int | None = None  # None: float inputs, no embedding
    num_layers: int = 1
    head: str = "all"  # "all": a prediction per step; "last": one per sequence, from the last layer's h_n
    loss: str = "ce"  # "ce" or "mse"
    bidirectional: bool = False

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def rnn(self) -> reference.RNNConfig:
        """The recurrent layer, as the project's one configuration type (the rest is the model around it)."""
        mode = "RNN_TANH" if self.cell == "RNN" else self.cell
        return reference.RNNConfig(mode, self.embedding_dim or self.input_size, self.hidden_size, self.num_layers,
                                   bidirectional=self.bidirectional)


@dataclass(frozen=True)
class Recipe:
    optimizer: str = "adam"  # "adam" or "sgd"
    lr: float = 1e-2
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    clip_norm: float | None = None
    clip_value: float | None = None


@dataclass(frozen=True)
class Batch:
    input: np.ndarray  # (T, B) int tokens, or (T, B, I) floats
    target: np.ndarray  # (T, B) or (B,) ints for "ce"; (B,) floats for "mse"
    lengths: np.ndarray | None = None
    carry: bool = False  # start from the previous batch's final state, detached (truncated BPTT)


def rnn_module(spec: Spec, seed: int = 0):
    return spec.rnn.module(seed=seed)


def init_params(spec: Spec, seed: int = 0) -> dict[str, np.ndarray]:
    """The model's parameters, keyed like the torch twin's state_dict."""
    rng = np.random.default_rng(seed)
    params = {}
    if spec.embedding_dim:
        params["embedding.weight"] = nt.init_embedding(spec.input_size, spec.embedding_dim, rng=rng)["weight"]
    params.update({f"rnn.{k}": v for k, v in rnn_module(spec, seed).state_dict().items()})
    fc = nt.init_linear(spec.directions * spec.hidden_size, spec.out_features, rng=rng)
    params.update({f"fc.{k}": v for k, v in fc.items()})
    return params


def last_layer_state(hidden, directions: int):
    """(B, D*H): the last layer's final h, directions side by side (torch: cat(h_n[-2], h_n[-1]))."""
    h_n = hidden[0] if isinstance(hidden, tuple) else hidden  # (L*D, B, H)
    return np.concatenate(list(h_n[-directions:]), axis=-1)  # (B, D*H)


# -- NumPy ---------------------------------------------------------------------


def numpy_loss_and_grads(spec: Spec, rnn, params: dict, batch: Batch, hx: Any):
    """Forward, loss and hand-written backward of the whole model. Returns (loss, grads, hidden, logits)."""
    rnn.load_state_dict({k[4:]: v for k, v in params.items() if k.startswith("rnn.")})
    x = batch.input
    if spec.embedding_dim:
        x, emb_cache = nt.embedding_forward(batch.input, params["embedding.weight"])  # (T, B, E)
    out, hidden, tape = rnn.forward(x, hx, lengths=batch.lengths)  # (T, B, H)
    feats = out if spec.head == "all" else last_layer_state(hidden, spec.directions)  # (T, B, D*H) or (B, D*H)
    logits, fc_cache = nt.linear_forward(feats, params["fc.weight"], params["fc.bias"])  # (..., C)
    if spec.loss == "ce":
        flat = logits.reshape(-1, logits.shape[-1])  # (N, C)
        loss, loss_cache = nt.cross_entropy_forward(flat, batch.target.reshape(-1))
        dlogits = nt.cross_entropy_backward(1.0, loss_cache).reshape(logits.shape)  # (..., C)
    else:
        loss, loss_cache = nt.mse_loss_forward(logits[..., 0], batch.target)
        dlogits = nt.mse_loss_backward(1.0, loss_cache)[..., None]  # (B, 1)
    g_fc = nt.linear_backward(dlogits, fc_cache)
    if spec.head == "all":
        g = rnn.backward(tape, g_fc["input"], None)  # the carried state's gradient stops here: detached
    else:
        dh_n = np.zeros_like(hidden[0] if isinstance(hidden, tuple) else hidden)  # (L*D, B, H)
        D, H = spec.directions, spec.hidden_size
        for d in range(D):  # the head read the last D rows of h_n side by side
            dh_n[-D + d] = g_fc["input"][:, d * H:(d + 1) * H]  # (B, H)
        g = rnn.backward(tape, None, (dh_n, None) if isinstance(hidden, tuple) else dh_n)
    grads = {f"rnn.{k}": v for k, v in g.items() if k not in ("input", "hx")}
    grads["fc.weight"], grads["fc.bias"] = g_fc["weight"], g_fc["bias"]
    if spec.embedding_dim:
        grads["embedding.weight"] = nt.embedding_backward(g["input"], emb_cache)["weight"]
    return float(loss), grads, hidden, logits


def _numpy_optimizer(recipe: Recipe):
    if recipe.optimizer == "adam":
        return nt.Adam(lr=recipe.lr, weight_decay=recipe.weight_decay)
    return nt.SGD(lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)


def train_numpy(spec: Spec, params: dict, batches: Callable[[int], Batch], steps: int, recipe: Recipe,
                snapshot_every: int = 0):
    """Returns (losses, final params, grad norms before clipping, snapshots).

    ``snapshots``: the parameters after every ``snapshot_every``-th step (none when 0),
    for curves measured during training (perplexity, accuracy).
    """
    rnn = rnn_module(spec)
    opt = _numpy_optimizer(recipe)
    losses, norms, snapshots, hidden = [], [], [], None
    for step in range(steps):
        batch = batches(step)
        hx = nt.detach(hidden) if batch.carry else None
        loss, grads, hidden, _ = numpy_loss_and_grads(spec, rnn, params, batch, hx)
        if recipe.clip_value is not None:
            nt.clip_grad_value_(grads, recipe.clip_value)
        if recipe.clip_norm is not None:
            norms.append(nt.clip_grad_norm_(grads, recipe.clip_norm))
        params = opt.step(params, grads)
        losses.append(loss)
        if snapshot_every and (step + 1) % snapshot_every == 0:
            snapshots.append(dict(params))
    return np.array(losses), params, np.array(norms), snapshots


# -- torch ---------------------------------------------------------------------


@contextlib.contextmanager
def one_thread():
    """torch, and NumPy's BLAS where threadpoolctl is installed, on one thread while
    inside. These models are tiny: on a shared 2-core machine a thread pool costs far
    more than it gains (torch measured 7x slower; a (1024, 32) x (32, 96) product in
    OpenBLAS took 21 ms on two busy threads, 3 ms on one)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # optional: without it NumPy keeps its own thread count
            yield
        else:
            with threadpool_limits(limits=1):
                yield
    finally:
        torch.set_num_threads(saved)


def torch_model(spec: Spec, params: dict):
    """The torch twin, float64, loaded with ``params``: the RNN converted from the
    reference (``torch_impl.to_torch``), embedding and linear layers from the same arrays."""
    import torch

    from torch_impl import to_torch

    rnn = rnn_module(spec)
    rnn.load_state_dict({k[4:]: v for k, v in params.items() if k.startswith("rnn.")})

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            if spec.embedding_dim:
                self.embedding = torch.nn.Embedding(spec.input_size, spec.embedding_dim)
            self.rnn = to_torch(rnn)
            self.fc = torch.nn.Linear(spec.directions * spec.hidden_size, spec.out_features)

        def forward(self, inp, hx=None, lengths=None):
            x = self.embedding(inp) if spec.embedding_dim else inp
            if lengths is not None:
                packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(lengths), enforce_sorted=False)
                out, hidden = self.rnn(packed, hx)
                out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])
            else:
                out, hidden = self.rnn(x, hx)
            h_n = hidden[0] if isinstance(hidden, tuple) else hidden  # (L*D, B, H)
            feats = out if spec.head == "all" else torch.cat(list(h_n[-spec.directions:]), dim=-1)
            return self.fc(feats), hidden

    model = Model().double()
    model.load_state_dict({k: torch.as_tensor(v) for k, v in params.items()})
    return model


def torch_params(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def torch_loss(spec: Spec, logits, target):
    import torch
    import torch.nn.functional as F

    target = torch.as_tensor(target)
    if spec.loss == "ce":
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
    return F.mse_loss(logits[..., 0], target)


def train_torch(spec: Spec, params: dict, batches: Callable[[int], Batch], steps: int, recipe: Recipe,
                snapshot_every: int = 0):
    """torch.optim and torch.nn.utils doing what ``train_numpy`` does; returns the same four things."""
    import torch

    model = torch_model(spec, params)
    if recipe.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                              weight_decay=recipe.weight_decay)
    losses, norms, snapshots, hidden = [], [], [], None
    for step in range(steps):
        batch = batches(step)
        hx = None
        if batch.carry and hidden is not None:
            hx = tuple(h.detach() for h in hidden) if isinstance(hidden, tuple) else hidden.detach()
        inp = torch.as_tensor(batch.input)
        logits, hidden = model(inp, hx, batch.lengths)
        loss = torch_loss(spec, logits, batch.target)
        opt.zero_grad()
        loss.backward()
        if recipe.clip_value is not None:
            torch.nn.utils.clip_grad_value_(model.parameters(), recipe.clip_value)
        if recipe.clip_norm is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_norm)))
        opt.step()
        losses.append(loss.item())
        if snapshot_every and (step + 1) % snapshot_every == 0:
            snapshots.append(torch_params(model))
    return np.array(losses), torch_params(model), np.array(norms), snapshots


# -- comparison and reporting -----------------------------------------------------


def compare(spec: Spec, params0: dict, batches: Callable[[int], Batch], steps: int, recipe: Recipe,
            snapshot_every: int = 0) -> dict:
    """Train both from ``params0``; the largest step-by-step loss difference and final-weight difference."""
    with one_thread():
        np_losses, np_params, np_norms, np_snaps = train_numpy(spec, dict(params0), batches, steps, recipe,
                                                               snapshot_every)
        t_losses, t_params, t_norms, t_snaps = train_torch(spec, dict(params0), batches, steps, recipe, snapshot_every)
    return {
        "numpy": np_losses, "torch": t_losses, "params_numpy": np_params, "params_torch": t_params,
        "norms_numpy": np_norms, "norms_torch": t_norms, "snapshots_numpy": np_snaps, "snapshots_torch": t_snaps,
        "max_loss_diff": float(np.abs(np_losses - t_losses).max()),
        "max_param_diff": float(max(np.abs(np_params[k] - t_params[k]).max() for k in t_params)),
        "max_norm_diff": float(np.abs(np_norms - t_norms).max(initial=0.0)),
    }


STEP_FOR_STEP = 1e-9  # float64 NumPy and torch losses agree to this, step by step, until chaos separates them


def report(name: str, result: dict, steps: int) -> None:
    print(f"{name}: {steps} steps, loss at the last step: numpy {result['numpy'][-1]:.6f} torch {result['torch'][-1]:.6f}")
    print(f"{name}: largest loss difference over {steps} steps: {result['max_loss_diff']:.3e}; "
          f"largest final-weight difference: {result['max_param_diff']:.3e}")
    apart = np.flatnonzero(np.abs(result["numpy"] - result["torch"]) > STEP_FOR_STEP)
    if apart.size:
        print(f"{name}: the two runs agree to {STEP_FOR_STEP:g} for {apart[0]} steps, then separate "
              f"(examples/step_for_step.py measures how training amplifies float64 rounding in char_lm.py)")


def step_numbers(n: int) -> np.ndarray:
    """(n,) the step numbers 1 ... n: the loss of step k is the one its update used, and a value
    measured "after step k" (perplexity, accuracy) sits at k too, so every panel counts alike."""
    return np.arange(1, n + 1)


def step_axis(ax, label: str = "step") -> None:
    """An x axis of training steps (or time steps): whole numbers only."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label)


def plain_log_ticks(ax, which: str = "y") -> None:
    """A log axis labelled with plain numbers (0.5, 1, 2, 30) instead of matplotlib's 3x10^1:
    ticks at 1, 2, 5 per decade over a wide range, finer over a narrow one."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    decades = np.log10(hi / lo)
    subs = (1.0,) if decades > 4 else (1.0, 2.0, 5.0) if decades > 1.2 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


PAIR_LEGEND = "line: NumPy, dots: torch"


def plot_pair(ax, np_curve: np.ndarray, t_curve: np.ndarray, label: str, x: np.ndarray | None = None, **kw):
    """NumPy's curve as a line, torch's as dots on top, in the same colour; x defaults to the
    step numbers 1 ... n. The legend names the curve once (``legend`` says which is which)."""
    x = step_numbers(len(np_curve)) if x is None else x
    (line,) = ax.plot(x, np_curve, label=label, **kw)
    every = max(1, len(t_curve) // 40)
    ax.plot(x[::every], t_curve[::every], ".", color=line.get_color())
    return line


def legend(ax, title: str | None = PAIR_LEGEND, **kw) -> None:
    """The legend beside the panel, to its right, where it cannot hide a curve."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8, title=title,
              title_fontsize=8, **kw)


def plot_losses(path: Path, title: str, curves: dict[str, tuple[np.ndarray, np.ndarray]], ylabel: str = "loss") -> None:
    """One panel: each curve's NumPy losses (line) and torch's (dots on top)."""
    fig, ax = pyplot().subplots(figsize=(7.5, 4))
    for label, (np_curve, t_curve) in curves.items():
        plot_pair(ax, np_curve, t_curve, label)
    step_axis(ax)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    legend(ax)
    save_figure(fig, path)


def save_figure(fig, path: Path, rect: tuple[float, float, float, float] | None = None) -> None:
    """Lay the figure out (within ``rect``, figure fractions, where a figure legend or title
    needs room outside the panels) and write it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight": legends beside the panels are kept
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"saved {path}")


def pyplot():
    """matplotlib.pyplot on the file-only backend (the examples never open a window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def parser(description: str, steps: int) -> argparse.ArgumentParser:
    """The options every example has: --steps (a quick run takes few), --seed, --out."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--steps", type=int, default=steps, help="training steps (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("examples_out"), help="where plots go (default %(default)s)")
    return p
