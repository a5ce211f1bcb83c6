"""The planted-bug catalogue stays runnable: every snippet is still in the core exactly once,
every test it names exists, and the runner tells a killed mutant from a surviving one.

The catalogue itself runs with ``python -m parity_tests.mutants`` (minutes); these checks
take seconds and need no torch.
"""

from __future__ import annotations

import re
from pathlib import Path

from mutants.catalogue import CATALOGUE, Mutant
from mutants.runner import ROOT, run_mutant, snapshot, stale_snippets

TESTS = Path(__file__).resolve().parent


def test_every_snippet_occurs_exactly_once_in_its_file():
    """A change to the core that moves or rewrites a snippet fails here, not silently in the catalogue."""
    problems = stale_snippets(CATALOGUE)
    assert not problems, "stale catalogue entries (update parity_tests/mutants/catalogue.py):\n" + "\n".join(
        f"  {name}: {why}" for name, why in problems.items())


def test_the_catalogue_is_well_formed():
    names = [m.name for m in CATALOGUE]
    assert len(names) == len(set(names)), "mutant names must be unique"
    assert len(CATALOGUE) >= 92
    for m in CATALOGUE:
        assert m.original != m.replacement, m.name
        assert m.file.startswith("reference/") or m.file.startswith("torch_impl/"), f"{m.name}: not the core"
        assert m.tests and m.bug, m.name
        # the snippet meta-test fails on any edit to a quoted line: a kill by it is no behaviour
        assert not any(t.partition("::")[0] == "test_mutants.py" for t in m.tests), f"{m.name}: names test_mutants.py"


def test_every_named_test_exists():
    for m in CATALOGUE:
        for node in m.tests:
            file, _, function = node.partition("::")
            function = function.partition("[")[0]  # a parametrized test: its function, whatever the case
            path = TESTS / file
            assert path.is_file(), f"{m.name}: no test file {file}"
            if function:
                assert re.search(rf"^def {re.escape(function)}\(", path.read_text(), re.MULTILINE), \
                    f"{m.name}: no test {function} in {file}"


def test_a_snippet_found_twice_or_never_is_stale(tmp_path):
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "a.py").write_text("x = 1\nx = 1\n")
    twice = Mutant("twice", "test", "reference/a.py", "x = 1", "x = 2", ("t.py",), "")
    never = Mutant("never", "test", "reference/a.py", "y = 1", "y = 2", ("t.py",), "")
    missing = Mutant("missing", "test", "reference/b.py", "x = 1", "x = 2", ("t.py",), "")
    problems = stale_snippets([twice, never, missing], tmp_path)
    assert set(problems) == {"twice", "never", "missing"}
    assert "2 times" in problems["twice"] and "0 times" in problems["never"] and "does not exist" in problems["missing"]


def test_the_runner_kills_a_planted_bug_and_reports_an_equivalent_edit_as_surviving(tmp_path):
    """End to end, torch-free: the same copy-plant-run path the catalogue takes, on a cheap test.
    Dropout without its 1/(1-p) scale is killed; an edit that changes nothing survives."""
    base = tmp_path / "base"
    snapshot(ROOT, base)
    test = ("test_properties.py::test_dropout_masks_equal_composition_of_layers_and_masks",)
    bug = next(m for m in CATALOGUE if m.name == "dropout_not_rescaled")
    killed = run_mutant(base, tmp_path, bug._replace(tests=test), timeout=300)
    assert killed.status == "killed", killed
    assert "test_dropout_masks_equal_composition_of_layers_and_masks" in killed.detail
    same = bug._replace(name="equivalent", replacement=bug.original.replace("1.0 / (1.0 - self.dropout)",
                                                                             "1 / (1 - self.dropout)"), tests=test)
    survived = run_mutant(base, tmp_path, same, timeout=300)
    assert survived.status == "survived", survived
    for tree in (ROOT, base):  # neither the working tree nor the shared snapshot is ever mutated
        assert (tree / bug.file).read_text().count(bug.original) == 1


def test_a_mutant_only_the_snippet_meta_test_would_kill_is_a_survivor(tmp_path):
    """Mutant runs deselect test_mutants.py: its snippet check fails on any edit to a quoted line, so a
    kill by it says nothing about behaviour. The same run counts a behavioural kill as one."""
    base = tmp_path / "base"
    snapshot(ROOT, base)
    bug = next(m for m in CATALOGUE if m.name == "dropout_not_rescaled")
    meta = bug._replace(tests=("test_mutants.py::test_every_snippet_occurs_exactly_once_in_its_file",))
    outcome = run_mutant(base, tmp_path, meta, timeout=300)
    assert outcome.status == "survived" and "test_mutants.py is deselected" in outcome.detail, outcome
    both = bug._replace(tests=(*meta.tests, "test_properties.py::test_dropout_masks_equal_composition_of_layers_and_masks"))
    outcome = run_mutant(base, tmp_path, both, timeout=300)
    assert outcome.status == "killed" and "test_dropout_masks_equal_composition" in outcome.detail, outcome
