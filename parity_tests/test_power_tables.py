"""docs/low_precision.md's power tables are generated from the power study's results file
(`python -m parity_tests.power --update`): a table that differs from what the file gives fails
here, as the benchmark tables do in test_docs_tables.py."""

from __future__ import annotations

import shutil
from pathlib import Path

from power import report
from power.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_the_power_tables_match_their_results_file():
    assert main(["--check"]) == 0, "run: python -m parity_tests.power --update"


def test_an_edited_figure_in_the_doc_is_stale(tmp_path):
    """The check reads the numbers: one figure of the goal cell's row changed by hand fails it."""
    doc = tmp_path / "low_precision.md"
    shutil.copy(report.DOCUMENT, doc)
    assert not report.stale(doc, ROOT)
    text = doc.read_text()
    row = next(line for line in text.split("\n") if line.startswith("| bfloat16 | 100 | forget-gate bias"))
    assert "| 2e-3 |" in row, row
    doc.write_text(text.replace(row, row.replace("| 2e-3 |", "| 1e-3 |", 1)))
    assert report.stale(doc, ROOT)


def test_every_cell_of_the_study_is_in_the_tables():
    """Five precisions at T = 10, 100 and 1000, four bugs each; the goal cell with its 1000 correct draws."""
    doc = report.load()
    assert sorted(doc["cells"]) == sorted(f"{p} T={t}" for p in report.ORDER for t in (10, 100, 1000))
    assert all(sorted(c["bugs"]) == sorted(report.BUG_NAMES) for c in doc["cells"].values())
    goal = doc["cells"]["bfloat16 T=100"]["correct"]
    assert [f["draws"] for f in goal.values()] == [1000, 1000]
    assert report.DOCUMENT.read_text().count("<!-- power table: ") == 3


def test_verify_md_holds_the_t100_summary_and_an_edit_to_it_is_stale(tmp_path):
    """docs/verify.md's low-precision section: every precision at T = 100, generated; one figure changed fails."""
    doc = tmp_path / "verify.md"
    shutil.copy(report.DOCUMENTS[1], doc)
    text = doc.read_text()
    assert text.count("<!-- power table: ") == 1 and "view=summary" in text
    rows = [line for line in text.split("\n") if line.startswith("| ") and " | " in line and "bits" in line]
    assert [r.split(" | ")[0][2:] for r in rows] == list(report.ORDER)  # one row a precision: its state bug
    assert not report.stale(doc, ROOT)
    row = next(line for line in text.split("\n") if line.startswith("| bfloat16 | grad weight_hh"))
    doc.write_text(text.replace(row, row.replace("| 2e-3 |", "| 1e-3 |", 1)))
    assert report.stale(doc, ROOT) == [doc]
