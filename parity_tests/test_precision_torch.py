"""Rounding to bfloat16 and float16 (reference.precision.formats), bit for bit against torch's own
conversions and ml_dtypes', over every kind of value: random bit patterns, ties, subnormals, inf, NaN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_precision import random_float32, special_float32

from reference.precision import round_to

TORCH = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def _bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


@pytest.mark.parametrize("fmt", list(TORCH))
def test_rounding_float32_matches_torch_bit_for_bit(fmt):
    x = np.concatenate([special_float32(), random_float32(1_000_000, seed=11)])
    mine = round_to(x, fmt)
    theirs = torch.from_numpy(x.copy()).to(TORCH[fmt]).float().numpy()
    nan = np.isnan(x)
    assert np.isnan(mine[nan]).all() and np.isnan(theirs[nan]).all()  # NaN stays NaN (payloads differ, as torch's do)
    bad = np.flatnonzero(_bits(mine[~nan]) != _bits(theirs[~nan]))
    assert not bad.size, [(hex(_bits(x[~nan][k:k + 1])[0]), mine[~nan][k], theirs[~nan][k]) for k in bad[:5]]


@pytest.mark.parametrize("fmt", list(TORCH))
def test_rounding_float64_matches_torch_bit_for_bit(fmt):
    """torch converts float64 through float32 (two roundings); so does round_to."""
    rng = np.random.default_rng(12)
    x = np.concatenate([rng.standard_normal(200_000) * 10.0 ** rng.integers(-45, 40, 200_000),
                        1 + 2.0 ** -8 + 2.0 ** -30 * np.arange(1, 5), 1 + 2.0 ** -11 + 2.0 ** -40 * np.arange(1, 5)])
    with np.errstate(over="ignore"):
        theirs = torch.from_numpy(x).to(TORCH[fmt]).float().numpy()
    assert np.array_equal(_bits(round_to(x, fmt)), _bits(theirs))


def test_bfloat16_rounding_matches_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.concatenate([special_float32(), random_float32(50_000, seed=13)])
    x = x[~np.isnan(x)]
    theirs = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    assert np.array_equal(_bits(round_to(x, "bfloat16")), _bits(theirs))
