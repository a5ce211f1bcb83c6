"""The fuzz pass over the readers (``parity_tests/fuzz_readers.py``) in CI: corrupted .npz, .pt, .onnx files and
ONNX test-data folders through rnn-check, each outcome exit 0, exit 1, or exit 2 with one line naming the file,
and the process's peak RSS within the pass's limit.

The CI profile runs 150 derandomized examples in a subprocess (about 5 s of work on a quiet machine); the long
profile runs on demand with random seeds: ``FUZZ_EXAMPLES=3000 python -m pytest parity_tests/test_fuzz_readers.py``
or ``python -m parity_tests.fuzz_readers --examples 3000``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS is read from Linux's /proc/self/status")
def test_every_corrupted_file_exits_0_1_or_2_with_a_named_reason_within_the_rss_limit():
    for module in ("torch", "onnx", "onnxruntime", "hypothesis"):
        pytest.importorskip(module)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "parity_tests.fuzz_readers"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=900, check=False)
    assert r.stdout.strip(), r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["failures"] == [], result
    assert result["examples"] >= 150 and result["counts"]["exit 2"] > 0, result
    assert result["rss_growth"] <= result["rss_limit"] == 512 * 2**20, result
    assert r.returncode == 0, r.stderr[-3000:]
