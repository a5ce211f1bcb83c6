"""The reference at emulated precision (reference.precision), torch-free: rounding to TF32 against an
independent nearest-even rule, the rounding namespace running the unchanged core, and the rounding models.

Bit-exact checks of bfloat16 and float16 rounding against torch's own conversions are in
test_precision_torch.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import reference
from reference.precision import FORMATS, Precision, Rounding, namespace, round_mantissa, round_to, rounding_models
from reference.verify.candidates import Problem
from reference.verify.envelope import model_run, truth_run
from reference.verify.spec import Spec

NO_ROUNDING = Rounding("no rounding", "float64", None, None, None, None, None)  # float64 NumPy, nothing rounded


def special_float32() -> np.ndarray:
    """Zeros, infinities, NaNs, subnormals, the largest finite value, and ties at 7, 10 and 13 dropped bits."""
    bits = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF,
            0x00000001, 0x807FFFFF, 0x00400000, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000]
    for k in (13, 16):  # TF32 drops 13 bits, bfloat16 16: exact ties with an even and an odd last kept bit
        for base in (0x3F800000, 0x3F800000 | (1 << k), 0x00800000, 0x00000000 | (1 << k), 0x7F7F0000):
            bits += [base | (1 << (k - 1)), base | ((1 << (k - 1)) - 1), base | ((1 << (k - 1)) + 1)]
    return np.array(bits, dtype=np.uint32).view(np.float32)


def random_float32(n: int, seed: int = 0) -> np.ndarray:
    """Every bit pattern equally likely: all exponents, subnormals and NaNs included."""
    return np.random.default_rng(seed).integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)


def nearest_even_tf32(x: np.ndarray) -> np.ndarray:
    """TF32 by its definition, in float64: the two neighbours with 10 mantissa bits, the nearer one
    (the one whose last kept bit is 0 on a tie); infinity past the largest finite value."""
    x64 = x.astype(np.float64)
    out = np.empty_like(x64)
    for k, v in enumerate(x64):
        if not np.isfinite(v) or v == 0:
            out[k] = v
            continue
        e = max(np.floor(np.log2(abs(v))), -126)  # float32's smallest normal exponent: subnormals keep its spacing
        ulp = 2.0 ** (e - 10)
        lo = np.floor(v / ulp) * ulp
        hi = lo + ulp
        if v - lo != hi - v:
            out[k] = lo if v - lo < hi - v else hi
        else:
            out[k] = lo if (lo / ulp) % 2 == 0 else hi
        if abs(out[k]) >= 2.0**128:
            out[k] = np.copysign(np.inf, v)
    return out


def test_tf32_rounding_is_nearest_even_by_its_definition():
    x = np.concatenate([special_float32(), random_float32(20_000, seed=1)])
    x = x[~np.isnan(x)]
    got = round_to(x, "tf32").astype(np.float64)
    want = nearest_even_tf32(x)
    bad = np.flatnonzero(got != want)
    assert not bad.size, [(hex(x[k:k + 1].view(np.uint32)[0]), got[k], want[k]) for k in bad[:5]]


def test_truncated_rounding_cuts_toward_zero_and_nan_stays_nan():
    x = np.concatenate([special_float32(), random_float32(10_000, seed=2)])
    cut = round_mantissa(x, 10, toward_zero=True)
    finite = np.isfinite(x)
    assert np.all(np.abs(cut[finite].astype(np.float64)) <= np.abs(x[finite].astype(np.float64)))
    assert np.all(cut[finite].view(np.uint32) & 0x1FFF == 0)
    assert np.isnan(cut[np.isnan(x)]).all() and np.isnan(round_to(x[np.isnan(x)], "bfloat16")).all()


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_rounding_is_idempotent_and_held_exactly_in_the_carrier(fmt):
    rng = np.random.default_rng(3)
    x = rng.choice([-1, 1], 1000) * rng.uniform(1, 2, 1000) * 2.0 ** rng.integers(-10, 10, 1000)  # normal in every format
    r = round_to(x, fmt)
    assert r.dtype == FORMATS[fmt].carrier
    assert np.array_equal(round_to(r, fmt), r)
    step = np.abs(r - x) / np.abs(x)  # at most half a unit in the last place
    assert step.max() <= 2.0 ** -(FORMATS[fmt].mantissa_bits + 1) * (1 + 1e-9)


def test_a_bad_format_or_bit_count_is_an_error_naming_it():
    with pytest.raises(ValueError, match="format: expected one of bfloat16"):
        round_to(1.0, "bf16")
    with pytest.raises(ValueError, match="bits: expected 0 to 23"):
        round_mantissa(1.0, 24)


# -- the rounding namespace runs the unchanged core -------------------------------------------------


def _problem(spec: Spec, T: int, B: int, seed: int, lengths: bool = False) -> Problem:
    """Weights, data and cotangents holding float32 values, non-zero biases."""
    rng = np.random.default_rng(seed)
    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)
    params = {k: f32(v) for k, v in spec.reference(seed=seed).state_dict().items()}
    hx = tuple(f32(rng.uniform(-1, 1, s)) for s in spec.state_shapes(B))
    return Problem(spec, params, f32(rng.uniform(-1, 1, (T, B, spec.input_size))), hx,
                   np.array([T, max(1, T - 2), 1][:B]) if lengths else None, None,
                   f32(rng.standard_normal((T, B, spec.D * spec.P))), tuple(f32(rng.standard_normal(h.shape)) for h in hx))


@pytest.mark.parametrize("spec", [Spec("LSTM", 3, 5, num_layers=2, bidirectional=True, proj_size=2), Spec("GRU", 4, 3),
                                  Spec("RNN_TANH", 2, 4, bidirectional=True), Spec("RNN_RELU", 3, 3, num_layers=2)],
                         ids=str)
def test_the_core_through_a_namespace_that_rounds_nothing_is_the_float64_core_bit_for_bit(spec):
    """The namespace changes where values are rounded, nothing else: with no rounding at all it reproduces
    the plain NumPy core exactly, forward and backward, with lengths and both directions."""
    pb = _problem(spec, T=4, B=3, seed=5, lengths=True)
    got = model_run(pb, NO_ROUNDING, rounded=False)
    want = truth_run(pb, Precision("bfloat16"))
    assert list(got) == list(want)
    for k in want:
        assert np.array_equal(got[k], want[k]), k


def test_every_result_of_a_rounding_model_is_a_storage_value():
    spec = Spec("LSTM", 3, 4, proj_size=2)
    pb = _problem(spec, T=5, B=2, seed=6)
    for model in rounding_models(Precision("bfloat16", "bfloat16", "bfloat16")):
        res = model_run(pb, model)
        assert all(np.array_equal(round_to(v, "bfloat16"), v) for v in res.values()), model.name


def test_products_sum_as_declared():
    rng = np.random.default_rng(7)
    a, b = (round_to(rng.standard_normal(s), "bfloat16") for s in ((16, 256), (256, 16)))
    blas = namespace(Rounding("t", "bfloat16", None, "bfloat16", "float32", None, None))
    assert np.array_equal(np.asarray(blas.asarray(a) @ blas.asarray(b)), a @ b)  # float32 BLAS, nothing rounded
    assert not np.array_equal((a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32), a @ b)  # can fail
    rounded = namespace(Rounding("t", "bfloat16", None, "bfloat16", "float32", "float16", None))
    assert np.array_equal(np.asarray(rounded.asarray(a) @ rounded.asarray(b)), round_to(a @ b, "float16"))
    a, b = a[:3, :40], b[:40, :2]
    one_by_one = namespace(Rounding("t", "bfloat16", None, "bfloat16", "bfloat16", "bfloat16", None, one_by_one=True))
    total = round_to(a[:, :1] * b[:1, :], "bfloat16")
    for k in range(1, 40):
        total = round_to(total + a[:, k:k + 1] * b[k:k + 1, :], "bfloat16")
    assert np.array_equal(np.asarray(one_by_one.asarray(a) @ one_by_one.asarray(b)), total)
    assert not np.array_equal(total, round_to(a @ b, "bfloat16"))  # the order shows: the test can fail


def test_the_namespace_rounds_at_entry_stores_and_operations():
    xp = namespace(Rounding("t", "bfloat16", "bfloat16", None, None, None, "float16"))
    third = xp.asarray(np.array([1 / 3]))
    assert float(third[0]) == float(round_to(1 / 3, "bfloat16"))  # entry: storage
    assert float((third + 1e-3)[0]) == float(round_to(float(third[0]) + 1e-3, "bfloat16"))  # elementwise
    rows = xp.zeros((2, 3))
    row = xp.unstack(rows)[1]
    row += 1.0  # in place on a view writes through, as the core's backward expects
    assert np.array_equal(np.asarray(rows), [[0, 0, 0], [1, 1, 1]])
    box = xp.zeros((1,))
    box[0] = np.float32(1 / 3)
    assert float(box[0]) == float(round_to(np.float32(1 / 3), "float16"))  # store: float16 here


def test_arrays_of_two_rounding_models_do_not_mix():
    a = namespace(rounding_models(Precision("bfloat16", "bfloat16"))[0]).asarray(np.ones(2))
    b = namespace(rounding_models(Precision("bfloat16", "bfloat16"))[1]).asarray(np.ones(2))
    with pytest.raises(TypeError, match="arrays of two emulated precisions"):
        _ = a + b


# -- the declarations and their models ---------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    (dict(storage="bf16"), "storage: expected one of"),
    (dict(storage="bfloat16", compute="float16"), "compute: a kernel storing bfloat16 computes in float32 or bfloat16"),
    (dict(storage="float16", accumulate="float16"), "accumulate: a kernel storing float16 and computing in float32"),
    (dict(storage="float64", compute="tf32"), "compute: a kernel storing float64 computes in float64"),
])
def test_a_bad_declaration_is_an_error_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Precision(**kwargs)


def test_each_declaration_has_its_models():
    names = lambda *a: [m.name for m in rounding_models(Precision(*a))]
    assert names("bfloat16") == ["stored values"]  # float32 intermediates: rounding every op would be a bug
    assert names("bfloat16", "bfloat16") == ["stored values", "every op"]
    assert names("float16", "float16", "float16") == ["stored values", "every op", "storage sums"]
    assert names("float32", "tf32") == ["every op", "storage sums", "truncated TF32"]
    assert names("float64") == ["every op", "storage sums"]
    assert str(Precision("bfloat16")) == "storage bfloat16, compute float32, accumulation float32"


def test_the_precision_modules_import_numpy_only():
    code = ("import sys, reference.precision, reference.verify.envelope; "
            "bad = {'torch', 'array_api_compat', 'ml_dtypes', 'jax', 'matplotlib'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert reference.__name__ == "reference"
