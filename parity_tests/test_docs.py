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
