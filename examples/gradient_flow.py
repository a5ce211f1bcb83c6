"""Vanishing and exploding gradients: ||dL/dh_t|| over t, the top singular value of
each step Jacobian dh_t/dh_{t-1}, and the gate activations that set both.

Untrained one-layer models, random inputs, a loss on the last state only:
L = <v, h_T>. The gradient reaching h_t has crossed T - t step Jacobians; where
they shrink vectors it vanishes geometrically, where they stretch it grows.
The variants:

- torch's init (weights and biases uniform in +-1/sqrt(H)) for RNN, GRU and LSTM;
- gate biases that open the carry path: LSTM forget bias +3, GRU update-gate bias +4;
- explosions: a tanh RNN with W_hh x 5 (the state stays in [-1, 1], the gradient
  grows), and a relu RNN with W_hh x 2 (state and gradient both grow).

The script measures each, prints the numbers and what they say (among them, why
GRU and LSTM vanish *faster* than the plain RNN at torch's init), and checks
every ||dL/dh_t|| against torch autograd (an RNNCell/GRUCell/LSTMCell loop with
``retain_grad`` on every h_t). ``--steps`` is T here.

    python examples/gradient_flow.py --steps 60 --out examples_out
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import reference
from examples._common import one_thread, parser, plain_log_ticks, pyplot, save_figure, step_axis
from reference.gradient_flow import hidden_gradient_norms, step_singular_values

I, H, B = 4, 16, 8


def _edit(module, **changes):
    """``module`` with some state_dict entries replaced by f(old value); returns the module."""
    state = module.state_dict()
    for name, f in changes.items():
        state[name] = f(state[name])
    module.load_state_dict(state)
    return module


def _add_to_gate(gate: str, letters: str, amount: float):
    k = letters.index(gate)
    return lambda b: np.concatenate([b[: k * H], b[k * H:(k + 1) * H] + amount, b[(k + 1) * H:]])  # (G*H,)


def models(seed: int = 0) -> dict:
    """name -> a one-layer reference module (the variants the script compares)."""
    return {
        "RNN": reference.RNN(I, H, seed=seed),
        "GRU": reference.GRU(I, H, seed=seed),
        "LSTM": reference.LSTM(I, H, seed=seed),
        "GRU, update bias +4": _edit(reference.GRU(I, H, seed=seed), bias_hh_l0=_add_to_gate("z", "rzn", 4.0)),
        "LSTM, forget bias +3": _edit(reference.LSTM(I, H, seed=seed), bias_hh_l0=_add_to_gate("f", "ifgo", 3.0)),
        "RNN tanh, 5 W_hh": _edit(reference.RNN(I, H, seed=seed), weight_hh_l0=lambda w: 5 * w),
        "RNN relu, 2 W_hh": _edit(reference.RNN(I, H, nonlinearity="relu", seed=seed), weight_hh_l0=lambda w: 2 * w),
    }


def gate_means(module, x: np.ndarray) -> dict[str, np.ndarray]:
    """gate letter -> (T,) mean activation over batch and units, at each step, read
    from the tape: ``tape.steps(layer, direction)`` gives one StepRecord per step,
    whose ``gates`` are the values forward computed (after their nonlinearities)."""
    shown = {"GRU": ("r", "z"), "LSTM": ("i", "f", "o")}.get(module.mode, ())
    _, _, tape = module.forward(x)
    steps = tape.steps(0, 0)  # layer 0, forward direction: t = 0 ... T-1
    return {k: np.array([float(step.gates[k].mean()) for step in steps]) for k in shown}


def torch_gradient_norms(module, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """||dL/dh_t|| (T, B) from torch autograd, one cell step at a time."""
    import torch

    kind = module.mode if module.mode in ("GRU", "LSTM") else "RNN"
    kw = {"nonlinearity": module.nonlinearity} if kind == "RNN" else {}
    cell = getattr(torch.nn, kind + "Cell")(I, H, **kw).double()
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


def measure(module, x: np.ndarray, v: np.ndarray) -> dict:
    T = x.shape[0]
    go = np.zeros((T, B, H))  # (T, B, H): L = <v, h_T>
    go[-1] = v
    norms = hidden_gradient_norms(module, x, grad_output=go)  # (T, B)
    with one_thread():
        t_norms = torch_gradient_norms(module, x, v)  # (T, B)
    out, _, _ = module.forward(x)  # (T, B, H)
    ratio = float(norms[0].mean() / norms[-1].mean())
    return {
        "norms": norms, "torch_norms": t_norms,
        "rel_diff": float(np.abs(norms - t_norms).max() / np.abs(t_norms).max()),
        "ratio": ratio, "per_step": ratio ** (1 / max(T - 1, 1)),
        "top_sv": step_singular_values(module, x)[..., 0].mean(axis=1),  # (T,) mean over the batch
        "gates": gate_means(module, x),
        "max_h": float(np.abs(out).max()),
        "tanh_slope": float((1 - out * out).mean()),
    }


def explain(results: dict, T: int, models_: dict) -> str:
    """What the measured numbers say about GRU and LSTM against the plain RNN at torch's init;
    each verdict word (faster, keeps more, explosion) is chosen by the numbers it stands beside."""
    r, g, lstm = results["RNN"], results["GRU"], results["LSTM"]
    sv_w = lambda name, rows: float(np.linalg.svd(models_[name].state_dict()["weight_hh_l0"][rows], compute_uv=False)[0])
    w_hh, w_hn = sv_w("RNN", slice(None)), sv_w("GRU", slice(2 * H, 3 * H))
    mean = lambda res, k: float(res["gates"][k].mean())
    gb, lb = results["GRU, update bias +4"], results["LSTM, forget bias +3"]
    both_faster = max(g["per_step"], lstm["per_step"]) < r["per_step"]
    heading = ("Why GRU and LSTM vanish faster than the plain RNN at torch's init" if both_faster else
               "GRU and LSTM against the plain RNN at torch's init (here not both vanish faster)")
    opens = lambda opened, base: ("the gradient keeps more per step" if opened["per_step"] > base["per_step"]
                                  else "the gradient keeps no more per step here")
    lines = [
        f"{heading} (T = {T}):",
        (f"  per step, ||dL/dh_t|| is multiplied by {r['per_step']:.3f} (RNN), {g['per_step']:.3f} (GRU), "
         f"{lstm['per_step']:.3f} (LSTM);"),
        (f"  mean top singular value of the step Jacobian: {r['top_sv'].mean():.3f}, {g['top_sv'].mean():.3f}, "
         f"{lstm['top_sv'].mean():.3f}."),
        (f"  The gates start near sigmoid(0) = 0.5: measured means z {mean(g, 'z'):.2f}, r {mean(g, 'r'):.2f}; "
         f"f {mean(lstm, 'f'):.2f}, i {mean(lstm, 'i'):.2f}, o {mean(lstm, 'o'):.2f}."),
        (f"  GRU: h_t = z*h_(t-1) + (1-z)*n. The direct path multiplies the gradient by z ~ {mean(g, 'z'):.2f} "
         "each step, and the"),
        (f"  recurrent matrix W_hn (top singular value {w_hn:.2f}) is scaled by (1-z)*r ~ "
         f"{(1 - mean(g, 'z')) * mean(g, 'r'):.2f}."),
        (f"  LSTM: the cell path c_t = f*c_(t-1) multiplies by f ~ {mean(lstm, 'f'):.2f}; the h path is scaled "
         "by o, i and tanh'."),
        (f"  RNN: h_t = tanh(W_hh h_(t-1) + ...) has no gate; tanh' = 1-h^2 averages {r['tanh_slope']:.2f}, "
         f"and W_hh's top singular value is {w_hh:.2f}."),
        (f"  Opening the gate: forget bias +3 gives f = {mean(lb, 'f'):.2f} and a per-step factor "
         f"{lb['per_step']:.3f} ({lb['ratio']:.1e} over {T} steps, against {lstm['ratio']:.1e}): {opens(lb, lstm)};"),
        (f"  update bias +4 gives z = {mean(gb, 'z'):.2f} and {gb['per_step']:.3f} ({gb['ratio']:.1e}, "
         f"against {g['ratio']:.1e}): {opens(gb, g)}."),
    ]
    return "\n".join(lines)


def run(steps: int = 60, seed: int = 0, out: Path | None = None) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (steps, B, I))  # (T, B, I)
    v = rng.standard_normal((B, H))  # (B, H): L = <v, h_T>
    ms = models(seed)
    results = {name: measure(m, x, v) for name, m in ms.items()}
    for name, r in results.items():
        print(f"{name:22s} ||dL/dh_0|| / ||dL/dh_T|| = {r['ratio']:9.2e}  per step {r['per_step']:.3f}  "
              f"mean top singular value {r['top_sv'].mean():.3f}  max |h| {r['max_h']:8.2e}  "
              f"vs torch {r['rel_diff']:.1e}")
    print(explain(results, steps, ms))
    for name in ("RNN tanh, 5 W_hh", "RNN relu, 2 W_hh"):
        ratio = results[name]["ratio"]
        print(f"{'Explosion' if ratio > 1 else 'No explosion'}, {name}: the gradient at h_0 is {ratio:.1e} times "
              f"the one at h_T (largest |h| {results[name]['max_h']:.1e}).")
    worst = max(results, key=lambda name: results[name]["rel_diff"])
    print(f"largest relative difference of ||dL/dh_t|| to torch, over t and all variants: "
          f"{results[worst]['rel_diff']:.3e} ({worst}; an exploding recurrence amplifies float64 rounding "
          f"like any other perturbation)")
    if out is not None:
        plot(Path(out) / "gradient_flow.png", results, steps)
    return results


GATE_MODELS = {"GRU": "GRU", "GRU, update bias +4": "GRU +4", "LSTM": "LSTM", "LSTM, forget bias +3": "LSTM +3"}


def plot(path: Path, results: dict, T: int) -> None:
    """Three panels: ||dL/dh_t|| over t (NumPy lines, torch dots), the step Jacobian's top
    singular value over t, and each gate's mean (a dot, with its range over t as a bar: the
    gates hardly move over t, so curves would lie on top of each other). One legend for the
    variants, above the panels, clear of every curve."""
    plt = pyplot()
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1, 1, 0.9]})
    colours = dict(zip(results, plt.get_cmap("tab10").colors))  # 7 variants, 7 distinct colours
    t = np.arange(T)  # (T,) time steps 0 ... T-1
    for name, r in results.items():
        a.plot(t, r["norms"].mean(1), color=colours[name], label=name)
        a.plot(t, r["torch_norms"].mean(1), ".", color=colours[name], ms=4)
        b.plot(t, r["top_sv"], color=colours[name])
    a.set_yscale("log")
    plain_log_ticks(a)
    step_axis(a, "time step t")
    a.set_ylabel("||dL/dh_t||, mean over the batch")
    a.set_title(f"gradient of L = <v, h_T> (T = {T}); line NumPy, dots torch", fontsize=10)
    b.axhline(1, color="0.5", lw=0.8, ls=":", zorder=0)  # under the curves: GRU +4 runs just below it
    b.set_yscale("log")
    plain_log_ticks(b)
    step_axis(b, "time step t")
    b.set_ylabel("top singular value of dh_t/dh_(t-1)")
    b.set_title("step Jacobian (LSTM: of the (h, c) step); above 1 can stretch", fontsize=10)
    labels, k = [], 0
    for name, short in GATE_MODELS.items():
        for gate, values in results[name]["gates"].items():
            c.errorbar(k, values.mean(), yerr=[[values.mean() - values.min()], [values.max() - values.mean()]],
                       fmt="o", color=colours[name], capsize=3)
            labels.append(f"{short}: {gate}")
            k += 1
    c.axhline(0.5, color="0.5", lw=0.8, ls=":", zorder=0)
    c.set_xticks(range(len(labels)), labels, fontsize=9, rotation=45, ha="right")
    c.set_ylim(0, 1)
    c.set_ylabel("gate activation: mean, bar = range over t")
    c.set_title("gates: near 0.5 at torch's init; the biases open z and f", fontsize=10)
    fig.legend(*a.get_legend_handles_labels(), loc="upper center", ncol=len(results), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    save_figure(fig, path, rect=(0, 0, 1, 0.93))


def main(argv: list[str] | None = None) -> dict:
    args = parser(__doc__.splitlines()[0], steps=60).parse_args(argv)
    with one_thread():  # tiny models: one thread each for NumPy and torch
        return run(args.steps, args.seed, args.out)


if __name__ == "__main__":
    main()
