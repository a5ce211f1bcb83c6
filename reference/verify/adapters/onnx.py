"""ONNX models as a candidate: the file's own graph, run by ONNX Runtime, forward only.

ONNX Runtime runs inference only, so an .onnx file is checked forward. The file's
own graph runs the main check; localisation runs the same operator (op type and
attributes) node by node, on the weights it is given. Where ONNX Runtime refuses
a model (it has no ``layout=1``), onnx's ``onnx.reference.ReferenceEvaluator`` runs
it, and the report's candidate name says so.

ONNX models as they are: weights, initial states and sequence lengths that are
graph inputs (ONNX's conformance models ship them in ``test_data_set_0``) are read
from ``inputs=`` (``rnn-check --inputs``): a test-data folder of ``input_<j>.pb``
(the graph's input j, as ONNX's node tests define) or an .npz keyed by input name.
Its ``output_<j>.pb``, where present, are the expected outputs:
``OnnxCandidate.check_expected`` (:mod:`.onnx_expected`) runs the reference on the folder's inputs against
them (float32 table). The operators' attributes map onto RNNConfig's fields:
``direction="reverse"`` to ``reverse``, ``layout=1`` to batch-major inputs and ONNX's
axes for Y (B, T, D, H) and Y_h/Y_c (B, D, H), ``linear_before_reset`` to
``reset_after``, ``activations`` (with alpha/beta), ``clip``, ``input_forget`` and
``P`` (rows i, o, f) to ``weight_p`` (rows i, f, o). An attribute the reference cannot
express is refused by name, with its value and what is supported.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..candidates import Candidate, CandidateError
from ..files import check_file
from ..onnx_versions import unsafe_rnn_arguments
from ..precision import judged_dtype, narrow_format
from ..spec import Spec
from .onnx_expected import check_expected, given_lengths
from .onnx_graph import (
    _OUT_SLOTS,
    _WEIGHT_SLOTS,
    _recurrent_nodes,
    _spec_and_weights,
    node_weights,
)
from .onnx_nodes import OnnxNodes
from .onnx_read import ExpectedOutputs, _graph_inputs, _onnx, read_test_data
from .onnx_tensors import check_onnx_sizes, load_onnx


class OnnxCandidate(Candidate):
    """An ONNX model's LSTM/GRU/RNN, run by ONNX Runtime (forward only).

    ``inputs``: values for graph inputs that are not constants (weights, initial states,
    sequence lengths), see :func:`read_test_data`. Where ONNX Runtime cannot run the file
    (it refuses ``layout=1``), onnx's own ``onnx.reference.ReferenceEvaluator`` runs it; the
    name says so. A graph of one recurrent node is run with all its outputs (Y, Y_h, Y_c),
    whichever of them the file's graph returns.
    """

    has_gradients = False
    takes_lengths = False
    declares_reset_after = True
    exact = False  # its rebuild is another graph: ONNX Runtime may fuse or order it differently
    spec: Spec  # the file's own configuration, weights and dtype, set in __init__
    own_params: dict[str, np.ndarray]
    dtype: np.dtype  # the arrays compare exchanges: float32 for a float16 file, whose values float32 holds exactly
    tensor_dtype: np.dtype  # the file's own: what its graph is fed

    def __init__(self, model: Any, name: str | None = None, inputs: Any = None):
        onnx, ort = _onnx()
        self._ort = ort
        from_file = isinstance(model, (str, os.PathLike))
        self.name = name or (os.path.basename(os.fspath(model)) if from_file else "ONNX model")
        proto = load_onnx(onnx, check_file(model, "model")) if from_file else model
        check_onnx_sizes(onnx, proto, self.name)
        self.data = None if inputs is None else read_test_data(inputs, proto)
        fed = {} if self.data is None else self.data.inputs
        self.nodes = _recurrent_nodes(onnx, proto, fed)
        for k, (node, attrs, _, _) in enumerate(self.nodes):
            reason = unsafe_rnn_arguments(node.op_type, attrs)
            if reason:
                raise CandidateError(f"ONNX node {k} ({node.op_type} {node.name!r}): {reason}")
        self.spec, self.own_params, self.tensor_dtype = _spec_and_weights(self.nodes, self.data)
        self.storage = narrow_format(self.tensor_dtype)  # float16 weights: float32 arrays, judged against the envelope
        self.dtype = np.dtype(np.float32) if self.storage else judged_dtype(self.tensor_dtype, self.name)
        node, attrs, arrays, sources = self.nodes[0]
        graph_inputs = [i.name for i in _graph_inputs(proto)]
        self._graph_outputs = [o.name for o in proto.graph.output]
        self.layout = int(attrs.get("layout", 0))
        # one node fed straight from the graph's inputs, each of them, and nothing else computed (ONNX's node
        # tests): fed and read slot by slot; a graph that computes more is read by its own outputs
        self._single = len(self.nodes) == 1 and sources.get("X") in graph_inputs and set(graph_inputs) <= set(
            sources.values()) and all(n.op_type == "Constant" for n in proto.graph.node if n is not node)
        weight_inputs = {n for (_, _, _, src) in self.nodes for slot, n in src.items() if slot in _WEIGHT_SLOTS}
        self._weight_feeds = {n: fed[n] for n in weight_inputs}
        if self._single:
            self._x = sources["X"]
            state_slots = ("initial_h", "initial_c") if self.spec.lstm else ("initial_h",)
            self._states = [sources[s] for s in state_slots if s in sources]
            for s in state_slots:
                if s in arrays and s not in sources and np.any(arrays[s]):
                    raise CandidateError(f"ONNX node 0 ({node.op_type} {node.name!r}): its {s} is a non-zero constant "
                                         "of the graph; the check draws its own initial states: make it a graph input")
            if len(self._states) not in (0, len(state_slots)):
                raise CandidateError(f"ONNX node 0 ({node.op_type} {node.name!r}): only some of {list(state_slots)} are "
                                     "graph inputs; expected all or none")
            self._lens = sources.get("sequence_lens")
            proto = _with_all_outputs(onnx, proto, node, self.spec.lstm, self.tensor_dtype)
        else:
            self._x, self._lens = graph_inputs[0], None
            self._states = [n for n in graph_inputs[1:] if n not in weight_inputs]
            n_states = 2 if self.spec.lstm else 1
            if self._states and len(self._states) != n_states:
                raise CandidateError(f"{self.name}: expected inputs (x) or (x, "
                                     f"{'h_0, c_0' if n_states == 2 else 'h_0'}), got {graph_inputs}")
        self.takes_hx = bool(self._states)
        self.runtime, self._run_proto = self._runtime(proto)
        if self.runtime != "onnxruntime":
            self.name += f" (run by {self.runtime})"
        self.takes_lengths = self._lens is not None and self.runtime == "onnxruntime"  # the evaluator ignores them
        x_vi = next(i for i in proto.graph.input if i.name == self._x)
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in x_vi.type.tensor_type.shape.dim)
        dims = dims[:2] if len(dims) >= 2 else (None, None)
        self.fixed_shape = dims[::-1] if self.layout else dims  # (T, B)
        self.given_lengths = given_lengths(self)
        self._proto = proto
        self._weight_sessions: dict = {}
        self.rebuild_hint = ("it is one node of the file's operator and attributes per layer, chained, each given its "
                             "layer's slice of the initial states and the lengths; a graph that computes more than "
                             "that (how it feeds its nodes' states, lengths or inputs) is not reproduced by it")

    def _runtime(self, proto: Any) -> tuple[str, Any]:
        """("onnxruntime", run) or, where ONNX Runtime refuses the model, ("onnx.reference...: why", run)."""
        from ..onnx_versions import newer_than_runtime

        opts = self._ort.SessionOptions()
        opts.log_severity_level = 4  # a refusal is reported here, not logged
        try:
            session = self._ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            return "onnxruntime", lambda feeds: session.run(None, feeds)
        except Exception as e:  # noqa: BLE001 -- ONNX Runtime's errors are pybind11 classes deriving from Exception
            from onnx.reference import ReferenceEvaluator

            reason = newer_than_runtime(proto) or \
                str(e).split(" was false. ")[-1].split(" If you need")[0].strip()[:160]
            try:
                evaluator = ReferenceEvaluator(proto)
            except Exception as e2:  # noqa: BLE001 -- neither runtime loads it: say why for both
                raise CandidateError(f"{self.name}: ONNX Runtime cannot load the graph: {type(e).__name__}: {e}; nor "
                                     f"can onnx.reference.ReferenceEvaluator: {type(e2).__name__}: {e2}") from None
            return (f"onnx.reference.ReferenceEvaluator; ONNX Runtime refuses it: {reason}",
                    lambda feeds: evaluator.run(None, feeds))

    def call(self, spec, params, x, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        if grad_output is not None or grad_hidden is not None:
            raise CandidateError(f"{self.name}: ONNX Runtime runs inference only; it has no gradients")
        if dropout_masks is not None:
            raise CandidateError(f"{self.name}: an ONNX model applies no dropout (inference)")
        if not self.runs(spec, x, hx, lengths):
            raise CandidateError(f"{self.name}: its graph runs {self.spec} on inputs of shape (T, B) "
                                 f"{self.fixed_shape} (None: any)" + ("" if self.takes_hx else ", from zero states")
                                 + ("" if self.takes_lengths else ", whole sequences") + f"; asked {spec}, "
                                 f"T={x.shape[0]}, B={x.shape[1]}")
        return self._run_file(x, hx, lengths, params)

    def runs(self, spec: Spec, x: np.ndarray, hx: tuple, lengths: Any) -> bool:
        """Whether the file's own graph runs this problem of its whole stack (its shape, states and lengths)."""
        fits = all(f is None or f == n for f, n in zip(self.fixed_shape, x.shape[:2], strict=True))
        return (spec == self.spec and fits and (lengths is None or self.takes_lengths)
                and (self.takes_hx or all(not np.any(h) for h in hx)))

    # -- ONNX's axes <-> the protocol's (time-major, torch's) ------------------------------------

    def _to_onnx(self, slot: str, a: np.ndarray) -> np.ndarray:
        """X (T, B, I) -> layout 1's (B, T, I); initial states (D, B, H) -> (B, D, H)."""
        return a.swapaxes(0, 1) if self.layout and self._single else a

    def _from_onnx(self, slot: str, a: np.ndarray) -> np.ndarray:
        """Y (T, D, B, H) or layout 1's (B, T, D, H) -> (T, B, D*H); Y_h, Y_c (B, D, H) -> (D, B, H)."""
        if slot == "Y":
            if a.ndim != 4:
                return a  # a graph's own output, already (T, B, D*H)
            a = a.transpose(1, 0, 2, 3) if self.layout else a.transpose(0, 2, 1, 3)  # (T, B, D, H)
            return a.reshape(a.shape[0], a.shape[1], -1)
        return a.swapaxes(0, 1) if self.layout and self._single else a

    def _feeds(self, x, hx, lengths, weights: dict) -> dict[str, np.ndarray]:
        dtype = self.tensor_dtype  # the file's (float16 for a float16 model: the values are float16's already)
        feeds = {n: v.astype(dtype) for n, v in weights.items()}
        feeds[self._x] = self._to_onnx("X", x.astype(dtype))
        if self._states:  # else the states are zero (compare passes zeros to a model that takes none)
            feeds.update((n, self._to_onnx("initial_h", h.astype(dtype))) for n, h in zip(self._states, hx,
                                                                                          strict=True))
        if self._lens is not None:
            feeds[self._lens] = np.asarray(np.full(x.shape[1], x.shape[0]) if lengths is None else lengths, np.int32)
        return feeds

    def _outputs(self, outs: list) -> dict[str, Any]:
        n_states = 2 if self.spec.lstm else 1
        if len(outs) < 1 + n_states:
            raise CandidateError(f"{self.name}: the graph has {len(outs)} outputs; expected output and "
                                 f"{'h_n, c_n' if n_states == 2 else 'h_n'}")
        return {"output": self._from_onnx("Y", outs[0]),
                "hidden": tuple(self._from_onnx(s, o) for s, o in zip(_OUT_SLOTS[1:1 + n_states], outs[1:1 + n_states],
                                                                      strict=True))}

    def _run_file(self, x, hx, lengths, params):
        run, weights = self._graph_with(params)
        return self._outputs(run(self._feeds(x, hx, lengths, weights)))

    # -- the file's graph on other weights -------------------------------------------------------

    def _graph_with(self, params: dict) -> tuple[Any, dict[str, np.ndarray]]:
        """(how to run the file's graph on ``params``, the weight feeds): its graph inputs fed, its constants
        replaced in a copy of the graph (one session per weights, the last few kept)."""
        if all(np.array_equal(params[k], self.own_params[k]) for k in self.own_params):
            return self._run_proto, self._weight_feeds
        values = node_weights(self.nodes, self.spec, params, self.tensor_dtype)
        feeds = {n: v for n, v in values.items() if n in self._weight_feeds}
        constants = {n: v for n, v in values.items() if n not in self._weight_feeds}
        if not constants:
            return self._run_proto, feeds
        key = b"".join(n.encode() + v.tobytes() for n, v in sorted(constants.items()))
        if key not in self._weight_sessions:
            from onnx import numpy_helper

            proto = type(self._proto)()
            proto.CopyFrom(self._proto)
            for init in proto.graph.initializer:
                if init.name in constants:
                    init.CopyFrom(numpy_helper.from_array(constants[init.name], init.name))
            for node in proto.graph.node:
                if node.op_type == "Constant" and node.output[0] in constants:
                    for a in node.attribute:
                        if a.name == "value":
                            a.t.CopyFrom(numpy_helper.from_array(constants[node.output[0]], node.output[0]))
            while len(self._weight_sessions) >= 8:
                self._weight_sessions.pop(next(iter(self._weight_sessions)))
            self._weight_sessions[key] = self._runtime(proto)[1]
        return self._weight_sessions[key], feeds

    def part(self, first: int, stop: int) -> OnnxNodes:
        return OnnxNodes(self, self.spec.layers(first, stop))

    def rebuild(self) -> OnnxNodes:
        return OnnxNodes(self, self.spec)

    def check_expected(self) -> ExpectedOutputs | None:
        """The reference (float64) on the test data's inputs against its expected outputs; None without them."""
        return check_expected(self)


def _with_all_outputs(onnx: Any, proto: Any, node: Any, lstm: bool, dtype: np.dtype) -> Any:
    """A copy of a one-node graph that returns all of the node's outputs: Y, Y_h (, Y_c), in that order."""
    from onnx import helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    n = next(m for m in model.graph.node if m.op_type == node.op_type and list(m.input) == list(node.input))
    names = list(n.output) + [""] * (3 - len(n.output))
    taken = {o for m in model.graph.node for o in m.output} | {i.name for i in model.graph.input}
    for k, slot in enumerate(_OUT_SLOTS[:3 if lstm else 2]):
        if not names[k]:
            names[k] = next(f"{slot}{'_' * i}" for i in range(1, 100) if f"{slot}{'_' * i}" not in taken)
    del n.output[:]
    n.output.extend(names[:3 if lstm else 2])
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    del model.graph.output[:]
    model.graph.output.extend(helper.make_tensor_value_info(o, elem, None) for o in n.output)
    return model



def load(path: str, *, inputs: Any = None, **_: Any) -> OnnxCandidate:
    """The registry's reader of ``.onnx`` files: the file's own graph, its graph inputs' values from ``inputs``."""
    return OnnxCandidate(path, inputs=inputs)
