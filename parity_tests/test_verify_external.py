"""The verifier against implementations nobody here wrote the verifier for.

* ONNX Runtime running torch LSTM/GRU/RNN exported to ONNX (model files checked as they are),
  with bugs planted in the .onnx initializers;
* a CS231n-style NumPy LSTM (step functions and caches, gates i f o g, batch-first, a backward
  that takes no dc_n and returns no dc_0), a d2l-style from-scratch LSTM/GRU (per-gate
  parameters, autograd; d2l's GRU is the paper's form) and a min-char-rnn-style loop (column
  vectors, one bias, no dx): correct ones MATCH on what they compute, planted forward and
  backward bugs are each localised to their gate;
* .npz weights in the keras, ifog and onnx layouts, pickled torch modules and state_dicts.

These implementations are written here, in the style of those sources.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from reference.verify import Spec, compare, diff_weights, export_state_dict, load_model
from reference.verify.onnx_versions import make_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

sigmoid = lambda a: 1 / (1 + np.exp(-a))


def where(div):
    return (div.kind, div.layer, div.direction, div.time, div.gate)


# -- ONNX Runtime --------------------------------------------------------------------------------


def export(module, path, T=5, B=2):
    """torch.onnx's TorchScript exporter, with h_0 (c_0) as inputs and dynamic T and B."""
    lstm = isinstance(module, torch.nn.LSTM)
    D = 2 if module.bidirectional else 1
    h0 = torch.zeros(module.num_layers * D, B, module.hidden_size)
    args = (torch.zeros(T, B, module.input_size), (h0, h0) if lstm else h0)
    names = ["x", "h0", "c0"] if lstm else ["x", "h0"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, input_names=names,
                          output_names=["y", "h_n", "c_n"][:len(names)],
                          dynamic_axes={n: ({0: "T", 1: "B"} if n == "x" else {1: "B"}) for n in names})
    return str(path)


EXPORTS = [(torch.nn.LSTM, {"num_layers": 2, "bidirectional": True}), (torch.nn.GRU, {"num_layers": 2}),
           (torch.nn.RNN, {"nonlinearity": "relu", "bidirectional": True})]


@pytest.mark.parametrize("cls,kw", EXPORTS, ids=["LSTM", "GRU", "RNN"])
def test_onnx_runtime_matches_on_the_file_s_own_weights(cls, kw, tmp_path):
    torch.manual_seed(0)
    m = cls(3, 4, **kw)
    cand = load_model(export(m, tmp_path / "m.onnx"))
    assert cand.spec == Spec.coerce({"mode": "RNN_RELU" if cls is torch.nn.RNN else cls.__name__, "input_size": 3,
                                     "hidden_size": 4, **{k: v for k, v in kw.items() if k != "nonlinearity"}})
    report = compare(cand, lengths=None, seq_len=6)
    assert report.passed and report.dtype == "float32", str(report)
    assert [t.kind for t in report.tensors] == ["forward"] * len(report.tensors)  # ORT has no gradients
    assert compare(cand, m).passed  # the source module's weights: the same, as exported
    assert diff_weights(str(tmp_path / "m.onnx"), m) == []


def _planted(src, dst, layer, fn):
    model = onnx.load(src)
    nodes = [n for n in model.graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
    inits = {i.name: i for i in model.graph.initializer}
    from onnx import numpy_helper

    for slot, name in zip("WRB", nodes[layer].input[1:4], strict=True):
        arr = numpy_helper.to_array(inits[name]).copy()
        new = fn(slot, arr)
        if new is not None:
            inits[name].CopyFrom(numpy_helper.from_array(new.astype(arr.dtype), name))
    onnx.save(model, dst)
    return dst


def test_planted_swap_in_the_onnx_initializers_is_named(tmp_path):
    torch.manual_seed(1)
    m = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    src = export(m, tmp_path / "m.onnx")

    def swap_f_o_reverse(slot, a):  # ONNX's gate order is i, o, f, c: o is block 1, f block 2
        if slot != "R":
            return None
        a[1, 4:8], a[1, 8:12] = a[1, 8:12].copy(), a[1, 4:8].copy()
        return a

    bad = _planted(src, str(tmp_path / "bad.onnx"), 1, swap_f_o_reverse)
    assert [str(d) for d in diff_weights(bad, m)] == ["layer 1 reverse: R blocks f and o swapped"]
    report = compare(load_model(bad), m)
    assert not report.passed and where(report.forward) == ("weights", 1, 1, None, "f, o"), str(report)
    assert not [t for t in report.tensors if t.name == "output" and t.passed]


def test_planted_zero_bias_half_in_the_onnx_initializers_is_named(tmp_path):
    torch.manual_seed(2)
    m = torch.nn.GRU(3, 4, num_layers=2)
    src = export(m, tmp_path / "m.onnx")
    bad = _planted(src, str(tmp_path / "bad.onnx"), 0, lambda slot, a: np.concatenate(
        [a[:, :12], np.zeros_like(a[:, 12:])], axis=1) if slot == "B" else None)
    assert [str(d) for d in diff_weights(bad, m)] == [
        "layer 0 forward: B (recurrent half, Rb) every block zero in A only"]
    report = compare(load_model(bad), m)
    assert where(report.forward) == ("weights", 0, 0, None, "r, z, n"), str(report)
    assert compare(load_model(bad)).passed  # the runtime itself is right on the file's (wrong) weights


def _onnx_gru_paper_form(path, I=3, H=4):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    k = 1 / np.sqrt(H)
    W, R, B = (rng.uniform(-k, k, s).astype(np.float32) for s in ((1, 3 * H, I), (1, 3 * H, H), (1, 6 * H)))
    node = helper.make_node("GRU", ["x", "W", "R", "B", "", "h0"], ["Y", "Y_h"], hidden_size=H)  # lbr = 0
    graph = helper.make_graph([node], "gru", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", I]),
                                              helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, "B", H])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
                               numpy_helper.from_array(B, "B")])
    model = make_model(graph)
    onnx.save(model, path)
    return path


def test_onnx_gru_in_the_paper_form_is_checked_in_that_form(tmp_path):
    cand = load_model(_onnx_gru_paper_form(str(tmp_path / "gru.onnx")))
    assert cand.spec.reset_after is False
    assert compare(cand, seq_len=6).passed
    assert compare(cand, weights="draw", seq_len=6).passed  # other weights: ORT's GRU node, built from the file's
    with pytest.raises(ValueError, match="reset_after: False != True"):
        compare(cand, Spec("GRU", 3, 4))


def test_onnx_arguments_of_mixed_functions_keep_their_places_in_the_verifier_s_own_nodes(tmp_path):
    """g = LeakyRelu(0.3) after f = Sigmoid, which takes no alpha: ONNX lists alpha = [0.3]. The node the verifier
    rebuilds for localisation's sub-problems the file's graph cannot run must list it the same way, not one per
    function."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.uniform(-0.5, 0.5, s).astype(np.float32), n)
             for s, n in (((1, 16, 3), "W"), ((1, 16, 4), "R"), ((1, 32), "B"))]
    node = helper.make_node("LSTM", ["x", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=4,
                            activations=["Sigmoid", "LeakyRelu", "Tanh"], activation_alpha=[0.3])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", 3])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Y", "Y_h", "Y_c")],
                              inits)
    onnx.save(make_model(graph), str(tmp_path / "mixed.onnx"))
    cand = load_model(str(tmp_path / "mixed.onnx"))
    assert cand.spec.activation_alpha == pytest.approx((0.0, 0.3, 0.0), rel=1e-7)
    assert compare(cand, seq_len=5).passed  # the file's own graph
    assert compare(cand, weights="draw", seq_len=5).passed  # the file's own graph on other weights
    assert compare(cand.rebuild(), seq_len=5).passed  # the verifier's node, rebuilt from the file's attributes


def test_onnx_peepholes_are_checked_with_the_graph_s_one_output(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    inits = [numpy_helper.from_array(rng.uniform(-0.5, 0.5, s).astype(np.float32), n)
             for s, n in (((1, 16, 3), "W"), ((1, 16, 4), "R"), ((1, 32), "B"), ((1, 12), "P"))]
    node = helper.make_node("LSTM", ["x", "W", "R", "B", "", "", "", "P"], ["Y"], hidden_size=4)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", 3])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    model = make_model(graph)
    onnx.save(model, str(tmp_path / "p.onnx"))
    cand = load_model(str(tmp_path / "p.onnx"))  # the file returns Y only: its node is run with Y_h and Y_c too
    assert cand.spec.peephole and "weight_p_l0" in cand.own_params
    assert compare(cand, seq_len=6).passed
    assert compare(cand, weights="draw", seq_len=6).passed  # other weights, P included: the same node, built anew


# -- weight files ------------------------------------------------------------------------------------


def _npz(path, layout, spec, state, prefix=True):
    nested = export_state_dict(layout, spec, {k: v.detach().numpy() for k, v in state.items()})
    np.savez(path, **{f"{g}/{k}": v for g, arrs in nested.items() for k, v in arrs.items()})
    return str(path)


@pytest.mark.parametrize("layout,cls", [("keras", torch.nn.LSTM), ("ifog", torch.nn.LSTM), ("onnx", torch.nn.GRU),
                                        ("keras", torch.nn.GRU)])
def test_npz_in_foreign_layouts_is_checked_and_diffed(layout, cls, tmp_path):
    torch.manual_seed(4)
    m = cls(3, 4, bidirectional=True).double()
    spec = Spec(cls.__name__, 3, 4, bidirectional=True)
    path = _npz(tmp_path / f"w_{layout}.npz", layout, spec, m.state_dict())
    cand = load_model(path)
    assert cand.spec == spec and compare(cand, lengths=[5, 2, 4]).passed
    assert diff_weights(path, m) == []  # a merged bias is the same function, not a difference
    state = dict(m.state_dict())
    w = state["weight_ih_l0"].clone()
    state["weight_ih_l0"] = torch.cat([w[4:8], w[:4], w[8:]])  # torch's first two blocks swapped
    swapped = _npz(tmp_path / "swapped.npz", layout, spec, state)
    first_two = {"LSTM": ("i", "f"), "GRU": ("r", "z")}[cls.__name__]
    name = {"keras": "kernel", "ifog": "Wx", "onnx": "W"}[layout]
    assert [str(d) for d in diff_weights(swapped, m)] == [
        f"layer 0 forward: {name} blocks {first_two[0]} and {first_two[1]} swapped"]


def test_pickled_module_and_state_dict(tmp_path):
    torch.manual_seed(5)
    m = torch.nn.RNN(3, 4, num_layers=2, nonlinearity="relu").double()
    torch.save(m, tmp_path / "m.pt")
    torch.save(m.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="trust_pickle=True"):  # a pickled module runs code: refused unless trusted
        load_model(str(tmp_path / "m.pt"))
    assert compare(load_model(str(tmp_path / "m.pt"), trust_pickle=True)).passed
    from_sd = load_model(str(tmp_path / "sd.pt"), mode="RNN_RELU")  # shapes cannot tell relu from tanh
    assert from_sd.spec == Spec("RNN_RELU", 3, 4, num_layers=2) and compare(from_sd).passed
    assert load_model(str(tmp_path / "sd.pt")).spec.mode == "RNN_TANH"  # unless told, torch's default


# -- a CS231n-style LSTM: NumPy, step functions with caches, gates i f o g, batch-first -----------------


def cs_lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b, bug=None):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b  # (N, 4H)
    i, f, o, g = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:])
    if bug == "f reads i's rows":
        f = sigmoid(a[:, :H])
    next_c = f * prev_c + i * g  # (N, H)
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c, tanh_c)


def cs_lstm_step_backward(dnext_h, dnext_c, cache, bug=None):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c, tanh_c = cache
    do = dnext_h * (next_c if bug == "do uses c" else tanh_c)
    dc = dnext_c + dnext_h * o * ((1 - tanh_c) if bug == "tanh' as 1 - h" else (1 - tanh_c ** 2))
    di, df, dg = dc * g, dc * prev_c, dc * i
    dprev_c = dc * f
    da = np.concatenate([di * i * (1 - i), df if bug == "no sigmoid' on f" else df * f * (1 - f), do * o * (1 - o),
                         dg * (1 - g ** 2)], axis=1)  # (N, 4H)
    dprev_h = np.zeros_like(prev_h) if bug == "detached carry" else da @ Wh.T
    return da @ Wx.T, dprev_h, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def cs_lstm_forward(x, h0, Wx, Wh, b, c0, bug=None):
    """x (N, T, D) -> h (N, T, H), caches."""
    h, c, hs, caches = h0, c0, [], []
    for t in range(x.shape[1]):
        h, c, cache = cs_lstm_step_forward(x[:, t], h, c, Wx, Wh, b, bug)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs, axis=1), caches


def cs_lstm_backward(dh, caches, bug=None):
    """dh (N, T, H): the upstream gradient of every hidden state (no dc_n). Returns dx, dh0, dWx, dWh, db."""
    N, T, H = dh.shape
    dx = np.zeros((N, T, caches[0][0].shape[1]))
    dWx, dWh, db = 0.0, 0.0, 0.0
    dprev_h, dprev_c = np.zeros((N, H)), np.zeros((N, H))
    for t in reversed(range(T)):
        dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = cs_lstm_step_backward(dh[:, t] + dprev_h, dprev_c,
                                                                               caches[t], bug)
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return dx, dprev_h, dWx, dWh, db


def cs231n_candidate(bug=None):
    def cs231n_lstm(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        if spec.num_layers != 1 or spec.bidirectional or lengths is not None:
            raise NotImplementedError("one layer, one direction, whole sequences")
        w = params["l0"]
        h, caches = cs_lstm_forward(input.transpose(1, 0, 2), hx[0][0], w["Wx"], w["Wh"], w["b"], hx[1][0], bug)
        res = {"output": h.transpose(1, 0, 2), "hidden": (h[:, -1][None], caches[-1][9][None])}
        if grad_output is None:
            return res
        dh = grad_output.transpose(1, 0, 2).copy()  # (N, T, H)
        if grad_hidden[0] is not None:
            dh[:, -1] += grad_hidden[0][0]  # h_n is the last hidden state
        dx, dh0, dWx, dWh, db = cs_lstm_backward(dh, caches, bug)
        res.update(input=dx.transpose(1, 0, 2), hx=(dh0[None], None), l0={"Wx": dWx, "Wh": dWh, "b": db})
        return res

    return cs231n_lstm


CS_ARGS = dict(layout="ifog", cotangents=("output", "h_n"), gradients=("input", "h_0", "weights"), seq_len=6)


def test_cs231n_style_lstm_matches_on_what_it_computes():
    report = compare(cs231n_candidate(), Spec("LSTM", 3, 4), **CS_ARGS)
    assert report.passed, str(report)
    assert report.unchecked == ["grad c_0"] and report.cotangents == ("output", "h_n")


@pytest.mark.parametrize("bug,expected", [
    ("f reads i's rows", ("step", 0, 0, 1, "f")),  # from c_0 = 0, f shows from the second step
    ("tanh' as 1 - h", ("gradient step", 0, 0, 5, "c")),
    ("no sigmoid' on f", ("gradient step", 0, 0, 5, "f")),
    ("do uses c", ("gradient step", 0, 0, 5, "o")),
    ("detached carry", ("gradient step", 0, 0, 5, "h")),
])
def test_cs231n_style_planted_bugs_are_localised(bug, expected):
    report = compare(cs231n_candidate(bug), Spec("LSTM", 3, 4), hx=None, **CS_ARGS)
    assert not report.passed
    assert where(report.divergence) == expected, str(report)


# -- a d2l-style from-scratch LSTM and GRU: per-gate parameters, autograd ---------------------------------


def d2l_lstm(inputs, state, params, bug=None):
    W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c = params
    H, C = state
    outputs = []
    for X in inputs:
        if bug == "detached state":
            H, C = H.detach(), C.detach()
        I = torch.sigmoid(X @ W_xi + H @ W_hi + b_i)
        F = torch.sigmoid(X @ W_xf + H @ W_hf + b_f)
        O = torch.sigmoid(X @ W_xo + H @ W_ho + (b_f if bug == "o uses b_f" else b_o))
        C_tilda = torch.tanh(X @ W_xc + H @ W_hc + b_c)
        C = F * C + I * C_tilda
        H = O * torch.tanh(C)
        outputs.append(H)
    return torch.stack(outputs), (H, C)


def d2l_gru(inputs, state, params, bug=None):
    W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h = params
    (H,) = state
    outputs = []
    for X in inputs:
        Z = torch.sigmoid(X @ W_xz + H @ W_hz + b_z)
        R = (torch.tanh if bug == "r through tanh" else torch.sigmoid)(X @ W_xr + H @ W_hr + b_r)
        H_tilda = torch.tanh(X @ W_xh + (R * H) @ W_hh + b_h)
        H = Z * H + (1 - Z) * H_tilda
        outputs.append(H)
    return torch.stack(outputs), (H,)


def d2l_candidate(kind, bug=None):
    """The adapter a d2l user writes: torch's weights in, d2l's per-gate parameters out, autograd back."""
    order = {"lstm": "ifog", "gru": "zrn"}[kind]  # d2l's parameter order, in torch's letters (c = g)
    torch_order = {"lstm": "ifgo", "gru": "rzn"}[kind]

    def fn(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        if spec.num_layers != 1 or spec.bidirectional or lengths is not None:
            raise NotImplementedError("one layer, one direction, whole sequences")
        leaf = lambda a: torch.tensor(a, requires_grad=True)
        w = {k.removesuffix("_l0"): leaf(v) for k, v in params.items()}
        x, state = leaf(input), tuple(leaf(h[0]) for h in hx)
        H = spec.hidden_size
        block = lambda t, g: t[torch_order.index(g) * H:(torch_order.index(g) + 1) * H]
        d2l = []
        for g in order:
            d2l += [block(w["weight_ih"], g).T, block(w["weight_hh"], g).T,
                    block(w["bias_ih"], g) + block(w["bias_hh"], g)]  # one bias per gate
        out, hidden = (d2l_lstm if kind == "lstm" else d2l_gru)(x, state, d2l, bug)
        res = {"output": out.detach().numpy(), "hidden": tuple(h.detach().numpy()[None] for h in hidden)}
        if grad_output is None:
            return res
        pairs = [(t, torch.tensor(g[0] if t is not out else g)) for t, g in
                 zip((out, *hidden), (grad_output, *grad_hidden), strict=False) if g is not None]
        grads = torch.autograd.grad([t for t, _ in pairs], [x, *state, *w.values()], [g for _, g in pairs],
                                    allow_unused=True)
        z = lambda g, t: (g if g is not None else torch.zeros_like(t)).numpy()
        res["input"] = z(grads[0], x)
        res["hx"] = tuple(z(g, s)[None] for g, s in zip(grads[1:1 + len(state)], state, strict=True))
        res.update((f"{k}_l0", z(g, t)) for (k, t), g in zip(w.items(), grads[1 + len(state):], strict=True))
        return res

    return fn


def test_d2l_style_lstm_and_gru_match():
    assert compare(d2l_candidate("lstm"), Spec("LSTM", 3, 4), seq_len=6).passed
    assert compare(d2l_candidate("gru"), Spec("GRU", 3, 4, reset_after=False), seq_len=6).passed


@pytest.mark.parametrize("kind,bug,spec,expected,says", [
    ("gru", None, Spec("GRU", 3, 4), ("step", 0, 0, 0, "r"), "reset applied before W_hn"),
    ("gru", "r through tanh", Spec("GRU", 3, 4, reset_after=False), ("step", 0, 0, 0, "r"), "gate r"),
    ("lstm", "o uses b_f", Spec("LSTM", 3, 4), ("step", 0, 0, 0, "o"), "gate o"),
    ("lstm", "detached state", Spec("LSTM", 3, 4), ("gradient step", 0, 0, 5, "h"), "not detached"),
])
def test_d2l_style_planted_bugs_are_localised(kind, bug, spec, expected, says):
    report = compare(d2l_candidate(kind, bug), spec, seq_len=6)
    assert where(report.divergence) == expected and says in report.divergence.detail, str(report)


# -- a min-char-rnn-style loop: column vectors, one bias, no dx -------------------------------------------


def min_char_rnn(Wxh, Whh, bh, xs, hprev, dys=None, bug=None):
    """xs (T, I, B) columns; hprev (H, B). Forward, and with dys (T, H, B) the weight gradients (no dx)."""
    hs = {-1: hprev}
    for t in range(len(xs)):
        hs[t] = np.tanh(Wxh @ xs[t] + (Whh.T if bug == "Whh transposed" else Whh) @ hs[t - 1] + bh)  # (H, B)
    if dys is None:
        return hs, None
    dWxh, dWhh, dbh = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(bh)
    dhnext = np.zeros_like(hprev)
    for t in reversed(range(len(xs))):
        dh = dys[t] + dhnext
        dhraw = ((1 - hs[t]) if bug == "tanh' as 1 - h" else (1 - hs[t] * hs[t])) * dh
        dbh += dhraw.sum(axis=1, keepdims=True)
        dWxh += dhraw @ xs[t].T
        dWhh += dhraw @ hs[t - 1].T
        dhnext = Whh.T @ dhraw
    return hs, (dWxh, dWhh, dbh)


def min_char_candidate(bug=None):
    def min_char(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        if spec.num_layers != 1 or spec.bidirectional or lengths is not None:
            raise NotImplementedError("one layer, one direction, whole sequences")
        bh = (params["bias_ih_l0"] + params["bias_hh_l0"])[:, None]
        dys = None if grad_output is None else grad_output.transpose(0, 2, 1)
        hs, grads = min_char_rnn(params["weight_ih_l0"], params["weight_hh_l0"], bh, input.transpose(0, 2, 1),
                                 hx[0][0].T, dys, bug)
        T = input.shape[0]
        res = {"output": np.stack([hs[t].T for t in range(T)]), "hidden": (hs[T - 1].T[None],)}
        if grads is not None:
            dWxh, dWhh, dbh = grads
            res.update(weight_ih_l0=dWxh, weight_hh_l0=dWhh, bias_ih_l0=dbh[:, 0], bias_hh_l0=dbh[:, 0])
        return res

    return min_char


MC_ARGS = dict(cotangents=("output",), gradients=("weights",), seq_len=6)


def test_min_char_rnn_style_loop_matches_on_what_it_computes():
    report = compare(min_char_candidate(), Spec("RNN_TANH", 3, 4), **MC_ARGS)
    assert report.passed, str(report)
    assert report.unchecked == ["grad input", "grad h_0"]


@pytest.mark.parametrize("bug,expected", [
    ("Whh transposed", ("step", 0, 0, 0, "h")),
    ("tanh' as 1 - h", ("gradient step", 0, 0, 5, "h")),
])
def test_min_char_rnn_style_planted_bugs_are_localised(bug, expected):
    report = compare(min_char_candidate(bug), Spec("RNN_TANH", 3, 4), **MC_ARGS)
    assert where(report.divergence) == expected, str(report)
