"""The pinned probe of a wrong forward step: every gate held at one value through its bias, and what its
result is read against (one direction, the valid rows, the state before the step).

See the package docstring (step 3) for why gates are pinned, and :mod:`.gates` for what the probes show.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..candidates import Problem
from ..session import Session

PIN = math.asinh(1.0)  # sigmoid(asinh 1) = tanh(asinh 1) = 1/sqrt(2)
MOVED = -PIN / 2  # a second pinned value: the other sign (sigmoid and tanh are not even) and another size (so
#                   an odd function of the pre-activation, tanh(1.25 a), is no scale of tanh there)


def pinned_step(probe: Problem, d: int, keep: str | None, moved: str | None = None,
                hidden_real: set | None = None) -> Problem:
    """Direction d's gates pinned to sigmoid = tanh = 1/sqrt(2), except gate ``keep``; gate ``moved`` pinned at
    MOVED instead; the W_hh and b_hh blocks in ``hidden_real`` kept.

    A pinned gate's rows of W_ih and W_hh are zero and its pre-activation is its bias_ih block (b_hh's is zero):
    the step keeps its own input and state, so a bug that fires on the input's value, its sign or one batch
    row fires here too. Without biases the pin is W_ih's first column, read through x_0 = 1.
    """
    spec = probe.spec
    sfx, G, H = ("_reverse" if d else ""), spec.G, spec.hidden_size
    real = set() if keep is None else {spec.gates.index(keep)}
    hidden_real = set(real) | (hidden_real or set())
    if keep == "r":
        hidden_real.add(2)  # r acts only through W_hn h + b_hn: keep them
    on_input = not spec.bias  # pin through x_0 = 1 only where there is no bias to pin with
    through = "weight_ih" if on_input else "bias_ih"
    params = dict(probe.params)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        key = f"{name}_l0{sfx}"
        if key not in params:
            continue
        w = np.array(params[key], dtype=np.float64)
        for j in range(G):
            if j in (hidden_real if name in ("weight_hh", "bias_hh") else real):
                continue
            w[j * H:(j + 1) * H] = 0.0
            pin = MOVED if moved is not None and j == spec.gates.index(moved) else PIN
            if name == through == "bias_ih":
                w[j * H:(j + 1) * H] = pin
            elif name == through:
                w[j * H:(j + 1) * H, 0] = pin
        params[key] = w
    if not on_input:
        return replace(probe, params=params)
    x = np.array(probe.x, dtype=np.float64)
    x[..., 0] = 1.0
    return replace(probe, params=params, x=x)


def side(arrays, d: int, rows) -> list[np.ndarray]:
    """Direction d's entries, on the valid rows, of (D, B, .) arrays."""
    return [np.asarray(a, np.float64)[d][rows] for a in arrays]


def side_bounds(bounds, n: int, d: int, rows) -> list:
    """The bounds of the first ``n`` states (h', c'), as ``side`` slices them."""
    return [bounds("hidden", k)[d][rows] for k in range(n)]


def state_before(S: Session, p: Problem, d: int, rows) -> list[np.ndarray]:
    """[h, (c)] before the step ``p`` ends on in direction d (its last processed), on the valid rows: ``p``'s own
    states for one step, else the reference's state there, read from its tape."""
    if p.x.shape[0] == 1:
        return side(p.hx, d, rows)
    record = S.reference(p)[1].steps(0, d)[-1]
    return [np.asarray(s, np.float64)[rows] for s in (record.h_prev, record.c_prev) if s is not None]
