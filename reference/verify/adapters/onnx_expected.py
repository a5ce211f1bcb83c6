"""What an ONNX test-data folder says of its own: the sequence lengths it feeds, and the outputs it expects.

``given_lengths`` reads its ``sequence_lens`` (both sides of the check then run with them);
``check_expected`` runs the reference (float64) on its inputs against its ``output_<j>.pb``
(float32 table). Both take the :class:`~.onnx.OnnxCandidate` whose graph names the inputs and outputs.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from reference.tolerances import candidate_tol

from ..candidates import CandidateError, GivenLengths
from ..session import reference_run
from .onnx_graph import _OUT_SLOTS
from .onnx_read import ExpectedOutputs


def given_lengths(cand: Any) -> GivenLengths | None:
    """The test data's sequence_lens, checked like any lengths: B ints in [1, T], B and T its X's (when given).

    Both sides of the check then run with them. A graph whose sequence_lens cannot be fed, or a runtime that
    ignores them, is refused by name rather than checked without them."""
    data = cand.data
    names = [] if data is None else [src["sequence_lens"] for (*_, src) in cand.nodes
                                     if src.get("sequence_lens") in data.inputs]
    if data is None or not names:
        return None
    where = f"{data.where}/{data.files[names[0]]}" if os.path.isdir(data.where) else data.files[names[0]]
    if cand._lens is None:
        raise CandidateError(f"{where}: sequence_lens of a graph of {len(cand.nodes)} recurrent nodes; the "
                             "verifier feeds sequence lengths to a one-node graph only")
    if not cand.takes_lengths:
        raise CandidateError(f"{where}: sequence_lens given, but {cand.runtime.split(';')[0]} ignores sequence "
                             "lengths, so the file cannot be checked with them")
    lens = np.asarray(data.inputs[cand._lens])
    x = data.inputs.get(cand._x)
    T, B = (None, lens.size) if x is None or x.ndim != 3 else cand._to_onnx("X", x).shape[:2]
    if lens.shape != (B,) or lens.dtype.kind not in "iu" or lens.min(initial=1) < 1 or \
            (T is not None and lens.max(initial=1) > T):
        raise ValueError(f"{where}: sequence_lens {lens.ravel().tolist()}: expected {B} ints in [1, "
                         f"{'T' if T is None else T}] (one per batch row{'' if T is None else f' of X, {T} steps'})")
    return GivenLengths(lens.astype(np.int64), T, where)


def check_expected(cand: Any) -> ExpectedOutputs | None:
    """The reference (float64) on the test data's inputs against its expected outputs; None without them."""
    from ..compare import check_tensor  # compare reads the adapters' registry, which imports this module

    if cand.data is None or not cand.data.outputs:
        return None
    if cand.storage:
        raise ValueError(f"inputs: {cand.data.where} has expected outputs of a {cand.storage} model; expected "
                         "outputs are judged in float32 and float64 only: check the model without them (compare "
                         "judges it against the rounding envelope)")
    data, names = cand.data, [cand._x, *cand._states]
    absent = [n for n in names if n not in data.inputs]
    if absent:
        raise ValueError(f"inputs: {data.where} has expected outputs but no value for the graph inputs {absent}")
    x = cand._to_onnx("X", data.inputs[cand._x]).astype(np.float64)  # (T, B, I): the swap is its own inverse
    B = x.shape[1]
    hx = tuple(cand._from_onnx("Y_h", data.inputs[n]).astype(np.float64) for n in cand._states) or \
        tuple(np.zeros(s) for s in cand.spec.state_shapes(B))
    lengths = None
    if cand._lens is not None and cand._lens in data.inputs:
        lengths = np.asarray(data.inputs[cand._lens], dtype=np.int64)  # (B,)
    params = {k: np.asarray(v, dtype=np.float64) for k, v in cand.own_params.items()}
    res, _, _ = reference_run(cand.spec.reference(params), cand.spec, x, hx, None, None, lengths, None)
    got = {"Y": res["output"], "Y_h": res["hidden"][0], "Y_c": res["hidden"][-1]}
    tol = candidate_tol(cand.dtype, "cpu", "forward")
    node = cand.nodes[0][0]
    tensors = []
    for j, out in enumerate(cand._graph_outputs):
        if out not in data.outputs:
            continue
        slot = _OUT_SLOTS[list(node.output).index(out)] if cand._single else _OUT_SLOTS[j]
        expected = cand._from_onnx(slot, np.asarray(data.outputs[out]))
        tensors.append(check_tensor(f"{slot} (output_{j}.pb)", "forward", got[slot], expected, tol,
                                    0 if slot == "Y" else None))
    note = "" if lengths is None else f"lengths {lengths.tolist()}"
    return ExpectedOutputs(data.where, tensors, note)
