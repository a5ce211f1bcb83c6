"""Drawn dropout masks keep each unit with probability 1 - p, and scale the kept ones by 1 / (1 - p).

Every place that draws masks is measured: the reference module (its tape keeps the
scaled masks it drew), check_module_gradients and the verifier (0/1 masks), and
torch_impl's BPTT (torch's generator). p = 0.5 cannot tell keep from drop, so
several p are drawn: a mask that keeps with probability p instead of 1 - p is
off by |1 - 2p| >= 0.4 in its kept fraction, forty times the bound.

The bound is Hoeffding's: for n independent Bernoulli(q) draws with K kept,
P(|K/n - q| >= t) <= 2 exp(-2 n t^2). With t = sqrt(ln(2 / DELTA) / (2 n)) a
correct drawer fails one check with probability at most DELTA = 1e-9, so this
whole file (fewer than 40 checks) fails falsely with probability below 4e-8 over
seeds; the seeds are fixed, so it is also deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import reference
from reference import gradcheck
from reference.verify import Spec
from reference.verify.arguments import dropout_masks_for as _masks

DELTA = 1e-9
PS = [0.1, 0.3, 0.5, 0.8]
T, B, H = 50, 40, 25  # masks of (T, B, 2H) = 100,000 units: the bound is t = 0.0104


def assert_keeps_one_minus_p(name: str, kept: np.ndarray, p: float) -> None:
    """kept: a bool array of independent draws that should each be True with probability 1 - p."""
    n = kept.size
    t = math.sqrt(math.log(2 / DELTA) / (2 * n))
    fraction = float(np.mean(kept))
    assert abs(fraction - (1 - p)) < t, (f"{name}: kept fraction {fraction:.4f} over {n} units, expected "
                                         f"1 - p = {1 - p:.4f} within {t:.4f} (Hoeffding, false failure <= {DELTA:g})")


def _module(p: float, dtype: str = "float64"):
    return reference.GRU(1, H, num_layers=3, dropout=p, bidirectional=True, seed=int(100 * p), dtype=dtype)


def _input(p: float, dtype: str = "float64") -> np.ndarray:
    return np.random.default_rng(int(100 * p)).uniform(-1, 1, (T, B, 1)).astype(dtype)  # (T, B, I)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("p", PS)
def test_module_masks_keep_one_minus_p_and_scale_by_its_inverse(p, dtype):
    m = _module(p, dtype)
    _, _, tape = m.forward(_input(p, dtype))
    masks = tape.stack.dropout  # the scaled keep masks forward drew and applied, one per layer boundary
    assert len(masks) == 2
    scale = np.asarray(1 / (1 - p), dtype=dtype)
    for k, mask in enumerate(masks):
        assert mask.shape == (T, B, 2 * H) and mask.dtype == np.dtype(dtype)
        kept = mask != 0
        assert_keeps_one_minus_p(f"dropout mask {k}", kept, p)
        assert np.array_equal(mask[kept], np.full(int(kept.sum()), scale)), f"kept units of mask {k} are not 1/(1-p)"
    assert not np.array_equal(masks[0], masks[1]), "each layer boundary draws its own mask"


@pytest.mark.parametrize("p", PS)
def test_gradient_check_masks_keep_one_minus_p(p, monkeypatch):
    m = _module(p)
    drawn = []

    class Drawn(Exception):
        pass

    forward = type(m).forward

    def spy(self, *args, dropout_masks=None, **kwargs):
        if dropout_masks is not None:
            drawn.extend(dropout_masks)
            raise Drawn  # the masks are what this test measures: skip the finite differences
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(m), "forward", spy)
    with pytest.raises(Drawn):
        gradcheck.check_module_gradients(m, _input(p), seed=3)
    assert len(drawn) == 2
    for k, mask in enumerate(drawn):
        assert np.isin(mask, (0, 1)).all(), "check_module_gradients passes 0/1 masks (the module scales them)"
        assert_keeps_one_minus_p(f"check_module_gradients mask {k}", mask == 1, p)


@pytest.mark.parametrize("p", PS)
def test_verifier_masks_keep_one_minus_p(p):
    spec = Spec("GRU", 1, H, num_layers=3, bidirectional=True, dropout=p, training=True)
    masks = _masks(None, spec, np.random.default_rng(5), T, B)
    assert len(masks) == 2
    for k, mask in enumerate(masks):
        assert mask.shape == (T, B, 2 * H) and np.isin(mask, (0, 1)).all()
        assert_keeps_one_minus_p(f"verify.compare mask {k}", mask == 1, p)


@pytest.mark.parametrize("p", PS)
def test_torch_bptt_masks_keep_one_minus_p_and_scale_by_its_inverse(p):
    torch = pytest.importorskip("torch")
    from torch_impl.bptt import _keep_masks

    like = torch.zeros((), dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        masks = _keep_masks(None, p, True, (T, B, 2 * H), True, False, like, 2)
    for k, mask in enumerate(masks):
        mask = mask.numpy()
        kept = mask != 0
        assert_keeps_one_minus_p(f"torch_impl mask {k}", kept, p)
        assert np.array_equal(mask[kept], np.full(int(kept.sum()), 1 / (1 - p))), f"kept units of mask {k} are not 1/(1-p)"


def test_the_bound_catches_masks_that_keep_with_probability_p():
    """The check above must say FAIL on the bug it is for: keep with probability p instead of 1 - p."""
    rng = np.random.default_rng(0)
    for p in (0.1, 0.3, 0.8):
        with pytest.raises(AssertionError, match="kept fraction"):
            assert_keeps_one_minus_p("swapped", rng.random((T, B, 2 * H)) < p, p)
        assert_keeps_one_minus_p("right", rng.random((T, B, 2 * H)) >= p, p)
