"""docs/bptt.md quotes the source: every code cell of a table whose header names a
file must appear verbatim, on one line, in that file. The figure it shows and the
script that draws it must exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bptt.md"
HEADER = re.compile(r"^\|.*\|\s*code \(`([\w/]+\.py)`\)\s*\|$")


def quoted_cells() -> list[tuple[int, str, str]]:
    """(line number, file, quoted code) for every code cell of the doc's code tables."""
    cells, source = [], None
    for number, line in enumerate(DOC.read_text().splitlines(), 1):
        header = HEADER.match(line)
        if header:
            source = header.group(1)
            continue
        if not line.startswith("|"):
            source = None
            continue
        if source is None or set(line) <= set("|- "):
            continue
        code_cell = line.rstrip().rstrip("|").rsplit("|", 1)[1].strip()
        spans = re.findall(r"`([^`]+)`", code_cell)
        assert spans, f"docs/bptt.md:{number}: a code cell with no code: {code_cell!r}"
        cells += [(number, source, span) for span in spans]
    return cells


CELLS = quoted_cells()


def test_the_doc_quotes_enough_code():
    files = {source for _, source, _ in CELLS}
    assert len(CELLS) >= 40, f"only {len(CELLS)} quoted cells: did the table format change?"
    for name in ("reference/layer.py", "reference/rnn_cell.py", "reference/gru_cell.py", "reference/lstm_cell.py"):
        assert name in files, f"no code column quotes {name}"


@pytest.mark.parametrize("number, source, code", CELLS, ids=[f"bptt.md:{n}" for n, _, _ in CELLS])
def test_quoted_code_is_in_the_named_file(number, source, code):
    path = ROOT / source
    assert path.exists(), f"docs/bptt.md:{number} names {source}, which does not exist"
    lines = [line.strip() for line in path.read_text().splitlines()]
    assert any(code in line for line in lines), (
        f"docs/bptt.md:{number} quotes a line that is not in {source}:\n    {code}\n"
        "The source changed: quote its current line (and check the derivation beside it).")


def test_the_figure_and_its_script_exist():
    text = DOC.read_text()
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (DOC.parent / image).exists(), f"docs/bptt.md shows {image}, which does not exist"
    assert (ROOT / "docs" / "figures" / "unrolled_graph.py").exists()


def test_one_convention_rows():
    """The doc derives in batch-row form only: no column-style products such as 'W_hh h' or 'W_hr m'."""
    text = DOC.read_text()
    for pattern in (r"W_hh h_", r"W_hr m\b", r"W_ih x_", r"W_hn h\b", r"W_hn \(", r"W_hrᵀ dh", r"W_hhᵀ dh"):
        hits = re.findall(pattern, text)
        assert not hits, f"docs/bptt.md uses the column convention: {hits}"


def test_debugging_walkthrough_finds_the_planted_bug(capsys):
    """docs/debugging.md's worked example, as the page prints it: the cell check fails,
    the verifier names (gradient step, layer 0, forward, t = T-1, gate n); fixed, both pass."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("debugging_walkthrough", ROOT / "docs" / "debugging_walkthrough.py")
    walkthrough = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(walkthrough)
    cell, report = walkthrough.main([])
    assert not cell and not report.passed
    d = report.gradient
    assert report.forward is None and (d.kind, d.layer, d.direction, d.time, d.gate) == ("gradient step", 0, 0, 4, "n")
    page = (ROOT / "docs" / "debugging.md").read_text()
    for line in str(cell).splitlines()[2:] + ["RESULT: MISMATCH (2/8 tensors within tolerance)",
                                              "gradient step: layer 0, forward direction, time step 4, n: backward"]:
        assert line in page, f"docs/debugging.md no longer shows what the walkthrough prints: {line!r}"
    cell, report = walkthrough.main(["--fixed"])
    assert cell and report.passed
    capsys.readouterr()


# --- the README: its examples run as written, its links resolve -------------------------------------------------

README = ROOT / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _run(code: str, where: Path) -> None:
    """Run an example as a script of its own, the way a reader pastes it."""
    import runpy

    script = where / "readme_example.py"
    script.write_text(code)
    runpy.run_path(str(script), run_name="__main__")


def readme_examples() -> list[str]:
    return PYTHON_BLOCK.findall(README.read_text())


def test_the_readme_is_a_front_page_with_four_examples():
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move detail into docs/"
    assert len(readme_examples()) >= 3
    examples = text.split("## Four worked examples", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"^### ", examples, re.MULTILINE)) == 4
    assert "HYPOTHESIS_PROFILE=ci python -m pytest -n auto" in text
    assert "proves" not in text, "a test shows agreement within the tolerance table, no more"


def _report_lines(text: str) -> list[tuple]:
    """A verifier report, line by line, as what must not change between machines: each tensor's
    name and verdict, a FAIL's errors to the digits shown (a wrong gradient's error is large, its
    last bits do not move them), every other line as it is."""
    out = []
    for line in text.strip().splitlines():
        cells = line.split()
        if len(cells) >= 4 and cells[-1] in ("ok", "FAIL"):
            out.append((" ".join(cells[:-3]), cells[-1], *(cells[-3:-1] if cells[-1] == "FAIL" else ())))
        else:
            out.append((line.strip(),))
    return out


def test_the_readme_shows_what_the_numpy_lstm_example_prints(capsys):
    """The fourth example's report, under its marker, is what `my_numpy_lstm.py --bug` prints."""
    from examples import my_numpy_lstm

    shown = re.search(r"<!-- my_numpy_lstm --bug -->\n```text\n(.*?)^```", README.read_text(), re.DOTALL | re.MULTILINE)
    assert shown, "README.md lost the fourth example's report (its marker or its text block)"
    my_numpy_lstm.main(["--bug"])
    printed = capsys.readouterr().out
    assert _report_lines(shown.group(1)) == _report_lines(printed), (
        f"README.md shows a report the example no longer prints; it prints:\n{printed}")
    assert "RESULT: MISMATCH" in printed and "gradient step: layer 0" in printed


COUNT = re.compile(r"about ([\d,]+) tests collected with every extra installed,\s+about ([\d,]+) with the quick "
                   r"start's `\.\[test,bench\]`")


def test_the_readme_test_count_names_its_install(request):
    """The README gives the suite's size for two named installs: every extra, and the quick
    start's (torch, no Keras, no JAX). In a run that collects the whole suite under one of them
    (-k may pick this test alone), the count it gives is within 5% of what the run collected."""
    import importlib.util

    from conftest import COLLECTED

    found = COUNT.search(" ".join(README.read_text().split()))
    assert found, "README.md's test count no longer names the install it holds for"
    every, quick = (int(n.replace(",", "")) for n in found.groups())
    present = {m for m in ("torch", "keras", "jax") if importlib.util.find_spec(m)}
    stated = {frozenset({"torch", "keras", "jax"}): every, frozenset({"torch"}): quick}.get(frozenset(present))
    collected = request.config.stash.get(COLLECTED, 0)
    if stated is None or collected < 0.5 * min(every, quick):
        pytest.skip(f"not the whole suite under a named install ({collected} tests; {sorted(present)} installed)")
    assert abs(collected - stated) <= 0.05 * stated, (
        f"this run collected {collected} tests; README.md says about {stated:,} for this install")
