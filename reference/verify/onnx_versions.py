"""The ONNX IR version and opset that the installed ONNX Runtime reads, read from ONNX Runtime itself.

onnx writes models at its own newest IR version (``onnx.IR_VERSION``), which an older
ONNX Runtime refuses ("Unsupported model IR version: 14, max supported IR version: 11":
onnx 1.23 against onnxruntime 1.23, the newest for Python 3.10). Every model the project
builds goes through :func:`make_model`, which stamps it with what the runtime reads:

* the IR version: the newest that ONNX Runtime loads, found by loading a one-node
  model at each IR version from onnx's newest down (a few milliseconds, once per process);
* the opset: the newest that a model of that IR version may import, at most the newest
  operator version ONNX Runtime has a kernel for in the default domain (``get_all_opkernel_def``).

Needs onnx and onnxruntime, imported when first asked.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from typing import Any, NamedTuple


class RuntimeVersions(NamedTuple):
    ir_version: int
    opset: int
    onnxruntime: str  # its __version__, for messages


def _probe_model(onnx: Any, ir_version: int, opset: int) -> bytes:
    """Identity of one float: the smallest model that carries an IR version and an opset."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model.SerializeToString()


def _loads(ort: Any, model: bytes) -> bool:
    options = ort.SessionOptions()
    options.log_severity_level = 4  # a refusal is the answer here, not a message
    try:
        ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 -- ONNX Runtime's errors are pybind11 classes deriving from Exception
        return False
    return True


def _kernel_opset(ort: Any, newest: int) -> int:
    """The newest default-domain operator version ONNX Runtime has a kernel for (``newest`` where it cannot say)."""
    try:
        from onnxruntime.capi import _pybind_state

        since = [k.version_range[0] for k in _pybind_state.get_all_opkernel_def() if k.domain in ("", "ai.onnx")]
    except (ImportError, AttributeError):
        return newest
    return min(newest, max(since, default=newest))


def _newest_opset_for(onnx: Any, ir_version: int, newest: int) -> int | None:
    """The newest opset (at most ``newest``) that a model of IR version ``ir_version`` may import."""
    for opset in range(newest, 0, -1):
        if onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)]) <= ir_version:
            return opset
    return None


@functools.lru_cache(maxsize=1)
def runtime_versions() -> RuntimeVersions:
    """(IR version, opset, onnxruntime's version): the newest IR version that both the installed onnx writes and
    the installed ONNX Runtime loads, and the newest opset such a model may import that ONNX Runtime has kernels
    for. Raises ImportError without onnx or onnxruntime, RuntimeError if nothing loads."""
    import onnx
    import onnxruntime as ort

    newest = _kernel_opset(ort, onnx.defs.onnx_opset_version())
    for ir_version in range(onnx.IR_VERSION, 2, -1):
        opset = _newest_opset_for(onnx, ir_version, newest)
        if opset is not None and _loads(ort, _probe_model(onnx, ir_version, opset)):
            return RuntimeVersions(ir_version, opset, ort.__version__)
    raise RuntimeError(f"onnxruntime {ort.__version__} loads no model that onnx {onnx.__version__} writes: install "
                       "matching onnx and onnxruntime releases")


def onnx_opset() -> int:
    from onnx import defs

    return defs.onnx_opset_version()


def make_model(graph: Any, opset: int | None = None) -> Any:
    """``onnx.helper.make_model(graph)`` at the IR version ONNX Runtime reads, and at ``opset`` (default: the
    newest it reads; an operator keeps its meaning across the opsets that do not change it). Without
    onnxruntime, at onnx's own versions."""
    from onnx import helper

    try:
        versions = runtime_versions()
    except ImportError:  # no ONNX Runtime: onnx's own evaluator reads what onnx writes
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset or onnx_opset())])
    opset = versions.opset if opset is None else opset
    if opset > versions.opset:
        raise ValueError(f"opset: {opset} is newer than onnxruntime {versions.onnxruntime} reads ({versions.opset})")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = versions.ir_version
    return model


def newer_than_runtime(proto: Any) -> str | None:
    """One line where a model is stamped newer than ONNX Runtime reads (IR version or opset), else None."""
    try:
        versions = runtime_versions()
    except (ImportError, RuntimeError):
        return None
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if proto.ir_version <= versions.ir_version and opset <= versions.opset:
        return None
    return (f"the file is IR version {proto.ir_version}, opset {opset}; the installed onnxruntime "
            f"{versions.onnxruntime} reads IR version <= {versions.ir_version}, opset <= {versions.opset}")


# A bidirectional RNN whose second function takes alpha and whose first does not: ONNX lists one value.
_RNN_PROBE = """
import numpy as np, onnxruntime as ort
from onnx import TensorProto, helper
from reference.verify.onnx_versions import make_model
node = helper.make_node("RNN", ["X", "W", "R"], ["Y"], hidden_size=1, direction="bidirectional",
                        activations=["Sigmoid", "ThresholdedRelu"], activation_alpha=[0.5])
f = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
model = make_model(helper.make_graph([node], "g", [f("X", [1, 1, 1]), f("W", [2, 1, 1]), f("R", [2, 1, 1])],
                                     [f("Y", None)]))
one = np.ones((1, 1, 1), np.float32)
session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
y = session.run(None, {"X": one, "W": np.ones((2, 1, 1), np.float32), "R": np.ones((2, 1, 1), np.float32)})[0]
print("ok" if np.allclose(y.ravel(), [1 / (1 + np.exp(-1)), 1.0]) else "wrong")
"""


@functools.lru_cache(maxsize=1)
def rnn_arguments_by_direction() -> bool:
    """Does the installed ONNX Runtime read the RNN operator's ``activation_alpha``/``activation_beta`` one value
    per direction, not (as ONNX's specs say, and its LSTM and GRU do) one per function that takes it? Such a
    runtime reads past a shorter list and aborts the process (onnxruntime 1.23.2), so it is asked in a process
    of its own, once."""
    try:
        done = subprocess.run([sys.executable, "-c", _RNN_PROBE], check=False, capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return True
    return done.returncode != 0 or done.stdout.strip() != "ok"


def unsafe_rnn_arguments(op_type: str, attributes: dict) -> str | None:
    """Why the installed ONNX Runtime cannot run this node as ONNX defines it, or None.

    An RNN node whose ``activation_alpha`` or ``activation_beta`` lists fewer values than it has directions
    (ONNX lists values only for the functions that take them) is read past its end by a runtime that reads
    them one per direction (:func:`rnn_arguments_by_direction`)."""
    if op_type != "RNN":
        return None
    D = 2 if attributes.get("direction") == "bidirectional" else 1
    short = [k for k in ("activation_alpha", "activation_beta") if k in attributes and len(attributes[k]) < D]
    if not short or not rnn_arguments_by_direction():
        return None
    import onnxruntime

    return (f"onnxruntime {onnxruntime.__version__} reads the RNN operator's {' and '.join(short)} one value per "
            f"direction and reads past ONNX's shorter list ({D} directions, "
            f"{', '.join(f'{k}={list(attributes[k])}' for k in short)}), which aborts the process: install a newer "
            "onnxruntime")
