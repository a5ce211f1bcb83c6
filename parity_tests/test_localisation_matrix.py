"""The localisation matrix (see localisation_matrix.py): a bug planted in one gate or quantity, of one layer and
direction of a 2-layer bidirectional stack, forward or backward, is named there, at the first step it acts.

Also: a correct candidate of every cell MATCHes, with and without dropout, and gradient localisation runs
with dropout active (it used to stop at the layer boundary, before naming anything).
"""

from __future__ import annotations

import collections

import localisation_matrix as lm
import pytest
import torch  # noqa: F401 -- the planted candidates are torch modules; without torch this file is not collected

COVERING = lm.covering_bugs()


def test_the_cases_cover_the_matrix():
    """Every cell x gate or quantity x kind x layer x direction, forward and backward, each at both starts."""
    places = collections.defaultdict(set)
    for b in COVERING:
        places[(b.cell, b.quantity, b.pass_, b.kind)].add((b.layer, b.direction, b.start))
    assert all({(la, d) for la, d, _ in v} == {(0, 0), (0, 1), (1, 0), (1, 1)} for v in places.values())
    assert all({s for _, _, s in v} == {0, 1} for v in places.values())
    for cell, (mode, _, proj, _) in lm.CELLS.items():
        gates = {q for c, q, _, _ in places if c == cell}
        want = set(lm.GATES[mode]) | {"bias_hh"} | ({"c", "h"} if mode == "LSTM" else set()) | \
            ({"h"} if mode == "GRU" else set()) | ({"W_hr"} if proj else set())
        assert gates == want, cell
        for q in lm.GATES[mode]:
            assert {(p, k) for c, g, p, k in places if (c, g) == (cell, q)} == \
                {("forward", k) for k in lm.FORWARD_GATE_KINDS} | {("backward", k) for k in lm.BACKWARD_GATE_KINDS}
    assert set(lm.all_bugs()) >= set(COVERING) and len(lm.all_bugs()) == 2 * len(COVERING)


def test_first_in_time_order_is_the_order_each_pass_computes():
    """Forward: each direction's processing order; backward: BPTT order (T = 4)."""
    at = lambda p, d, start: lm.expected_time(lm.Bug("LSTM", "i", "act", 0, d, p, start))
    assert (at("forward", 0, 0), at("forward", 0, 1), at("forward", 1, 0), at("forward", 1, 1)) == (0, 1, 3, 2)
    assert (at("backward", 0, 0), at("backward", 0, 1), at("backward", 1, 0), at("backward", 1, 1)) == (3, 0, 0, 3)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("cell", list(lm.CELLS))
def test_a_correct_candidate_matches(cell, dropout):
    report = lm.run(None, cell, dropout=dropout)
    assert report.passed, str(report)
    assert report.forward is None and report.gradient is None and not report.stopped
    assert report.spec.dropout_active == (dropout > 0)


@pytest.mark.parametrize("bug", [lm.Bug("LSTM", "f", "act", 0, 1, "backward", 0),
                                 lm.Bug("GRU", "z", "scale", 0, 0, "backward", 1),
                                 lm.Bug("LSTM_proj", "o", "rows", 0, 0, "backward", 0),
                                 lm.Bug("GRU_paper", "n", "act", 0, 1, "forward", 0)], ids=str)
def test_a_gate_bug_under_dropout_is_localised(bug):
    """Layer 0's gradient is the one above it passed back through the dropout mask: localisation must pose it."""
    report = lm.run(bug, dropout=0.3)
    assert report.spec.dropout_active and not report.stopped, str(report)
    assert lm.verdict(bug, report) == "", str(report)


def test_the_verdict_rule_fails_a_wrong_place():
    """The checker of the matrix can say FAIL: the right report, read against another planted place, is a miss."""
    bug = lm.Bug("LSTM", "o", "act", 1, 0, "forward", 1)
    report = lm.run(bug)
    assert lm.verdict(bug, report) == ""
    for wrong in (lm.Bug("LSTM", "i", "act", 1, 0, "forward", 1), lm.Bug("LSTM", "o", "act", 0, 0, "forward", 1),
                  lm.Bug("LSTM", "o", "act", 1, 1, "forward", 1), lm.Bug("LSTM", "o", "act", 1, 0, "forward", 0),
                  lm.Bug("LSTM", "o", "act", 1, 0, "backward", 1)):
        assert lm.verdict(wrong, report) != "", wrong
    assert lm.verdict(bug, lm.run(None, "LSTM")).startswith("MATCH")


@pytest.mark.parametrize("bug", COVERING, ids=str)
def test_a_planted_bug_is_named_at_its_place(bug):
    report = lm.run(bug)
    assert lm.verdict(bug, report) == "", str(report)


@pytest.mark.parametrize("bug", lm.conditional_bugs(), ids=str)
def test_a_conditional_bug_is_named_at_its_gate(bug):
    """A bug that fires on the input's value, on its sign, in one batch row or at one step of its sequence is
    named at its gate and first step: the gate is isolated on the step's own input and state."""
    report = lm.run(bug)
    assert lm.verdict(bug, report) == "", str(report)
