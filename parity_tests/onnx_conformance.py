"""ONNX's conformance cases for its LSTM, GRU and RNN operators, regenerated from the installed onnx package.

    python -m parity_tests.onnx_conformance OUTDIR     # OUTDIR/<case>/model.onnx, test_data_set_0/{input,output}_*.pb
    rnn-check --model OUTDIR/test_lstm_defaults/model.onnx --inputs OUTDIR/test_lstm_defaults/test_data_set_0

The cases are those of onnx's own node tests (``onnx.backend.test.case.node.lstm``, ``gru`` and
``rnn``): importing one of those modules runs its ``export_*`` generators, each of which calls
``onnx.backend.test.case.node.expect`` and so records a ``TestCase`` (model and data sets). They are
written to disk as onnx's ``backend-test-tools generate-data`` writes them
(``onnx.backend.test.cmd_tools.generate_data``): ``input_<j>.pb`` for the graph's input j,
``output_<j>.pb`` for its output j. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
from typing import Any

OPERATOR_MODULES = ("lstm", "gru", "rnn")


def collect() -> list[Any]:
    """The node test cases of onnx's LSTM, GRU and RNN generators (onnx's ``TestCase``), in generation order."""
    import onnx.backend.test.case.node as node_cases

    ops = {"LSTM", "GRU", "RNN"}
    before = len(node_cases._NodeTestCases)
    for name in OPERATOR_MODULES:  # a first import runs the module's exporters, which append their cases
        importlib.import_module(f"onnx.backend.test.case.node.{name}")
    cases = [c for c in node_cases._NodeTestCases if c.model.graph.node[0].op_type in ops]
    if not cases and len(node_cases._NodeTestCases) == before:
        raise RuntimeError("onnx's LSTM/GRU/RNN case modules were imported before without recording their cases; "
                           "run this in a fresh process")
    return cases


def write(cases: list[Any], outdir: str) -> list[str]:
    """Each case as ``outdir/<name>/model.onnx`` and ``test_data_set_<i>/``; returns the case folders."""
    from onnx import TensorProto, numpy_helper

    folders = []
    for case in cases:
        folder = os.path.join(outdir, case.name)
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
        with open(os.path.join(folder, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        for i, (inputs, outputs) in enumerate(case.data_sets):
            data = os.path.join(folder, f"test_data_set_{i}")
            os.makedirs(data)
            for prefix, values, infos in (("input", inputs, case.model.graph.input),
                                          ("output", outputs, case.model.graph.output)):
                for j, value in enumerate(values):
                    tensor = value if isinstance(value, TensorProto) else numpy_helper.from_array(value, infos[j].name)
                    with open(os.path.join(data, f"{prefix}_{j}.pb"), "wb") as f:
                        f.write(tensor.SerializeToString())
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m parity_tests.onnx_conformance", description=__doc__.split("\n\n")[0])
    p.add_argument("outdir", help="where the case folders are written")
    args = p.parse_args(argv)
    for folder in write(collect(), args.outdir):
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
