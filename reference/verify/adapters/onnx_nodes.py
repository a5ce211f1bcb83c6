"""The rebuild of an ONNX model's recurrent nodes: one node of the file's operator and attributes per layer,
chained, run by the file's runtime on any weights, shape, initial states and lengths.

Localisation runs it for the parts of a stack the file's graph cannot run alone (a layer of a multi-node
graph) and for problems the file's graph cannot take (another shape where its inputs' shape is fixed,
initial states where it takes none, lengths): only once it has reproduced the file's own graph on the
original problem (the fidelity gate, :mod:`reference.verify.session`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..candidates import Candidate, CandidateError
from ..layouts import export_state_dict
from ..spec import Spec, layer_params
from .onnx_graph import _single_node_model, swap_peepholes


class OnnxNodes(Candidate):
    """The file's recurrent nodes rebuilt for ``spec`` (the whole stack or a part of it)."""

    has_gradients = False
    declares_reset_after = True
    rebuilt = True
    exact = False
    spec: Spec
    dtype: np.dtype

    def __init__(self, file: Any, spec: Spec):
        self.file, self.spec, self.dtype, self.name = file, spec, file.tensor_dtype, f"{file.name}'s nodes, rebuilt"
        self._ort = file._ort
        self._sessions: dict[tuple, Any] = {}

    def call(self, spec, params, x, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        if grad_output is not None or grad_hidden is not None:
            raise CandidateError(f"{self.name}: ONNX Runtime runs inference only; it has no gradients")
        return self._run_nodes(spec, params, x, hx, lengths)

    def _run_nodes(self, spec, params, x, hx, lengths):
        """The same operator, layer by layer, on ``params``."""
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
        if key not in self._sessions:
            model = _single_node_model(spec, self.dtype, with_lengths)
            if self.file.runtime == "onnxruntime":
                session = self._ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
                self._sessions[key] = lambda feeds: session.run(None, feeds)
            else:
                from onnx.reference import ReferenceEvaluator

                evaluator = ReferenceEvaluator(model)
                self._sessions[key] = lambda feeds: evaluator.run(None, feeds)
        return self._sessions[key]
