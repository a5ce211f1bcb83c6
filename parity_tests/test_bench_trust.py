"""The benchmarks' unreliable-timing flag (benchmarks/trust.py): which timings it must flag (a
busy machine, a wide spread, a phase longer than its step) and which it must not; the banner;
and the marks the report's tables and figures put on a flagged timing. NumPy only: the
records are built here, as the runner writes them."""

from __future__ import annotations

import pytest

from benchmarks import report, trust

CONFIG = {"cell": "LSTM", "T": 10, "B": 2, "I": 4, "H": 4, "P": 0, "dtype": "float64", "tf32": False, "device": "cpu"}


def rec(impl: str, phase: str, ms: float, spread: float = 0.05, base_ms: float | None = None) -> dict:
    return {**CONFIG, "impl": impl, "phase": phase, "ms": ms, "spread": spread, "status": "ok",
            "ratio_to_torch": None if base_ms is None else ms / base_ms, "ratio_to_floor": None, "us_per_step": ms}


def quiet(**changes) -> list[dict]:
    """torch.nn and the reference on one configuration, every timing plausible; ``changes``
    replaces one record: {"reference_backward": rec(...)}."""
    base = {"inference": 0.2, "forward": 0.3, "backward": 0.4, "step": 0.6}
    rows = {f"torch-nn_{ph}": rec("torch-nn", ph, ms, base_ms=ms) for ph, ms in base.items()}
    rows |= {f"reference_{ph}": rec("reference", ph, 1.5 * ms, base_ms=ms) for ph, ms in base.items()}
    rows |= changes
    return list(rows.values())


def flagged(rows: list[dict]) -> dict[str, list[str]]:
    return {f"{r['impl']}_{r['phase']}": r["unreliable"] for r in rows if r["unreliable"]}


@pytest.mark.parametrize("load, cores, busy", [
    ((0.1, 1.9), 2, False),
    ((2.0, 2.0), 2, False),  # at the cores, not above them
    ((3.1, 1.0), 2, True),
    ((1.0, 2.5), 2, True),
    ((12.0, 14.0), 16, False),
    ((None, None), 2, False),  # not recorded: nothing to say
])
def test_a_busy_machine_flags_every_timing(load, cores, busy):
    rows = trust.flag(quiet(), load, cores)
    assert all(bool(r["unreliable"]) == busy for r in rows), flagged(rows)
    if busy:
        when = "start" if load[0] > cores else "end"
        assert all(any(f"at the {when} is above the machine's {cores} cores" in x for x in r["unreliable"])
                   for r in rows)


@pytest.mark.parametrize("spread, bad", [(0.05, False), (0.25, False), (0.26, True), (0.91, True)])
def test_a_wide_spread_flags_its_timing_alone(spread, bad):
    rows = trust.flag(quiet(reference_forward=rec("reference", "forward", 0.45, spread, 0.3)), (0.1, 0.1), 2)
    assert flagged(rows) == ({"reference_forward": [f"spread {spread:.0%} is above 25%"]} if bad else {})


def test_a_phase_longer_than_its_step_is_inconsistent():
    """The smoke suite under load printed torch.nn's backward at 10.3 ms inside a 0.6 ms step."""
    rows = trust.flag(quiet(**{"torch-nn_backward": rec("torch-nn", "backward", 10.3, base_ms=10.3)}), (0.1, 0.1), 2)
    reason = "inconsistent: backward 10.3 ms is longer than its step 0.6 ms"
    assert flagged(rows) == {"torch-nn_backward": [reason], "torch-nn_step": [reason]}
    rows = trust.flag(quiet(**{"torch-nn_backward": rec("torch-nn", "backward", 0.6, base_ms=0.6)}), (0.1, 0.1), 2)
    assert flagged(rows) == {}, "a phase as long as its step is possible (the forward took no time)"


def test_flagging_leaves_the_records_it_was_given():
    rows = quiet()
    trust.flag(rows, (9.0, 9.0), 2)
    assert all("unreliable" not in r for r in rows)


def test_the_banner_names_each_flagged_timing():
    assert trust.banner(trust.flag(quiet(), (0.1, 0.1), 2), (0.1, 0.1), 2) is None
    rows = trust.flag(quiet(**{"torch-nn_backward": rec("torch-nn", "backward", 10.3, 0.93, 10.3)}), (3.5, 1.0), 2)
    text = trust.banner(rows, (3.5, 1.0), 2)
    assert "UNRELIABLE TIMINGS" in text and "load average 3.5 at the start is above the machine's 2 cores" in text
    assert "torch-nn LSTM T10 B2 H4 float64 backward: spread 93% is above 25%; inconsistent: backward 10.3 ms" in text
    assert "8 of 8 timings flagged" in text


def test_an_older_file_s_load_average_is_read_from_its_sentence():
    assert trust.load_averages({"load_average": "3.2 at the start, 0.4 at the end"}) == (3.2, 0.4)
    assert trust.load_averages({"load_average_start": 0.5, "load_average_end": 2.5,
                                "load_average": "0.5 at the start, 2.5 at the end"}) == (0.5, 2.5)
    assert trust.load_averages({}) == (None, None)


def _doc(rows: list[dict], load: str = "0.1 at the start, 0.1 at the end") -> dict:
    return {"settings": {"suite": "smoke", "repeat": 1, "rounds": 1, "threads": 1, "load_average": load},
            "environment": {"cpu_count": 2}, "matmul_peaks": [], "rows": rows}


def _table(doc: dict, tmp_path, view: str = "ratios") -> str:
    import json

    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    return report.markdown(report.load(path), view)


def test_the_tables_mark_a_number_drawn_from_a_flagged_timing(tmp_path):
    clean = _table(_doc(quiet()), tmp_path)
    assert trust.MARK not in clean
    line = lambda t: next(x for x in t.splitlines() if x.startswith("| LSTM"))
    cells = lambda t: [c.strip() for c in line(t).strip("|").split("|")]
    # the reference's forward is flagged: its fwd x is marked, nothing else
    marked = _table(_doc(quiet(reference_forward=rec("reference", "forward", 0.45, 0.5, 0.3))), tmp_path)
    assert [c for c in cells(marked) if trust.MARK in c] == ["1.50" + trust.MARK] and report.FLAGGED_NOTE in marked
    # torch.nn's step is flagged: every step ratio divides by it, so each is marked
    marked = _table(_doc(quiet(**{"torch-nn_step": rec("torch-nn", "step", 0.6, 0.4, 0.6)})), tmp_path)
    assert cells(marked)[1] == "0.6" + trust.MARK and cells(marked)[2] == "1.50" + trust.MARK
    # a busy machine: every number
    marked = _table(_doc(quiet(), "5.0 at the start, 0.1 at the end"), tmp_path)
    assert all(c.endswith(trust.MARK) for c in cells(marked)[1:4])
    # the lines view (the printed table) says why in each line's status, each reason once
    lines = _table(_doc(quiet(reference_forward=rec("reference", "forward", 0.45, 0.5, 0.3)),
                        "5.0 at the start, 0.1 at the end"), tmp_path, "lines")
    status = next(x for x in lines.splitlines() if "| reference |" in x).rstrip(" |").rsplit("| ", 1)[1]
    assert status == ("ok; unreliable: the machine was busy (load average above its cores), "
                      "forward spread 50% is above 25%"), status


def test_the_figures_hatch_a_flagged_bar():
    pytest.importorskip("matplotlib")
    from benchmarks import plots

    plt = plots._pyplot()
    rows = trust.flag(quiet(reference_step=rec("reference", "step", 0.9, 0.5, 0.6)), (0.1, 0.1), 2)
    for flag_it, hatch in ((True, plots.HATCH), (False, None)):
        shown = [r for r in rows if r["impl"] == "reference" and r["phase"] == "step"]
        if not flag_it:
            shown = [{**r, "unreliable": []} for r in shown]
        fig, ax = plt.subplots()
        assert plots._ratio_bars(ax, shown, rows if flag_it else shown, ["reference"], [plots._label(shown[0])]) \
            == flag_it
        assert [p.get_hatch() for p in ax.patches] == [hatch]
        plt.close(fig)
