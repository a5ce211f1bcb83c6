"""The adapter conformance kit: every adapter, one list of cases, the verdict and the place asserted per case.

A case is written once (:data:`CASES`: what the verdict must be, and where a planted bug must be named);
each adapter has a builder that makes the case in its framework (``build(case) -> (object, compare
keywords)``), or says by name why the framework cannot express it (:class:`Skip`). The tests
(``test_adapter_kit.py``) run every (adapter, case) through ``compare`` and assert: zero false MATCH,
zero false MISMATCH, zero wrong places, refusals by name.

Legitimate cases must MATCH: float32 and float64, lengths, one reverse direction, bidirectional, two
layers, GRU in torch's form and in the paper's, a subclass that does not change the maths. Planted
cases must MISMATCH at their (kind, layer, direction, time step, gate): a subclass whose own call
scales the output by 1 + 1e-3; one that returns c_n from the last step, whatever the lengths; a
forward bug in gate f of layer 1 only; a gradient-only bug in gate f (its gradient stopped); a bug
in the reverse direction only; a bug in f that fires only where an input feature takes one value
(at time step 3, in one row). bfloat16 and float16 MATCH against the rounding envelope where the
adapter runs them (torch modules, functions, Flax linen and nnx, Equinox) and are refused by name
elsewhere, as is an option the reference cannot express. Shapes are few (JAX compiles each one):
T=5, B=3, I=3, H=4.

``python -m parity_tests.adapter_kit ADAPTER`` prints every case's outcome as JSON: the test runs
Keras on JAX that way, in a process of its own (Keras picks its backend once per process).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

T, B, I, H = 5, 3, 3, 4
LENGTHS = [5, 2, 4]
VALUE, VALUE_AT = 0.625, (3, 1)  # the conditional bug fires where input feature 0 is VALUE: at (time, row) VALUE_AT
SCALE = 1 + 1e-3


@dataclass(frozen=True)
class Expect:
    verdict: str  # "MATCH", "MISMATCH" or "REFUSED"
    where: tuple | None = None  # (kind, layer, direction, time, gate) of the first divergence
    says: str = ""  # a refusal's message names this


CASES = {
    "float32": Expect("MATCH"),
    "float64": Expect("MATCH"),
    "lengths": Expect("MATCH"),
    "reverse": Expect("MATCH"),
    "bidirectional": Expect("MATCH"),
    "two layers": Expect("MATCH"),
    "GRU torch form": Expect("MATCH"),
    "GRU paper form": Expect("MATCH"),
    "subclass, same maths": Expect("MATCH"),
    "subclass scales the output": Expect("MISMATCH", ("step", 0, 0, 0, "output")),
    "subclass c_n from the last step": Expect("MISMATCH", ("final state", 0, 0, None, "c_n")),
    "layer 1 gate f": Expect("MISMATCH", ("step", 1, 0, 0, "f")),
    "gradient of gate f stopped": Expect("MISMATCH", ("gradient step", 0, 0, T - 1, "f")),
    "reverse direction gate f": Expect("MISMATCH", ("step", 0, 1, T - 1, "f")),
    "gate f on one input value": Expect("MISMATCH", ("step", 0, 0, VALUE_AT[0], "f")),
    "bfloat16": Expect("REFUSED", says="bfloat16"),
    "float16": Expect("REFUSED", says="float16"),
    "an option the reference lacks": Expect("REFUSED"),
}


class Skip(Exception):
    """The framework cannot express the case; the message says why."""


def value_input(seed: int = 0) -> np.ndarray:
    """(T, B, I) in [-1, 1], with input feature 0 equal to VALUE at VALUE_AT only."""
    x = np.random.default_rng(seed).uniform(-1, 1, (T, B, I))
    x[VALUE_AT + (0,)] = VALUE
    return x


def keywords(case: str, **extra: Any) -> dict:
    """compare()'s keywords for a case: drawn data of (T, B), lengths where the case is about them."""
    kw: dict[str, Any] = dict(seed=1, seq_len=T, batch=B)
    if case in ("lengths", "subclass c_n from the last step"):
        kw["lengths"] = LENGTHS
    if case == "gate f on one input value":
        kw["input"] = value_input()
    kw.update(extra)
    return kw


def outcome(build) -> dict:
    """{verdict, where, ...} of compare on what ``build()`` returns; {"skip": why} where it cannot be built."""
    from reference.verify import CandidateError, compare

    try:
        obj, kw = build()
    except Skip as e:
        return {"skip": str(e)}
    context = kw.pop("_context", contextlib.nullcontext)  # e.g. jax.enable_x64 around a float64 JAX case
    try:
        with context():
            report = compare(obj, **kw)
    except (TypeError, ValueError, CandidateError) as e:
        return {"verdict": "REFUSED", "message": f"{type(e).__name__}: {e}"}
    div = getattr(report, "divergence", None)  # a low-precision report names its tensor and step in its text
    return {"verdict": "MATCH" if report.passed else "MISMATCH", "stopped": getattr(report, "stopped", ""),
            "where": None if div is None else [div.kind, div.layer, div.direction, div.time, div.gate],
            "dtype": getattr(report, "dtype", str(getattr(report, "precision", ""))),
            "note": getattr(report, "dtype_note", ""), "text": str(report)}


def failure(expect: Expect, got: dict) -> str:
    """'' when ``got`` is the verdict (and place, or refusal) ``expect`` says; else what is wrong."""
    if got["verdict"] != expect.verdict:
        return f"{got['verdict']} where {expect.verdict} was due"
    if expect.verdict == "MISMATCH" and expect.where is not None and tuple(got["where"] or ()) != expect.where:
        return f"named {got['where']} (stopped: {got['stopped']!r}), planted {list(expect.where)}"
    if expect.verdict == "REFUSED" and expect.says not in got["message"]:
        return f"refused without naming {expect.says!r}"
    return ""


# -- the adapters' builders --------------------------------------------------------------------------


def kit(name: str) -> Any:
    """The builder of adapter ``name`` (imported here: each needs its framework)."""
    if name in ("torch module", "function"):
        import adapter_kit_torch

        return adapter_kit_torch.TorchKit() if name == "torch module" else adapter_kit_torch.FunctionKit()
    if name.startswith("keras"):
        import adapter_kit_keras

        return adapter_kit_keras.KerasKit()
    if name in ("flax linen", "flax nnx", "equinox"):
        import adapter_kit_jax

        return {"flax linen": adapter_kit_jax.LinenKit, "flax nnx": adapter_kit_jax.NnxKit,
                "equinox": adapter_kit_jax.EquinoxKit}[name]()
    if name == "onnx file":
        import adapter_kit_onnx

        return adapter_kit_onnx.OnnxKit()
    raise ValueError(f"adapter: unknown {name!r}")


def run_all(name: str) -> dict:
    """Every case's outcome for adapter ``name``, with the expectation it is judged by."""
    builder = kit(name)
    out = {}
    for case, default in CASES.items():
        got = outcome(lambda case=case: builder.build(case))
        expect = builder.expect(case) if hasattr(builder, "expect") else default
        out[case] = {**got, "expect": [expect.verdict, list(expect.where or ()) or None, expect.says]}
    return out


if __name__ == "__main__":  # python -m parity_tests.adapter_kit ADAPTER: the outcomes as JSON
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    print(json.dumps(run_all(sys.argv[1])))
