"""Files that are broken, hostile or merely large, made on demand: the builders the tests of the readers share.

Each builder takes a path and returns it, written. Sizes are declared, never
written: a sparse file takes no disk space, and a zip or .npy header that lies
costs a few bytes.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from reference.verify import Spec
from reference.verify.cli import main
from reference.verify.onnx_versions import make_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def state() -> dict[str, np.ndarray]:
    """A torch-named LSTM(3, 4) state_dict, drawn by the reference (no torch needed)."""
    return {k: np.asarray(v) for k, v in Spec("LSTM", 3, 4).reference(seed=1).state_dict().items()}


def good_npz(tmp_path) -> str:
    path = tmp_path / "good.npz"
    np.savez(path, **state())
    return str(path)


def run(args, capsys) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as e:  # argparse: --help, bad arguments
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def run_subprocess(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "reference.verify.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)



def truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def torch_sd(path, legacy=False):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.LSTM(3, 4).state_dict(), path, _use_new_zipfile_serialization=not legacy)
    return path


def torch_expanded(path, shape):
    """A .pt whose weight_ih_l0 declares ``shape`` over a 4-byte storage (an expanded view, saved as such)."""
    torch = pytest.importorskip("torch")
    sd = torch.nn.LSTM(3, 4).state_dict()
    torch.save({**sd, "weight_ih_l0": torch.zeros(1).expand(*shape)}, path)
    return path


def onnx_lstm(path, x_dims=("T", "B", 3), w_dims=None):
    """An LSTM(3, 4) graph; ``w_dims`` declares W's shape over its real 192 bytes."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.uniform(-0.5, 0.5, s).astype(np.float32), n)
             for n, s in (("W", (1, 16, 3)), ("R", (1, 16, 4)), ("B", (1, 32)))]
    if w_dims is not None:
        del inits[0].dims[:]
        inits[0].dims.extend(w_dims)
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=4)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_dims))],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Y", "Y_h", "Y_c")],
                              inits)
    model = make_model(graph)
    onnx.save(model, str(path))
    return path


def npz_declaring(path, shape):
    """An .npz whose one member's .npy header declares ``shape`` of float32 over 16 bytes of data."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": shape})
    member.write(b"\0" * 16)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("weight_ih_l0.npy", member.getvalue())
    return path


def directory(path):
    path.mkdir()
    return path


def link_to(target):
    def make(path):
        os.symlink(target, path)
        return path
    return make


def pipe(path):
    os.mkfifo(path)
    return path


def sparse(size):
    """A file of ``size`` bytes that takes no disk space (and no memory, unless someone reads it)."""
    def make(path):
        with open(path, "wb") as f:
            f.truncate(size)
        return path
    return make


def patched_zip(path, members: dict[str, bytes], method: int | None = None,
                sizes: dict[str, int] | None = None):
    """A zip of ``members`` (stored) whose headers then lie: every member's compression ``method``, and the
    uncompressed and compressed sizes ``sizes`` gives (local and central headers alike)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    raw = bytearray(path.read_bytes())
    # (signature, offsets of: method, compressed size, uncompressed size, name length, name)
    for sig, at_method, at_csize, at_usize, at_len, at_name in ((b"PK\x03\x04", 8, 18, 22, 26, 30),
                                                                 (b"PK\x01\x02", 10, 20, 24, 28, 46)):
        i = raw.find(sig)
        while i >= 0:
            n = int.from_bytes(raw[i + at_len:i + at_len + 2], "little")
            name = raw[i + at_name:i + at_name + n].decode()
            if method is not None:
                raw[i + at_method:i + at_method + 2] = method.to_bytes(2, "little")
            if sizes and name in sizes:
                for at in (at_csize, at_usize):
                    raw[i + at:i + at + 4] = sizes[name].to_bytes(4, "little")
            i = raw.find(sig, i + 4)
    path.write_bytes(bytes(raw))
    return path


def npy_bytes(a: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, a)
    return buffer.getvalue()


def npz_members_declaring(sizes: list[int]):
    """An .npz of small honest members whose zip headers declare ``sizes`` (uncompressed) bytes."""
    def make(path):
        names = [f"m{k}.npy" for k in range(len(sizes))]
        return patched_zip(path, {n: npy_bytes(np.zeros(2, np.float32)) for n in names},
                           sizes=dict(zip(names, sizes, strict=True)))
    return make


def npz_compressed_with(method: int):
    def make(path):
        return patched_zip(path, {f"{k}.npy": npy_bytes(v) for k, v in state().items()}, method=method)
    return make


def npz_of_strings(path):
    np.savez(path, **{**state(), "weight_ih_l0": np.array(["a", "b"])})
    return path


def pt_compressed_with(method: int):
    def make(path):
        made = torch_sd(path.with_name("made.pt"))
        with zipfile.ZipFile(made) as z:
            members = {n: z.read(n) for n in z.namelist()}
        return patched_zip(path, members, method=method)
    return make


def npz(path):
    np.savez(path, **state())
    return path


def renamed(make, suffix):
    def build(path):
        made = make(path.with_name("made" + suffix))
        os.replace(made, path)
        return path
    return build


# -- ONNX models with graph inputs, their test data, and their external data --------------------------


def onnx_lstm_fed(folder, lengths=(5, 3, 4), T=5):
    """An LSTM(3, 4) graph whose X, sequence_lens, initial_h and initial_c are graph inputs (W, R, B constants),
    and a test-data folder of their values: (model path, test-data folder)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    B = len(lengths)
    inits = [numpy_helper.from_array(rng.uniform(-0.5, 0.5, s).astype(np.float32), n)
             for n, s in (("W", (1, 16, 3)), ("R", (1, 16, 4)), ("B", (1, 32)))]
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c"],
                            ["Y", "Y_h", "Y_c"], hidden_size=4)
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", 3]),
              helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["B"]),
              helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, [1, "B", 4]),
              helper.make_tensor_value_info("initial_c", TensorProto.FLOAT, [1, "B", 4])]
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                                                    for n in ("Y", "Y_h", "Y_c")], inits)
    folder.mkdir(exist_ok=True)
    model = folder / "model.onnx"
    onnx.save(make_model(graph), str(model))
    data = folder / "test_data_set_0"
    data.mkdir()
    values = {"X": rng.uniform(-1, 1, (T, B, 3)).astype(np.float32), "sequence_lens": np.asarray(lengths, np.int32),
              "initial_h": rng.uniform(-1, 1, (1, B, 4)).astype(np.float32),
              "initial_c": rng.uniform(-1, 1, (1, B, 4)).astype(np.float32)}
    for j, (name, value) in enumerate(values.items()):
        (data / f"input_{j}.pb").write_bytes(numpy_helper.from_array(value, name).SerializeToString())
    return str(model), str(data)


def onnx_with_external_data(folder):
    """``folder``/m.onnx, an LSTM(3, 4) whose initializers are kept in ``folder``/ext.data."""
    onnx = pytest.importorskip("onnx")
    folder.mkdir(exist_ok=True)
    model = onnx.load(str(onnx_lstm(folder / "inline.onnx")))
    onnx.save(model, str(folder / "m.onnx"), save_as_external_data=True, location="ext.data", size_threshold=0)
    return folder / "m.onnx"


def onnx_inside(op: str, folder):
    """An LSTM node inside the body of a control-flow node ``op`` (If, Loop or Scan): (model path, the node's path)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.uniform(-0.5, 0.5, s).astype(np.float32), n)
             for n, s in (("W", (1, 16, 3)), ("R", (1, 16, 4)))]
    lstm = helper.make_node("LSTM", ["X", "W", "R"], ["Y"], hidden_size=4, name="inner")
    out = helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", 3])
    if op == "If":
        body = helper.make_graph([lstm], "then", [], [out], inits)
        other = helper.make_graph([helper.make_node("Identity", ["X"], ["Y2"])], "else", [],
                                  [helper.make_tensor_value_info("Y2", TensorProto.FLOAT, None)])
        node = helper.make_node("If", ["cond"], ["Z"], then_branch=body, else_branch=other, name="choose")
        inputs = [helper.make_tensor_value_info("cond", TensorProto.BOOL, []), x]
        path = "If 'choose' > then_branch > LSTM 'inner'"
    else:
        body_inputs = ([helper.make_tensor_value_info("i", TensorProto.INT64, []),
                        helper.make_tensor_value_info("c", TensorProto.BOOL, [])] if op == "Loop" else
                       [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["B", 3])])
        body_outputs = ([helper.make_tensor_value_info("c2", TensorProto.BOOL, [])] if op == "Loop" else []) + [out]
        nodes = ([helper.make_node("Identity", ["c"], ["c2"])] if op == "Loop" else []) + [lstm]
        body = helper.make_graph(nodes, "body", body_inputs, body_outputs, inits)
        if op == "Loop":
            node = helper.make_node("Loop", ["n", "go"], ["Z"], body=body, name="repeat")
            inputs = [helper.make_tensor_value_info("n", TensorProto.INT64, []),
                      helper.make_tensor_value_info("go", TensorProto.BOOL, []), x]
        else:
            node = helper.make_node("Scan", ["X"], ["Z"], body=body, num_scan_inputs=1, name="scan")
            inputs = [x]
        path = f"{op} '{node.name}' > body > LSTM 'inner'"
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("Z", TensorProto.FLOAT, None)])
    folder.mkdir(exist_ok=True)
    model = folder / f"{op.lower()}.onnx"
    onnx.save(make_model(graph), str(model))
    return str(model), path
