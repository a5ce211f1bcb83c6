"""Models for ONNX Runtime at the IR version and opset it reads, read from it (not hard-coded).

onnx writes its newest IR version by default, which an older onnxruntime refuses (onnx 1.23 writes IR 14;
onnxruntime 1.23, the newest for Python 3.10, reads IR <= 11). Here a stricter runtime is simulated by
refusing every IR version above a limit, as such a runtime does, so the checks hold on every Python.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper

from reference.verify import (
    CandidateError,
    Spec,
    compare,
    load_model,
    onnx_versions,
)
from reference.verify.adapters.onnx_graph import _single_node_model
from reference.verify.onnx_versions import make_model, runtime_versions

LIMIT = 9  # the simulated runtime's newest IR version: below what any onnx >= 1.14 writes by default


@pytest.fixture
def strict_runtime(monkeypatch):
    """onnxruntime refusing IR versions above LIMIT, with its own message."""
    real = ort.InferenceSession

    def session(model, *args, **kwargs):
        proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model)
        if proto.ir_version > LIMIT:
            raise RuntimeError(f"Unsupported model IR version: {proto.ir_version}, max supported IR version: {LIMIT}")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", session)
    runtime_versions.cache_clear()
    yield
    runtime_versions.cache_clear()


def _identity_graph():
    return helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                             [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])


def test_models_are_written_at_the_newest_versions_the_installed_runtime_loads():
    versions = runtime_versions()
    model = make_model(_identity_graph())
    assert (model.ir_version, model.opset_import[0].version) == (versions.ir_version, versions.opset)
    ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])  # it loads
    if versions.ir_version < onnx.IR_VERSION:  # and it is the newest: one above is refused
        model.ir_version += 1
        with pytest.raises(Exception, match="IR version"):
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_a_stricter_runtime_gets_models_at_its_own_ir_version(strict_runtime):
    assert runtime_versions().ir_version == LIMIT
    assert make_model(_identity_graph()).ir_version == LIMIT
    # the verifier's own node models (localisation runs them through ONNX Runtime)
    model = _single_node_model(Spec("LSTM", 3, 4, bidirectional=True), np.dtype(np.float32), with_lengths=True)
    assert model.ir_version == LIMIT
    ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="opset: .* newer than onnxruntime"):
        make_model(_identity_graph(), opset=runtime_versions().opset + 1)


def _lstm_file(path, ir_version: int) -> str:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.uniform(-0.5, 0.5, s).astype(np.float32), n)
             for n, s in (("W", (1, 16, 3)), ("R", (1, 16, 4)), ("B", (1, 32)))]
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=4)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", 3])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Y", "Y_h", "Y_c")],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = ir_version
    onnx.save(model, str(path))
    return str(path)


def test_a_file_newer_than_the_runtime_says_so_and_names_the_evaluator_that_ran(strict_runtime, tmp_path):
    cand = load_model(_lstm_file(tmp_path / "new.onnx", LIMIT + 1))
    line = onnx_versions.newer_than_runtime(onnx.load(str(tmp_path / "new.onnx")))
    assert line == (f"the file is IR version {LIMIT + 1}, opset 14; the installed onnxruntime {ort.__version__} "
                    f"reads IR version <= {LIMIT}, opset <= {runtime_versions().opset}")
    assert cand.name == f"new.onnx (run by onnx.reference.ReferenceEvaluator; ONNX Runtime refuses it: {line})"
    report = compare(cand, seq_len=4)
    assert report.passed and "ReferenceEvaluator" in str(report)
    # at the runtime's own version, ONNX Runtime runs it and nothing is said
    cand = load_model(_lstm_file(tmp_path / "ok.onnx", LIMIT))
    assert cand.name == "ok.onnx" and cand.runtime == "onnxruntime"
    assert onnx_versions.newer_than_runtime(onnx.load(str(tmp_path / "ok.onnx"))) is None


def _rnn_file(path) -> str:
    """A bidirectional RNN whose second function alone takes alpha: ONNX lists one value for two directions."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.uniform(-0.5, 0.5, s).astype(np.float32), n)
             for n, s in (("W", (2, 4, 3)), ("R", (2, 4, 4)), ("B", (2, 8)))]
    node = helper.make_node("RNN", ["X", "W", "R", "B"], ["Y", "Y_h"], hidden_size=4, direction="bidirectional",
                            activations=["Sigmoid", "ThresholdedRelu"], activation_alpha=[0.1])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", 3])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Y", "Y_h")], inits)
    onnx.save(make_model(graph), str(path))
    return str(path)


def test_an_rnn_node_the_runtime_would_abort_on_is_refused_by_name(tmp_path, monkeypatch):
    path = _rnn_file(tmp_path / "rnn.onnx")
    if not onnx_versions.rnn_arguments_by_direction():  # this runtime reads ONNX's lists: it runs, and matches
        assert compare(load_model(path), seq_len=4).passed
        assert compare(load_model(path), weights="draw", seq_len=4).passed  # the verifier's own node, same lists
    monkeypatch.setattr(onnx_versions, "rnn_arguments_by_direction", lambda: True)  # an older runtime
    with pytest.raises(CandidateError, match=r"ONNX node 0 \(RNN ''\): onnxruntime .* reads the RNN operator's "
                                             r"activation_alpha one value per direction .* aborts the process"):
        load_model(path)
