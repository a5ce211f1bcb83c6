"""ONNX's own conformance cases for its LSTM, GRU and RNN operators, checked as they are.

The 18 node tests that the installed onnx package's case generators write
(``parity_tests.onnx_conformance``) take their weights, initial states and
sequence lengths as graph inputs, shipped in ``test_data_set_0/input_*.pb``:

* ``rnn-check --model model.onnx --inputs test_data_set_0`` matches on each (ONNX Runtime,
  or onnx's ReferenceEvaluator where ONNX Runtime refuses ``layout=1``), in under 5 s;
* the reference on the folder's inputs equals the folder's expected outputs within the
  float32 table;
* the reference's gradients equal autograd of ONNX's equations written out here in torch,
  in ONNX's own layout (gate rows i, o, f, c / z, r, h; B = [Wb, Rb]; P = [p_i, p_o, p_f], as the
  specs say), on the cases' data and on random weights of the same configuration;
* bad input (a model the reference cannot express, a folder that does not fit) exits 2
  naming the attribute or the input; a planted bug in edited initializers is localised.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from parity_tests.helpers import assert_close
from parity_tests.tolerances import candidate_tol, tol

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
try:  # only the gradient test needs torch; the rest runs in the torch-free suite too
    import torch
except ImportError:
    torch = None

from onnx import numpy_helper

from parity_tests import onnx_conformance
from reference.verify import compare, diff_weights, load_model
from reference.verify.adapters.onnx_graph import swap_peepholes
from reference.verify.cli import main
from reference.verify.layouts import import_gradients

CASES = ["test_lstm_defaults", "test_lstm_with_initial_bias", "test_lstm_with_peepholes", "test_lstm_batchwise",
         "test_lstm_reverse", "test_lstm_bidirectional", "test_gru_defaults", "test_gru_with_initial_bias",
         "test_gru_seq_length", "test_gru_batchwise", "test_gru_reverse", "test_gru_bidirectional",
         "test_simple_rnn_defaults", "test_simple_rnn_with_initial_bias", "test_rnn_seq_length",
         "test_simple_rnn_batchwise", "test_simple_rnn_reverse", "test_simple_rnn_bidirectional"]
SECONDS = 5.0  # the speed goal for rnn-check --model on one case


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """{name: case folder}, regenerated from the installed onnx (one module's cases, in its own temp dir)."""
    out = str(tmp_path_factory.mktemp("onnx_cases"))
    return {os.path.basename(f): f for f in onnx_conformance.write(onnx_conformance.collect(), out)}


def _data(folder: str) -> str:
    return os.path.join(folder, "test_data_set_0")


def _read(folder: str, prefix: str) -> list[np.ndarray]:
    files = sorted((f for f in os.listdir(_data(folder)) if f.startswith(prefix)), key=lambda f: int(f[len(prefix) + 1:-3]))
    out = []
    for f in files:
        t = onnx.TensorProto()
        with open(os.path.join(_data(folder), f), "rb") as fh:
            t.ParseFromString(fh.read())
        out.append(numpy_helper.to_array(t))
    return out


def _node(folder: str):
    model = onnx.load(os.path.join(folder, "model.onnx"))
    node = model.graph.node[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    return model, node, attrs


def test_the_installed_onnx_generates_the_18_cases(cases):
    assert sorted(cases) == sorted(CASES)
    for folder in cases.values():
        assert os.path.isfile(os.path.join(folder, "model.onnx"))
        assert _read(folder, "input") and _read(folder, "output")


# -- rnn-check on each case as it is -----------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_rnn_check_matches_on_each_case_in_under_5_s(name, cases, capsys):
    folder = cases[name]
    start = time.process_time()  # CPU time: what the check costs, whatever else shares the machine's cores
    status = main(["--model", os.path.join(folder, "model.onnx"), "--inputs", _data(folder)])
    seconds = time.process_time() - start
    out = capsys.readouterr()
    assert status == 0, out.out + out.err
    assert "RESULT: MATCH" in out.out and "RESULT (expected outputs): MATCH" in out.out, out.out
    assert seconds < SECONDS, f"{name}: rnn-check took {seconds:.2f} s of CPU time"


@pytest.mark.parametrize("name", CASES)
def test_the_reference_equals_the_expected_outputs(name, cases):
    folder = cases[name]
    cand = load_model(os.path.join(folder, "model.onnx"), inputs=_data(folder))
    check = cand.check_expected()
    assert check is not None and check.passed, str(check)
    assert len(check.tensors) == len(_read(folder, "output"))
    assert (check.tensors[0].rtol, check.tensors[0].atol) == candidate_tol(np.float32, "cpu", "forward")


# -- ONNX's equations in torch, in ONNX's layout --------------------------------------------------------------


def onnx_equations(op: str, attrs: dict, X, W, R, B=None, lens=None, h0=None, c0=None, P=None):
    """Y, Y_h[, Y_c] of ONNX's LSTM/GRU/RNN (default activations), written from the operator specs.

    LSTM (W rows i, o, f, c; P = [p_i, p_o, p_f]):
        i = sigmoid(x W_i + h R_i + p_i c + Wb_i + Rb_i)   f = sigmoid(x W_f + h R_f + p_f c + Wb_f + Rb_f)
        c~ = tanh(x W_c + h R_c + Wb_c + Rb_c)            C = f c + i c~
        o = sigmoid(x W_o + h R_o + p_o C + Wb_o + Rb_o)   H = o tanh(C)
    GRU (rows z, r, h):  z, r = sigmoid(x W + h R + Wb + Rb);  linear_before_reset=0:
        h~ = tanh(x W_h + (r h) R_h + Rb_h + Wb_h), else tanh(x W_h + r (h R_h + Rb_h) + Wb_h);
        H = (1 - z) h~ + z h
    RNN: H = tanh(x W + h R + Wb + Rb)
    Directions: forward, reverse, bidirectional (forward first); a row of length n runs steps
    0..n-1 (reverse: n-1..0), Y is 0 past n. layout=1: X (B, T, I), Y (B, T, D, H), Y_h (B, D, H).
    """
    assert set(attrs) <= {"hidden_size", "direction", "layout", "linear_before_reset"}, attrs
    layout = attrs.get("layout", 0)
    if layout:
        X = X.transpose(0, 1)
        h0 = None if h0 is None else h0.transpose(0, 1)
        c0 = None if c0 is None else c0.transpose(0, 1)
    T, Bn, _ = X.shape
    H = R.shape[-1]
    direction = attrs.get("direction", "forward")
    D = W.shape[0]
    lens = torch.full((Bn,), T, dtype=torch.long) if lens is None else lens.long()
    ys, hs, cs = [], [], []
    for d in range(D):
        reverse = direction == "reverse" or d == 1
        h = torch.zeros(Bn, H, dtype=X.dtype) if h0 is None else h0[d]
        c = torch.zeros(Bn, H, dtype=X.dtype) if c0 is None else c0[d]
        Wb, Rb = (torch.zeros(W.shape[1], dtype=X.dtype),) * 2 if B is None else B[d].chunk(2)
        y = torch.zeros(T, Bn, H, dtype=X.dtype)
        rows = torch.arange(Bn)
        for s in range(T):
            t = (lens - 1 - s).clamp(min=0) if reverse else torch.full((Bn,), s)
            valid = (s < lens)[:, None]
            x = X[t, rows]  # (B, I): each row's own step
            if op == "LSTM":
                xw, hr = x @ W[d].T + Wb, h @ R[d].T + Rb
                ai, ao, af, ac = (xw + hr).chunk(4, dim=-1)
                pi, po, pf = (torch.zeros(H, dtype=X.dtype),) * 3 if P is None else P[d].chunk(3)
                i, f = torch.sigmoid(ai + pi * c), torch.sigmoid(af + pf * c)
                c_new = f * c + i * torch.tanh(ac)
                o = torch.sigmoid(ao + po * c_new)
                h_new = o * torch.tanh(c_new)
                c = torch.where(valid, c_new, c)
            elif op == "GRU":
                xz, xr, xh = (x @ W[d].T + Wb).chunk(3, dim=-1)
                Rz, Rr, Rh = R[d].chunk(3)
                bz, br, bh = Rb.chunk(3)
                z, r = torch.sigmoid(xz + h @ Rz.T + bz), torch.sigmoid(xr + h @ Rr.T + br)
                if attrs.get("linear_before_reset", 0):
                    n = torch.tanh(xh + r * (h @ Rh.T + bh))
                else:
                    n = torch.tanh(xh + (r * h) @ Rh.T + bh)
                h_new = (1 - z) * n + z * h
            else:
                h_new = torch.tanh(x @ W[d].T + Wb + h @ R[d].T + Rb)
            h = torch.where(valid, h_new, h)
            keep = valid[:, 0]
            y = y.index_put((t[keep], rows[keep]), h_new[keep])
        ys.append(y)
        hs.append(h)
        cs.append(c)
    Y, Y_h, Y_c = torch.stack(ys, 1), torch.stack(hs), torch.stack(cs)  # (T, D, B, H), (D, B, H)
    if layout:
        Y, Y_h, Y_c = Y.permute(2, 0, 1, 3), Y_h.transpose(0, 1), Y_c.transpose(0, 1)
    return (Y, Y_h, Y_c) if op == "LSTM" else (Y, Y_h)


_SLOTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")


def _slots(node, values) -> dict[str, np.ndarray]:
    """The case's input arrays by the operator's slot names."""
    present = [s for s, n in zip(_SLOTS, node.input, strict=False) if n]
    return dict(zip(present, values, strict=True))


def _random_like(op, attrs, arrays, rng):
    """Random data of the case's configuration (non-zero biases and peepholes where it has them, T=4, B=3, lengths
    where it takes them), so a transposed gate or a swapped bias would show; the cases' own weights are mostly
    constant."""
    T, Bn = 4, 3
    D, GH, I = arrays["W"].shape
    H = arrays["R"].shape[-1]
    layout = attrs.get("layout", 0)
    u = lambda *s: rng.uniform(-0.8, 0.8, s)
    out = {"X": u(Bn, T, I) if layout else u(T, Bn, I), "W": u(D, GH, I), "R": u(D, GH, H)}
    if "B" in arrays:  # a case without B runs without biases (bias=False): none can be fed
        out["B"] = u(D, 2 * GH)
    if "sequence_lens" in arrays:
        out["sequence_lens"] = np.array([4, 2, 3], dtype=np.int32)
    for s in ("initial_h", "initial_c"):
        if s in arrays:
            out[s] = u(Bn, D, H) if layout else u(D, Bn, H)
    if "P" in arrays:
        out["P"] = u(D, 3 * H)
    return out


def _time_major(a: np.ndarray, layout: int) -> np.ndarray:
    return a.swapaxes(0, 1) if layout else a


@pytest.mark.parametrize("data", ["case", "random"])
@pytest.mark.parametrize("name", CASES)
def test_gradients_equal_autograd_of_onnx_s_equations(name, data, cases):
    from reference.verify.session import reference_run
    from reference.verify.spec import Spec

    pytest.importorskip("torch")
    folder = cases[name]
    model, node, attrs = _node(folder)
    op = node.op_type
    arrays = _slots(node, _read(folder, "input"))
    if data == "random":
        arrays = _random_like(op, attrs, arrays, np.random.default_rng(CASES.index(name)))
    t = {k: torch.tensor(v.astype(np.int64 if k == "sequence_lens" else np.float64), requires_grad=k != "sequence_lens")
         for k, v in arrays.items()}
    outs = onnx_equations(op, attrs, t["X"], t["W"], t["R"], t.get("B"), t.get("sequence_lens"), t.get("initial_h"),
                          t.get("initial_c"), t.get("P"))
    if data == "case":  # the equations written here are ONNX's: they give the expected outputs
        graph_out = [o.name for o in model.graph.output]
        for k, expected in enumerate(_read(folder, "output")):
            slot = list(node.output).index(graph_out[k])
            assert_close(f"{name} equations {['Y', 'Y_h', 'Y_c'][slot]}", outs[slot].detach().numpy(), expected,
                         *candidate_tol(np.float32, "cpu", "forward"), check_dtype=False)

    # the reference, configured and loaded by the verifier from the model with these inputs
    feeds = {n: arrays[s] for s, n in zip(_SLOTS, node.input, strict=False) if n and s in arrays}
    cand = load_model(os.path.join(folder, "model.onnx"),
                      inputs={k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in feeds.items()
                              if k not in ("X", "initial_h", "initial_c", "sequence_lens")})
    spec: Spec = cand.spec
    layout = attrs.get("layout", 0)
    params = {k: np.asarray(v, np.float64) for k, v in
              _torch_params(spec, arrays).items()}  # the float64 values (the candidate holds float32)
    rng = np.random.default_rng(100 + CASES.index(name))
    cots = [rng.standard_normal(o.shape) for o in outs]  # random cotangents on every output, never .sum()
    grads = torch.autograd.grad(outs, [t[k] for k in t if t[k].requires_grad], [torch.tensor(c) for c in cots])
    want = dict(zip([k for k in t if t[k].requires_grad], (g.numpy() for g in grads), strict=True))

    x = _time_major(arrays["X"], layout)
    D = spec.D
    hx = tuple(_time_major(arrays[s], layout) if s in arrays else np.zeros((D, x.shape[1], spec.hidden_size))
               for s in (("initial_h", "initial_c") if spec.lstm else ("initial_h",)))
    g_y = np.moveaxis(cots[0], 0, 1) if layout else cots[0].transpose(0, 2, 1, 3)  # (T, B, D, H)
    g_out = g_y.reshape(g_y.shape[0], g_y.shape[1], -1)  # (T, B, D*H)
    g_hidden = tuple(_time_major(c, layout) for c in cots[1:])
    lengths = arrays.get("sequence_lens")
    res, _, _ = reference_run(spec.reference(params), spec, x, hx, g_out, g_hidden,
                              None if lengths is None else lengths.astype(np.int64), None)

    rtol, atol = tol(np.float64, "cpu", "gradient")
    ftol = tol(np.float64, "cpu", "forward")
    y_ref = res["output"].reshape(*res["output"].shape[:2], D, -1)  # (T, B, D, H)
    y_eq = outs[0].detach().numpy()
    assert_close(f"{name} Y", y_ref, y_eq.swapaxes(0, 1) if layout else y_eq.transpose(0, 2, 1, 3), *ftol)
    assert_close(f"{name} grad X", res["input"], _time_major(want["X"], layout), rtol, atol)
    for k, s in enumerate(("initial_h", "initial_c")[:len(hx)]):
        if s in want:
            assert_close(f"{name} grad {s}", res["hx"][k], _time_major(want[s], layout), rtol, atol)
    nested = {"l0": {k: want[k] for k in ("W", "R", "B") if k in want}}
    expected = import_gradients("onnx", spec, nested)
    for d in range(D):
        if "P" in want:
            expected[f"weight_p_l0{'_reverse' if d else ''}"] = swap_peepholes(want["P"][d])  # rows i, o, f -> i, f, o
    assert sorted(expected) == sorted(params), (sorted(expected), sorted(params))
    for k, g in expected.items():
        assert_close(f"{name} grad {k}", res[k], g, rtol, atol)


def _torch_params(spec, arrays) -> dict[str, np.ndarray]:
    """ONNX's W, R, B, P (float64) in torch's names: the verifier's own import, as load_model does it."""
    from reference.verify.layouts import import_state_dict, torch_mode

    state = import_state_dict("onnx", torch_mode(spec.mode), {"l0": {k: arrays[k] for k in ("W", "R", "B")
                                                                     if k in arrays}}, reset_after=spec.reset_after)
    for d in range(spec.D):
        if "P" in arrays:
            state[f"weight_p_l0{'_reverse' if d else ''}"] = swap_peepholes(arrays["P"][d])
    return state


@pytest.mark.parametrize("name", CASES)
def test_onnx_runtime_matches_on_random_weights_fed_as_inputs(name, cases):
    """The verifier's mapping of W, R, B and P against the runtime, on weights that are not constant."""
    folder = cases[name]
    _, node, attrs = _node(folder)
    arrays = _random_like(node.op_type, attrs, _slots(node, _read(folder, "input")),
                          np.random.default_rng(200 + CASES.index(name)))
    feeds = {n: arrays[s].astype(np.float32) for s, n in zip(_SLOTS, node.input, strict=False)
             if s in ("W", "R", "B", "P") and n}
    cand = load_model(os.path.join(folder, "model.onnx"), inputs=feeds)
    report = compare(cand)
    assert report.passed, str(report)
    if "P" in feeds:  # the peepholes read in torch's row order (i, f, o) instead of ONNX's (i, o, f): a mismatch
        wrong = dict(cand.own_params, weight_p_l0=feeds["P"][0].astype(np.float64))
        assert not compare(cand, cand.spec.reference(wrong)).passed


def test_an_expected_output_that_differs_is_a_mismatch_with_exit_1(cases, tmp_path, capsys):
    folder = cases["test_gru_seq_length"]
    data = str(tmp_path / "data")
    import shutil

    shutil.copytree(_data(folder), data)
    y_h = _read(folder, "output")[0]
    bad = y_h.copy()
    bad[0, 1, 2] += 1e-3  # one entry, above the float32 table's 1e-6 + 1e-5 * max|Y_h|
    with open(os.path.join(data, "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(bad, "Y_h").SerializeToString())
    status = main(["--model", os.path.join(folder, "model.onnx"), "--inputs", data])
    out = capsys.readouterr().out
    assert status == 1, out
    assert "RESULT: MATCH" in out and "RESULT (expected outputs): MISMATCH" in out, out


# -- bad input ----------------------------------------------------------------------------------------------


def _with_attribute(folder: str, path: str, **attrs) -> str:
    model = onnx.load(os.path.join(folder, "model.onnx"))
    node = model.graph.node[0]
    keep = [a for a in node.attribute if a.name not in attrs]
    del node.attribute[:]
    node.attribute.extend(keep + [onnx.helper.make_attribute(k, v) for k, v in attrs.items()])
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("case,attrs,says", [
    ("test_lstm_defaults", {"activations": ["Gelu", "Tanh", "Tanh"]},
     r"activations=\['Gelu', 'Tanh', 'Tanh'\].*not one of ONNX's activation functions \(Relu, Tanh, Sigmoid"),
    ("test_gru_defaults", {"activations": ["Sigmoid"]}, r"activations=\['Sigmoid'\].*expected 2 names"),
    ("test_simple_rnn_defaults", {"clip": -1.0}, r"clip.*-1.0.*expected a positive float"),
    ("test_lstm_defaults", {"layout": 2}, r"attribute layout=2; supported: 0 \(time-major\) and 1"),
    ("test_gru_defaults", {"linear_before_reset": 2}, r"attribute linear_before_reset=2; expected 0 or 1"),
    ("test_lstm_defaults", {"direction": "sideways"}, r"attribute direction='sideways'; expected 'forward', 'reverse'"),
    ("test_simple_rnn_defaults", {"input_forget": 1},
     r"attribute input_forget=1 is not one the reference knows; RNN's are \["),
    ("test_lstm_defaults", {"activations": ["ScaledTanh", "Tanh", "Tanh"]}, r"ScaledTanh.*has no default"),
], ids=["unknown-activation", "activation-count", "clip", "layout", "linear_before_reset", "direction", "unknown",
        "no-default"])
def test_a_model_the_reference_cannot_express_exits_2_naming_the_attribute(case, attrs, says, cases, tmp_path,
                                                                           capsys):
    import re

    folder = cases[case]
    model = _with_attribute(folder, str(tmp_path / "m.onnx"), **attrs)
    status = main(["--model", model, "--inputs", _data(folder)])
    out = capsys.readouterr()
    assert status == 2, out.out + out.err
    assert re.search(says, out.err), out.err
    assert "RESULT" not in out.out  # never a match or a mismatch


@pytest.mark.parametrize("field,case,says", [
    ("peephole", "test_lstm_with_peepholes", "has peephole weights P; the reference runs LSTMs without peepholes"),
    ("reverse", "test_gru_reverse",
     "attribute direction='reverse' has no torch equivalent; the reference runs 'forward' and 'bidirectional'"),
    ("clip", "test_lstm_defaults", "attribute clip=3.0 has no torch equivalent"),
])
def test_a_core_without_the_field_refuses_by_name(field, case, says, cases, tmp_path, monkeypatch, capsys):
    """Where the core's RNNConfig lacks an ONNX field, the model is refused (exit 2), not checked as something else."""
    from reference.verify.adapters import onnx_graph

    supported = onnx_graph.core_supports
    monkeypatch.setattr(onnx_graph, "core_supports", lambda name: name != field and supported(name))
    folder = cases[case]
    model = os.path.join(folder, "model.onnx") if field != "clip" else _with_attribute(folder, str(tmp_path / "m.onnx"),
                                                                                       clip=3.0)
    assert main(["--model", model, "--inputs", _data(folder)]) == 2
    err = capsys.readouterr().err
    assert says in err and f"no field {field!r}" in err, err


def test_weights_fed_as_inputs_without_values_are_named(cases, capsys):
    assert main(["--model", os.path.join(cases["test_lstm_defaults"], "model.onnx")]) == 2
    err = capsys.readouterr().err
    assert "its ['W', 'R'] are graph inputs ['W', 'R'] with no value: give them with --inputs DIR" in err, err


def _write_pb(path: str, a: np.ndarray, name: str) -> None:
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(a, name).SerializeToString())


def test_a_test_data_folder_that_does_not_fit_names_the_input_and_the_shapes(cases, tmp_path, capsys):
    import shutil

    folder = cases["test_lstm_with_initial_bias"]
    model = os.path.join(folder, "model.onnx")
    W, R, B = _read(folder, "input")[1:4]
    # the model declares W (1, 16, 3): a W of another shape is named with both
    data = str(tmp_path / "declared")
    shutil.copytree(_data(folder), data)
    _write_pb(os.path.join(data, "input_1.pb"), W[:, :12], "W")
    assert main(["--model", model, "--inputs", data]) == 2
    err = capsys.readouterr().err
    assert "input_1.pb: input 'W' has shape (1, 12, 3); the model declares (1, 16, 3)" in err, err
    # a model that declares no shapes: the operator's own shapes are checked (R against hidden_size=4)
    free = onnx.load(model)
    for vi in free.graph.input:
        vi.type.tensor_type.ClearField("shape")
    onnx.save(free, str(tmp_path / "free.onnx"))
    data = str(tmp_path / "operator")
    shutil.copytree(_data(folder), data)
    _write_pb(os.path.join(data, "input_2.pb"), R[:, :, :3], "R")
    assert main(["--model", str(tmp_path / "free.onnx"), "--inputs", data]) == 2
    err = capsys.readouterr().err
    assert ("input_2.pb: input 'R': R has shape (1, 16, 3), which does not fit ONNX node 0 (LSTM '') (hidden_size=4, "
            "direction='forward', layout=0): expected (1, 16, 4)") in err, err
    # a file holding another input than its place says, a gap in the numbering, too many files, an .npz's stray key
    data = str(tmp_path / "named")
    shutil.copytree(_data(folder), data)
    _write_pb(os.path.join(data, "input_1.pb"), W, "R")
    assert main(["--model", model, "--inputs", data]) == 2
    assert "input_1.pb: holds 'R', but the graph's input 1 is 'W'" in capsys.readouterr().err
    os.remove(os.path.join(data, "input_2.pb"))
    assert main(["--model", model, "--inputs", data]) == 2
    assert "input_2.pb is missing" in capsys.readouterr().err
    data = str(tmp_path / "many")
    shutil.copytree(_data(folder), data)
    _write_pb(os.path.join(data, "input_4.pb"), B, "B2")
    assert main(["--model", model, "--inputs", data]) == 2
    assert "5 input_*.pb files, but the model has 4 graph inputs ['X', 'W', 'R', 'B']" in capsys.readouterr().err
    np.savez(str(tmp_path / "w.npz"), W=W, R=R, B=B, Q=B)
    assert main(["--model", model, "--inputs", str(tmp_path / "w.npz")]) == 2
    assert "['Q'] are not graph inputs of the model; its inputs are ['X', 'W', 'R', 'B']" in capsys.readouterr().err
    np.savez(str(tmp_path / "ok.npz"), W=W, R=R, B=B)  # weights by name, without the folder's X: forward checked
    assert main(["--model", model, "--inputs", str(tmp_path / "ok.npz")]) == 0
    assert "RESULT: MATCH" in capsys.readouterr().out


# -- a planted bug in edited initializers ----------------------------------------------------------------------


def _as_initializers(folder: str, path: str, arrays: dict, edit=None) -> str:
    """The case's model with its weights (W, R, B, P) as initializers, ``edit(slot, array)`` applied to them."""
    model = onnx.load(os.path.join(folder, "model.onnx"))
    node = model.graph.node[0]
    names = dict(zip(_SLOTS, node.input, strict=False))
    weights = [s for s in ("W", "R", "B", "P") if names.get(s)]
    for s in weights:
        a = arrays[s].astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(edit(s, a.copy()) if edit else a, names[s]))
    keep = [vi for vi in model.graph.input if vi.name not in {names[s] for s in weights}]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("case,slot,block,direction,gate", [
    ("test_lstm_bidirectional", "W", 2, 1, "f"),  # ONNX's rows i, o, f, c: block 2 is f
    ("test_lstm_with_peepholes", "R", 1, 0, "o"),
    ("test_gru_reverse", "W", 0, 0, "z"),  # rows z, r, h: block 0 is z; a reverse layer alone is direction 0
    ("test_gru_bidirectional", "R", 2, 1, "n"),
])
def test_a_planted_bug_in_the_initializers_is_named_by_gate_layer_and_direction(case, slot, block, direction, gate,
                                                                                cases, tmp_path):
    folder = cases[case]
    _, node, attrs = _node(folder)
    arrays = _random_like(node.op_type, attrs, _slots(node, _read(folder, "input")), np.random.default_rng(7))
    H = arrays["R"].shape[-1]

    def scale(s, a):
        if s == slot:
            a[direction, block * H:(block + 1) * H] *= 1.5  # one gate's rows of one direction
        return a

    good = load_model(_as_initializers(folder, str(tmp_path / "good.onnx"), arrays))
    bad = load_model(_as_initializers(folder, str(tmp_path / "bad.onnx"), arrays, scale))
    assert compare(good).passed and compare(bad).passed  # the runtime is right on either file's own weights
    report = compare(bad, good.spec.reference(good.own_params))
    assert not report.passed
    div = report.forward
    assert (div.kind, div.layer, div.direction, div.gate) == ("weights", 0, direction, gate), str(report)
    diffs = [str(d) for d in diff_weights(str(tmp_path / "bad.onnx"), str(tmp_path / "good.onnx"))]
    where = f"layer 0 {'reverse' if direction else 'forward'}: {slot} block {gate}"
    assert len(diffs) == 1 and diffs[0].startswith(where), diffs


def test_a_test_data_file_is_read_from_itself_within_its_declared_size(cases, tmp_path, capsys):
    import shutil

    from onnx import TensorProto

    folder = cases["test_gru_defaults"]
    model = os.path.join(folder, "model.onnx")
    W = _read(folder, "input")[1]
    for label, make, says in (
        ("external", lambda t: (t.ClearField("raw_data"), setattr(t, "data_location", TensorProto.EXTERNAL),
                                t.external_data.add(key="location", value="../../etc/passwd")),
         "keeps its data in another file"),
        ("short", lambda t: setattr(t, "raw_data", t.raw_data[:-4]), "but holds 116 bytes"),
    ):
        data = str(tmp_path / label)
        shutil.copytree(_data(folder), data)
        t = numpy_helper.from_array(W, "W")
        make(t)
        with open(os.path.join(data, "input_1.pb"), "wb") as f:
            f.write(t.SerializeToString())
        assert main(["--model", model, "--inputs", data]) == 2
        assert says in capsys.readouterr().err
