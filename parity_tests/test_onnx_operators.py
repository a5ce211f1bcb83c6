"""ONNX's LSTM, GRU and RNN operators in the reference: activations with alpha and beta per
direction, clip, input_forget, peepholes, a reverse-only direction, layout=1, sequence_lens.

Three independent sides:

* torch autograd through explicit equations written here (float64, random cotangents for every
  output, random non-zero biases, every named gradient): the hand-written BPTT;
* ``onnx.reference.ReferenceEvaluator`` on a one-node model (float64, forward). It implements
  the options it reads -- direction, peepholes, linear_before_reset, layout and RNN's Tanh and
  Affine -- and ignores activations, clip, input_forget and sequence_lens, so it is asked only
  about the former;
* ONNX Runtime on the same one-node models for every option (float32, its only precision for
  these operators, against the float64 reference: the float32-vs-float64 entries).

Derivative conventions where a function has none (``reference.activations``): Relu 0 at 0,
LeakyRelu and Elu 1 at 0, ThresholdedRelu the pieces' (1 for x >= alpha, else 0), HardSigmoid
0 at its corners, the clip 1 on the closed interval [-clip, clip].
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close
from hypothesis import assume, example, given
from hypothesis import strategies as st
from tolerances import tol

import reference
from reference.activations import ONNX_ACTIVATIONS, Activation
from reference.config import ACTIVATION_COUNT, RNNConfig, aligned_activation_arguments
from reference.verify.onnx_versions import make_model, unsafe_rnn_arguments

torch = pytest.importorskip("torch")

# Each function's alpha and beta drawn in a range that keeps the recurrences tame (None: takes none).
ARGUMENT_RANGES = {"Affine": ((0.2, 1.2), (-0.5, 0.5)), "LeakyRelu": ((0.0, 0.5), None),
                   "ThresholdedRelu": ((-0.5, 0.5), None), "ScaledTanh": ((0.5, 1.5), (0.5, 1.5)),
                   "HardSigmoid": ((0.1, 0.5), (0.3, 0.7)), "Elu": ((0.5, 1.5), None)}


# -- strategies ------------------------------------------------------------------------------------


def f32(lo: float, hi: float):
    """Floats that float32 holds exactly: ONNX keeps alpha, beta and clip as float32 attributes."""
    return st.floats(lo, hi).map(lambda v: float(np.float32(v)))


@st.composite
def onnx_configs(draw, modes=("LSTM", "GRU", "RNN_TANH"), max_layers=2, allow_proj=True) -> RNNConfig:
    mode = draw(st.sampled_from(modes))
    bidirectional = draw(st.booleans())
    reverse = not bidirectional and draw(st.booleans())
    H = draw(st.integers(1, 4))
    n = ACTIVATION_COUNT[mode] * (2 if bidirectional else 1)
    activations = alpha = beta = None
    if draw(st.booleans()):
        activations = tuple(draw(st.lists(st.sampled_from(ONNX_ACTIVATIONS), min_size=n, max_size=n)))
        if "ScaledTanh" in activations or draw(st.booleans()):
            def value(name, k):
                r = ARGUMENT_RANGES.get(name, (None, None))[k]
                return 0.0 if r is None else draw(f32(*r))
            alpha = tuple(value(a, 0) for a in activations)
            beta = tuple(value(a, 1) for a in activations)
    lstm = mode == "LSTM"
    return RNNConfig(mode, draw(st.integers(1, 4)), H, num_layers=draw(st.integers(1, max_layers)),
                     bias=draw(st.booleans()), bidirectional=bidirectional,
                     proj_size=draw(st.integers(0, H - 1)) if lstm and allow_proj else 0,
                     reset_after=draw(st.booleans()) if mode == "GRU" else True, reverse=reverse,
                     activations=activations, activation_alpha=alpha, activation_beta=beta,
                     clip=draw(st.one_of(st.none(), f32(0.3, 3.0))),
                     input_forget=lstm and draw(st.booleans()), peephole=lstm and draw(st.booleans()))


# -- explicit torch equations ----------------------------------------------------------------------


def torch_activation(a: Activation):
    al, be = a.alpha, a.beta
    zero = torch.zeros((), dtype=torch.float64)

    def hard_sigmoid(x):  # min(max(al x + be, 0), 1), derivative 0 at the corners
        y = al * x + be
        return torch.where((y > 0) & (y < 1), y, (y >= 1).to(x.dtype))

    return {"Relu": torch.relu, "Tanh": torch.tanh, "Sigmoid": torch.sigmoid,
            "Affine": lambda x: al * x + be,
            "LeakyRelu": lambda x: torch.where(x >= 0, x, al * x),
            "ThresholdedRelu": lambda x: torch.where(x >= al, x, zero),
            "ScaledTanh": lambda x: al * torch.tanh(be * x),
            "HardSigmoid": hard_sigmoid,
            "Elu": lambda x: torch.where(x >= 0, x, al * torch.expm1(torch.clamp(x, max=0.0))),
            "Softsign": lambda x: x / (1 + x.abs()),
            "Softplus": lambda x: torch.logaddexp(torch.zeros_like(x), x)}[a.name]


def explicit_step(cfg: RNNConfig, direction: int, p: dict, k: str, x, state):
    """One step of ONNX's cell in torch's layout (LSTM rows i, f, g, o; GRU r, z, n)."""
    acts = [torch_activation(a) for a in cfg.gate_functions(direction)]
    H = cfg.hidden_size

    def cl(a):
        return a if cfg.clip is None else torch.clamp(a, -cfg.clip, cfg.clip)

    def bias(name):
        return p[f"{name}_{k}"] if cfg.bias else torch.zeros(cfg.gates * H, dtype=torch.float64)

    h = state[0]
    ax = x @ p[f"weight_ih_{k}"].T + bias("bias_ih")  # (B, G*H)
    ah = h @ p[f"weight_hh_{k}"].T + bias("bias_hh")
    if cfg.mode == "LSTM":
        F, G, Hf = acts
        c = state[1]
        a_i, a_f, a_g, a_o = (ax + ah).split(H, dim=-1)
        if cfg.peephole:
            p_i, p_f, p_o = p[f"weight_p_{k}"].split(H)
            a_i, a_f = a_i + p_i * c, a_f + p_f * c
        i = F(cl(a_i))
        f = 1 - i if cfg.input_forget else F(cl(a_f))
        c_new = f * c + i * G(cl(a_g))
        if cfg.peephole:
            a_o = a_o + p_o * c_new
        m = F(cl(a_o)) * Hf(c_new)
        return (m @ p[f"weight_hr_{k}"].T if cfg.proj_size else m, c_new)
    if cfg.mode == "GRU":
        F, G = acts
        x_r, x_z, x_n = ax.split(H, dim=-1)
        h_r, h_z, h_n = ah.split(H, dim=-1)
        r, z = F(cl(x_r + h_r)), F(cl(x_z + h_z))
        if cfg.reset_after:  # n = g(W_in x + b_in + r * (W_hn h + b_hn))
            n = G(cl(x_n + r * h_n))
        else:  # n = g(W_in x + b_in + W_hn (r * h) + b_hn)
            n = G(cl(x_n + (r * h) @ p[f"weight_hh_{k}"][2 * H :].T + bias("bias_hh")[2 * H :]))
        return ((1 - z) * n + z * h,)
    return (acts[0](cl(ax + ah)),)


def explicit_stack(cfg: RNNConfig, p: dict, x, states0: tuple, lengths=None):
    """The stacked layers over time, padded steps carrying the state, the output zero there."""
    T, D = x.shape[0], cfg.num_directions
    valid = None if lengths is None else (torch.arange(T)[:, None] < torch.tensor(lengths)[None, :])[..., None]
    finals: list = [[] for _ in states0]
    for layer in range(cfg.num_layers):
        outs = []
        for d, sfx in enumerate(cfg.suffixes()):
            k, idx = f"l{layer}{sfx}", layer * D + d
            state = tuple(s[idx] for s in states0)
            ys = [None] * T
            for t in (reversed(range(T)) if d == 1 or cfg.reverse else range(T)):
                new = explicit_step(cfg, d, p, k, x[t], state)
                if valid is not None:
                    new = tuple(torch.where(valid[t], n, s) for n, s in zip(new, state, strict=True))
                    ys[t] = torch.where(valid[t], new[0], torch.zeros_like(new[0]))
                else:
                    ys[t] = new[0]
                state = new
            outs.append(torch.stack(ys))
            for f, s in zip(finals, state, strict=True):
                f.append(s)
        x = torch.cat(outs, dim=-1)
    return x, tuple(torch.stack(f) for f in finals)


# -- (a) BPTT against autograd of the explicit equations -------------------------------------------


@given(cfg=onnx_configs(), T=st.integers(1, 5), B=st.integers(1, 3), use_lengths=st.booleans(),
       seed=st.integers(0, 2**16))
@example(cfg=RNNConfig("LSTM", 2, 3, num_layers=2, bidirectional=True, proj_size=2, clip=0.4, input_forget=True,
                       peephole=True, activations=("HardSigmoid", "Elu", "Softsign", "Sigmoid", "ScaledTanh", "Tanh"),
                       activation_alpha=(0.3, 0.7, 0, 0, 1.2, 0), activation_beta=(0.5, 0, 0, 0, 0.8, 0)),
         T=4, B=2, use_lengths=True, seed=1)
@example(cfg=RNNConfig("GRU", 2, 3, reset_after=False, reverse=True, clip=0.5,
                       activations=("ThresholdedRelu", "LeakyRelu"), activation_alpha=(0.1, 0.2),
                       activation_beta=(0, 0)), T=5, B=3, use_lengths=True, seed=2)
@example(cfg=RNNConfig("RNN_TANH", 2, 3, bidirectional=True, activations=("Affine", "Softplus"),
                       activation_alpha=(0.8, 0), activation_beta=(0.1, 0)), T=1, B=1, use_lengths=False, seed=3)
def test_onnx_options_match_autograd_of_explicit_equations(cfg, T, B, use_lengths, seed):
    m = cfg.module(seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (T, B, cfg.input_size))
    hx = tuple(rng.uniform(-1, 1, s) for s in cfg.state_shapes(B))
    lengths = rng.integers(1, T + 1, B).tolist() if use_lengths else None
    out, hidden, tape = m.forward(x, hx if cfg.mode == "LSTM" else hx[0], lengths=lengths)
    hidden = hidden if cfg.mode == "LSTM" else (hidden,)
    g_out, g_hidden = rng.standard_normal(out.shape), tuple(rng.standard_normal(h.shape) for h in hidden)
    grads = m.backward(tape, g_out, g_hidden if cfg.mode == "LSTM" else g_hidden[0])

    params = {k: torch.tensor(v, requires_grad=True) for k, v in m.state_dict().items()}
    xt = torch.tensor(x, requires_grad=True)
    hxt = tuple(torch.tensor(h, requires_grad=True) for h in hx)
    out_t, hidden_t = explicit_stack(cfg, params, xt, hxt, lengths)
    torch.autograd.backward([out_t, *hidden_t], [torch.tensor(g_out), *(torch.tensor(g) for g in g_hidden)])
    fwd, grad = tol("float64", "cpu", "forward"), tol("float64", "cpu", "gradient")
    assert_close("output", out, out_t.detach().numpy(), *fwd, config=cfg)
    for k, (h, h_t) in enumerate(zip(hidden, hidden_t, strict=True)):
        assert_close(f"hidden[{k}]", h, h_t.detach().numpy(), *fwd, config=cfg)
    assert_close("input", grads["input"], xt.grad.numpy(), *grad, config=cfg)
    dhx = grads["hx"] if cfg.mode == "LSTM" else (grads["hx"],)
    for k, (d, h_t) in enumerate(zip(dhx, hxt, strict=True)):
        assert_close(f"hx[{k}]", d, h_t.grad.numpy(), *grad, config=cfg)
    assert set(params) == set(cfg.parameter_shapes())
    for name, p in params.items():
        assert_close(name, grads[name], p.grad.numpy(), *grad, config=cfg)


# -- one-node ONNX models ----------------------------------------------------------------------------

ONNX_ROWS = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN_TANH": [0], "RNN_RELU": [0]}  # torch's blocks in ONNX's order


def onnx_arguments(cfg: RNNConfig) -> dict:
    """activations, activation_alpha, activation_beta as ONNX lists them (values only for the
    functions that take them)."""
    funcs = [a for d in range(cfg.num_directions) for a in cfg.gate_functions(d)]
    from reference.activations import ONNX_ARGUMENT_DEFAULTS

    return {"activations": [a.name for a in funcs],
            "activation_alpha": [a.alpha for a in funcs if ONNX_ARGUMENT_DEFAULTS[a.name][0] is not None],
            "activation_beta": [a.beta for a in funcs if ONNX_ARGUMENT_DEFAULTS[a.name][1] is not None]}


def onnx_model(cfg: RNNConfig, state: dict, B: int, T: int, dtype, *, layout: int = 0, lengths=None,
               attributes=True):
    """(model, feeds): cfg's single layer as ONNX's operator, weights fed as graph inputs."""
    from onnx import TensorProto, helper

    H, D = cfg.hidden_size, cfg.num_directions
    rows = ONNX_ROWS[cfg.mode]

    def onnx_rows(a):
        return np.concatenate([a[r * H : (r + 1) * H] for r in rows])

    sfx = cfg.suffixes()
    feeds = {"W": np.stack([onnx_rows(state[f"weight_ih_l0{s}"]) for s in sfx]),
             "R": np.stack([onnx_rows(state[f"weight_hh_l0{s}"]) for s in sfx])}
    if cfg.bias:
        feeds["B"] = np.stack([np.concatenate([onnx_rows(state[f"bias_ih_l0{s}"]), onnx_rows(state[f"bias_hh_l0{s}"])])
                               for s in sfx])
    names = ["X", "W", "R", "B" if cfg.bias else "", "sequence_lens" if lengths is not None else "", "initial_h"]
    if cfg.mode == "LSTM":
        names.append("initial_c")
        if cfg.peephole:  # reference p_i, p_f, p_o -> ONNX's P[iof] (i, o, f)
            feeds["P"] = np.stack([state[f"weight_p_l0{s}"][np.r_[0:H, 2 * H : 3 * H, H : 2 * H]] for s in sfx])
            names.append("P")
    feeds = {k: v.astype(dtype) for k, v in feeds.items()}
    if lengths is not None:
        feeds["sequence_lens"] = np.asarray(lengths, dtype=np.int32)
    attrs: dict = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "reverse" if cfg.reverse else "forward"}
    if layout:
        attrs["layout"] = 1
    if cfg.mode == "GRU":
        attrs["linear_before_reset"] = int(cfg.reset_after)
    if attributes:
        attrs.update({k: v for k, v in onnx_arguments(cfg).items() if v})
        if cfg.clip is not None:
            attrs["clip"] = cfg.clip
        if cfg.input_forget:
            attrs["input_forget"] = 1
    outputs = ["Y", "Y_h"] + (["Y_c"] if cfg.mode == "LSTM" else [])
    node = helper.make_node(cfg.mode.split("_")[0], names, outputs, **attrs)
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    shapes = {"X": None, "initial_h": None, "initial_c": None, "sequence_lens": [B]}
    graph_inputs = [helper.make_tensor_value_info(n, TensorProto.INT32 if n == "sequence_lens" else elem,
                                                  shapes.get(n, list(feeds.get(n, np.zeros(0)).shape)))
                    for n in names if n]
    graph = helper.make_graph([node], "one_node", graph_inputs,
                              [helper.make_tensor_value_info(n, elem, None) for n in outputs])
    return make_model(graph), feeds


def run_both(cfg: RNNConfig, T: int, B: int, seed: int, dtype, runner, *, layout=0, use_lengths=False,
             attributes=True):
    """The reference's (output, states) and the ONNX runner's, both as the reference shapes them."""
    m = cfg.replace(batch_first=bool(layout)).module(seed=seed)
    rng = np.random.default_rng(seed)
    D, H = cfg.num_directions, cfg.hidden_size
    x = rng.uniform(-1, 1, (T, B, cfg.input_size))
    hx = tuple(rng.uniform(-1, 1, s) for s in cfg.state_shapes(B))
    if dtype == np.float32:  # the same numbers on both sides: the runner's own arithmetic is what is compared
        m.load_state_dict({k: v.astype(np.float32) for k, v in m.state_dict().items()})
        x, hx = x.astype(np.float32).astype(np.float64), tuple(h.astype(np.float32).astype(np.float64) for h in hx)
    lengths = rng.integers(1, T + 1, B).tolist() if use_lengths else None
    x_in = x.transpose(1, 0, 2) if layout else x  # ONNX layout=1 is batch-major: X (B, T, I)
    out, hidden, _ = m.forward(x_in, hx if cfg.mode == "LSTM" else hx[0], lengths=lengths)
    hidden = hidden if cfg.mode == "LSTM" else (hidden,)
    model, feeds = onnx_model(cfg, m.state_dict(), B, T, dtype, layout=layout, lengths=lengths,
                              attributes=attributes)
    feeds["X"] = x_in.astype(dtype)
    for name, h in zip(("initial_h", "initial_c"), hx, strict=False):
        feeds[name] = (h.transpose(1, 0, 2) if layout else h).astype(dtype)  # layout=1: (B, D, H)
    y, *states = runner(model, feeds)
    y = y if layout else y.transpose(0, 2, 1, 3)  # (B, T, D, H) as given, or (T, D, B, H) -> (T, B, D, H)
    y = y.reshape(*y.shape[:2], D * H)
    states = [s.transpose(1, 0, 2) if layout else s for s in states]  # (D, B, H)
    return (out, hidden), (y, states)


def reference_evaluator(model, feeds):
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, feeds)


def onnxruntime(model, feeds):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


# -- (b) forward against onnx.reference.ReferenceEvaluator -----------------------------------------


@st.composite
def evaluator_configs(draw) -> RNNConfig:
    """What the evaluator implements: direction, peepholes, linear_before_reset; RNN Tanh or Affine
    (its RNN applies the first direction's function, alpha and beta to both directions)."""
    cfg = draw(onnx_configs(max_layers=1, allow_proj=False))
    acts = alpha = beta = None
    if cfg.mode.startswith("RNN") and draw(st.booleans()):
        D = cfg.num_directions
        acts = ("Affine",) * D
        alpha, beta = (draw(f32(0.2, 1.2)),) * D, (draw(f32(-0.5, 0.5)),) * D
    return cfg.replace(mode="RNN_TANH" if cfg.mode.startswith("RNN") else cfg.mode, activations=acts,
                       activation_alpha=alpha, activation_beta=beta, clip=None, input_forget=False)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@given(cfg=evaluator_configs(), layout=st.sampled_from([0, 1]), T=st.integers(1, 5), B=st.integers(1, 3),
       seed=st.integers(0, 2**16))
@example(cfg=RNNConfig("LSTM", 2, 3, reverse=True, peephole=True), layout=1, T=3, B=2, seed=0)
@example(cfg=RNNConfig("GRU", 2, 3, bidirectional=True, reset_after=False), layout=0, T=3, B=2, seed=0)
def test_onnx_operator_forward_matches_reference_evaluator(cfg, layout, T, B, seed):
    (out, hidden), (y, states) = run_both(cfg, T, B, seed, np.float64, reference_evaluator, layout=layout)
    fwd = tol("float64", "cpu", "forward")
    assert_close("Y", out, y, *fwd, config=cfg)
    for k, (h, s) in enumerate(zip(hidden, states, strict=True)):
        assert_close(("Y_h", "Y_c")[k], h, s, *fwd, config=cfg)


# -- (c) every option against ONNX Runtime (float32) ------------------------------------------------


def onnxruntime_reads_alike(cfg: RNNConfig) -> bool:
    """Explicit alpha and beta (ONNX Runtime's defaults for Affine and ThresholdedRelu are not the
    specs'), and no clip at a ThresholdedRelu's threshold (it takes x > alpha where the RNN specs
    write x >= alpha: a clipped input sits exactly there)."""
    if cfg.activations is None:
        return True
    thresholds = {abs(a) for n, a in zip(cfg.activations, cfg.activation_alpha or (), strict=False)
                  if n == "ThresholdedRelu"}
    return cfg.activation_alpha is not None and cfg.clip not in thresholds


@given(cfg=onnx_configs(max_layers=1, allow_proj=False).filter(onnxruntime_reads_alike),
       T=st.integers(1, 5), B=st.integers(1, 3), use_lengths=st.booleans(), seed=st.integers(0, 2**16))
@example(cfg=RNNConfig("LSTM", 2, 3, reverse=True, peephole=True, input_forget=True, clip=0.5,
                       activations=("HardSigmoid", "LeakyRelu", "Softsign"), activation_alpha=(0.3, 0.1, 0),
                       activation_beta=(0.5, 0, 0)), T=4, B=3, use_lengths=True, seed=0)
def test_onnx_operator_forward_matches_onnxruntime(cfg, T, B, use_lengths, seed):
    # onnxruntime before its RNN fix reads alpha/beta one per direction and aborts on ONNX's shorter lists
    attrs = {k: v for k, v in onnx_arguments(cfg).items() if v}  # as onnx_model writes them
    attrs["direction"] = "bidirectional" if cfg.bidirectional else "forward"
    assume(unsafe_rnn_arguments(cfg.mode.split("_")[0], attrs) is None)
    (out, hidden), (y, states) = run_both(cfg, T, B, seed, np.float32, onnxruntime, use_lengths=use_lengths)
    fwd = tol("float32-vs-float64", "cpu", "forward")
    assert_close("Y", y, out, *fwd, config=cfg, check_dtype=False)  # desired: the float64 reference
    for k, (h, s) in enumerate(zip(hidden, states, strict=True)):
        assert_close(("Y_h", "Y_c")[k], s, h, *fwd, config=cfg, check_dtype=False)


def test_the_onnx_checks_can_fail():
    """A reference that ignores an option is told apart by both ONNX runners. With one layer the
    peepholes are drawn last, so both configurations below share every other weight and input."""
    fwd64, fwd32 = tol("float64", "cpu", "forward"), tol("float32-vs-float64", "cpu", "forward")
    cfg = RNNConfig("LSTM", 2, 3, peephole=True)
    (_, _), (y, _) = run_both(cfg, 4, 2, 0, np.float64, reference_evaluator)
    (out_without, _), (y_without, _) = run_both(cfg.replace(peephole=False), 4, 2, 0, np.float64, reference_evaluator)
    assert_close("Y", out_without, y_without, *fwd64)
    with pytest.raises(AssertionError, match="Y"):
        assert_close("Y", out_without, y, *fwd64)
    cfg = RNNConfig("GRU", 2, 3, clip=0.2)
    (out, _), (y, _) = run_both(cfg, 4, 2, 0, np.float32, onnxruntime)
    (_, _), (y_unclipped, _) = run_both(cfg.replace(clip=None), 4, 2, 0, np.float32, onnxruntime)
    assert_close("Y", y, out, *fwd32, check_dtype=False)
    with pytest.raises(AssertionError, match="Y"):
        assert_close("Y", y_unclipped, out, *fwd32, check_dtype=False)


# -- the configuration ------------------------------------------------------------------------------


def test_gate_functions_take_onnx_defaults():
    """ONNX: the defaults of the corresponding operators (LeakyRelu 0.01, ThresholdedRelu 1,
    HardSigmoid 0.2 and 0.5, Elu 1; Affine 1 and 0); the modes' default functions."""
    cfg = RNNConfig("LSTM", 2, 3, bidirectional=True,
                    activations=("LeakyRelu", "ThresholdedRelu", "HardSigmoid", "Elu", "Affine", "Softplus"))
    assert cfg.gate_functions(0) == (Activation("LeakyRelu", 0.01), Activation("ThresholdedRelu", 1.0),
                                     Activation("HardSigmoid", 0.2, 0.5))
    assert cfg.gate_functions(1) == (Activation("Elu", 1.0), Activation("Affine", 1.0, 0.0), Activation("Softplus"))
    assert RNNConfig("GRU", 2, 3).gate_functions() == (Activation("Sigmoid"), Activation("Tanh"))
    assert RNNConfig("RNN_RELU", 2, 3).gate_functions() == (Activation("Relu"),)


def test_defaults_normalise_to_torch_cells():
    """A mode's default functions are the mode itself: the default cells run, the configs are equal."""
    assert RNNConfig("LSTM", 2, 3, activations=("sigmoid", "TANH", "Tanh")) == RNNConfig("LSTM", 2, 3)
    assert RNNConfig("RNN_TANH", 2, 3, bidirectional=True, activations=("Relu", "Relu")) == \
        RNNConfig("RNN_RELU", 2, 3, bidirectional=True)
    assert not RNNConfig("GRU", 2, 3, reverse=True).general
    assert RNNConfig("GRU", 2, 3, clip=1.0).general
    assert RNNConfig("LSTM", 2, 3, activations=("softsign", "tanh", "tanh")).activations == ("Softsign", "Tanh", "Tanh")
    assert RNNConfig("GRU", 2, 3, clip=float("inf")).clip is None


@given(cfg=onnx_configs(max_layers=3))
def test_shapes_and_config_round_trip(cfg):
    m = cfg.module(seed=0)
    assert reference.RNNConfig.of(m) == cfg
    assert {k: v.shape for k, v in m.state_dict().items()} == cfg.parameter_shapes()
    names = list(cfg.parameter_shapes())
    for layer in range(cfg.num_layers):
        for sfx in cfg.suffixes():
            group = [n for n in names if n.endswith(f"_l{layer}{sfx}")]
            assert group == sorted(group, key=names.index) and (not cfg.peephole or group[-1].startswith("weight_p_"))
    assert cfg.state_shapes(2)[0] == (cfg.num_layers * cfg.num_directions, 2, cfg.output_size)
    fields = ("reverse", "activations", "activation_alpha", "activation_beta", "clip")
    assert all(getattr(m, f) == getattr(cfg, f) for f in fields)


def test_reverse_alone_is_the_reverse_half_of_bidirectional():
    bi = reference.LSTM(3, 4, bidirectional=True, peephole=True, seed=0)
    rev = reference.LSTM(3, 4, reverse=True, peephole=True, seed=1)
    rev.load_state_dict({k.replace("_reverse", ""): v for k, v in bi.state_dict().items() if k.endswith("_reverse")})
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    out_bi, (h_bi, _) = bi(x, lengths=[5, 2])
    out_rev, (h_rev, _) = rev(x, lengths=[5, 2])
    np.testing.assert_array_equal(out_rev, out_bi[..., 4:])
    np.testing.assert_array_equal(h_rev[0], h_bi[1])


@pytest.mark.parametrize("kwargs, error, field", [
    (dict(mode="GRU", bidirectional=True, reverse=True), ValueError, "reverse"),
    (dict(mode="GRU", reverse=1), TypeError, "reverse"),
    (dict(mode="GRU", activations=("Sigmoid",)), ValueError, "activations"),
    (dict(mode="GRU", activations=("Sigmoid", "Swish")), ValueError, "activations"),
    (dict(mode="GRU", activations="Sigmoid,Tanh"), TypeError, "activations"),
    (dict(mode="GRU", activations=("Sigmoid", 3)), TypeError, "activations"),
    (dict(mode="GRU", activation_alpha=(0.1, 0.2)), ValueError, "activation_alpha"),
    (dict(mode="GRU", activations=("Sigmoid", "Elu"), activation_alpha=(0.1,)), ValueError, "activation_alpha"),
    (dict(mode="GRU", activations=("Sigmoid", "Elu"), activation_beta=(0.1, "x")), TypeError, "activation_beta"),
    (dict(mode="GRU", activations=("Sigmoid", "Elu"), activation_alpha=(0.1, float("nan"))), ValueError,
     "activation_alpha"),
    (dict(mode="RNN_TANH", activations=("ScaledTanh",)), ValueError, "activation_alpha"),
    (dict(mode="LSTM", clip=0.0), ValueError, "clip"),
    (dict(mode="LSTM", clip=float("nan")), ValueError, "clip"),
    (dict(mode="LSTM", clip=True), TypeError, "clip"),
    (dict(mode="LSTM", clip="1"), TypeError, "clip"),
    (dict(mode="GRU", input_forget=True), ValueError, "input_forget"),
    (dict(mode="RNN_TANH", peephole=True), ValueError, "peephole"),
    (dict(mode="LSTM", peephole="yes"), TypeError, "peephole"),
])
def test_bad_onnx_options_are_named(kwargs, error, field):
    mode = kwargs.pop("mode")
    with pytest.raises(error, match=f"^{field}:"):
        RNNConfig(mode, 2, 3, **kwargs)
    module = {"LSTM": reference.LSTM, "GRU": reference.GRU, "RNN_TANH": reference.RNN}[mode]
    if field not in ("input_forget", "peephole") or mode == "LSTM":
        with pytest.raises(error, match=f"^{field}:"):
            module(2, 3, **kwargs)


def test_aligned_activation_arguments_read_onnx_attributes():
    """ONNX lists alpha and beta only for the functions that take them, in order."""
    acts = ("Sigmoid", "LeakyRelu", "HardSigmoid", "Tanh", "Elu")
    assert aligned_activation_arguments(acts, [0.1, 0.3], [0.6]) == ((0.0, 0.1, 0.3, 0.0, 1.0), (0.0, 0.0, 0.6, 0.0, 0.0))
    assert aligned_activation_arguments(acts) == ((0.0, 0.01, 0.2, 0.0, 1.0), (0.0, 0.0, 0.5, 0.0, 0.0))
    with pytest.raises(ValueError, match="activation_alpha"):
        aligned_activation_arguments(acts, [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="activation_beta"):
        aligned_activation_arguments(("ScaledTanh",), [1.0])
    with pytest.raises(ValueError, match="activations"):
        aligned_activation_arguments(("Swish",))


def test_derivative_conventions_at_the_kinks():
    xp, x = np, np.array([0.0, 0.5, -0.5, 0.25])
    for act, expected in [(Activation("Relu"), [0, 1, 0, 1]), (Activation("LeakyRelu", 0.1), [1, 1, 0.1, 1]),
                          (Activation("ThresholdedRelu", 0.5), [0, 1, 0, 0]), (Activation("Elu", 1.0), [1, 1, np.exp(-0.5), 1]),
                          (Activation("HardSigmoid", 1.0, 0.5), [1, 0, 0, 1])]:
        np.testing.assert_allclose(act.derivative(xp, x, act(xp, x)), expected, rtol=1e-15, atol=0, err_msg=act.name)
    from reference.activations import clip_input

    clipped, d = clip_input(np, np.array([-0.5, 0.5, 0.7, -0.2]), 0.5)
    np.testing.assert_array_equal(clipped, [-0.5, 0.5, 0.5, -0.2])
    np.testing.assert_array_equal(d, [1, 1, 0, 1])


@given(cfg=onnx_configs(), T=st.integers(1, 4), B=st.integers(1, 3), use_lengths=st.booleans(),
       seed=st.integers(0, 2**16))
def test_forward_mode_is_the_transpose_of_backward(cfg, T, B, use_lengths, seed):
    """<J v, u> = <v, J^T u> with v every tangent (input, hx, parameters) and u every cotangent:
    forward mode and the hand-written BPTT agree without torch."""
    m = cfg.module(seed=seed)
    rng = np.random.default_rng(seed)
    lstm = cfg.mode == "LSTM"
    x = rng.uniform(-1, 1, (T, B, cfg.input_size))
    hx = tuple(rng.uniform(-1, 1, s) for s in cfg.state_shapes(B))
    lengths = rng.integers(1, T + 1, B).tolist() if use_lengths else None
    v = {"input": rng.standard_normal(x.shape), "hx": tuple(rng.standard_normal(h.shape) for h in hx)}
    v.update((k, rng.standard_normal(p.shape)) for k, p in m.state_dict().items())
    out, _, d_out, d_hidden = reference.jvp(m, x, hx if lstm else hx[0],
                                            {**v, "hx": v["hx"] if lstm else v["hx"][0]}, lengths=lengths)
    d_hidden = d_hidden if lstm else (d_hidden,)
    u_out, u_hidden = rng.standard_normal(out.shape), tuple(rng.standard_normal(h.shape) for h in d_hidden)
    _, _, tape = m.forward(x, hx if lstm else hx[0], lengths=lengths)
    g = m.backward(tape, u_out, u_hidden if lstm else u_hidden[0])
    g_hx = g["hx"] if lstm else (g["hx"],)
    lhs = [d_out * u_out, *(a * b for a, b in zip(d_hidden, u_hidden, strict=True))]
    rhs = [v["input"] * g["input"], *(a * b for a, b in zip(v["hx"], g_hx, strict=True))]
    rhs += [v[k] * g[k] for k in m.state_dict()]
    scale = sum(np.abs(t).sum() for t in lhs + rhs)
    rtol, atol = tol("float64", "cpu", "gradient")
    err = abs(sum(t.sum() for t in lhs) - sum(t.sum() for t in rhs))
    assert err <= atol + rtol * scale, f"<J v, u> - <v, J^T u> = {err:.3e} (scale {scale:.3e}) for {cfg}"


@given(cfg=onnx_configs(max_layers=1, allow_proj=False).filter(lambda c: not c.bidirectional and not c.reverse),
       B=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_cells_take_the_options_as_one_step_of_the_layer(cfg, B, seed):
    """RNNCell, GRUCell, LSTMCell with ONNX's options are the layer's step: same outputs, same gradients."""
    if cfg.mode == "GRU" and not cfg.reset_after:
        cfg = cfg.replace(reset_after=True)  # the cells have torch's form only
    layer = cfg.module(seed=seed)
    kwargs = dict(activations=cfg.activations, activation_alpha=cfg.activation_alpha,
                  activation_beta=cfg.activation_beta, clip=cfg.clip)
    if cfg.mode == "LSTM":
        cell = reference.LSTMCell(cfg.input_size, cfg.hidden_size, cfg.bias, input_forget=cfg.input_forget,
                                  peephole=cfg.peephole, **kwargs)
    elif cfg.mode == "GRU":
        cell = reference.GRUCell(cfg.input_size, cfg.hidden_size, cfg.bias, **kwargs)
    else:
        cell = reference.RNNCell(cfg.input_size, cfg.hidden_size, cfg.bias, nonlinearity=cfg.nonlinearity, **kwargs)
    assert cell.config == cfg.replace(num_layers=1)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (B, cfg.input_size))
    hx = tuple(rng.uniform(-1, 1, (B, cfg.hidden_size)) for _ in cfg.state_shapes(B))
    lstm = cfg.mode == "LSTM"
    hidden, tape = cell.forward(x, hx if lstm else hx[0])
    out, _, ltape = layer.forward(x[None], tuple(h[None] for h in hx) if lstm else hx[0][None])
    d = rng.standard_normal((B, cfg.hidden_size))
    grads = cell.backward(tape, (d, None) if lstm else d)
    lgrads = layer.backward(ltape, d[None])
    fwd = tol("float64", "cpu", "forward")
    assert_close("h'", hidden[0] if lstm else hidden, out[0], *fwd, config=cfg)
    assert_close("input", grads["input"], lgrads["input"][0], *fwd, config=cfg)
    for name in cell.state_dict():
        assert_close(name, grads[name], lgrads[f"{name}_l0"], *fwd, config=cfg)


@pytest.mark.parametrize("library", ["torch", "array_api_strict"])
@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_general_cells_run_in_any_array_library(library, mode):
    """Every function, the clip and the peepholes through the array API: the same numbers as NumPy."""
    lib = pytest.importorskip(library)
    rng = np.random.default_rng(0)
    n = ACTIVATION_COUNT[mode]
    for k in range(0, len(ONNX_ACTIVATIONS), n):
        acts = tuple((ONNX_ACTIVATIONS * 2)[k : k + n])
        cfg = RNNConfig(mode, 3, 4, activations=acts, activation_alpha=(0.5,) * n, activation_beta=(0.3,) * n,
                        clip=0.7, peephole=mode == "LSTM", input_forget=mode == "LSTM")
        m = cfg.module(seed=k)
        x, dout = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 4))
        out, _, tape = m.forward(x)
        grads = m.backward(tape, dout)
        as_lib = (lambda a: lib.tensor(a)) if library == "torch" else (lambda a: lib.asarray(a))
        out_l, _, tape_l = m.forward(as_lib(x))
        grads_l = m.backward(tape_l, as_lib(dout))
        fwd, grad = tol("float64", "cpu", "forward"), tol("float64", "cpu", "gradient")
        assert_close("output", np.asarray(out_l), out, *fwd, config=cfg)
        for name in ("input", *m.state_dict()):
            assert_close(name, np.asarray(grads_l[name]), grads[name], *grad, config=cfg)
