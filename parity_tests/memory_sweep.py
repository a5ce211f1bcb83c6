"""Peak RSS of a forward + backward against reference.memory's estimate, each case in a fresh process.

    python -m parity_tests.memory_sweep            # a table: the case, measured, estimated, their ratio
    python -m parity_tests.memory_sweep --case 3   # one case, as JSON (what the table's processes run)
    python -m parity_tests.memory_sweep --verifier # compare() on torch.nn's modules, against its footprint

Each case runs in its own process (memory a previous case freed would otherwise
be reused without growing RSS). It resets the process's peak RSS (Linux:
/proc/self/clear_refs), runs one forward and one backward of a reference module
on random data, and reads the peak (VmHWM) less the RSS just before: what the
work itself took. The module, its input and cotangents exist before the reset; a
tiny warm-up run first loads every code path. Sizes are chosen so that the tape
dominates (tens of MiB), and small enough for CI.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import NamedTuple

import numpy as np

import reference
from reference.memory import estimate, memory_limit


class Case(NamedTuple):
    mode: str
    T: int
    B: int
    H: int
    layers: int
    directions: int
    dtype: str
    lengths: bool = False
    proj_size: int = 0


CASES = (
    Case("LSTM", 100, 64, 128, 1, 1, "float64"),
    Case("GRU", 100, 64, 128, 1, 1, "float64"),
    Case("RNN", 200, 64, 128, 1, 1, "float64"),
    Case("LSTM", 50, 32, 128, 2, 2, "float64"),
    Case("GRU", 60, 32, 128, 2, 2, "float32"),
    Case("LSTM", 100, 64, 128, 1, 1, "float32"),
    Case("RNN", 100, 64, 128, 3, 2, "float32"),
    Case("LSTM", 100, 64, 128, 1, 1, "float64", lengths=True),
    Case("LSTM", 100, 64, 128, 2, 1, "float64", proj_size=64),
)


# the verifier's main check of torch.nn's module (compare, localisation off), against reference.verify.footprint
VERIFIER_CASES = (
    Case("LSTM", 100, 64, 128, 1, 1, "float64"),
    Case("GRU", 100, 64, 128, 1, 1, "float32"),
    Case("LSTM", 100, 32, 128, 2, 2, "float64"),
)


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))


def measure(case: Case) -> tuple[int, int]:
    """(peak RSS growth in bytes, estimated bytes) of one forward + backward."""
    cls = {"LSTM": reference.LSTM, "GRU": reference.GRU, "RNN": reference.RNN}[case.mode]
    kwargs = {"proj_size": case.proj_size} if case.proj_size else {}
    m = cls(case.H, case.H, num_layers=case.layers, bidirectional=case.directions == 2, dtype=case.dtype, seed=0,
            **kwargs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.T, case.B, case.H)).astype(case.dtype)  # (T, B, I), I = H
    dout = rng.standard_normal((case.T, case.B, case.directions * m.output_size)).astype(case.dtype)  # (T, B, D*P)
    lengths = rng.integers(1, case.T + 1, case.B) if case.lengths else None
    lengths_small = None if lengths is None else np.minimum(lengths[:2], 2)
    m.backward(m.forward(x[:2, :2], lengths=lengths_small)[2], dout[:2, :2])  # warm-up: every code path loaded
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    before = _status("VmRSS:")
    with memory_limit(float("inf")):  # measured, not refused
        _, _, tape = m.forward(x, lengths=lengths)
        m.backward(tape, dout)
    return _status("VmHWM:") - before, estimate(m.config, case.T, case.B, case.dtype, case.lengths).bytes


def measure_verifier(case: Case) -> tuple[int, int]:
    """(peak RSS growth in bytes, estimated bytes) of compare() on torch.nn's module of ``case``."""
    import torch

    from reference.verify import Spec, compare
    from reference.verify.footprint import footprint

    torch.manual_seed(0)
    cls = getattr(torch.nn, case.mode)
    module = cls(case.H, case.H, num_layers=case.layers, bidirectional=case.directions == 2)
    module = module.to(getattr(torch, case.dtype))
    compare(cls(3, 4).to(getattr(torch, case.dtype)), seq_len=2, batch=2)  # warm-up: every code path loaded
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status("VmRSS:")
    with memory_limit(float("inf")):
        compare(module, seq_len=case.T, batch=case.B, localise=False)
    spec = Spec(case.mode, case.H, case.H, case.layers, bidirectional=case.directions == 2)
    return _status("VmHWM:") - before, footprint(spec, case.T, case.B, case.dtype).bytes


def sweep(verifier: bool = False) -> list[dict]:
    """Every case (the verifier's, with ``verifier``), each measured in a fresh process: the case's fields,
    "measured" and "estimated" (bytes)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rows = []
    for k, case in enumerate(VERIFIER_CASES if verifier else CASES):
        r = subprocess.run([sys.executable, "-m", "parity_tests.memory_sweep", "--case", str(k),
                            *(["--verifier"] if verifier else [])], cwd=root, env=env, capture_output=True, text=True,
                           timeout=600, check=True)
        measured, estimated = json.loads(r.stdout)
        rows.append({**case._asdict(), "measured": measured, "estimated": estimated})
    return rows


def main() -> None:
    verifier = "--verifier" in sys.argv
    if "--case" in sys.argv:
        k = int(sys.argv[sys.argv.index("--case") + 1])
        print(json.dumps(measure_verifier(VERIFIER_CASES[k]) if verifier else measure(CASES[k])))
        return
    print(f"{'case' + (' (the verifier)' if verifier else ''):<52}{'measured MiB':>14}{'estimate MiB':>14}{'ratio':>8}")
    for r in sweep(verifier):
        name = (f"{r['mode']} T={r['T']} B={r['B']} H={r['H']} L={r['layers']} D={r['directions']} {r['dtype']}"
                + (" lengths" if r["lengths"] else "") + (f" P={r['proj_size']}" if r["proj_size"] else ""))
        print(f"{name:<52}{r['measured'] / 2**20:>14.1f}{r['estimated'] / 2**20:>14.1f}"
              f"{r['measured'] / r['estimated']:>8.2f}")


if __name__ == "__main__":
    main()
