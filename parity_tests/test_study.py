"""Study tools: training pieces, optimizers, clipping, forward mode, gradient flow.
(The examples' step-by-step training parity with torch is in test_examples.py.)

Torch-free checks (finite differences, <v, J u> = <J^T v, u>, chain rule of the
step Jacobians) sit next to the torch ones, so a torch regression cannot mask
a reference bug.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import tol

import reference
from reference import train as nt
from reference.gradient_flow import hidden_gradient_norms, step_jacobians
from reference.jvp import jvp

F64 = tol("float64", "cpu", "gradient")
FD = tol("float64", "numeric", "gradient")


# -- configurations ------------------------------------------------------------------


@st.composite
def modules(draw, max_layers=2):
    """(module, x, hx, lengths): small float64 layers with non-zero biases, states and lengths."""
    mode = draw(st.sampled_from(["RNN_TANH", "RNN_RELU", "GRU", "LSTM"]))
    layers = draw(st.integers(1, max_layers))
    bidir = draw(st.booleans())
    I, H, T, B = (draw(st.integers(1, 4)) for _ in range(4))
    proj = draw(st.integers(0, H - 1)) if mode == "LSTM" and H > 1 else 0
    seed = draw(st.integers(0, 2**16))
    kw = {"num_layers": layers, "bidirectional": bidir, "seed": seed}
    if mode == "LSTM":
        m = reference.LSTM(I, H, proj_size=proj, **kw)
    elif mode == "GRU":
        m = reference.GRU(I, H, **kw)
    else:
        m = reference.RNN(I, H, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kw)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (T, B, I))
    hx = _like_hidden(m, B, lambda s: rng.uniform(-1, 1, s))
    lengths = rng.integers(1, T + 1, B) if draw(st.booleans()) else None
    return m, x, hx, lengths


def _like_hidden(m, B, fill):
    DL = m.num_layers * m.num_directions
    h = fill((DL, B, m.output_size))
    return (h, fill((DL, B, m.hidden_size))) if m.mode == "LSTM" else h


def _parts(hidden):
    return hidden if isinstance(hidden, tuple) else (hidden,)


def _random_tangents(m, x, hx, rng):
    t = {k: rng.standard_normal(v.shape) for k, v in m.parameters().items()}
    t["input"] = rng.standard_normal(x.shape)
    t["hx"] = tuple(rng.standard_normal(h.shape) for h in hx) if isinstance(hx, tuple) else rng.standard_normal(hx.shape)
    return t


def _dot(a, b) -> float:
    return float(sum((np.asarray(p) * np.asarray(q)).sum() for p, q in zip(_parts(a), _parts(b))))


# -- forward mode ---------------------------------------------------------------------


@given(modules())
def test_jvp_inner_product_matches_reverse_mode(case):
    """<v, J u> from forward mode equals <J^T v, u> from the module's backward."""
    m, x, hx, lengths = case
    rng = np.random.default_rng(1)
    u = _random_tangents(m, x, hx, rng)
    out, hidden, tape = m.forward(x, hx, lengths=lengths)
    o, _h, do, dh = jvp(m, x, hx, u, lengths=lengths)
    assert_close("jvp primal output", o, out, 0, 0)
    v_out = rng.standard_normal(out.shape)
    v_hid = tuple(rng.standard_normal(p.shape) for p in _parts(hidden))
    g = m.backward(tape, v_out, v_hid if m.mode == "LSTM" else v_hid[0])
    forward = _dot(v_out, do) + _dot(v_hid, dh)
    reverse = _dot(g["input"], u["input"]) + _dot(g["hx"], u["hx"]) + sum(_dot(g[k], u[k]) for k in m.parameters())
    assert_close("<v, J u>", np.array(forward), np.array(reverse), *F64)


@settings(max_examples=15)
@given(modules())
def test_jvp_matches_finite_differences(case):
    m, x, hx, lengths = case
    u = _random_tangents(m, x, hx, np.random.default_rng(2))
    _, _, do, dh = jvp(m, x, hx, u, lengths=lengths)
    params, eps = m.state_dict(), 1e-6

    def at(s):
        m.load_state_dict({k: v + s * u[k] for k, v in params.items()})
        hx_s = tuple(a + s * b for a, b in zip(hx, u["hx"])) if isinstance(hx, tuple) else hx + s * u["hx"]
        out, hidden, _ = m.forward(x + s * u["input"], hx_s, lengths=lengths)
        return out, _parts(hidden)

    (op, hp), (om, hm) = at(eps), at(-eps)
    assert_close("d output (finite differences)", do, (op - om) / (2 * eps), *FD)
    for k, (a, b, t) in enumerate(zip(hp, hm, _parts(dh))):
        assert_close(f"d hidden[{k}] (finite differences)", t, (a - b) / (2 * eps), *FD)


@settings(max_examples=15)
@given(modules())
def test_jvp_matches_torch_func_jvp(case):
    torch = pytest.importorskip("torch")
    from torch.func import functional_call
    from torch.func import jvp as torch_jvp

    from torch_impl import to_torch

    m, x, hx, _ = case
    u = _random_tangents(m, x, hx, np.random.default_rng(3))
    tm = to_torch(m)
    names = list(m.parameters())
    as_t = lambda a: tuple(torch.as_tensor(p) for p in a) if isinstance(a, tuple) else torch.as_tensor(a)

    def f(x_, hx_, *ps):
        out, hidden = functional_call(tm, dict(zip(names, ps)), (x_, hx_))
        return (out, *_parts(hidden))

    primals = (as_t(x), as_t(hx), *(torch.as_tensor(p.copy()) for p in m.parameters().values()))
    tangents = (as_t(u["input"]), as_t(u["hx"]), *(torch.as_tensor(u[k]) for k in names))
    _, t_tangents = torch_jvp(f, primals, tangents)
    _, _, do, dh = jvp(m, x, hx, u)
    assert_close("output tangent vs torch.func.jvp", do, t_tangents[0], *F64)
    for k, t in enumerate(_parts(dh)):
        assert_close(f"hidden[{k}] tangent vs torch.func.jvp", t, t_tangents[1 + k], *F64)


def test_jvp_refuses_random_dropout():
    m = reference.GRU(2, 3, num_layers=2, dropout=0.5, seed=0)
    with pytest.raises(ValueError, match="dropout"):
        jvp(m, np.zeros((2, 1, 2)))


# -- gradient flow ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_step_jacobians_chain_to_the_sequence_jacobian(mode):
    """prod_t dstate_t/dstate_{t-1} = dstate_T/dstate_0, checked by finite differences over the whole sequence."""
    kw = {"proj_size": 2} if mode == "LSTM" else {}
    m = getattr(reference, mode)(2, 3, seed=4, **kw)
    rng = np.random.default_rng(4)
    T, B = 5, 2
    x = rng.uniform(-1, 1, (T, B, 2))
    hx = _like_hidden(m, B, lambda s: rng.uniform(-1, 1, s))
    J = step_jacobians(m, x, hx)  # (T, B, S, S)
    chain = J[0]
    for t in range(1, T):
        chain = J[t] @ chain  # (B, S, S)
    flat0 = np.concatenate([p[0] for p in _parts(hx)], -1)  # (B, S)
    S, eps = flat0.shape[-1], 1e-6
    numeric = np.empty_like(chain)
    for k in range(S):
        cols = []
        for s in (eps, -eps):
            f = flat0.copy()
            f[:, k] += s
            parts = (f[None, :, : m.output_size], f[None, :, m.output_size:]) if mode == "LSTM" else f[None]
            _, hidden, _ = m.forward(x, parts)
            cols.append(np.concatenate([p[0] for p in _parts(hidden)], -1))
        numeric[:, :, k] = (cols[0] - cols[1]) / (2 * eps)
    assert_close("product of step Jacobians", chain, numeric, *FD)


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_hidden_gradient_norms_match_suffix_backward(mode):
    """||dL/dh_{t-1}|| = ||(backward of the suffix from h_{t-1})["hx"] + dL/doutput_{t-1}||."""
    m = getattr(reference, mode)(3, 4, seed=5)
    rng = np.random.default_rng(5)
    T, B = 6, 2
    x = rng.uniform(-1, 1, (T, B, 3))
    go = rng.standard_normal((T, B, 4))
    norms = hidden_gradient_norms(m, x, grad_output=go)
    _out, _hidden, _ = m.forward(x)
    for t in range(1, T):
        _, h_prev, _ = m.forward(x[:t])
        _, _, tape = m.forward(x[t:], h_prev)
        g = m.backward(tape, go[t:])
        dh = _parts(g["hx"])[0][0] + go[t - 1]  # (B, H)
        assert_close(f"||dL/dh_{t - 1}||", norms[t - 1], np.linalg.norm(dh, axis=-1), *F64)
    assert_close(f"||dL/dh_{T - 1}||", norms[-1], np.linalg.norm(go[-1], axis=-1), *F64)


# -- layers and losses ----------------------------------------------------------------


def test_linear_embedding_cross_entropy_grads_match_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = np.random.default_rng(6)
    V, E, O, N = 7, 5, 6, 12
    idx = rng.integers(0, V, (3, 4))  # repeated indices: the scatter-add must sum
    target = rng.integers(0, O, 12)
    target[[1, 5]] = -100  # ignored rows
    emb_w, fc = rng.standard_normal((V, E)), nt.init_linear(E, O, rng=rng)
    fc["bias"] = rng.uniform(-1, 1, O)
    for reduction in ("mean", "sum"):
        for padding_idx in (None, int(idx[0, 0])):
            x, ec = nt.embedding_forward(idx, emb_w, padding_idx)
            y, lc = nt.linear_forward(x, fc["weight"], fc["bias"])
            loss, cc = nt.cross_entropy_forward(y.reshape(N, O), target, reduction)
            dy = nt.cross_entropy_backward(0.7, cc).reshape(y.shape)
            g_fc = nt.linear_backward(dy, lc)
            g_emb = nt.embedding_backward(g_fc["input"], ec)

            tw = torch.tensor(emb_w, requires_grad=True)
            tW, tb = (torch.tensor(fc[k], requires_grad=True) for k in ("weight", "bias"))
            tx = F.embedding(torch.as_tensor(idx), tw, padding_idx=padding_idx)
            tx.retain_grad()
            tl = F.cross_entropy(F.linear(tx, tW, tb).reshape(N, O), torch.as_tensor(target), reduction=reduction)
            (0.7 * tl).backward()
            cfg = {"reduction": reduction, "padding_idx": padding_idx}
            assert_close("cross-entropy loss", loss, tl.detach(), *F64, config=cfg)
            assert_close("d fc.weight", g_fc["weight"], tW.grad, *F64, config=cfg)
            assert_close("d fc.bias", g_fc["bias"], tb.grad, *F64, config=cfg)
            assert_close("d linear input", g_fc["input"], tx.grad, *F64, config=cfg)
            assert_close("d embedding.weight", g_emb["weight"], tw.grad, *F64, config=cfg)


def test_log_softmax_and_mse_grads_match_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = np.random.default_rng(7)
    z, dz, t = rng.standard_normal((4, 5)) * 30, rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    tz = torch.tensor(z, requires_grad=True)
    out = F.log_softmax(tz, -1)
    out.backward(torch.as_tensor(dz))
    logp = nt.log_softmax(z)
    assert_close("log_softmax", logp, out.detach(), *F64)
    assert_close("d log_softmax", nt.log_softmax_backward(dz, logp), tz.grad, *F64)
    tz.grad = None
    loss = F.mse_loss(tz, torch.as_tensor(t))
    loss.backward()
    mse, cache = nt.mse_loss_forward(z, t)
    assert_close("mse", mse, loss.detach(), *F64)
    assert_close("d mse", nt.mse_loss_backward(1.0, cache), tz.grad, *F64)


# -- optimizers and clipping ------------------------------------------------------------


SGD_CONFIGS = [{"lr": 0.1}, {"lr": 0.1, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01},
               {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}, {"lr": 0.1, "momentum": 0.5, "maximize": True}]
ADAM_CONFIGS = [{"lr": 1e-3}, {"lr": 0.1, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05},
                {"lr": 0.01, "amsgrad": True}, {"lr": 0.01, "amsgrad": True, "maximize": True, "weight_decay": 0.1}]


def _optimizer_parity(np_opt, torch_opt_cls, cfg):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    shapes = {"rnn.weight_ih_l0": (6, 3), "rnn.bias_hh_l0": (6,), "fc.weight": (2, 6)}
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    topt = torch_opt_cls(list(tparams.values()), **cfg)
    for step in range(6):
        grads = {k: rng.standard_normal(s) * 10.0 ** rng.integers(-3, 2) for k, s in shapes.items()}
        params = np_opt.step(params, grads)
        for k, p in tparams.items():
            p.grad = torch.as_tensor(grads[k]).clone()
        topt.step()
        for k in shapes:
            assert_close(f"{k} after step {step + 1}", params[k], tparams[k].detach(), *F64, config=cfg)


@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=str)
def test_sgd_matches_torch(cfg):
    torch = pytest.importorskip("torch")
    _optimizer_parity(nt.SGD(**cfg), torch.optim.SGD, cfg)


@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=str)
def test_adam_matches_torch(cfg):
    torch = pytest.importorskip("torch")
    _optimizer_parity(nt.Adam(**cfg), torch.optim.Adam, cfg)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    grads = {k: rng.standard_normal(s) for k, s in {"a": (4, 3), "b": (5,), "c": (2, 2, 2)}.items()}
    tg = [torch.tensor(g, requires_grad=True) for g in grads.values()]
    for p, g in zip(tg, grads.values()):
        p.grad = torch.as_tensor(g).clone()
    total_t = torch.nn.utils.clip_grad_norm_(tg, max_norm, norm_type)
    total = nt.clip_grad_norm_(grads, max_norm, norm_type)
    cfg = {"norm_type": norm_type, "max_norm": max_norm}
    assert_close("total norm", np.array(total), total_t, *F64, config=cfg)
    for (k, g), p in zip(grads.items(), tg):
        assert_close(f"clipped {k}", g, p.grad, *F64, config=cfg)


def test_clip_grad_value_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    grads = {"a": rng.standard_normal((5, 4)), "b": rng.standard_normal(7)}
    tg = [torch.tensor(g, requires_grad=True) for g in grads.values()]
    for p, g in zip(tg, grads.values()):
        p.grad = torch.as_tensor(g).clone()
    torch.nn.utils.clip_grad_value_(tg, 0.3)
    nt.clip_grad_value_(grads, 0.3)
    for (k, g), p in zip(grads.items(), tg):
        assert_close(f"clipped {k}", g, p.grad, 0, 0)


def test_clip_grad_norm_rejects_nonfinite_when_asked():
    with pytest.raises(RuntimeError, match="non-finite"):
        nt.clip_grad_norm_({"a": np.array([np.inf, 1.0])}, 1.0, error_if_nonfinite=True)


# -- token batching -----------------------------------------------------------------------


def test_batchify_and_bptt_chunks_cover_the_stream():
    tokens = np.arange(23)
    data = nt.batchify(tokens, 3)  # (7, 3): columns are contiguous slices
    assert_close("batchify column 1", data[:, 1], np.arange(7, 14), 0, 0)
    chunks = list(nt.bptt_chunks(data, 4))
    assert [c[0].shape for c in chunks] == [(4, 3), (2, 3)]
    assert_close("inputs, concatenated", np.concatenate([c[0] for c in chunks]), data[:-1], 0, 0)
    assert_close("targets, concatenated", np.concatenate([c[1] for c in chunks]), data[1:], 0, 0)


def test_random_windows_targets_are_shifted_inputs():
    tokens = np.arange(100) * 3
    x, y = nt.random_windows(tokens, 5, 8, np.random.default_rng(11))
    assert x.shape == y.shape == (8, 5)
    assert_close("target = next token", y, x + 3, 0, 0)


def test_detach_copies_the_state():
    h, c = np.ones((1, 2, 3)), np.zeros((1, 2, 3))
    dh, _dc = nt.detach((h, c))
    h[...] = 5
    assert_close("detached h", dh, np.ones((1, 2, 3)), 0, 0)


def test_study_modules_import_numpy_only():
    import subprocess
    import sys

    code = ("import sys, reference.train, reference.jvp, reference.gradient_flow; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
