"""Vanishing and exploding gradients, per cell type: ||dL/dh_t|| over t and the
singular values of the step Jacobians d h_t / d h_{t-1}.

Untrained layers (torch's init), random inputs, a loss on the last output only:
L = <v, h_T>. The gradient reaching h_t has crossed T - t step Jacobians; where
their singular values sit below 1 it vanishes geometrically, above 1 it grows.
An RNN with W_hh scaled by 3 shows the exploding side.

``reference.gradient_flow`` computes both quantities; torch checks the
gradient norms (an RNNCell/GRUCell/LSTMCell loop with ``retain_grad`` on every
h_t) and the script prints the largest difference. ``--steps`` is T here.

    python examples/gradient_flow.py --steps 60 --out examples_out
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import reference
from examples._common import one_torch_thread, parse_args
from reference.gradient_flow import hidden_gradient_norms, step_singular_values

I, H, B = 4, 16, 8


def models(seed: int = 0) -> dict:
    out = {name: getattr(reference, name)(I, H, seed=seed) for name in ("RNN", "GRU", "LSTM")}
    big = reference.RNN(I, H, seed=seed)
    state = big.state_dict()
    state["weight_hh_l0"] = 3 * state["weight_hh_l0"]
    big.load_state_dict(state)
    out["RNN, 3 W_hh"] = big
    return out


def torch_gradient_norms(module, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """||dL/dh_t|| (T, B) from torch autograd, one cell step at a time."""
    import torch

    kind = type(module).__name__
    cell = getattr(torch.nn, kind + "Cell")(I, H).double()
    cell.load_state_dict({k.replace("_l0", ""): torch.as_tensor(w) for k, w in module.state_dict().items()})
    xt = torch.as_tensor(x)
    h = torch.zeros(x.shape[1], H, dtype=torch.float64)
    state = (h, h.clone()) if kind == "LSTM" else h
    hs = []
    for t in range(x.shape[0]):
        state = cell(xt[t], state)
        h = state[0] if kind == "LSTM" else state
        h.retain_grad()
        hs.append(h)
    (hs[-1] * torch.as_tensor(v)).sum().backward()
    return np.stack([h.grad.norm(dim=-1).numpy() for h in hs])


def run(steps: int = 60, seed: int = 0, out: Path | None = None) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (steps, B, I))  # (T, B, I)
    v = rng.standard_normal((B, H))  # (B, H): L = <v, h_T>
    results = {}
    for name, m in models(seed).items():
        go = np.zeros((steps, B, H))
        go[-1] = v
        norms = hidden_gradient_norms(m, x, grad_output=go)  # (T, B)
        with one_torch_thread():
            t_norms = torch_gradient_norms(m, x, v)
        sv = step_singular_values(m, x)  # (T, B, S)
        diff = float(np.abs(norms - t_norms).max() / np.abs(t_norms).max())
        results[name] = {"norms": norms, "torch_norms": t_norms, "singular_values": sv, "rel_diff": diff}
        print(f"{name:12s} ||dL/dh_0|| / ||dL/dh_T|| = {norms[0].mean() / norms[-1].mean():.3e}, "
              f"mean top singular value {sv[..., 0].mean():.3f}, relative difference to torch {diff:.1e}")
    print(f"largest relative difference of ||dL/dh_t|| to torch: {max(r['rel_diff'] for r in results.values()):.3e}")
    if out is not None:
        plot(Path(out) / "gradient_flow.png", results, steps)
    return results


def plot(path: Path, results: dict, T: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        (line,) = a.semilogy(r["norms"].mean(1), label=f"{name} (NumPy)")
        a.semilogy(r["torch_norms"].mean(1), ".", color=line.get_color(), markersize=3)
        sv = r["singular_values"]  # (T, B, S)
        b.hist(np.log10(sv.ravel()), bins=60, histtype="step", color=line.get_color(), label=name)
    a.set_xlabel("t")
    a.set_ylabel("mean over batch of ||dL/dh_t||")
    a.set_title(f"gradient of L = <v, h_T> (T = {T}); dots: torch")
    a.legend(fontsize=7)
    b.axvline(0, color="k", lw=0.5)
    b.set_xlabel("log10 singular value of dh_t/dh_{t-1} (LSTM: of the (h, c) step)")
    b.set_ylabel("count")
    b.set_title("step Jacobians: < 1 shrinks, > 1 stretches")
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0], steps=60)
    run(args.steps, args.seed, args.out)
