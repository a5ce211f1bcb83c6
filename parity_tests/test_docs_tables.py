"""Every benchmark table in README.md and docs/ is generated from a results file under
benchmarks/results/ (`python -m benchmarks.report --update`): a table that differs from what
its file gives, or a benchmark table typed outside the markers, fails here."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from benchmarks import report

ROOT = Path(__file__).resolve().parents[1]
GOALS = "<!-- table: results/cpu-2core-full.json view=ratios rows=goals -->"


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
    changed = re.sub(r"commit [0-9a-f]{7,}", "commit 0000000", good)
    assert changed != good
    root = _tree(tmp_path, changed)
    assert report.stale_tables(root) == ["docs/page.md:3"]


def test_a_typed_benchmark_table_is_found():
    text = "intro\n\n| row | step x | fwd x |\n|---|---|---|\n| LSTM | 1.2 | 1.3 |\n"
    assert report.unmarked_tables(text, "page.md") == ["page.md:3"]
    assert report.unmarked_tables(_generated(), "page.md") == []
    assert report.unmarked_tables("| comparison | forward (max rel.) |\n|---|---|\n", "page.md") == []


@pytest.mark.parametrize("marker, message", [
    ("<!-- table: results/no-such-file.json -->", "names results/no-such-file.json"),
    ("<!-- table: results/cpu-2core-full.json colour=red -->", "unknown option"),
    ("<!-- table: results/cpu-2core-full.json view=pie -->", "view: expected one of"),
    ("<!-- table: results/cpu-2core-full.json rows=some -->", "rows: expected one of"),
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
    assert report.main(["--markdown", str(ROOT / "benchmarks/results/cpu-2core-full.json"), "--rows", "goals"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| row | torch.nn step ms | reference step x |") and "`benchmarks/results/cpu-2core-full.json`" in out
    assert "reference@" not in out


def test_figures_are_drawn_from_a_results_file(tmp_path):
    pytest.importorskip("matplotlib")
    shutil.copy(ROOT / "benchmarks/results/cpu-2core-full.json", tmp_path / "run.json")
    assert report.main(["--plots", str(tmp_path / "run.json")]) == 0
    for name in ("run-step-ratio.png", "run-phase-ratio.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_of_a_row_filter_have_its_name(tmp_path, capsys, monkeypatch):
    """--rows goals draws only the goal rows, into <stem>-goals-*.png; the unfiltered figures
    are not written (a reader's plot of 'the goal rows' must not hold the others)."""
    pytest.importorskip("matplotlib")
    from benchmarks import plots

    shutil.copy(ROOT / "benchmarks/results/cpu-2core-full.json", tmp_path / "run.json")
    drawn: list[list[dict]] = []
    real = plots.plot_results
    monkeypatch.setattr(plots, "plot_results", lambda rows, out, prefix="", caption="":
                        drawn.append(rows) or real(rows, out, prefix, caption))
    assert report.main(["--plots", str(tmp_path / "run.json"), "--rows", "goals"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["run-goals-phase-ratio.png", "run-goals-step-ratio.png"]
    assert drawn and all((r["T"], r["B"]) == (100, 64) and r["H"] in (256, 512) for r in drawn[0])
    assert {r["H"] for r in drawn[0]} == {256, 512}
    assert "wrote" in capsys.readouterr().out


def test_a_scaling_sweep_draws_its_one_figure(tmp_path):
    """A sweep's figure is step time against each axis; the ratio bars (one group per point,
    dozens of them) are not drawn for it."""
    pytest.importorskip("matplotlib")
    shutil.copy(ROOT / "benchmarks/results/cpu-1thread-scaling.json", tmp_path / "sweep.json")
    assert report.main(["--plots", str(tmp_path / "sweep.json")]) == 0
    assert [p.name for p in tmp_path.glob("*.png")] == ["sweep-scaling.png"]


def test_the_sweep_view_reads_each_axis_off_the_file():
    """Each line's series are the file's own numbers at the axis's points, in order, with the
    other axes at the base point; a file with no sweep is refused, not printed empty."""
    doc = report.load(ROOT / "benchmarks/results/cpu-1thread-scaling.json")
    table = report.markdown(doc, "sweep")
    line = next(x for x in table.splitlines() if x.startswith("| GRU | float64 | B (T25 H128) |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == "1 · 4 · 16 · 64 · 256"
    def step(impl, B):
        return next(r for r in doc["rows"] if (r["cell"], r["dtype"], r["impl"], r["phase"], r["T"], r["B"], r["H"])
                    == ("GRU", "float64", impl, "step", 25, B, 128))
    assert cells[4].split(" · ") == [report._ms(step("torch-nn", B)["ms"]) for B in (1, 4, 16, 64, 256)]
    assert cells[5].split(" · ") == [f"{step('reference', B)['ratio_to_torch']:.2f}" for B in (1, 4, 16, 64, 256)]
    assert report._ms(2393.4) == "2393" and report._ms(7.734) == "7.73" and report._ms(None) == "-"
    # header, 4 cells x 2 dtypes x 3 axes, provenance; then the note on its flagged timings (jax's 71% spread)
    assert len(table.splitlines()) == 2 + 4 * 2 * 3 + 2 + 2 and table.endswith(report.FLAGGED_NOTE)
    with pytest.raises(ValueError, match="view=sweep needs a scaling run"):
        report.markdown(report.load(ROOT / "benchmarks/results/cpu-2core-full.json"), "sweep")


def test_every_figure_in_the_docs_is_a_results_figure_and_none_is_orphaned():
    """Each image the README and docs/ show from benchmarks/results/ exists, and each PNG there
    is shown somewhere (a figure no page shows is one nobody checks)."""
    shown = set()
    for page in report.documents(ROOT):
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", page.read_text()):
            path = (page.parent / target).resolve()
            if path.parent == ROOT / "benchmarks" / "results":
                assert path.is_file(), f"{page.relative_to(ROOT)} shows {target}, which does not exist"
                shown.add(path.name)
    assert shown, "no page shows a benchmark figure"
    orphans = sorted(p.name for p in (ROOT / "benchmarks" / "results").glob("*.png") if p.name not in shown)
    assert not orphans, f"figures no page shows: {orphans}"
