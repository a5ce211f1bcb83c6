"""The envelope's verdicts, torch-free: what they say, where they say an error leaves the envelope, and
what they refuse. Candidates here are the truth with errors planted by hand; torch's kernels are judged
in test_envelope.py."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from reference.precision import Precision, round_to
from reference.verify.candidates import Problem
from reference.verify.envelope import (
    FACTORS,
    judge,
    measure_envelope,
    redraw,
    truth_run,
)
from reference.verify.spec import Spec

SPEC = Spec("LSTM", 3, 4)
T, B = 6, 3


def drawn(spec: Spec = SPEC, seed: int = 0, lengths: list[int] | None = None) -> Problem:
    """Inputs and states U(-1, 1), cotangents N(0, 1), torch's initial weights and non-zero biases."""
    rng = np.random.default_rng(seed)
    hx = tuple(rng.uniform(-1, 1, s) for s in spec.state_shapes(B))
    return Problem(spec, spec.reference(seed=seed).state_dict(), rng.uniform(-1, 1, (T, B, spec.input_size)),
                   hx, None if lengths is None else np.array(lengths), None,
                   rng.standard_normal((T, B, spec.D * spec.P)), tuple(rng.standard_normal(h.shape) for h in hx))


@pytest.fixture(scope="module")
def envelope():
    return measure_envelope(drawn(), Precision("bfloat16"))


def rounded_truth(env) -> dict:
    """The most accurate kernel there is: the truth, rounded once to storage."""
    return {k: round_to(v, "bfloat16").astype(np.float64) for k, v in env.truth.items()}


def test_the_truth_rounded_once_is_a_match_and_the_verdict_says_how_close(envelope):
    verdict = judge(envelope, rounded_truth(envelope))
    assert verdict.passed
    m, name, statistic, t = verdict.largest
    assert 0 < m <= 1 / FACTORS["bfloat16"]  # it is one of the models
    at = "" if t is None else f" at t = {t}"
    assert str(verdict) == (f"MATCH at bfloat16: every error within the rounding envelope (largest {m:.2g}x, "
                            f"{name}{at}, {statistic})")


def test_an_error_at_one_step_is_placed_at_that_step(envelope):
    cand = rounded_truth(envelope)
    cand["output"] = cand["output"].copy()
    cand["output"][3, 1, 2] += 0.05  # 50x bfloat16's rounding of values near 1
    cand["output"][5, 0, 0] += 0.05  # and later: the verdict names the first
    verdict = judge(envelope, cand)
    assert not verdict.passed
    assert str(verdict).startswith("MISMATCH at bfloat16: output leaves the envelope at t = 3 (")
    out = next(t for t in verdict.tensors if t.name == "output")
    assert out.multiples[:, :3].max() <= 1 and out.multiples[0, 3] > 1  # steps before it are inside


def test_a_scaled_gradient_leaves_by_its_scale(envelope):
    cand = rounded_truth(envelope)
    cand["grad weight_hh_l0"] = round_to(envelope.truth["grad weight_hh_l0"] * 1.05, "bfloat16").astype(np.float64)
    verdict = judge(envelope, cand)
    assert "grad weight_hh_l0 leaves the envelope (" in str(verdict) and "grad input" not in str(verdict), str(verdict)


def test_nothing_compared_is_never_a_match(envelope):
    verdict = judge(envelope, {})
    assert not verdict.passed and str(verdict).startswith("NOT COMPARED at bfloat16: the candidate returned none of")


def test_a_tensor_not_returned_is_named_and_a_wrong_shape_or_nan_is_a_mismatch(envelope):
    cand = rounded_truth(envelope)
    del cand["grad c_0"]
    verdict = judge(envelope, cand)
    assert verdict.passed and str(verdict).endswith("; not compared: grad c_0")
    cand["h_n"] = cand["h_n"][..., :2]
    assert "h_n: shape (1, 3, 2), expected (1, 3, 4)" in str(judge(envelope, cand))
    cand = rounded_truth(envelope)
    cand["output"] = cand["output"].copy()
    cand["output"][4, 0, 0] = np.nan
    assert "output leaves the envelope at t = 4 (inf (not finite), max)" in str(judge(envelope, cand))


def test_the_verifiers_result_form_is_judged_alike(envelope):
    named = rounded_truth(envelope)
    params = {k[len("grad "):]: v for k, v in named.items() if k.startswith(("grad weight", "grad bias"))}
    form = {"output": named["output"], "hidden": (named["h_n"], named["c_n"]), "input": named["grad input"],
            "hx": (named["grad h_0"], named["grad c_0"]), **params}
    assert str(judge(envelope, form)) == str(judge(envelope, named))


def test_candidates_in_narrow_numpy_dtypes_are_judged_alike(envelope):
    """float16 arrays, and ml_dtypes' bfloat16 (JAX's) where it is installed: read without a loss."""
    half = measure_envelope(drawn(), Precision("float16"), draws=2)
    as_half = {k: round_to(v, "float16").astype(np.float16) for k, v in half.truth.items()}
    assert str(judge(half, as_half)) == str(judge(half, {k: v.astype(np.float64) for k, v in as_half.items()}))
    named = rounded_truth(envelope)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    as_bfloat16 = {k: v.astype(ml_dtypes.bfloat16) for k, v in named.items()}
    assert str(judge(envelope, as_bfloat16)) == str(judge(envelope, named))


def test_the_envelope_is_a_per_step_tolerance(envelope):
    assert envelope.tolerance("output").shape == (T,) and envelope.tolerance("grad weight_ih_l0").shape == (1,)
    assert (envelope.tolerance("output") > 0).all()
    assert str(envelope).startswith(f"rounding envelope at bfloat16 (storage bfloat16, compute float32, accumulation "
                                    f"float32): {FACTORS['bfloat16']:g} x the largest of 2 models (stored values, rounded once)")


def test_redraws_permute_each_arrays_valid_entries():
    pb = drawn(lengths=[6, 2, 4])
    pb.x[5, 1] = np.nan  # padding: never read, never moved
    new = redraw(pb, np.random.default_rng(0))
    valid = np.arange(T)[:, None] < np.array([6, 2, 4])[None, :]
    assert np.isnan(new.x[5, 1]).all() and not np.isnan(new.x[valid]).any()
    assert np.array_equal(np.sort(new.x[valid].ravel()), np.sort(pb.x[valid].ravel()))
    assert not np.array_equal(new.x[valid], pb.x[valid]) and new.params is pb.params
    assert np.array_equal(np.sort(new.grad_hidden[1].ravel()), np.sort(pb.grad_hidden[1].ravel()))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(draws=1), ValueError, "draws: expected an int >= 2"),
    (dict(factor=0.5), ValueError, "quantile, factor: expected 0 < quantile <= 1 and factor >= 1"),
    (dict(precision="bfloat16"), TypeError, "precision: expected a reference.precision.Precision, got str"),
])
def test_bad_arguments_are_errors_naming_them(kwargs, error, message):
    kwargs = {"precision": Precision("bfloat16"), **kwargs}
    with pytest.raises(error, match=message):
        measure_envelope(drawn(), **kwargs)


def test_a_problem_that_overflows_the_format_is_an_error():
    pb = drawn(Spec("RNN_RELU", 3, 4))
    pb = replace(pb, params={k: 80 * v for k, v in pb.params.items()})  # a relu RNN that grows past 65504
    with pytest.raises(ValueError, match=r"the rounding models \[.*\] give non-finite .* at float16"):
        measure_envelope(pb, Precision("float16"), draws=2)


def test_the_picture_is_drawn(envelope, tmp_path):
    pytest.importorskip("matplotlib")
    from reference.verify.envelope import plot_envelope

    cand = rounded_truth(envelope)
    cand["output"] = cand["output"] * 1.02
    path = plot_envelope(judge(envelope, cand), str(tmp_path / "errors.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_truth_run_is_the_float64_reference():
    pb = drawn()
    truth = truth_run(pb, Precision("bfloat16"))
    assert truth["output"].dtype == np.float64 and list(truth)[:3] == ["output", "h_n", "c_n"]
