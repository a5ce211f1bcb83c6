"""An ONNX file's own tensors, read within the check's bounds: the model, its external data, and every tensor's
declared size and type against the data it holds (subgraphs included).

External data is read here, not by onnx's ``load_external_data_for_model``: onnx's own
checks of its paths differ between versions (1.14 follows symlinks; later versions raise
their own ValidationError), so the rule is the same whatever onnx is installed: a
regular file inside the model's directory (symlinks resolved), the bytes each tensor
declares, charged to the check's budget before they are read.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ..files import MAX_ARRAY_BYTES, MAX_INPUT_ELEMENTS, budget, open_regular, read_bounded, resolve


def load_onnx(onnx: Any, path: str) -> Any:
    """The ModelProto of ``path``, read within the check's limits, its external data read by this module (not
    onnx's helper, whose checks differ between versions) only from regular files inside the model's directory."""
    from onnx import TensorProto

    name = os.path.basename(path)
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(read_bounded(path, "model"))
    except ValueError as e:
        if str(e).startswith("model: "):
            raise
        raise ValueError(f"model: {name} is not a readable ONNX model (truncated or corrupt): {e}") from None
    except Exception as e:  # noqa: BLE001 -- protobuf's DecodeError, or whatever else corrupt bytes make it raise
        raise ValueError(f"model: {name} is not a readable ONNX model (truncated or corrupt): {e}") from None
    check_onnx_sizes(onnx, proto, name)  # before any external data is read
    base = os.path.dirname(os.path.abspath(path))
    for t in all_tensors(proto.graph):
        if t.data_location == TensorProto.EXTERNAL:
            _read_external(t, base, f"model: {name}: tensor {t.name!r}")
    return proto


def _read_external(t: Any, base: str, where: str) -> None:
    """Move ``t``'s external data into ``t.raw_data``: from a regular file inside ``base``, the bytes it declares
    (offset and length), charged to the check's budget before they are read."""
    from onnx import TensorProto

    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    target = os.path.normpath(os.path.join(base, location))
    if not location or os.path.isabs(location) or os.path.commonpath([base, target]) != base:
        raise ValueError(f"{where} keeps its data at {location!r}, outside the model's directory; external data is "
                         "read only from files beside the model")
    resolve(target, f"{where}: its external data", inside=base)
    offset = _nonnegative(info.get("offset", "0"), f"{where}: external data offset")
    with open_regular(target, f"{where}: its external data", inside=base, charge=False) as f:
        size = os.fstat(f.fileno()).st_size
        length = size - offset if "length" not in info else _nonnegative(info["length"], f"{where}: external "
                                                                                          "data length")
        if offset + length > size:
            raise ValueError(f"{where} declares {length} bytes at offset {offset} in {location!r}, which holds {size}")
        budget().add(length, where, repr(location))
        f.seek(offset)
        t.raw_data = f.read(length)
    del t.external_data[:]
    t.data_location = TensorProto.DEFAULT


def all_tensors(graph: Any) -> list[Any]:
    """Every tensor a graph holds: initializers, tensor attributes (Constant's value, ...) and, recursively, those
    of its subgraphs (If's branches, Loop's and Scan's bodies)."""
    from onnx import AttributeProto

    found = list(graph.initializer)
    for node in graph.node:
        for a in node.attribute:
            if a.type == AttributeProto.TENSOR:
                found.append(a.t)
            elif a.type == AttributeProto.TENSORS:
                found.extend(a.tensors)
            elif a.type == AttributeProto.GRAPH:
                found.extend(all_tensors(a.g))
            elif a.type == AttributeProto.GRAPHS:
                found.extend(t for g in a.graphs for t in all_tensors(g))
    return found


def check_onnx_sizes(onnx: Any, proto: Any, name: str) -> None:
    """Refuse, from what they declare alone, a tensor (anywhere in the model, subgraphs included) whose data
    disagree with its dims or that exceeds the limits of :mod:`reference.verify.files`, and a fixed input shape
    too large to draw."""
    for t in all_tensors(proto.graph):
        check_tensor(t, f"model: {name}: tensor {t.name!r}")
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


def check_tensor(t: Any, where: str) -> None:
    """Refuse, from what ``t`` declares and holds, a tensor over MAX_ARRAY_BYTES, of no numeric type, or whose
    data disagree with its dims: raw bytes, typed values (float_data, int32_data, ...) or external data's length."""
    from onnx import TensorProto, helper

    dims = tuple(t.dims)
    if any(d < 0 for d in dims):
        raise ValueError(f"{where}: declares a negative dimension, shape {dims}")
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}: data type {t.data_type} is not a numeric type") from None
    n = math.prod(dims)
    declared = n * dtype.itemsize
    if declared > MAX_ARRAY_BYTES:
        raise ValueError(f"{where}: declares shape {dims} ({declared:.3g} bytes), over the limit of "
                         f"{MAX_ARRAY_BYTES} bytes")
    if t.data_location == TensorProto.EXTERNAL:
        length = {e.key: e.value for e in t.external_data}.get("length")
        held = None if length is None else _nonnegative(length, f"{where}: external data length")
    else:
        held = len(t.raw_data) if t.raw_data else None
    if held is not None and held != declared:
        raise ValueError(f"{where}: declares shape {dims} ({declared} bytes) but holds {held} bytes")
    if held is None and t.data_location != TensorProto.EXTERNAL and t.data_type not in _PACKED:
        field = helper.tensor_dtype_to_field(t.data_type)
        values = len(getattr(t, field)) // (2 if dtype.kind == "c" else 1)  # a complex number is two values
        if values != n:
            raise ValueError(f"{where} declares shape {dims} ({n} values) but its {field} holds {values}")


_PACKED = (21, 22, 23)  # UINT4, INT4, FLOAT4E2M1: two values to a byte, whose counts NumPy's reshape checks


def _nonnegative(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{what} {text!r} is not a size in bytes")
    return value
