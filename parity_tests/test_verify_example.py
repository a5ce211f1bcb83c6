"""The copyable example test file (examples/verify_in_your_ci/test_my_lstm.py) runs, as a user would run it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join("examples", "verify_in_your_ci", "test_my_lstm.py")


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the example checks a torch.nn candidate")
def test_example_test_file_passes_and_catches_its_planted_bug():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               HYPOTHESIS_PROFILE="ci")
    r = subprocess.run([sys.executable, "-m", "pytest", EXAMPLE, "-q", "-p", "no:cacheprovider"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0 and "3 passed" in r.stdout, r.stdout + r.stderr
