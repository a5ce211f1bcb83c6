"""Smoke test of `python -m benchmarks`: it runs, validates, and writes readable files.

No timing assertions: the numbers depend on the machine. One tiny configuration.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

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
