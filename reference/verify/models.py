"""Model files checked as they are: their weights, their configuration and their runtime.

============  ============================================================  ===================================
file          runtime (the candidate)                                       weights and configuration
============  ============================================================  ===================================
.onnx         ONNX Runtime (``pip install 'rnn-reference[verify]'``)        the LSTM/GRU/RNN nodes' W, R, B
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
attributes) node by node, on the weights it is given.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .candidates import Candidate, CandidateError, is_reference_module, is_torch_module, spec_of_module, to_numpy
from .files import MAX_ARRAY_BYTES, MAX_INPUT_ELEMENTS, TORCH_SUFFIXES, check_file, read_npz
from .layouts import detect_layout, import_state_dict, mode_from_shapes, torch_mode
from .spec import Spec


def load_weights(source: Any, *, layout: str | None = None, mode: str | None = None,
                 reset_after: bool | None = None, trust_pickle: bool = False
                 ) -> tuple[dict[str, np.ndarray], Spec, str]:
    """(torch state_dict of NumPy arrays, configuration, the layout it came in) from any weight source.

    ``source``: a file path (.onnx, .npz, .pt/.pth), a torch or reference module,
    a torch state_dict, ``{"l0": {...}, ...}`` in a foreign layout, or one
    layer's foreign arrays. ``trust_pickle``: let a .pt/.pth that is a pickled
    module load in full, which runs the code it names (see the module docstring).
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


def load_model(path: str | os.PathLike[str], *, mode: str | None = None, layout: str | None = None,
               trust_pickle: bool = False) -> Candidate:
    """A candidate that runs the file's own runtime on the file's own weights (see the module docstring).

    ``trust_pickle``: let a .pt/.pth that is a pickled module load in full, which
    runs the code it names; by default only a state_dict (``weights_only=True``) loads.
    """
    path = check_file(path, "model")
    if path.endswith(".onnx"):
        return OnnxCandidate(path)
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

_DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


def _onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ImportError("checking .onnx files needs onnx and onnxruntime: pip install 'rnn-reference[verify]'"
                          f" ({e})") from e
    return onnx, onnxruntime


class OnnxCandidate(Candidate):
    """An ONNX model's LSTM/GRU/RNN, run by ONNX Runtime (forward only)."""

    has_gradients = False
    takes_lengths = False
    declares_reset_after = True
    spec: Spec  # the file's own configuration, weights and dtype, set in __init__
    own_params: dict[str, np.ndarray]
    dtype: np.dtype

    def __init__(self, model: Any, name: str | None = None):
        onnx, ort = _onnx()
        self._ort = ort
        from_file = isinstance(model, (str, os.PathLike))
        self.name = name or (os.path.basename(os.fspath(model)) if from_file else "ONNX model")
        proto = load_onnx(onnx, check_file(model, "model")) if from_file else model
        check_onnx_sizes(onnx, proto, self.name)
        self.opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=14)
        self.nodes = _recurrent_nodes(onnx, proto)
        self.spec, self.own_params, self.dtype = _spec_and_weights(self.nodes)
        try:
            self._session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 -- ONNX Runtime's errors are pybind11 classes deriving from Exception
            raise CandidateError(f"{self.name}: ONNX Runtime cannot load the graph: {type(e).__name__}: {e}") from None
        inputs = self._session.get_inputs()
        self._x = inputs[0].name
        self._states = [i.name for i in inputs[1:]]
        n_states = 2 if self.spec.lstm else 1
        if self._states and len(self._states) != n_states:
            raise CandidateError(f"{self.name}: expected inputs (x) or (x, {'h_0, c_0' if n_states == 2 else 'h_0'}), "
                                 f"got {[i.name for i in inputs]}")
        self.takes_hx = bool(self._states)
        dims = inputs[0].shape
        self.fixed_shape = tuple(d if isinstance(d, int) else None for d in dims[:2])
        self._chain_sessions: dict = {}

    def call(self, spec, params, x, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        if grad_output is not None or grad_hidden is not None:
            raise CandidateError(f"{self.name}: ONNX Runtime runs inference only; it has no gradients")
        if dropout_masks is not None:
            raise CandidateError(f"{self.name}: an ONNX model applies no dropout (inference)")
        fits = all(f is None or f == n for f, n in zip(self.fixed_shape, x.shape[:2], strict=True))
        zero_hx = all(not np.any(h) for h in hx)
        if (spec == self.spec and lengths is None and fits and (self.takes_hx or zero_hx)
                and all(np.array_equal(params[k], self.own_params[k]) for k in self.own_params)):
            return self._run_file(x, hx)
        return self._run_nodes(spec, params, x, hx, lengths)

    def _run_file(self, x, hx):
        feeds = {self._x: x.astype(self.dtype)}
        if self._states:  # a graph without state inputs runs from zeros, which call() has checked hx are
            feeds.update((n, h.astype(self.dtype)) for n, h in zip(self._states, hx, strict=True))
        outs = self._session.run(None, feeds)
        n_states = 2 if self.spec.lstm else 1
        if len(outs) < 1 + n_states:
            raise CandidateError(f"{self.name}: the graph has {len(outs)} outputs; expected output and "
                                 f"{'h_n, c_n' if n_states == 2 else 'h_n'}")
        out = outs[0]
        if out.ndim == 4:  # ONNX's Y (T, D, B, H)
            out = out.transpose(0, 2, 1, 3).reshape(out.shape[0], out.shape[2], -1)
        return {"output": out, "hidden": tuple(outs[1:1 + n_states])}

    def _run_nodes(self, spec, params, x, hx, lengths):
        """The same operator, layer by layer, on ``params``: what localisation's sub-problems run."""
        from .layouts import export_state_dict
        from .spec import layer_params

        D, H = spec.D, spec.hidden_size
        h_n, c_n = [], []
        for layer in range(spec.num_layers):
            sub = spec.layer(layer)
            groups = export_state_dict("onnx", sub, layer_params(params, layer))
            stack = lambda name, groups=groups: np.stack([groups[g][name] for g in ["l0", "l0_reverse"][:D]]
                                                         ).astype(self.dtype)
            feeds = {"X": x.astype(self.dtype), "W": stack("W"), "R": stack("R"),
                     "initial_h": hx[0][layer * D:(layer + 1) * D].astype(self.dtype)}
            if spec.bias:
                feeds["B"] = stack("B")
            if lengths is not None:
                feeds["sequence_lens"] = np.asarray(lengths, dtype=np.int32)
            if spec.lstm:
                feeds["initial_c"] = hx[1][layer * D:(layer + 1) * D].astype(self.dtype)
            y, *states = self._node_session(sub, lengths is not None).run(None, feeds)
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
            onnx, _ = _onnx()
            self._chain_sessions[key] = self._ort.InferenceSession(
                _single_node_model(onnx, spec, self.dtype, with_lengths, self.opset).SerializeToString(),
                providers=["CPUExecutionProvider"])
        return self._chain_sessions[key]


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


def _recurrent_nodes(onnx: Any, proto: Any) -> list[tuple[Any, dict, dict]]:
    from onnx import numpy_helper

    consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(a.t)
    nodes = []
    for node in proto.graph.node:
        if node.op_type in ("LSTM", "GRU", "RNN"):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            attrs = {k: (v.decode() if isinstance(v, bytes) else [s.decode() if isinstance(s, bytes) else s for s in v]
                         if isinstance(v, list) else v) for k, v in attrs.items()}
            ins = list(node.input) + [""] * (8 - len(node.input))
            arrays: dict[str, np.ndarray | None] = {}
            for slot, name in zip(("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"), ins, strict=False):  # trailing optional inputs may be absent
                if name and name in consts:
                    arrays[slot] = consts[name]
                elif name and slot == "P":
                    arrays[slot] = None
            nodes.append((node, attrs, arrays))
    if not nodes:
        raise CandidateError("ONNX model: no LSTM, GRU or RNN node in the graph")
    return nodes


def _spec_and_weights(nodes) -> tuple[Spec, dict, np.dtype]:
    op = nodes[0][0].op_type
    nested: dict[str, dict] = {}
    modes, bidirectional, reset_after = set(), set(), set()
    for layer, (node, attrs, arrays) in enumerate(nodes):
        where = f"ONNX node {layer} ({node.op_type} {node.name!r})"
        if node.op_type != op:
            raise CandidateError(f"{where}: mixes {op} and {node.op_type} nodes; expected one kind of layer")
        if "P" in arrays:
            raise CandidateError(f"{where}: has peephole weights P; torch's LSTM has no peepholes, so this model "
                                 "cannot be checked against it")
        for key, bad in (("clip", lambda v: True), ("input_forget", bool), ("layout", bool)):
            if key in attrs and bad(attrs[key]):
                raise CandidateError(f"{where}: attribute {key}={attrs[key]!r} has no torch equivalent")
        direction = attrs.get("direction", "forward")
        if direction == "reverse":
            raise CandidateError(f"{where}: direction='reverse' alone has no torch equivalent")
        bidirectional.add(direction == "bidirectional")
        acts = attrs.get("activations")
        if op == "RNN":
            acts = acts or ["Tanh"]
            if len(set(acts)) != 1 or acts[0] not in ("Tanh", "Relu"):
                raise CandidateError(f"{where}: activations {acts}; torch's RNN has one, Tanh or Relu")
            modes.add("RNN_TANH" if acts[0] == "Tanh" else "RNN_RELU")
        else:
            default = _DEFAULT_ACTIVATIONS[op]
            if acts and acts not in (default, default * 2):
                raise CandidateError(f"{where}: activations {acts}; torch's {op} uses {default}")
            modes.add(op)
        if op == "GRU":
            reset_after.add(bool(attrs.get("linear_before_reset", 0)))
        missing = [k for k in ("W", "R") if k not in arrays]
        if missing:
            raise CandidateError(f"{where}: its {missing} are not constants of the graph (computed weights cannot "
                                 "be checked as they are)")
        nested[f"l{layer}"] = {k: arrays[k] for k in ("W", "R", "B") if k in arrays}
    if len(modes) > 1 or len(bidirectional) > 1 or len(reset_after) > 1:
        raise CandidateError("ONNX model: its recurrent nodes differ in activations, direction or "
                             "linear_before_reset; expected one torch module's layers")
    mode = modes.pop()
    ra = reset_after.pop() if reset_after else True
    state = import_state_dict("onnx", torch_mode(mode), nested, reset_after=ra)
    dtype = np.asarray(nested["l0"]["W"]).dtype
    spec = Spec.from_state_dict(state, mode, reset_after=ra)
    return spec, {k: np.asarray(v) for k, v in state.items()}, dtype


def _single_node_model(onnx: Any, spec: Spec, dtype: np.dtype, with_lengths: bool, opset: int) -> Any:
    from onnx import TensorProto, helper

    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    D, GH, H = spec.D, spec.G * spec.hidden_size, spec.hidden_size
    names = ["X", "W", "R", "B" if spec.bias else "", "sequence_lens" if with_lengths else "", "initial_h"]
    if spec.lstm:
        names.append("initial_c")
    shapes: dict[str, list[str | int]] = {"X": ["T", "B", spec.input_size], "W": [D, GH, spec.input_size],
                                          "R": [D, GH, H], "B": [D, 2 * GH], "initial_h": [D, "B", H],
                                          "initial_c": [D, "B", H]}
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT32 if n == "sequence_lens" else elem,
                                            ["B"] if n == "sequence_lens" else shapes[n]) for n in names if n]
    outs = ["Y", "Y_h"] + (["Y_c"] if spec.lstm else [])
    outputs = [helper.make_tensor_value_info(n, elem, None) for n in outs]
    kw: dict[str, Any] = {"hidden_size": H, "direction": "bidirectional" if spec.bidirectional else "forward"}
    if spec.mode == "GRU":
        kw["linear_before_reset"] = int(spec.reset_after)
    if spec.mode.startswith("RNN"):
        kw["activations"] = ["Tanh" if spec.mode == "RNN_TANH" else "Relu"] * D
    node = helper.make_node(spec.torch_class, names, outs, **kw)
    model = helper.make_model(helper.make_graph([node], "rnn_check", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8)
    return model
