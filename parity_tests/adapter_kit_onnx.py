"""The conformance kit's builders for ONNX files (see adapter_kit.py), and one graph builder for chains.

Files come from torch.onnx (torch.nn's layers exported, states as graph inputs, T and B dynamic) or are
written node by node (:func:`chain`): one LSTM/GRU node per layer, each fed its layer's slice of the
initial states, the layers chained through their outputs. An LSTM node computes the operator's
equations, so the gate bugs cannot be planted in one (named skips); ONNX Runtime runs inference only,
so no gradient bug either. What a graph can get wrong is what it computes around its nodes: an output
scaled after the node, or a layer fed another layer's initial states (``state_of``).
"""

from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np
import onnx
import torch
from adapter_kit import CASES, SCALE, Expect, H, I, Skip, keywords
from onnx import TensorProto, helper, numpy_helper

from reference.verify.onnx_versions import make_model

NO_GATE_BUG = "an ONNX node computes its operator's equations: no gate bug can be planted in it"
_DIR = tempfile.mkdtemp(prefix="adapter_kit_onnx_")


def export(module, name: str, T: int = 5, B: int = 2) -> str:
    """torch.onnx's TorchScript exporter, with h_0 (c_0) as inputs and dynamic T and B."""
    path = os.path.join(_DIR, name)
    lstm = isinstance(module, torch.nn.LSTM)
    D = 2 if module.bidirectional else 1
    dtype = next(module.parameters()).dtype
    h0 = torch.zeros(module.num_layers * D, B, module.hidden_size, dtype=dtype)
    args = (torch.zeros(T, B, module.input_size, dtype=dtype), (h0, h0) if lstm else h0)
    names = ["x", "h0", "c0"] if lstm else ["x", "h0"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, path, dynamo=False, input_names=names,
                          output_names=["y", "h_n", "c_n"][:len(names)],
                          dynamic_axes={n: ({0: "T", 1: "B"} if n == "x" else {1: "B"}) for n in names})
    return path


def chain(name: str, op: str = "LSTM", layers: int = 1, direction: str = "forward", dtype=np.float32,
          lengths: bool = False, scale: float | None = None, state_of=lambda layer: layer, **attributes) -> str:
    """A graph of ``layers`` nodes of ``op`` (one per layer, chained), inputs x (T, B, I), h0 [, c0]
    (L*D, B, H) [, sequence_lens (B,)], outputs y (T, B, D*H) [scaled by ``scale``], h_n [, c_n]; layer k
    reads the initial states of layer ``state_of(k)``. One node is fed straight from the inputs (ONNX's
    node-test form), its outputs the graph's unless a scale follows it."""
    rng = np.random.default_rng(7)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    G, D = {"LSTM": 4, "GRU": 3, "RNN": 1}[op], 2 if direction == "bidirectional" else 1
    lstm, k = op == "LSTM", 1 / np.sqrt(H)
    inputs = [helper.make_tensor_value_info("x", elem, ["T", "B", I]),
              helper.make_tensor_value_info("h0", elem, [layers * D, "B", H])]
    if lstm:
        inputs.append(helper.make_tensor_value_info("c0", elem, [layers * D, "B", H]))
    if lengths:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["B"]))
    direct = layers == 1  # one node reads the states as they are given: ONNX's node-test form, with a scale after it
    nodes, inits, x, finals = [], [], "x", {"h": [], "c": []}
    for layer in range(layers):
        width = I if layer == 0 else D * H
        for slot, shape in (("W", (D, G * H, width)), ("R", (D, G * H, H)), ("B", (D, 2 * G * H))):
            inits.append(numpy_helper.from_array(rng.uniform(-k, k, shape).astype(dtype), f"{slot}{layer}"))
        states = []
        for s in ("h", "c")[:2 if lstm else 1]:
            if direct:
                states.append(f"{s}0")
                continue
            lo = state_of(layer) * D
            for bound, v in (("lo", lo), ("hi", lo + D)):
                inits.append(numpy_helper.from_array(np.array([v], np.int64), f"{s}{bound}{layer}"))
            nodes.append(helper.make_node("Slice", [f"{s}0", f"{s}lo{layer}", f"{s}hi{layer}"], [f"{s}0_{layer}"]))
            states.append(f"{s}0_{layer}")
        outs = [f"Y{layer}", f"Yh{layer}"] + ([f"Yc{layer}"] if lstm else [])
        slots = [x, f"W{layer}", f"R{layer}", f"B{layer}", "sequence_lens" if lengths else "", *states]
        nodes.append(helper.make_node(op, slots, outs, hidden_size=H, direction=direction, **attributes))
        finals["h"].append(outs[1])
        if lstm:
            finals["c"].append(outs[2])
        # Y (T, D, B, H) -> (T, B, D*H), the next layer's input
        nodes.append(helper.make_node("Transpose", [outs[0]], [f"Yt{layer}"], perm=[0, 2, 1, 3]))
        inits.append(numpy_helper.from_array(np.array([0, 0, D * H], np.int64), f"shape{layer}"))
        nodes.append(helper.make_node("Reshape", [f"Yt{layer}", f"shape{layer}"], [f"y{layer}"]))
        x = f"y{layer}"
    outputs = ["y", "h_n"] + (["c_n"] if lstm else [])
    if direct and scale is None:
        nodes = [n for n in nodes if n.op_type == op]
        outputs = ["Y0", "Yh0"] + (["Yc0"] if lstm else [])
    else:
        if scale is not None:
            inits.append(numpy_helper.from_array(np.array(scale, dtype), "scale"))
            nodes.append(helper.make_node("Mul", [x, "scale"], ["y"]))
        else:
            nodes.append(helper.make_node("Identity", [x], ["y"]))
        for s, final in (("h", "h_n"), ("c", "c_n"))[:2 if lstm else 1]:
            nodes.append(helper.make_node("Concat", finals[s], [final], axis=0))
    graph = helper.make_graph(nodes, name, inputs, [helper.make_tensor_value_info(o, elem, None) for o in outputs],
                              inits)
    path = os.path.join(_DIR, f"{name}.onnx")
    onnx.save(make_model(graph), path)
    return path


class OnnxKit:
    def expect(self, case: str) -> Expect:
        if case == "an option the reference lacks":
            return Expect("REFUSED", says="activations")
        if case == "float16":  # float16 weights: judged against the rounding envelope
            return Expect("MATCH")
        return CASES[case]

    def build(self, case: str):
        if case == "subclass, same maths":
            raise Skip("an ONNX file has no classes: its graph is what runs")
        if case == "subclass c_n from the last step":
            raise Skip("a graph states c_n by its node's Y_c; computing it elsewhere takes a second recurrent node, "
                       "which the adapter reads as a second layer")
        if case in ("layer 1 gate f", "reverse direction gate f", "gate f on one input value"):
            raise Skip(NO_GATE_BUG)
        if case == "gradient of gate f stopped":
            raise Skip("ONNX Runtime runs inference only: a file has no gradients")
        torch.manual_seed(0)
        makers = {
            "float32": lambda: export(torch.nn.LSTM(I, H), "lstm.onnx"),
            "float64": lambda: chain("rnn64", "RNN", dtype=np.float64),  # ONNX Runtime's LSTM and GRU: float32
            "lengths": lambda: chain("lengths", lengths=True),
            "reverse": lambda: chain("reverse", direction="reverse"),
            "bidirectional": lambda: export(torch.nn.LSTM(I, H, bidirectional=True), "bi.onnx"),
            "two layers": lambda: export(torch.nn.LSTM(I, H, num_layers=2), "two.onnx"),
            "GRU torch form": lambda: export(torch.nn.GRU(I, H), "gru.onnx"),
            "GRU paper form": lambda: chain("gru_paper", "GRU", linear_before_reset=0),
            "subclass scales the output": lambda: chain("scaled", scale=SCALE),
            "float16": lambda: chain("lstm_f16", dtype=np.float16),
            "an option the reference lacks": lambda: chain("gelu", activations=["Sigmoid", "Gelu", "Tanh"]),
        }
        if case == "bfloat16":
            return bfloat16_model(), keywords(case)
        return makers[case](), keywords(case)


def bfloat16_model() -> str:
    """A one-node LSTM whose weights are bfloat16 (ONNX's BFLOAT16 tensors)."""
    path = chain("lstm_bf", dtype=np.float32)
    model = onnx.load(path)
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            values = numpy_helper.to_array(init)
            init.CopyFrom(helper.make_tensor(init.name, TensorProto.BFLOAT16, values.shape, values.flatten().tolist()))
    for vi in model.graph.input:
        vi.type.tensor_type.elem_type = TensorProto.BFLOAT16
    onnx.save(model, path)
    return path
