"""Model files run no code, and hostile or broken ones are refused by name, through every entry point.

A hostile pickle here creates a marker file when unpickled: a stand-in for any
code a downloaded file could run. It goes through every reader, API and CLI
(in-process through ``main()`` and once as a subprocess); the marker must not
appear unless the caller opts in (``trust_pickle=True`` / ``--trust-pickle``),
and with the opt-in it does appear, so the tests can tell. Truncated, oversized
(declared 10^12-element arrays and inputs), mislabelled, empty and missing
files and directories each exit 2 (ValueError in the API) with a sentence
naming the file, within bounded time and memory, never a traceback.

torch is needed only to make and read .pt files, onnx and onnxruntime only for
.onnx ones: those tests skip cleanly without them.
"""

from __future__ import annotations

import os
import pickle
import time
import tracemalloc
import warnings
from collections.abc import Callable

import numpy as np
import pytest

from parity_tests.hostile import (
    directory,
    good_npz,
    link_to,
    npz,
    npz_compressed_with,
    npz_declaring,
    npz_members_declaring,
    npz_of_strings,
    onnx_inside,
    onnx_lstm,
    onnx_lstm_fed,
    onnx_with_external_data,
    pipe,
    pt_compressed_with,
    renamed,
    run,
    run_subprocess,
    sparse,
    state,
    torch_expanded,
    torch_sd,
    truncated,
)
from reference.verify import CandidateError, Limits, compare, diff_weights, load_model, load_weights

MAX_SECONDS = 60  # each refusal takes milliseconds; the bound is for a shared, loaded machine
MAX_TRACED_BYTES = 64 * 2**20  # what NumPy may allocate while refusing a file (10^12 float32s would be 4 TB)


class Touch:
    """Unpickling this creates ``path``: the code a hostile pickle runs when loaded in full."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').close()",))


def refused_by_api(call: Callable[[], object], kinds: type | tuple = ValueError) -> str:
    """The message of the ValueError (or other ``kinds``) ``call`` raises: it must refuse within bounded time and
    NumPy memory."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        with pytest.raises(kinds) as e:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not tracing:
            tracemalloc.stop()
    assert time.perf_counter() - start < MAX_SECONDS
    assert peak < MAX_TRACED_BYTES, f"{peak} bytes allocated while refusing"
    return str(e.value)


def refused_by_cli(args, capsys) -> str:
    start = time.perf_counter()
    code, out, err = run(args, capsys)
    assert time.perf_counter() - start < MAX_SECONDS
    assert code == 2 and "Traceback" not in err and err.startswith("error: "), out + err
    return err


# -- code in files: refused unless trusted --------------------------------------------------------


def evil_torch_save(path, marker):
    torch = pytest.importorskip("torch")
    torch.save({"weight_ih_l0": Touch(marker)}, path)


def evil_pickle(protocol):
    def make(path, marker):
        pytest.importorskip("torch")  # only torch reads .pt files
        path.write_bytes(pickle.dumps({"weight_ih_l0": Touch(marker)}, protocol=protocol))
    return make


def evil_npz(path, marker):
    np.savez(path, weight_ih_l0=np.array([Touch(marker)], dtype=object))  # an object array is a pickle


EVIL = {"torch.save": ("evil.pt", evil_torch_save), "pickle protocol 2": ("evil.pth", evil_pickle(2)),
        "pickle protocol 5": ("evil.pt", evil_pickle(5)), "npz object array": ("evil.npz", evil_npz)}

ENTRY_POINTS = {
    "load_model": lambda p, good: load_model(p),
    "load_weights": lambda p, good: load_weights(p),
    "diff_weights(evil, good)": lambda p, good: diff_weights(p, good),
    "diff_weights(good, evil)": lambda p, good: diff_weights(good, p),
    "compare(path)": lambda p, good: compare(p),
}
CLI_ENTRY_POINTS = {
    "--model": lambda p, good: ["--model", p],
    "--diff-weights evil good": lambda p, good: ["--diff-weights", p, good],
    "--diff-weights good evil": lambda p, good: ["--diff-weights", good, p],
    "--with-weights": lambda p, good: ["--candidate", "torch.nn:LSTM", "--with-weights", p],
}


def _evil(tmp_path, kind):
    name, make = EVIL[kind]
    marker = tmp_path / "marker"
    path = tmp_path / name
    make(path, marker)
    assert not marker.exists()
    return str(path), marker


def _says_why(message: str, kind: str) -> None:
    if kind == "npz object array":
        assert "Python objects (a pickle)" in message and "allow_pickle=False" in message, message
    else:
        assert "trust_pickle=True" in message and "--trust-pickle" in message and "runs" in message, message


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("kind", EVIL)
def test_a_hostile_pickle_runs_no_code_through_the_api(kind, entry, tmp_path):
    path, marker = _evil(tmp_path, kind)
    if kind == "npz object array" and entry in ("load_model", "compare(path)"):
        pytest.importorskip("torch")  # an .npz model runs in torch.nn
    message = refused_by_api(lambda: ENTRY_POINTS[entry](path, good_npz(tmp_path)))
    assert not marker.exists(), f"{entry} ran the pickle's code"
    _says_why(message, kind)


@pytest.mark.parametrize("entry", CLI_ENTRY_POINTS)
@pytest.mark.parametrize("kind", EVIL)
def test_a_hostile_pickle_runs_no_code_through_the_cli(kind, entry, tmp_path, capsys):
    path, marker = _evil(tmp_path, kind)
    if entry in ("--model", "--with-weights"):
        pytest.importorskip("torch")
    err = refused_by_cli(CLI_ENTRY_POINTS[entry](path, good_npz(tmp_path)), capsys)
    assert not marker.exists(), f"rnn-check {entry} ran the pickle's code"
    _says_why(err, kind)


def test_a_hostile_pickle_runs_no_code_through_the_console_program(tmp_path):
    path, marker = _evil(tmp_path, "torch.save")
    r = run_subprocess("--model", path)
    assert r.returncode == 2 and "--trust-pickle" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not marker.exists(), "rnn-check --model ran the pickle's code"


@pytest.mark.parametrize("kind", ["torch.save", "pickle protocol 2"])
def test_with_the_opt_in_the_pickle_runs_which_is_what_the_tests_above_would_see(kind, tmp_path, capsys):
    path, marker = _evil(tmp_path, kind)
    with pytest.raises(ValueError):  # it runs, then is no recurrent module (or, a bare pickle, no torch file)
        load_model(path, trust_pickle=True)
    assert marker.exists()
    marker.unlink()
    code, _, err = run(["--model", path, "--trust-pickle"], capsys)
    assert code == 2 and marker.exists() and "Traceback" not in err


def test_with_the_opt_in_a_pickled_torch_lstm_loads_and_matches(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    m = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    torch.save(m, tmp_path / "m.pt")
    torch.save(m.state_dict(), tmp_path / "sd.pt")
    path = str(tmp_path / "m.pt")
    message = refused_by_api(lambda: load_model(path))
    assert "torch.nn.modules.rnn.LSTM" in message and "trust_pickle=True" in message
    assert compare(load_model(path, trust_pickle=True)).passed
    assert compare(path, trust_pickle=True).passed
    assert diff_weights(path, str(tmp_path / "sd.pt"), trust_pickle=True) == []
    code, out, err = run(["--model", path, "--trust-pickle"], capsys)
    assert code == 0 and "RESULT: MATCH" in out, out + err
    code, out, err = run(["--diff-weights", path, str(tmp_path / "sd.pt"), "--trust-pickle"], capsys)
    assert code == 0 and "RESULT: SAME" in out, out + err
    assert "torch.nn.modules.rnn.LSTM" in refused_by_cli(["--model", path], capsys)
    code, out, err = run(["--model", str(tmp_path / "sd.pt")], capsys)  # a state_dict needs no trust
    assert code == 0 and "RESULT: MATCH" in out, out + err


def test_a_torchscript_archive_is_refused_unless_trusted(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():  # torch's notice that TorchScript is deprecated: such files still exist
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(torch.nn.LSTM(3, 4)), tmp_path / "s.pt")
    assert "TorchScript" in refused_by_api(lambda: load_model(str(tmp_path / "s.pt")))
    assert "--trust-pickle" in refused_by_cli(["--model", str(tmp_path / "s.pt")], capsys)


def test_help_says_what_the_opt_in_risks_and_that_candidate_runs_code(capsys):
    code, out, _ = run(["--help"], capsys)
    text = " ".join(out.split())
    assert code == 0
    assert "--trust-pickle" in text and "runs any code the file names, as you" in text
    assert "with your permissions" in text and "weights_only=True" in text and "allow_pickle=False" in text
    assert "runs that code by design" in text
    assert "--candidate runs code by design: it imports the module or executes the .py file you name." in out


# -- broken and hostile files -----------------------------------------------------------------------


HOSTILE = {  # name: (file name, builder, what the message says)
    "truncated .pt": ("t.pt", lambda p: truncated(torch_sd(p)), "truncated or corrupt"),
    "truncated legacy .pt": ("t.pth", lambda p: truncated(torch_sd(p, legacy=True)), "truncated or corrupt"),
    "truncated .onnx": ("t.onnx", lambda p: truncated(onnx_lstm(p)), "not a readable ONNX model"),
    "truncated .npz": ("t.npz", lambda p: truncated(npz(p)), "truncated or corrupt"),
    ".pt tensor of 10^12 elements": ("big.pt", lambda p: torch_expanded(p, (10**6, 10**6)),
                                     "weight_ih_l0: declares shape (1000000, 1000000)"),
    ".pt tensor its storage does not fill": ("short.pt", lambda p: torch_expanded(p, (16, 3)),
                                             "(192 bytes) over a storage of 4 bytes"),
    ".onnx initializer of 10^12 elements": ("big.onnx", lambda p: onnx_lstm(p, w_dims=(1, 10**6, 10**6)),
                                            "tensor 'W': declares shape (1, 1000000, 1000000)"),
    ".onnx initializer its bytes do not fill": ("short.onnx", lambda p: onnx_lstm(p, w_dims=(1, 16, 4)),
                                                "declares shape (1, 16, 4) (256 bytes) but holds 192 bytes"),
    ".onnx input of 10^12 elements": ("wide.onnx", lambda p: onnx_lstm(p, x_dims=(10**6, 10**6, 3)),
                                      "input 'X' declares shape (1000000, 1000000, 3)"),
    ".npz member of 10^12 elements": ("big.npz", lambda p: npz_declaring(p, (10**6, 10**6)),
                                      "declares shape (1000000, 1000000)"),
    ".npz member its bytes do not fill": ("short.npz", lambda p: npz_declaring(p, (4, 4)),
                                          "(64 bytes) but holds 16 bytes"),
    "a directory named .pt": ("d.pt", directory, "is a directory"),
    "a directory named .onnx": ("d.onnx", directory, "is a directory"),
    "a directory named .npz": ("d.npz", directory, "is a directory"),
    "a missing .pt": ("missing.pt", lambda p: p, "no such file"),
    "a missing .npz": ("missing.npz", lambda p: p, "no such file"),
    "an empty .pt": ("e.pt", lambda p: p.touch(), "is empty"),
    "an empty .onnx": ("e.onnx", lambda p: p.touch(), "is empty"),
    ".npz named .pt": ("w.pt", renamed(npz, ".npz"), "named .pt but its contents are a .npz archive"),
    ".pt named .npz": ("w.npz", renamed(torch_sd, ".pt"), "named .npz but its contents are a torch file"),
    ".pt named .onnx": ("w.onnx", renamed(torch_sd, ".pt"), "named .onnx but its contents are a torch file"),
    ".npz named .onnx": ("w.onnx", renamed(npz, ".npz"), "named .onnx but its contents are a .npz archive"),
    ".onnx named .npz": ("w.npz", renamed(onnx_lstm, ".onnx"), "named .npz but its contents are not a zip"),
    ".onnx named .pt": ("w.pt", renamed(onnx_lstm, ".onnx"), "named .pt but its contents are not a zip"),
    "a link to /dev/zero named .onnx": ("z.onnx", link_to("/dev/zero"), "a link to '/dev/zero', is not a regular file"),
    "a link to /dev/zero named .npz": ("z.npz", link_to("/dev/zero"), "a link to '/dev/zero', is not a regular file"),
    "a link to /dev/zero named .pt": ("z.pt", link_to("/dev/zero"), "a link to '/dev/zero', is not a regular file"),
    "a broken link named .npz": ("b.npz", link_to("nowhere.npz"), "no such file"),
    "a pipe named .onnx": ("p.onnx", pipe, "is not a regular file (a device, pipe or socket)"),
    "a pipe named .pt": ("p.pt", pipe, "is not a regular file (a device, pipe or socket)"),
    "a sparse 3 GiB .onnx": ("s.onnx", sparse(3 * 2**30), "is 3221225472 bytes, over the limit of 2147483648"),
    "a sparse 3 GiB .npz": ("s.npz", sparse(3 * 2**30), "over the limit of 2147483648 bytes per file"),
    "a sparse 3 GiB .pt": ("s.pt", sparse(3 * 2**30), "over the limit of 2147483648 bytes per file"),
    ".npz members adding up to 4.5 GiB": ("sum.npz", npz_members_declaring([3 * 2**29] * 3),
                                          "over the limit of 4294967296 bytes in all"),
    ".npz member of 3 GiB": ("m.npz", npz_members_declaring([3 * 2**30]),
                             "member 'm0.npy' (uncompressed) is 3221225472 bytes, over the limit of 2147483648"),
    ".npz member compressed by an unsupported method": ("c.npz", npz_compressed_with(6),
                                                        "is compressed with zip method 6; expected stored or deflated"),
    ".pt member compressed by an unsupported method": ("c.pt", pt_compressed_with(99),
                                                       "is compressed with zip method 99; expected stored"),
    ".npz member of strings": ("u.npz", npz_of_strings, "'weight_ih_l0.npy': holds values of dtype <U1; expected real"),
}


def _hostile(tmp_path, name) -> tuple[str, str]:
    file_name, make, says = HOSTILE[name]
    path = tmp_path / file_name
    make(path)
    return str(path), says


def _needs_runtime(path: str, entry: str) -> None:
    """A model file runs in torch (.pt, .npz) or ONNX Runtime (.onnx): skip where it is not installed."""
    if entry in ("load_model", "compare(path)", "--model") and not path.endswith(".onnx"):
        pytest.importorskip("torch")
    if path.endswith(".onnx"):
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_or_broken_file_is_refused_by_the_api(name, entry, tmp_path):
    path, says = _hostile(tmp_path, name)
    _needs_runtime(path, entry)
    # a refusal of what the file holds is a ValueError; of values that are not numbers, a TypeError (as for any weights)
    message = refused_by_api(lambda: ENTRY_POINTS[entry](path, good_npz(tmp_path)), (ValueError, TypeError))
    assert says in message and os.path.basename(path) in message, message


@pytest.mark.parametrize("entry", ["--model", "--diff-weights evil good", "--diff-weights good evil"])
@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_or_broken_file_exits_2_from_the_cli(name, entry, tmp_path, capsys):
    path, says = _hostile(tmp_path, name)
    _needs_runtime(path, entry)
    err = refused_by_cli(CLI_ENTRY_POINTS[entry](path, good_npz(tmp_path)), capsys)
    assert says in err and os.path.basename(path) in err, err


def test_onnx_external_data_is_read_only_from_beside_the_model(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")

    model = onnx.load(str(onnx_lstm(tmp_path / "m.onnx")))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.data", size_threshold=0)
    assert compare(str(tmp_path / "ext.onnx")).passed  # beside the model: read
    model = onnx.load(str(tmp_path / "ext.onnx"), load_external_data=False)
    for t in model.graph.initializer:
        next(e for e in t.external_data if e.key == "location").value = "../ext.data"
    (tmp_path / "sub").mkdir()
    onnx.save(model, str(tmp_path / "sub" / "out.onnx"))
    message = refused_by_api(lambda: load_model(str(tmp_path / "sub" / "out.onnx")))
    assert "outside the model's directory" in message and "'../ext.data'" in message
    assert "outside the model's directory" in refused_by_cli(["--model", str(tmp_path / "sub" / "out.onnx")], capsys)


# -- big-endian weights: converted to native order and read ---------------------------------------------


def big_endian_npz(path):
    np.savez(path, **{k: v.astype(v.dtype.newbyteorder(">")) for k, v in state().items()})
    return path


def big_endian_pt(path):
    """A torch.save state_dict as a big-endian machine writes it: the storages' bytes swapped, byteorder "big"."""
    import zipfile

    made = torch_sd(path.with_name("little.pt"))
    with zipfile.ZipFile(made) as z, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in z.infolist():
            data = z.read(info)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename and not info.filename.endswith(".pkl"):
                data = np.frombuffer(data, "<f4").astype(">f4").tobytes()
            out.writestr(info, data)
    return path


@pytest.mark.parametrize("make", [big_endian_npz, big_endian_pt], ids=["npz", "pt"])
def test_big_endian_weights_are_read_in_native_order_through_every_entry_point(make, tmp_path, capsys):
    pytest.importorskip("torch")
    path = str(make(tmp_path / ("w" + (".npz" if make is big_endian_npz else ".pt"))))
    state_dict, _, _ = load_weights(path)
    assert all(v.dtype.isnative for v in state_dict.values())
    assert compare(path).passed
    code, out, err = run(["--model", path], capsys)
    assert code == 0 and "RESULT: MATCH" in out, out + err
    code, out, err = run(["--candidate", "torch.nn:LSTM", "--with-weights", path], capsys)
    assert code == 0 and "RESULT: MATCH" in out, out + err
    if make is big_endian_npz:
        code, out, err = run(["--diff-weights", path, good_npz(tmp_path)], capsys)
        assert code == 0 and "RESULT: SAME" in out, out + err


# -- ONNX: test-data folders, external data, tensors that disagree with their dims, control flow -------------


def _pb(path, name, array=None, float_data=None, dims=None):
    """Write a TensorProto: ``array``'s, or one declaring ``dims`` over ``float_data``."""
    from onnx import TensorProto, numpy_helper

    if array is not None:
        t = numpy_helper.from_array(array, name)
    else:
        t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims, float_data=float_data)
    with open(path, "wb") as f:
        f.write(t.SerializeToString())


def _write(path, data: bytes):
    with open(path, "wb") as f:
        f.write(data)


def _replace(path, make):
    os.remove(path)
    make(path)


def data_case(edit):
    """A fed model and its test data, the data edited by ``edit(folder, tmp_path)``: the rnn-check arguments."""
    def build(tmp_path):
        model, data = onnx_lstm_fed(tmp_path / "case")
        extra = edit(data, tmp_path) or []
        return ["--model", model, "--inputs", data, *extra]
    return build


def model_case(make):
    def build(tmp_path):
        return ["--model", str(make(tmp_path))]
    return build


def _external(edit):
    """The external-data model, then ``edit(model proto, folder)`` saved over it."""
    def make(tmp_path):
        import onnx

        path = onnx_with_external_data(tmp_path / "ext")
        model = onnx.load(str(path), load_external_data=False)
        edit(model, tmp_path / "ext")
        onnx.save(model, str(path))
        return path
    return make


def _location(value, where=lambda model: model.graph.initializer[0]):
    def edit(model, folder):
        next(e for e in where(model).external_data if e.key == "location").value = value
    return edit


def _link_ext_data(target):
    def edit(model, folder):
        os.replace(folder / "ext.data", folder / "real.data")
        os.symlink(target(folder), folder / "ext.data")
    return edit


def _outside_copy(folder):
    outside = folder.parent / "outside.data"
    os.replace(folder / "real.data", outside)
    return outside


def _subgraph_external(tmp_path):
    """An If node whose then_branch keeps a tensor's data at an absolute path (the top graph stays plain)."""
    import onnx
    from onnx import TensorProto, helper

    path = onnx_lstm(tmp_path / "sub.onnx")
    model = onnx.load(str(path))
    t = TensorProto(name="secret", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    t.external_data.add(key="location", value="/etc/passwd")
    branch = helper.make_graph([helper.make_node("Identity", ["secret"], ["s"])], "then", [],
                               [helper.make_tensor_value_info("s", TensorProto.FLOAT, None)], [t])
    model.graph.node.append(helper.make_node("If", ["c"], ["unused"], then_branch=branch, else_branch=branch))
    model.graph.input.append(helper.make_tensor_value_info("c", TensorProto.BOOL, []))
    onnx.save(model, str(path))
    return path


def _short_float_data(tmp_path):
    import onnx

    path = onnx_lstm(tmp_path / "short.onnx")
    model = onnx.load(str(path))
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.float_data.extend([0.5] * 10)
    onnx.save(model, str(path))
    return path


def _sequence_lens(values):
    def edit(data, tmp_path):
        _pb(os.path.join(data, "input_1.pb"), "sequence_lens", np.asarray(values, np.int32))
    return edit


ONNX_HOSTILE = {  # name: (builder of the rnn-check arguments, what the one line says)
    "a test-data file linked to /dev/zero": (
        data_case(lambda d, t: _replace(os.path.join(d, "input_0.pb"), link_to("/dev/zero"))),
        "input_0.pb' resolves to '/dev/zero', outside"),
    "a test-data file linked outside its folder": (
        data_case(lambda d, t: _replace(os.path.join(d, "input_0.pb"), link_to(os.path.join(d, "..", "model.onnx")))),
        "input_0.pb' resolves to"),
    "a test-data file that is a pipe": (
        data_case(lambda d, t: _replace(os.path.join(d, "input_0.pb"), pipe)),
        "input_0.pb' is not a regular file (a device, pipe or socket)"),
    "a sparse 3 GiB test-data file": (
        data_case(lambda d, t: _replace(os.path.join(d, "input_0.pb"), sparse(3 * 2**30))),
        "input_0.pb' is 3221225472 bytes, over the limit of 2147483648 bytes per file"),
    "test data past the total limit": (
        data_case(lambda d, t: ["--max-total-bytes", str(os.path.getsize(os.path.join(d, "..", "model.onnx")) + 100)]),
        "bytes in all"),
    "a test-data file that is no tensor": (
        data_case(lambda d, t: _write(os.path.join(d, "input_0.pb"), b"\xff" * 64)),
        "input_0.pb: not a readable TensorProto"),
    "a test-data tensor whose float_data is shorter than its dims": (
        data_case(lambda d, t: _pb(os.path.join(d, "input_0.pb"), "X", float_data=[0.5] * 10, dims=[5, 3, 3])),
        "input_0.pb: tensor 'X' declares shape (5, 3, 3) (45 values) but its float_data holds 10"),
    "an initializer whose float_data is shorter than its dims": (
        model_case(_short_float_data), "tensor 'W' declares shape (1, 16, 3) (48 values) but its float_data holds 10"),
    "external data through a symlink out of the folder": (
        model_case(_external(_link_ext_data(_outside_copy))), "ext.data' resolves to"),
    "external data through a symlink to /dev/zero": (
        model_case(_external(_link_ext_data(lambda folder: "/dev/zero"))), "ext.data' resolves to '/dev/zero'"),
    "external data at an absolute path": (
        model_case(_external(_location("/etc/passwd"))), "keeps its data at '/etc/passwd', outside the model's"),
    "external data at an absolute path in a subgraph": (
        model_case(_subgraph_external), "tensor 'secret' keeps its data at '/etc/passwd', outside the model's"),
    "external data longer than its file": (
        model_case(_external(lambda m, f: os.truncate(f / "ext.data", 100))),
        "tensor 'W' declares 192 bytes at offset 0 in 'ext.data', which holds 100"),
    "sequence_lens above T": (data_case(_sequence_lens([5, 9, 4])),
                              "input_1.pb: sequence_lens [5, 9, 4]: expected 3 ints in [1, 5]"),
    "sequence_lens of 0": (data_case(_sequence_lens([5, 0, 4])),
                           "input_1.pb: sequence_lens [5, 0, 4]: expected 3 ints in [1, 5]"),
    "negative sequence_lens": (data_case(_sequence_lens([5, -1, 4])),
                               "input_1.pb: sequence_lens [5, -1, 4]: expected 3 ints in [1, 5]"),
    "sequence_lens of another batch": (data_case(_sequence_lens([5, 4])),
                                       "input 'sequence_lens': sequence_lens has shape (2,), which does not fit"),
}


def _control_flow(op):
    return lambda tmp_path: ["--model", onnx_inside(op, tmp_path / "cf")[0]]


for _op, _path in (("If", "If 'choose' > then_branch > LSTM 'inner'"), ("Loop", "Loop 'repeat' > body > LSTM 'inner'"),
                   ("Scan", "Scan 'scan' > body > LSTM 'inner'")):
    ONNX_HOSTILE[f"an LSTM inside {_op}"] = (_control_flow(_op), f"{_path} is inside a control-flow subgraph")


@pytest.mark.parametrize("name", ONNX_HOSTILE)
def test_a_hostile_onnx_model_or_test_data_exits_2_naming_it(name, tmp_path, capsys):
    build, says = ONNX_HOSTILE[name]
    args = build(tmp_path)
    err = refused_by_cli(args, capsys)
    assert says in err and err.count("\n") == 1, err


@pytest.mark.parametrize("name", ONNX_HOSTILE)
def test_a_hostile_onnx_model_or_test_data_is_refused_by_the_api(name, tmp_path):
    build, says = ONNX_HOSTILE[name]
    args = build(tmp_path)
    if "--max-total-bytes" in args:
        i = args.index("--max-total-bytes")
        limits, args = Limits(total_bytes=int(args[i + 1])), args[:i] + args[i + 2:]
    else:
        limits = None
    inputs = args[args.index("--inputs") + 1] if "--inputs" in args else None
    message = refused_by_api(lambda: compare(load_model(args[1], inputs=inputs, limits=limits)),
                             (ValueError, CandidateError))
    assert says in message, message


def test_sequence_lens_from_the_test_data_are_used_by_both_sides_and_shown(tmp_path, capsys):
    model, data = onnx_lstm_fed(tmp_path / "case", lengths=(2, 5, 3))
    report = compare(load_model(model, inputs=data))
    assert report.passed and report.lengths == [2, 5, 3] and report.T == 5 and report.B == 3, str(report)
    assert "lengths: sequence_lens from input_1.pb" in str(report), str(report)
    code, out, err = run(["--model", model, "--inputs", data], capsys)
    assert code == 0 and "lengths=[2, 5, 3]" in out and "sequence_lens from input_1.pb" in out, out + err
    code, _, err = run(["--model", model, "--inputs", data, "--lengths", "1,1,1"], capsys)
    assert code == 2 and "given by --lengths (lengths=) and by the test data's sequence_lens" in err, err


def test_onnx_external_data_in_a_subgraph_is_read_when_it_lies_beside_the_model(tmp_path):
    import onnx

    path = onnx_with_external_data(tmp_path / "ext")
    model = onnx.load(str(path), load_external_data=False)
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert compare(str(path)).passed


def test_big_endian_onnx_inputs_are_read_in_native_order(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    model, data = onnx_lstm_fed(tmp_path / "case")
    values = {}
    for j, name in enumerate(("X", "sequence_lens", "initial_h", "initial_c")):
        t = numpy_helper.to_array(onnx.load_tensor(os.path.join(data, f"input_{j}.pb")))
        values[name] = t.astype(t.dtype.newbyteorder(">"))
    np.savez(tmp_path / "inputs.npz", **values)
    code, out, err = run(["--model", model, "--inputs", str(tmp_path / "inputs.npz")], capsys)
    assert code == 0 and "RESULT: MATCH" in out and "lengths=[5, 3, 4]" in out, out + err
    assert compare(load_model(model, inputs=values)).passed
