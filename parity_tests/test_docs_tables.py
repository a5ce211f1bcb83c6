"""Every benchmark table in README.md and docs/ is generated from a results file under
benchmarks/results/ (`python -m benchmarks.report --update`): a table that differs from what
its file gives, or a benchmark table typed outside the markers, fails here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks import report

ROOT = Path(__file__).resolve().parents[1]
GOALS = "<!-- table: results/cpu-2core-goals.json view=ratios rows=goals -->"


def _tree(tmp_path: Path, text: str) -> Path:
    """A checkout with one document and the real results files."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text(text)
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks", target_is_directory=True)
    return tmp_path


def _generated(marker: str = GOALS) -> str:
    text, _ = report.regenerate(f"# Page\n\n{marker}\n<!-- end table -->\n", ROOT / "benchmarks")
    return text


def test_every_generated_table_matches_its_results_file():
    stale = report.stale_tables(ROOT)
    assert not stale, f"{stale}: differ from their results files; run: python -m benchmarks.report --update"


def test_no_benchmark_table_is_typed_by_hand():
    typed = [t for p in report.documents(ROOT) for t in report.unmarked_tables(p.read_text(), p.name)]
    assert not typed, f"{typed}: benchmark tables outside generated-table markers"


def test_the_documents_hold_generated_tables():
    names = {p.relative_to(ROOT).as_posix() for p in report.documents(ROOT) if report.BEGIN.pattern
             and any(report.BEGIN.match(line) for line in p.read_text().splitlines())}
    assert {"README.md", "docs/benchmarks.md"} <= names, names


def test_a_changed_figure_is_stale_and_update_restores_it(tmp_path):
    good = _generated()
    assert "| LSTM T100 B64 H256 float32 |" in good
    line = next(x for x in good.splitlines() if x.startswith("| LSTM T100 B64 H256 float32 |"))
    cells = line.split(" | ")
    cells[2] = "0.99" if cells[2] != "0.99" else "0.98"  # reference step x, typed over
    root = _tree(tmp_path, good.replace(line, " | ".join(cells)))
    assert report.stale_tables(root) == ["docs/page.md:3"]
    assert report.update(root) == ["docs/page.md:3"]
    assert (root / "docs" / "page.md").read_text() == good and report.stale_tables(root) == []


def test_a_changed_provenance_line_is_stale(tmp_path):
    good = _generated()
    root = _tree(tmp_path, good.replace("commit ea2d5e6", "commit 0000000"))
    assert report.stale_tables(root) == ["docs/page.md:3"]


def test_a_typed_benchmark_table_is_found():
    text = "intro\n\n| row | step x | fwd x |\n|---|---|---|\n| LSTM | 1.2 | 1.3 |\n"
    assert report.unmarked_tables(text, "page.md") == ["page.md:3"]
    assert report.unmarked_tables(_generated(), "page.md") == []
    assert report.unmarked_tables("| comparison | forward (max rel.) |\n|---|---|\n", "page.md") == []


@pytest.mark.parametrize("marker, message", [
    ("<!-- table: results/no-such-file.json -->", "names results/no-such-file.json"),
    ("<!-- table: results/cpu-2core-goals.json colour=red -->", "unknown option"),
    ("<!-- table: results/cpu-2core-goals.json view=pie -->", "view: expected one of"),
    ("<!-- table: results/cpu-2core-goals.json rows=some -->", "rows: expected one of"),
])
def test_a_bad_marker_is_an_error_naming_it(marker, message):
    with pytest.raises(ValueError, match=message):
        report.regenerate(f"{marker}\n<!-- end table -->\n", ROOT / "benchmarks", "page.md")


def test_a_table_without_its_end_marker_is_an_error():
    with pytest.raises(ValueError, match="page.md:1: a generated table with no"):
        report.regenerate(f"{GOALS}\n| a | b |\n", ROOT / "benchmarks", "page.md")


def test_check_command_exit_codes(tmp_path, monkeypatch, capsys):
    assert report.main(["--check"]) == 0
    assert "every generated table matches" in capsys.readouterr().out
    root = _tree(tmp_path, _generated().replace("| LSTM T100 B64 H256 float32 | ", "| LSTM T100 B64 H256 float32 | 1"))
    monkeypatch.setattr(report, "ROOT", root)
    assert report.main(["--check"]) == 1
    assert "docs/page.md:3: differs from its results file" in capsys.readouterr().err


def test_markdown_of_a_results_file(capsys):
    assert report.main(["--markdown", str(ROOT / "benchmarks/results/cpu-2core-goals.json"), "--rows", "goals"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| row | torch.nn step ms | reference step x |") and "`benchmarks/results/cpu-2core-goals.json`" in out
    assert "reference@" not in out


def test_figures_are_drawn_from_a_results_file(tmp_path):
    pytest.importorskip("matplotlib")
    shutil.copy(ROOT / "benchmarks/results/cpu-2core-goals.json", tmp_path / "run.json")
    assert report.main(["--plots", str(tmp_path / "run.json")]) == 0
    for name in ("run-step-ratio.png", "run-phase-ratio.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
