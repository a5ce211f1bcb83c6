"""Reading ONNX test data that may be hostile: sizes checked from what they declare, no code run.

The values a test-data folder or an .npz gives the graph's inputs (:func:`read_test_data`; each
file a regular file inside the folder given, within the check's limits) and the expected outputs
such a folder holds (:class:`ExpectedOutputs`). The model's own tensors are read by
:mod:`.onnx_tensors`. Needs onnx, imported when first asked.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..files import check_file, read_bounded
from ..npz import read_npz
from .onnx_tensors import check_tensor


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
            arrays = {k: _native(np.asarray(v)) for k, v in source.items()}
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
    given = folder = os.fspath(source)
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
            raw = read_bounded(path, "inputs", inside=given)  # a regular file in the folder given, within the limits
            try:
                t.ParseFromString(raw)
            except Exception as e:  # noqa: BLE001 -- protobuf's DecodeError, or whatever else corrupt bytes raise
                raise ValueError(f"{path}: not a readable TensorProto (truncated or corrupt): {type(e).__name__}: "
                                 f"{e}") from None
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
    from onnx import TensorProto

    if t.data_location == TensorProto.EXTERNAL:
        raise ValueError(f"{path}: keeps its data in another file; test data is read from the .pb file itself")
    check_tensor(t, f"{path}: tensor {t.name!r}")


def _native(a: np.ndarray) -> np.ndarray:
    """``a`` in native byte order (big-endian arrays are converted, as every reader here does)."""
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


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
