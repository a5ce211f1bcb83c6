"""An ONNX graph's recurrent nodes in the reference's terms: their slots, attributes and weights, and back.

:func:`_recurrent_nodes` finds each LSTM/GRU/RNN node and the arrays its slots hold;
:func:`_spec_fields` maps its attributes onto RNNConfig's fields (refusing by name what the
reference cannot express); :func:`_spec_and_weights` makes one Spec and torch-named weights of a
chain of nodes; :func:`_single_node_model` writes the one-node graph localisation runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...config import compact_activation_arguments
from ..candidates import CandidateError
from ..layouts import export_state_dict, import_state_dict, torch_mode
from ..onnx_versions import make_model
from ..spec import Spec, core_supports, layer_params
from .onnx_read import TestData, _graph_inputs

_SLOTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")  # the operators' inputs, in order
_OUT_SLOTS = ("Y", "Y_h", "Y_c")
_WEIGHT_SLOTS = ("W", "R", "B", "P")
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
_COMMON_ATTRIBUTES = {"activation_alpha", "activation_beta", "activations", "clip", "direction", "hidden_size", "layout"}
_ATTRIBUTES = {"LSTM": _COMMON_ATTRIBUTES | {"input_forget"}, "GRU": _COMMON_ATTRIBUTES | {"linear_before_reset"},
               "RNN": _COMMON_ATTRIBUTES}


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
        absent = [slot for slot, name in zip(_SLOTS[:3], [*node.input, "", "", ""], strict=False) if not name]
        if absent:
            raise CandidateError(f"{where}: has no {absent} input; the operator requires X, W and R")
        if unresolved["input"]:
            names = [sources[s] for s in unresolved["input"]]
            raise CandidateError(f"{where}: its {unresolved['input']} are graph inputs {names} with no value: give "
                                 "them with --inputs DIR (a test-data folder of input_*.pb) or an .npz keyed by input "
                                 "name (load_model(..., inputs=...))")
        if unresolved["computed"]:
            raise CandidateError(f"{where}: its {unresolved['computed']} are not constants of the graph (computed "
                                 "weights cannot be checked as they are)")
        nodes.append((node, attrs, arrays, sources))
    nested = _nested_recurrent(proto.graph)
    if nested:  # checking the main graph's nodes alone would give a verdict on part of the model
        raise CandidateError(f"ONNX model: {nested[0]} is inside a control-flow subgraph; the verifier checks the "
                             "recurrent nodes of the main graph only (export the recurrent layer outside If, Loop and "
                             "Scan)")
    if not nodes:
        raise CandidateError("ONNX model: no LSTM, GRU or RNN node in the graph")
    return nodes


def _nested_recurrent(graph: Any, inside: str = "") -> list[str]:
    """The paths of the LSTM/GRU/RNN nodes in ``graph``'s subgraphs: "If 'cond' > then_branch > LSTM 'lstm'"."""
    from onnx import AttributeProto

    found = []
    for node in graph.node:
        here = f"{inside}{node.op_type} {node.name!r}"
        if inside and node.op_type in _GATES:
            found.append(here)
        for a in node.attribute:
            graphs = [a.g] if a.type == AttributeProto.GRAPH else list(a.graphs) if a.type == AttributeProto.GRAPHS \
                else []
            for k, g in enumerate(graphs):
                found += _nested_recurrent(g, f"{here} > {a.name if a.type == AttributeProto.GRAPH else f'{a.name}[{k}]'} > ")
    return found


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


def node_weights(nodes: list, spec: Spec, params: Mapping[str, Any], dtype: np.dtype) -> dict[str, np.ndarray]:
    """{tensor name: value in ``dtype``} for each recurrent node's W, R, B (and P), from torch-named ``params``
    (``spec``: the nodes' stack): the values the file's own graph runs on."""
    out = {}
    for layer, (node, _, _, _) in enumerate(nodes):
        sub = spec.layer(layer)
        lp = layer_params(params, layer)
        groups = export_state_dict("onnx", sub, {k: v for k, v in lp.items() if not k.startswith("weight_p")})
        sfx = ["", "_reverse"][:sub.D]
        names = dict(zip(_SLOTS, node.input, strict=False))
        for slot in ("W", "R", "B"):
            if names.get(slot):
                out[names[slot]] = np.stack([groups[f"l0{s}"][slot] for s in sfx]).astype(dtype)  # (D, ...)
        if names.get("P"):
            out[names["P"]] = np.stack([swap_peepholes(lp[f"weight_p_l0{s}"]) for s in sfx]).astype(dtype)
    return out
