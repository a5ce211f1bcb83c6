"""The adapter conformance kit (adapter_kit.py): every adapter x every case, its verdict and place asserted.

Legitimate cases MATCH, planted bugs MISMATCH at their (kind, layer, direction, time step, gate), bfloat16
and float16 MATCH against the rounding envelope where the adapter runs them and are refused by name
elsewhere, as are options the reference lacks. A case a framework cannot express is a skip
that says why. Keras on JAX runs in a process of its own (Keras picks its backend once per process); an
adapter whose framework is not installed is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import adapter_kit as ak
import pytest

ROOT = Path(__file__).resolve().parents[1]
NEEDS = {  # adapter -> the modules it needs
    "torch module": ("torch",),
    "function": ("torch",),
    "keras (torch)": ("keras", "torch"),
    "keras (jax)": ("keras", "jax"),
    "flax linen": ("jax", "flax"),
    "flax nnx": ("jax", "flax"),
    "equinox": ("jax", "equinox"),
    "onnx file": ("onnx", "onnxruntime", "torch"),
}


@pytest.fixture(scope="session")
def keras_on_jax(tmp_path_factory, worker_id) -> dict:
    """Every case of Keras on the JAX backend, run once per test session by ``python -m parity_tests.adapter_kit``
    in a process of its own; pytest-xdist's workers share the one result (a file, under a lock)."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    out = (root if worker_id == "master" else root.parent) / "adapter_kit_keras_on_jax.json"
    with FileLock(f"{out}.lock"):
        if not out.is_file():
            env = dict(os.environ, KERAS_BACKEND="jax",
                       PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
            r = subprocess.run([sys.executable, "-m", "parity_tests.adapter_kit", "keras (jax)"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=600, check=False)
            assert r.returncode == 0, r.stderr[-3000:]
            out.write_text(r.stdout.splitlines()[-1])
    return json.loads(out.read_text())


def result(adapter: str, case: str, request) -> tuple[ak.Expect, dict]:
    if adapter == "keras (jax)":
        got = request.getfixturevalue("keras_on_jax")[case]
        verdict, where, says = got["expect"]
        return ak.Expect(verdict, None if where is None else tuple(where), says), got
    if adapter == "keras (torch)" and "keras" in sys.modules:
        import keras

        if keras.backend.backend() != "torch":
            pytest.skip("this process's Keras runs another backend; the kit runs Keras on torch in it")
    builder = ak.kit(adapter)
    return builder.expect(case), ak.outcome(lambda: builder.build(case))


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").replace("__", "_")


@pytest.mark.parametrize("case", list(ak.CASES), ids=slug)
@pytest.mark.parametrize("adapter", list(NEEDS), ids=slug)
def test_every_adapter_gives_each_case_its_verdict_and_place(adapter, case, request):
    missing = [m for m in NEEDS[adapter] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{adapter}: {', '.join(missing)} not installed")
    expect, got = result(adapter, case, request)
    if "skip" in got:
        pytest.skip(f"{adapter} cannot express {case!r}: {got['skip']}")
    why = ak.failure(expect, got)
    assert not why, f"{adapter}, {case}: {why}\n{got.get('text') or got.get('message')}"


def test_the_verdict_rule_of_the_kit_fails_a_wrong_verdict_place_or_refusal():
    """The kit's checker can say FAIL: a MATCH for a planted bug, a place off by one, a refusal naming another."""
    planted = ak.CASES["layer 1 gate f"]
    right = {"verdict": "MISMATCH", "where": ["step", 1, 0, 0, "f"], "stopped": ""}
    assert ak.failure(planted, right) == ""
    assert ak.failure(planted, {**right, "verdict": "MATCH"})
    assert ak.failure(planted, {**right, "where": ["step", 0, 0, 0, "f"]})
    assert ak.failure(planted, {**right, "where": ["step", 1, 0, 0, "i"]})
    assert ak.failure(planted, {**right, "where": None})
    assert ak.failure(ak.CASES["float32"], right)
    refused = {"verdict": "REFUSED", "message": "TypeError: x: computes in float16, ..."}
    assert ak.failure(ak.CASES["float16"], refused) == ""
    assert ak.failure(ak.CASES["bfloat16"], refused)
