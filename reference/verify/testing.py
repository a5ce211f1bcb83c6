"""The parity suite as a library for your own tests: hypothesis strategies and one assertion.

    from hypothesis import given, strategies as st
    from reference.verify.testing import assert_matches_reference, check_arguments, specs

    @given(spec=specs(modes=["LSTM"]), data=st.data())
    def test_my_lstm(spec, data):
        assert_matches_reference(make_my_lstm(spec), spec, **data.draw(check_arguments(spec)))

:func:`assert_matches_reference` raises AssertionError whose message is the
whole report, localisation included ("step: layer 0, forward direction, time
step 0, f: ..."). The strategies need hypothesis, imported when first used,
so the verifier itself needs NumPy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import MODES
from .compare import compare
from .low_precision import LowPrecisionReport
from .report import CompareReport
from .spec import Spec


def assert_matches_reference(candidate: Any, reference_module: Any = None,
                             **kwargs: Any) -> CompareReport | LowPrecisionReport:
    """compare(candidate, reference_module, **kwargs), failing with the report (and its localisation) on a mismatch.

    Returns the report when it matches. Keywords are compare's: input, hx,
    lengths, seed, seq_len, batch, dtype, layout, weights, cotangents, gradients, ...
    """
    report = compare(candidate, reference_module, **kwargs)
    if not report.passed:
        div = report.divergence if isinstance(report, CompareReport) else None  # low precision: in the report
        head = f"{report.candidate} does not match the reference"
        if div is not None:
            head += f"; first divergence ({div.kind}): {div.where() or 'the weights'}, in {div.gate}"
        raise AssertionError(f"{head}\n{report}")
    return report


def _st():
    try:
        from hypothesis import strategies
    except ImportError as e:
        raise ImportError("reference.verify.testing's strategies need hypothesis (pip install hypothesis)") from e
    return strategies


def specs(modes: Any = MODES, *, max_size: int = 6, max_layers: int = 2, bidirectional: Any = (False, True),
          projections: bool = True, bias: Any = (True, False)) -> Any:
    """Strategy: a :class:`Spec` (mode, sizes, layers, directions, projection, bias); eval mode, no dropout."""
    st = _st()
    modes = [modes] if isinstance(modes, str) else list(modes)

    @st.composite
    def draw(draw_):
        mode = draw_(st.sampled_from(modes))
        hidden = draw_(st.integers(1, max_size))
        proj = draw_(st.integers(0, hidden - 1)) if projections and mode == "LSTM" and hidden > 1 else 0
        return Spec(mode, draw_(st.integers(1, max_size)), hidden, draw_(st.integers(1, max_layers)),
                    draw_(st.sampled_from(list(bias) if isinstance(bias, (tuple, list)) else [bias])),
                    draw_(st.sampled_from(list(bidirectional) if isinstance(bidirectional, (tuple, list))
                                          else [bidirectional])), proj)

    return draw()


def inputs(spec: Spec, T: int, B: int) -> Any:
    """Strategy: an input (T, B, I) of floats in [-1, 1] (float64)."""
    st = _st()
    return st.builds(lambda seed: np.random.default_rng(seed).uniform(-1, 1, (T, B, spec.input_size)),
                     st.integers(0, 2**32 - 1))


def initial_states(spec: Spec, B: int) -> Any:
    """Strategy: hx as compare takes it: h_0 (L*D, B, P), or (h_0, c_0) for LSTM, in [-1, 1]; or None (zeros)."""
    st = _st()

    def build(seed):
        rng = np.random.default_rng(seed)
        states = tuple(rng.uniform(-1, 1, s) for s in spec.state_shapes(B))
        return states if spec.lstm else states[0]

    return st.one_of(st.none(), st.builds(build, st.integers(0, 2**32 - 1)))


def lengths(T: int, B: int) -> Any:
    """Strategy: None, or B lengths in [1, T] (torch's packed sequences, any order)."""
    st = _st()
    return st.one_of(st.none(), st.lists(st.integers(1, T), min_size=B, max_size=B))


def cotangents(spec: Spec) -> Any:
    """Strategy: which outputs carry a random gradient (a non-empty subset of output, h_n[, c_n])."""
    st = _st()
    names = ["output", "h_n", "c_n"][:3 if spec.lstm else 2]
    return st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True)


def check_arguments(spec: Spec, *, max_T: int = 6, max_B: int = 4, partial_cotangents: bool = True) -> Any:
    """Strategy: compare() keywords for ``spec``: input, hx, lengths, seed and (optionally) cotangents."""
    st = _st()

    @st.composite
    def draw(draw_):
        T, B = draw_(st.integers(1, max_T)), draw_(st.integers(1, max_B))
        kw = {"input": draw_(inputs(spec, T, B)), "hx": draw_(initial_states(spec, B)),
              "lengths": draw_(lengths(T, B)), "seed": draw_(st.integers(0, 2**16))}
        if partial_cotangents:
            kw["cotangents"] = draw_(cotangents(spec))
        return kw

    return draw()
