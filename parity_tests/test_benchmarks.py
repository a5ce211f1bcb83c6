"""Smoke test of `python -m benchmarks`: it runs, validates, and writes readable files.

No timing assertions: the numbers depend on the machine. One tiny configuration.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {"cell", "T", "B", "I", "H", "dtype", "device", "impl", "phase", "status", "ms", "spread", "tokens_per_s",
          "gflops", "pct_peak", "ratio_to_torch", "peak_gflops"}


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, "-m", "benchmarks", "--suite", "smoke", "--cells", "LSTM", "--dtypes", "float64",
           "--devices", "cpu", "--repeat", "1", "--threads", "1", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reference" in proc.stdout and "step ms" in proc.stdout, proc.stdout
    return out


def test_json_has_environment_and_validated_rows(bench_out):
    doc = json.loads((bench_out / "results.json").read_text())
    env = doc["environment"]
    for key in ("cpu_model", "cpu_count", "numpy", "torch", "numpy_blas", "thread_env"):
        assert key in env
    assert set(env["allocator_env"]) >= {"MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"}  # the default
    assert doc["matmul_peaks"] and doc["matmul_peaks"][0]["peak"] > 0
    rows = doc["rows"]
    assert {r["impl"] for r in rows} >= {"reference", "torch-nn"}
    for r in rows:
        assert FIELDS <= set(r), sorted(FIELDS - set(r))
        assert r["status"] in ("ok", "baseline") or r["status"].startswith("unavailable"), r["status"]
    ref = [r for r in rows if r["impl"] == "reference"]
    assert {r["phase"] for r in ref} == {"inference", "forward", "backward", "step"}
    fwd = next(r for r in ref if r["phase"] == "forward")
    assert fwd["tape_bytes"] >= fwd["min_activation_bytes"] > 0


def test_csv_parses_like_the_json(bench_out):
    with (bench_out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    doc = json.loads((bench_out / "results.json").read_text())
    assert len(rows) == len(doc["rows"]) and FIELDS <= set(rows[0])


def test_figures_are_png(bench_out):
    pngs = sorted(bench_out.glob("*.png"))
    assert {p.name for p in pngs} >= {"time_forward.png", "time_backward.png", "ratio_to_torch.png"}
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _relu_row_results(dtype: str):
    from benchmarks.config import Row
    from benchmarks.impls import as_numpy, prepare

    row = Row("RNN_RELU", 4, 3, 5, 6, dtype, "cpu")
    return row, as_numpy(prepare("torch-nn", row).results())


def test_a_relu_kink_flip_with_float64_agreement_is_accepted_and_named():
    from benchmarks.worker import _relu_kinks

    row, desired = _relu_row_results("float32")
    actual = {k: v.copy() for k, v in desired.items()}
    t, b, h = np.argwhere(desired["output"] > 0)[0]
    desired["output"][t, b, h] = 1e-8  # one pre-activation within rounding of 0, positive in torch ...
    actual["output"][t, b, h] = 0.0  # ... and not in the candidate ...
    actual["d_input"][t, b] += 1.0  # ... and the gradient that the jump of relu' carries
    got = _relu_kinks("reference", row, actual, desired)
    assert got["valid"] and "1 relu kink flip" in got["status"], got


def test_a_gradient_mismatch_without_a_kink_flip_stays_a_mismatch():
    from benchmarks.worker import _relu_kinks

    row, desired = _relu_row_results("float32")
    actual = {k: v.copy() for k, v in desired.items()}
    actual["d_input"][0, 0] += 1.0  # a wrong gradient with every relu on the same side
    assert _relu_kinks("reference", row, actual, desired) == {}


def test_rows_are_timed_side_by_side_in_rounds_and_pooled(monkeypatch):
    """Row by row, each implementation in turn, once per round; the rounds' samples pooled."""
    from benchmarks import runner
    from benchmarks.config import IMPLS, Row

    jobs = []

    class FakeWorker:
        def __init__(self, threads, keep_freed_memory=True):
            self.proc = type("P", (), {"poll": staticmethod(lambda: None)})()

        def run(self, job):
            jobs.append((job["row"]["H"], job["impl"], job["repeat"], job["memory"]))
            k = sum(1 for j in jobs if j[:2] == jobs[-1][:2])  # this (row, impl)'s round, from 1
            yield {"type": "time", "impl": job["impl"], "row": job["row"],
                   "times_ms": {"forward": [float(k)] * job["repeat"]}}

        def close(self):
            pass

    monkeypatch.setattr(runner, "Worker", FakeWorker)
    monkeypatch.setattr(runner, "SETTLE_S", 0.0)
    rows = [Row("GRU", 2, 1, 3, H, "float64", "cpu") for H in (4, 5)]
    impls = IMPLS["cpu"]
    valid = {(i, r): {"valid": True} for i in impls for r in rows}
    timed = runner.time_all(rows, valid, repeat=5, rounds=3, threads=1, on_record=lambda rec: None)
    expected = [(r.H, i, 2, k == 0) for r in rows for k in range(3) for i in impls]  # ceil(5 / 3) = 2 per round
    assert jobs == expected
    pooled = timed[(impls[0], rows[0])]
    assert pooled["rounds"] == 3 and pooled["phases"]["forward"]["repeats"] == 6
    assert pooled["phases"]["forward"]["ms"] == 2.0  # the median of 1, 1, 2, 2, 3, 3
