"""Model files checked as they are: their weights, their configuration and their runtime.

============  ============================================================  ===================================
file          runtime (the candidate)                                       weights and configuration
============  ============================================================  ===================================
.onnx         ONNX Runtime (``pip install 'rnn-reference[verify]'``)        the LSTM/GRU/RNN nodes' W, R, B, P
.pt / .pth    torch: torch.nn.<mode> with a state_dict loaded                the state_dict's / the module's
              (configuration from the shapes), or, with trust_pickle=True,
              a pickled module as it is
.npz          torch.nn.<mode> (or a candidate you give) on these weights    arrays in the torch, keras, onnx or
                                                                            ifog layout (names tell which)
.keras        Keras 3, the saved model's own recurrent layers                the layers' own (loaded in Keras's
              (:mod:`reference.verify.keras_layers`)                         safe mode)
============  ============================================================  ===================================

An .npz holds torch's names (``weight_ih_l0``, ...), or one layer's foreign
arrays (``W``, ``R``, ``B``), or several layers' as ``"l0/kernel"``,
``"l0_reverse/kernel"``, ``"l1/kernel"`` (ONNX arrays may keep their direction
axis under ``"l0/W"``).

Reading a file runs no code from it (:mod:`reference.verify.files`): a .pt/.pth
is read with torch's ``weights_only=True``, so a state_dict loads and a pickled
module is refused with a ValueError that says why, unless ``trust_pickle=True``
(``rnn-check --trust-pickle``) says the file is trusted: unpickling it then runs
whatever code it names, as you. An .npz is read with ``allow_pickle=False``; an
.onnx without external data from outside its directory. A missing, truncated,
mislabelled or oversized file is refused by name before anything is allocated.

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
``OnnxCandidate.check_expected`` runs the reference on the folder's inputs against
them (float32 table). The operators' attributes map onto RNNConfig's fields:
``direction="reverse"`` to ``reverse``, ``layout=1`` to batch-major inputs and ONNX's
axes for Y (B, T, D, H) and Y_h/Y_c (B, D, H), ``linear_before_reset`` to
``reset_after``, ``activations`` (with alpha/beta), ``clip``, ``input_forget`` and
``P`` (rows i, o, f) to ``weight_p`` (rows i, f, o). An attribute the reference cannot
express is refused by name, with its value and what is supported.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import compact_activation_arguments
from .bounds import one_check
from .candidates import Candidate, CandidateError, is_reference_module, is_torch_module, spec_of_module, to_numpy
from .files import MAX_ARRAY_BYTES, MAX_INPUT_ELEMENTS, TORCH_SUFFIXES, Limits, check_file, read_npz
from .layouts import detect_layout, import_state_dict, mode_from_shapes, torch_mode
from .onnx_versions import make_model, unsafe_rnn_arguments
from .spec import Spec, core_supports


@one_check
def load_weights(source: Any, *, layout: str | None = None, mode: str | None = None,
                 reset_after: bool | None = None, trust_pickle: bool = False, limits: Limits | None = None
                 ) -> tuple[dict[str, np.ndarray], Spec, str]:
    """(torch state_dict of NumPy arrays, configuration, the layout it came in) from any weight source.

    ``source``: a file path (.onnx, .npz, .pt/.pth), a torch or reference module,
    a torch state_dict, ``{"l0": {...}, ...}`` in a foreign layout, or one
    layer's foreign arrays. ``trust_pickle``: let a .pt/.pth that is a pickled
    module load in full, which runs the code it names (see the module docstring).
    ``limits``: what may be read (:class:`~reference.verify.files.Limits`).
    """
    if isinstance(source, (str, os.PathLike)):
        path = check_file(source, "weights")
        if path.endswith(".onnx"):
            cand = OnnxCandidate(path)
            return cand.own_params, cand.spec, "onnx"
        if path.endswith(".npz"):
            arrays = read_npz(path, "weights")
            return weights_from_mapping(arrays, layout=layout, mode=mode, reset_after=reset_after)
        if path.endswith(TORCH_SUFFIXES):
            model = load_model(path, mode=mode, trust_pickle=trust_pickle)
            assert model.own_params is not None and model.spec is not None  # a file's candidate holds both
            return model.own_params, model.spec, "torch"
        raise ValueError(f"weights: expected a .onnx, .npz, {', '.join(TORCH_SUFFIXES)} file, got {path!r}")
    if is_torch_module(source) or is_reference_module(source):
        state = {k: to_numpy(v) for k, v in source.state_dict().items()}
        ra = bool(getattr(source, "reset_after", True)) if reset_after is None else reset_after
        return state, spec_of_module(source, mode, reset_after=ra), "torch"
    if isinstance(source, Mapping):
        return weights_from_mapping(source, layout=layout, mode=mode, reset_after=reset_after)
    raise TypeError(f"weights: expected a file path, a module or a mapping of arrays, got {type(source).__name__}")


def weights_from_mapping(arrays: Mapping[str, Any], *, layout: str | None = None, mode: str | None = None,
                         reset_after: bool | None = None) -> tuple[dict[str, np.ndarray], Spec, str]:
    """See :func:`load_weights` (mappings and .npz contents)."""
    nested: dict[str, Any] = {}
    for key, value in arrays.items():
        if "/" in key:
            group, _, name = key.partition("/")
            nested.setdefault(group, {})[name] = value
        else:
            nested[key] = value
    if nested and all(isinstance(v, Mapping) for v in nested.values()):
        first = next(iter(nested.values()))
        layout = layout or detect_layout(first)
        if layout == "torch":
            raise ValueError("weights: torch's names are flat (weight_ih_l0, ...), not grouped by layer")
    else:
        if any(isinstance(v, Mapping) for v in nested.values()):
            raise ValueError(f"weights: mixes layer groups and arrays at the top level: {sorted(nested)}")
        layout = layout or detect_layout(nested)
        if layout == "torch":
            state = {k: to_numpy(v) for k, v in nested.items()}
            ra = True if reset_after is None else reset_after
            return state, Spec.from_state_dict(state, mode, reset_after=ra), "torch"
        nested = {"l0": nested}
    ra = True if reset_after is None else reset_after
    mode = mode or mode_from_shapes(layout, next(iter(nested.values())))
    state = import_state_dict(layout, torch_mode(mode), nested, reset_after=ra)
    spec_mode = mode if mode in ("RNN_TANH", "RNN_RELU") else {"RNN": "RNN_TANH"}.get(torch_mode(mode), mode)
    return state, Spec.from_state_dict(state, spec_mode, reset_after=ra), layout


@one_check
def load_model(path: str | os.PathLike[str], *, mode: str | None = None, layout: str | None = None,
               trust_pickle: bool = False, inputs: Any = None, limits: Limits | None = None) -> Candidate:
    """A candidate that runs the file's own runtime on the file's own weights (see the module docstring).

    ``trust_pickle``: let a .pt/.pth that is a pickled module load in full, which
    runs the code it names; by default only a state_dict (``weights_only=True``) loads.
    ``inputs`` (.onnx only): values of graph inputs that are not constants, see :func:`read_test_data`.
    ``limits``: what may be read, the model, its weights and test data together
    (:class:`~reference.verify.files.Limits`; default 2 GiB per file, 4 GiB in all).
    """
    path = check_file(path, "model")
    if inputs is not None and not path.endswith(".onnx"):
        raise ValueError(f"inputs: only an .onnx model takes graph input values, got {os.path.basename(path)!r}")
    if path.endswith(".onnx"):
        return OnnxCandidate(path, inputs=inputs)
    if path.endswith(".keras"):
        from .keras_layers import load_keras_model

        return load_keras_model(path)  # Keras's safe mode: no lambda or arbitrary code is deserialised
    if path.endswith((*TORCH_SUFFIXES, ".npz")):
        try:
            from torch_impl.compare import load_torch_file, torch_nn_candidate
        except ImportError as e:
            raise ImportError(f"model: {os.path.basename(path)} needs torch to run (pip install torch): {e}") from e
        if path.endswith(".npz"):
            state, spec, _ = load_weights(path, layout=layout, mode=mode)
            return torch_nn_candidate(spec, state, name=os.path.basename(path))
        return load_torch_file(path, mode=mode, trust_pickle=trust_pickle)
    raise ValueError(f"model: expected a .onnx, .keras, .npz or {'/'.join(TORCH_SUFFIXES)} file, got {path!r}")


# -- ONNX ----------------------------------------------------------------------------------------

_SLOTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")  # the operators' inputs, in order
_OUT_SLOTS = ("Y", "Y_h", "Y_c")
_WEIGHT_SLOTS = ("W", "R", "B", "P")
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
_COMMON_ATTRIBUTES = {"activation_alpha", "activation_beta", "activations", "clip", "direction", "hidden_size", "layout"}
_ATTRIBUTES = {"LSTM": _COMMON_ATTRIBUTES | {"input_forget"}, "GRU": _COMMON_ATTRIBUTES | {"linear_before_reset"},
               "RNN": _COMMON_ATTRIBUTES}


def _onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ImportError("checking .onnx files needs onnx and onnxruntime: pip install 'rnn-reference[verify]'"
                          f" ({e})") from e
    return onnx, onnxruntime


@dataclass(frozen=True)
class TestData:
    """Values for an ONNX model's graph inputs (and expected graph outputs), from a test-data folder or an .npz.

    ``files`` names where each value came from, for messages ("input_1.pb", "data.npz['W']").
    """

    where: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    files: dict[str, str]


def read_test_data(source: Any, proto: Any) -> TestData:
    """The values ``source`` gives ``proto``'s graph inputs, checked against their declared types and shapes.

    ``source``: a folder of ONNX test data (``input_<j>.pb`` TensorProto files matched to the
    graph's inputs by order, as ONNX's node tests define, and optionally ``output_<j>.pb``
    matched to its outputs; a case folder holding ``test_data_set_0`` is read there), an .npz
    keyed by graph input name, or a mapping of the same. Raises ValueError naming the file,
    the input and the shapes.
    """
    from onnx import TensorProto, numpy_helper

    inputs = _graph_inputs(proto)
    by_name = {i.name: i for i in inputs}
    if isinstance(source, Mapping) or (isinstance(source, (str, os.PathLike)) and os.fspath(source).endswith(".npz")):
        where = "inputs" if isinstance(source, Mapping) else os.fspath(source)
        if isinstance(source, Mapping):
            arrays = {k: np.asarray(v) for k, v in source.items()}
        else:
            arrays = read_npz(check_file(where, "inputs"), "inputs")
        unknown = sorted(set(arrays) - set(by_name))
        if unknown:
            raise ValueError(f"{where}: {unknown} are not graph inputs of the model; its inputs are {list(by_name)}")
        files = {k: f"{os.path.basename(where)}[{k!r}]" for k in arrays}
        for k, a in arrays.items():
            _check_declared(files[k], by_name[k], a)
        return TestData(where, arrays, {}, files)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"inputs: expected a test-data folder, an .npz or a mapping of arrays, got "
                        f"{type(source).__name__}")
    folder = os.fspath(source)
    if not os.path.isdir(folder):
        raise ValueError(f"inputs: expected a test-data folder (input_0.pb, ...) or an .npz, got {folder!r}")
    if not _numbered(folder, "input") and os.path.isdir(os.path.join(folder, "test_data_set_0")):
        folder = os.path.join(folder, "test_data_set_0")

    def read(prefix: str, values: list) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        files = _numbered(folder, prefix)
        if len(files) > len(values):
            raise ValueError(f"{folder}: {len(files)} {prefix}_*.pb files, but the model has {len(values)} graph "
                             f"{prefix}s {[v.name for v in values]} ({prefix}_<j>.pb is the graph's {prefix} j)")
        out, where = {}, {}
        for j, path in enumerate(files):
            t = TensorProto()
            with open(path, "rb") as f:
                t.ParseFromString(f.read())
            _check_test_tensor(t, path)
            vi = values[j]
            if t.name and t.name != vi.name:
                raise ValueError(f"{path}: holds {t.name!r}, but the graph's {prefix} {j} is {vi.name!r} "
                                 f"({prefix}_<j>.pb is the graph's {prefix} j)")
            out[vi.name], where[vi.name] = numpy_helper.to_array(t), os.path.basename(path)
            if prefix == "input":
                _check_declared(f"{folder}/{where[vi.name]}", vi, out[vi.name])
        return out, where

    ins, files = read("input", inputs)
    outs, _ = read("output", list(proto.graph.output))
    if not ins:
        raise ValueError(f"inputs: {folder} holds no input_*.pb files (ONNX test data: input_0.pb, input_1.pb, ... in "
                         "the order of the graph's inputs)")
    return TestData(folder, ins, outs, files)


def _check_test_tensor(t: Any, path: str) -> None:
    """A test-data tensor holds its own data (none from other files), within the size limits, as it declares."""
    from onnx import TensorProto, helper

    dims = tuple(t.dims)
    if t.data_location == TensorProto.EXTERNAL:
        raise ValueError(f"{path}: keeps its data in another file; test data is read from the .pb file itself")
    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: data type {t.data_type} is not a numeric type") from None
    declared = math.prod(dims) * itemsize
    if any(d < 0 for d in dims) or declared > MAX_ARRAY_BYTES:
        raise ValueError(f"{path}: declares shape {dims}, negative or over the limit of {MAX_ARRAY_BYTES} bytes")
    if t.raw_data and len(t.raw_data) != declared:
        raise ValueError(f"{path}: declares shape {dims} ({declared} bytes) but holds {len(t.raw_data)} bytes")


def _numbered(folder: str, prefix: str) -> list[str]:
    """``prefix_<j>.pb`` in ``folder``, by j; ValueError where a number is missing."""
    found = {}
    for f in os.listdir(folder):
        stem, ext = os.path.splitext(f)
        head, _, num = stem.rpartition("_")
        if ext == ".pb" and head == prefix and num.isdigit():
            found[int(num)] = os.path.join(folder, f)
    missing = sorted(set(range(len(found))) - set(found))
    if missing:
        raise ValueError(f"{folder}: {prefix}_{missing[0]}.pb is missing ({prefix} files are numbered from 0 "
                         f"without gaps; found {sorted(found)})")
    return [found[j] for j in sorted(found)]


def _graph_inputs(proto: Any) -> list:
    """The graph's inputs that are not initializers: what a caller feeds, in order."""
    inits = {i.name for i in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in inits]


def _declared(vi: Any) -> tuple[np.dtype | None, tuple | None]:
    """A graph input's declared (dtype, shape); None entries are dimensions without a fixed size."""
    from onnx import helper

    tt = vi.type.tensor_type
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else None
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim) if tt.HasField("shape") \
        else None
    return dtype, shape


def _check_declared(label: str, vi: Any, a: np.ndarray) -> None:
    dtype, shape = _declared(vi)
    if dtype is not None and a.dtype != dtype:
        raise ValueError(f"{label}: input {vi.name!r} is {a.dtype} of shape {a.shape}; the model declares {dtype}")
    if shape is not None and (len(shape) != a.ndim or any(d is not None and d != n for d, n in zip(shape, a.shape,
                                                                                                   strict=False))):
        shown = tuple("?" if d is None else d for d in shape)
        raise ValueError(f"{label}: input {vi.name!r} has shape {a.shape}; the model declares {shown}")


@dataclass
class ExpectedOutputs:
    """The reference on a test-data folder's inputs against the folder's expected outputs (output_*.pb)."""

    where: str
    tensors: list
    note: str = ""

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tensors)

    def __str__(self) -> str:
        t0 = self.tensors[0]
        lines = [f"expected outputs {self.where}/output_*.pb against the reference on the folder's inputs (float64)"
                 + (f"; {self.note}" if self.note else ""),
                 f"  tolerance rtol {t0.rtol:.0e} atol {t0.atol:.0e}   (max|a - d| <= atol + rtol * max|d|, d the "
                 + "expected output)"]
        width = max(len(t.name) for t in self.tensors) + 2
        lines.append(f"  {'tensor':<{width}}{'max abs err':>12}{'rel err':>12}  status")
        for t in self.tensors:
            nums = f"{t.max_abs:>12.2e}{t.rel:>12.2e}" if not math.isnan(t.max_abs) else f"{'-':>12}{'-':>12}"
            lines.append(f"  {t.name:<{width}}{nums}  {'ok' if t.passed else 'FAIL'}" + (f"  ({t.note})" if t.note
                                                                                           else ""))
        n_ok = sum(t.passed for t in self.tensors)
        lines.append(f"RESULT (expected outputs): {'MATCH' if self.passed else 'MISMATCH'} "
                     f"({n_ok}/{len(self.tensors)} tensors within tolerance)")
        return "\n".join(lines)


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
    spec: Spec  # the file's own configuration, weights and dtype, set in __init__
    own_params: dict[str, np.ndarray]
    dtype: np.dtype

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
        self.spec, self.own_params, self.dtype = _spec_and_weights(self.nodes, self.data)
        node, attrs, arrays, sources = self.nodes[0]
        graph_inputs = [i.name for i in _graph_inputs(proto)]
        self._graph_outputs = [o.name for o in proto.graph.output]
        self.layout = int(attrs.get("layout", 0))
        # one node fed straight from the graph's inputs, each of them (ONNX's node tests): fed and read slot by slot
        self._single = len(self.nodes) == 1 and sources.get("X") in graph_inputs and set(graph_inputs) <= set(
            sources.values())
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
            proto = _with_all_outputs(onnx, proto, node, self.spec.lstm, self.dtype)
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
        self._chain_sessions: dict = {}

    def _runtime(self, proto: Any) -> tuple[str, Any]:
        """("onnxruntime", run) or, where ONNX Runtime refuses the model, ("onnx.reference...: why", run)."""
        from .onnx_versions import newer_than_runtime

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
        fits = all(f is None or f == n for f, n in zip(self.fixed_shape, x.shape[:2], strict=True))
        zero_hx = all(not np.any(h) for h in hx)
        if (spec == self.spec and (lengths is None or self.takes_lengths) and fits and (self.takes_hx or zero_hx)
                and all(np.array_equal(params[k], self.own_params[k]) for k in self.own_params)):
            return self._run_file(x, hx, lengths)
        return self._run_nodes(spec, params, x, hx, lengths)

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

    def _feeds(self, x, hx, lengths) -> dict[str, np.ndarray]:
        feeds = {n: v.astype(self.dtype) for n, v in self._weight_feeds.items()}
        feeds[self._x] = self._to_onnx("X", x.astype(self.dtype))
        if self._states:  # else the states are zero (compare passes zeros to a model that takes none)
            feeds.update((n, self._to_onnx("initial_h", h.astype(self.dtype))) for n, h in zip(self._states, hx,
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

    def _run_file(self, x, hx, lengths=None):
        return self._outputs(self._run_proto(self._feeds(x, hx, lengths)))

    def _run_nodes(self, spec, params, x, hx, lengths):
        """The same operator, layer by layer, on ``params``: what localisation's sub-problems run."""
        from .layouts import export_state_dict
        from .spec import layer_params

        D, H = spec.D, spec.hidden_size
        h_n, c_n = [], []
        for layer in range(spec.num_layers):
            sub = spec.layer(layer)
            lp = layer_params(params, layer)
            groups = export_state_dict("onnx", sub, {k: v for k, v in lp.items() if not k.startswith("weight_p")})
            sfx = ["", "_reverse"][:D]
            stack = lambda name, groups=groups, sfx=sfx: np.stack([groups[f"l0{s}"][name] for s in sfx]
                                                                  ).astype(self.dtype)
            feeds = {"X": x.astype(self.dtype), "W": stack("W"), "R": stack("R"),
                     "initial_h": hx[0][layer * D:(layer + 1) * D].astype(self.dtype)}
            if spec.bias:
                feeds["B"] = stack("B")
            if lengths is not None:
                feeds["sequence_lens"] = np.asarray(lengths, dtype=np.int32)
            if spec.lstm:
                feeds["initial_c"] = hx[1][layer * D:(layer + 1) * D].astype(self.dtype)
            if spec.peephole:
                feeds["P"] = np.stack([swap_peepholes(lp[f"weight_p_l0{s}"]) for s in sfx]).astype(self.dtype)
            y, *states = self._node_session(sub, lengths is not None)(feeds)
            T, B = y.shape[0], y.shape[2]
            x = y.transpose(0, 2, 1, 3).reshape(T, B, D * H)  # (T, B, D*H)
            h_n.append(states[0])
            if spec.lstm:
                c_n.append(states[1])
        hidden = (np.concatenate(h_n),) + ((np.concatenate(c_n),) if spec.lstm else ())
        return {"output": x, "hidden": hidden}

    def _node_session(self, spec: Spec, with_lengths: bool):
        key = (spec, with_lengths)
        if key not in self._chain_sessions:
            model = _single_node_model(spec, self.dtype, with_lengths)
            if self.runtime == "onnxruntime":
                session = self._ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
                self._chain_sessions[key] = lambda feeds: session.run(None, feeds)
            else:
                from onnx.reference import ReferenceEvaluator

                evaluator = ReferenceEvaluator(model)
                self._chain_sessions[key] = lambda feeds: evaluator.run(None, feeds)
        return self._chain_sessions[key]

    # -- the test data's expected outputs -------------------------------------------------------

    def check_expected(self) -> ExpectedOutputs | None:
        """The reference (float64) on the test data's inputs against its expected outputs; None without them."""
        from reference.tolerances import candidate_tol

        from .candidates import reference_run
        from .compare import check_tensor

        if self.data is None or not self.data.outputs:
            return None
        data, names = self.data, [self._x, *self._states]
        absent = [n for n in names if n not in data.inputs]
        if absent:
            raise ValueError(f"inputs: {data.where} has expected outputs but no value for the graph inputs {absent}")
        x = self._to_onnx("X", data.inputs[self._x]).astype(np.float64)  # (T, B, I): the swap is its own inverse
        B = x.shape[1]
        hx = tuple(self._from_onnx("Y_h", data.inputs[n]).astype(np.float64) for n in self._states) or \
            tuple(np.zeros(s) for s in self.spec.state_shapes(B))
        lengths = None
        if self._lens is not None and self._lens in data.inputs:
            lengths = np.asarray(data.inputs[self._lens], dtype=np.int64)  # (B,)
        params = {k: np.asarray(v, dtype=np.float64) for k, v in self.own_params.items()}
        res, _, _ = reference_run(self.spec.reference(params), self.spec, x, hx, None, None, lengths, None)
        got = {"Y": res["output"], "Y_h": res["hidden"][0], "Y_c": res["hidden"][-1]}
        tol = candidate_tol(self.dtype, "cpu", "forward")
        node = self.nodes[0][0]
        tensors = []
        for j, out in enumerate(self._graph_outputs):
            if out not in data.outputs:
                continue
            slot = _OUT_SLOTS[list(node.output).index(out)] if self._single else _OUT_SLOTS[j]
            expected = self._from_onnx(slot, np.asarray(data.outputs[out]))
            tensors.append(check_tensor(f"{slot} (output_{j}.pb)", "forward", got[slot], expected, tol,
                                        0 if slot == "Y" else None))
        note = "" if lengths is None else f"lengths {lengths.tolist()}"
        return ExpectedOutputs(data.where, tensors, note)


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


def load_onnx(onnx: Any, path: str) -> Any:
    """The ModelProto of ``path``, its external data read only from files inside the model's directory."""
    from onnx import TensorProto, external_data_helper

    name = os.path.basename(path)
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 -- protobuf's DecodeError, or whatever else corrupt bytes make it raise
        raise ValueError(f"model: {name} is not a readable ONNX model (truncated or corrupt): {e}") from None
    base = os.path.dirname(os.path.abspath(path))
    external = [t for t in _tensors(proto) if t.data_location == TensorProto.EXTERNAL]
    for t in external:
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        target = os.path.normpath(os.path.join(base, location))
        if not location or os.path.isabs(location) or os.path.commonpath([base, target]) != base:
            raise ValueError(f"model: {name}: tensor {t.name!r} keeps its data at {location!r}, outside the "
                             "model's directory; external data is read only from files beside the model")
        if not os.path.isfile(target):
            raise ValueError(f"model: {name}: tensor {t.name!r} keeps its data in {location!r}, which is missing")
        size = os.path.getsize(target) - int(info.get("offset", 0))
        if int(info.get("length", size)) > size:
            raise ValueError(f"model: {name}: tensor {t.name!r} declares {info['length']} bytes in {location!r}, "
                             f"which holds {size} from its offset")
    if external:
        check_onnx_sizes(onnx, proto, name)  # before the external data is read
        external_data_helper.load_external_data_for_model(proto, base)
    return proto


def _tensors(proto: Any) -> list[Any]:
    """The graph's constant tensors, as the verifier reads them: initializers and Constant nodes' values."""
    consts = list(proto.graph.initializer)
    consts += [a.t for node in proto.graph.node if node.op_type == "Constant" for a in node.attribute if a.name == "value"]
    return consts


def check_onnx_sizes(onnx: Any, proto: Any, name: str) -> None:
    """Refuse, from the declared shapes alone, a tensor whose shape its data do not fill or that exceeds the
    limits of :mod:`reference.verify.files`, and a fixed input shape too large to draw."""
    from onnx import TensorProto

    for t in _tensors(proto):
        where = f"model: {name}: tensor {t.name!r}"
        dims = tuple(t.dims)
        if any(d < 0 for d in dims):
            raise ValueError(f"{where}: declares a negative dimension, shape {dims}")
        try:
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: data type {t.data_type} is not a numeric type") from None
        declared = math.prod(dims) * itemsize
        if declared > MAX_ARRAY_BYTES:
            raise ValueError(f"{where}: declares shape {dims} ({declared:.3g} bytes), over the limit of "
                             f"{MAX_ARRAY_BYTES} bytes")
        if t.data_location == TensorProto.EXTERNAL:
            length = {e.key: e.value for e in t.external_data}.get("length")
            held = None if length is None else int(length)
        else:
            held = len(t.raw_data) if t.raw_data else None
        if held is not None and held != declared:
            raise ValueError(f"{where}: declares shape {dims} ({declared} bytes) but holds {held} bytes")
    constants = {t.name for t in proto.graph.initializer}
    for value in proto.graph.input:
        if value.name in constants:
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim)
        fixed = math.prod(d for d in dims if d is not None)
        if fixed > MAX_INPUT_ELEMENTS:
            raise ValueError(f"model: {name}: input {value.name!r} declares shape {dims} ({fixed:.3g} elements), over "
                             f"the limit of {MAX_INPUT_ELEMENTS} the check can draw: export it with dynamic axes "
                             "(dynamic_axes= in torch.onnx.export)")


def _recurrent_nodes(onnx: Any, proto: Any, fed: Mapping[str, np.ndarray]) -> list[tuple[Any, dict, dict, dict]]:
    """[(node, attributes, {slot: array}, {slot: graph input name})] for each LSTM/GRU/RNN node, in graph order.

    A slot's array is a constant of the graph or the value ``fed`` gives its graph input.
    """
    from onnx import numpy_helper

    consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(a.t)
    graph_inputs = {i.name for i in _graph_inputs(proto)}
    nodes = []
    for k, node in enumerate(n for n in proto.graph.node if n.op_type in ("LSTM", "GRU", "RNN")):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: (v.decode() if isinstance(v, bytes) else [s.decode() if isinstance(s, bytes) else s for s in v]
                     if isinstance(v, list) else v) for k, v in attrs.items()}
        arrays: dict[str, np.ndarray] = {}
        sources: dict[str, str] = {}
        unresolved: dict[str, list[str]] = {"input": [], "computed": []}
        for slot, name in zip(_SLOTS, node.input, strict=False):  # trailing optional inputs may be absent
            if not name:
                continue
            if name in graph_inputs:
                sources[slot] = name
            if name in consts:
                arrays[slot] = consts[name]
            elif name in fed:
                arrays[slot] = np.asarray(fed[name])
            elif slot in _WEIGHT_SLOTS:
                unresolved["input" if name in graph_inputs else "computed"].append(slot)
        where = f"ONNX node {k} ({node.op_type} {node.name!r})"
        if unresolved["input"]:
            names = [sources[s] for s in unresolved["input"]]
            raise CandidateError(f"{where}: its {unresolved['input']} are graph inputs {names} with no value: give "
                                 "them with --inputs DIR (a test-data folder of input_*.pb) or an .npz keyed by input "
                                 "name (load_model(..., inputs=...))")
        if unresolved["computed"]:
            raise CandidateError(f"{where}: its {unresolved['computed']} are not constants of the graph (computed "
                                 "weights cannot be checked as they are)")
        nodes.append((node, attrs, arrays, sources))
    if not nodes:
        raise CandidateError("ONNX model: no LSTM, GRU or RNN node in the graph")
    return nodes


def swap_peepholes(p: Any) -> np.ndarray:
    """ONNX's P rows (p_i, p_o, p_f) <-> the reference's weight_p rows (p_i, p_f, p_o): (3H,) -> (3H,).

    The same swap of the last two blocks goes either way.
    """
    i, second, third = np.split(np.asarray(p), 3)
    return np.concatenate([i, third, second])  # (3H,)


def _unsupported(where: str, attribute: str, value: Any, supported: str, field: str) -> None:
    """Refuse a value the core has no field for (yet): the attribute, the value and what is supported."""
    if not core_supports(field):
        raise CandidateError(f"{where}: attribute {attribute}={value!r} has no torch equivalent; the reference runs "
                             f"{supported} (the core's RNNConfig has no field {field!r})")


def _spec_fields(op: str, attrs: Mapping[str, Any], peephole: bool, where: str) -> dict[str, Any]:
    """The Spec fields one node's attributes say (ONNX's names mapped onto RNNConfig's); CandidateError naming the
    attribute, its value and what is supported where the reference cannot express it."""
    unknown = sorted(set(attrs) - _ATTRIBUTES[op])
    if unknown:
        raise CandidateError(f"{where}: attribute {unknown[0]}={attrs[unknown[0]]!r} is not one the reference knows; "
                             f"{op}'s are {sorted(_ATTRIBUTES[op])}")
    out: dict[str, Any] = {}
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise CandidateError(f"{where}: attribute direction={direction!r}; expected 'forward', 'reverse' or "
                             "'bidirectional'")
    if direction == "reverse":
        _unsupported(where, "direction", direction, "'forward' and 'bidirectional' (a reverse layer alone needs "
                     "RNNConfig.reverse)", "reverse")
        out["reverse"] = True
    out["bidirectional"] = direction == "bidirectional"
    if attrs.get("layout", 0) not in (0, 1):
        raise CandidateError(f"{where}: attribute layout={attrs['layout']!r}; supported: 0 (time-major) and 1 "
                             "(batch-major: batch_first)")
    default = _DEFAULT_ACTIVATIONS[op]
    acts = tuple(attrs.get("activations") or default)
    if op == "RNN" and set(acts) <= {"Tanh"}:
        out["mode"] = "RNN_TANH"
    elif op == "RNN" and set(acts) == {"Relu"}:
        out["mode"] = "RNN_RELU"
    else:
        out["mode"] = "RNN_TANH" if op == "RNN" else op
        if acts not in (default, default * 2):
            _unsupported(where, "activations", list(acts), "Tanh or Relu" if op == "RNN" else f"{list(default)} "
                         "(torch's)", "activations")
            out["activations"] = acts
            if "activation_alpha" in attrs or "activation_beta" in attrs:
                from reference.config import aligned_activation_arguments

                try:  # ONNX lists values only for the functions that take them; RNNConfig has one per function
                    out["activation_alpha"], out["activation_beta"] = aligned_activation_arguments(
                        acts, attrs.get("activation_alpha"), attrs.get("activation_beta"))
                except ValueError as e:
                    raise CandidateError(f"{where}: attributes activations={list(acts)}, activation_alpha="
                                         f"{attrs.get('activation_alpha')}, activation_beta="
                                         f"{attrs.get('activation_beta')}: {e}") from None
    if attrs.get("clip") is not None:
        _unsupported(where, "clip", attrs["clip"], "cells without clipping (torch's)", "clip")
        out["clip"] = float(attrs["clip"])
    if attrs.get("input_forget", 0):
        _unsupported(where, "input_forget", attrs["input_forget"], "input_forget=0 (torch's)", "input_forget")
        out["input_forget"] = True
    if op == "GRU":
        lbr = attrs.get("linear_before_reset", 0)
        if lbr not in (0, 1):
            raise CandidateError(f"{where}: attribute linear_before_reset={lbr!r}; expected 0 or 1")
        out["reset_after"] = bool(lbr)
    if peephole:
        if not core_supports("peephole"):
            raise CandidateError(f"{where}: has peephole weights P; the reference runs LSTMs without peepholes "
                                 "(torch's) only (the core's RNNConfig has no field 'peephole')")
        out["peephole"] = True
    return out


def _check_fit(where: str, op: str, attrs: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
               label: Any) -> None:
    """Every array a node is given has the shape its attributes and W imply; ValueError naming the input."""
    W, R = np.asarray(arrays["W"]), np.asarray(arrays["R"])
    D = 2 if attrs.get("direction") == "bidirectional" else 1
    H = int(attrs.get("hidden_size", R.shape[-1] if R.ndim == 3 else 0))
    GH = _GATES[op] * H
    I = W.shape[-1] if W.ndim == 3 else "I"
    x = arrays.get("X")
    B: Any = "B"
    if x is not None and x.ndim == 3:
        B = x.shape[0] if attrs.get("layout", 0) else x.shape[1]
    layout = attrs.get("layout", 0)
    state = (B, D, H) if layout else (D, B, H)
    expected = {"X": (("B", "T", I) if layout else ("T", "B", I)), "W": (D, GH, I), "R": (D, GH, H),
                "B": (D, 2 * GH), "sequence_lens": (B,), "initial_h": state, "initial_c": state, "P": (D, 3 * H)}
    for slot, a in arrays.items():
        want = expected[slot]
        shape = np.shape(a)
        if len(shape) != len(want) or any(isinstance(w, int) and w != n for w, n in zip(want, shape, strict=False)):
            raise ValueError(f"{label(slot)}: {slot} has shape {shape}, which does not fit {where} (hidden_size={H}, "
                             f"direction={attrs.get('direction', 'forward')!r}, layout={layout}): expected "
                             f"{tuple(want)}")


def _spec_and_weights(nodes, data: TestData | None = None) -> tuple[Spec, dict, np.dtype]:
    op = nodes[0][0].op_type
    nested: dict[str, dict] = {}
    peepholes: dict[str, np.ndarray] = {}
    fields_seen: list[dict] = []
    for layer, (node, attrs, arrays, sources) in enumerate(nodes):
        where = f"ONNX node {layer} ({node.op_type} {node.name!r})"
        if node.op_type != op:
            raise CandidateError(f"{where}: mixes {op} and {node.op_type} nodes; expected one kind of layer")

        def label(slot, sources=sources, where=where):
            name = sources.get(slot)
            if name is None:
                return f"{where}: constant {slot}"
            return f"{data.where}/{data.files[name]}: input {name!r}" if data and name in data.files else \
                f"input {name!r}"

        _check_fit(where, op, attrs, arrays, label)
        fields_seen.append(_spec_fields(op, attrs, "P" in arrays, where))
        nested[f"l{layer}"] = {k: arrays[k] for k in ("W", "R", "B") if k in arrays}
        if "P" in arrays:
            D = 2 if attrs.get("direction") == "bidirectional" else 1
            for d in range(D):
                peepholes[f"weight_p_l{layer}{'_reverse' if d else ''}"] = swap_peepholes(arrays["P"][d])
    if any(f != fields_seen[0] for f in fields_seen):
        raise CandidateError("ONNX model: its recurrent nodes differ in activations, direction, clip, input_forget, "
                             "peepholes or linear_before_reset; expected one module's layers")
    fields = dict(fields_seen[0])
    mode = fields.pop("mode")
    ra = fields.pop("reset_after", True)
    fields.pop("bidirectional")
    state = import_state_dict("onnx", torch_mode(mode), nested, reset_after=ra)
    state.update(peepholes)
    dtype = np.asarray(nested["l0"]["W"]).dtype
    try:
        spec = Spec.from_state_dict(state, mode, reset_after=ra, **fields)
    except (TypeError, ValueError) as e:
        attrs = nodes[0][1]
        shown = {k: attrs[k] for k in ("activations", "activation_alpha", "activation_beta", "clip", "input_forget",
                                       "direction") if k in attrs}
        named = ", ".join(f"{k}={v!r}" for k, v in shown.items()) or "(defaults)"
        raise CandidateError(f"ONNX node 0 ({nodes[0][0].op_type} {nodes[0][0].name!r}): attribute{'s' * (len(shown) > 1)} "
                             f"{named}: {e}") from None
    return spec, {k: np.asarray(v) for k, v in state.items()}, dtype


def _single_node_model(spec: Spec, dtype: np.dtype, with_lengths: bool) -> Any:
    """One node of the operator ``spec`` describes (time-major), with every input and output named."""
    from onnx import TensorProto, helper

    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    D, GH, H = spec.D, spec.G * spec.hidden_size, spec.hidden_size
    names = ["X", "W", "R", "B" if spec.bias else "", "sequence_lens" if with_lengths else "", "initial_h"]
    if spec.lstm:
        names.append("initial_c")
    if spec.peephole:
        names.append("P")
    shapes: dict[str, list[str | int]] = {"X": ["T", "B", spec.input_size], "W": [D, GH, spec.input_size],
                                          "R": [D, GH, H], "B": [D, 2 * GH], "initial_h": [D, "B", H],
                                          "initial_c": [D, "B", H], "P": [D, 3 * H]}
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT32 if n == "sequence_lens" else elem,
                                            ["B"] if n == "sequence_lens" else shapes[n]) for n in names if n]
    outs = ["Y", "Y_h"] + (["Y_c"] if spec.lstm else [])
    outputs = [helper.make_tensor_value_info(n, elem, None) for n in outs]
    direction = "bidirectional" if spec.bidirectional else "reverse" if spec.reverse else "forward"
    kw: dict[str, Any] = {"hidden_size": H, "direction": direction}
    if spec.mode == "GRU":
        kw["linear_before_reset"] = int(spec.reset_after)
    if spec.activations is not None:
        kw["activations"] = list(spec.activations)
        alpha, beta = compact_activation_arguments(spec.activations, spec.activation_alpha, spec.activation_beta)
        kw.update((key, values) for key, values in (("activation_alpha", alpha), ("activation_beta", beta)) if values)
    elif spec.mode.startswith("RNN"):
        kw["activations"] = ["Tanh" if spec.mode == "RNN_TANH" else "Relu"] * D
    if spec.clip is not None:
        kw["clip"] = spec.clip
    if spec.input_forget:
        kw["input_forget"] = 1
    node = helper.make_node(spec.torch_class, names, outs, **kw)
    return make_model(helper.make_graph([node], "rnn_check", inputs, outputs))
