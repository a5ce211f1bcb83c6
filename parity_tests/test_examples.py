"""Every example in its quick form, run as a user runs it (``main([...])`` with
``--steps`` and ``--out``): NumPy and torch trained side by side must agree step
by step, the plots must be written and readable (`assert_readable`), and each example's own claim is checked
(the same generated text, the same predictions, the same gradient norms).

The quick forms together take about 30-40 s on the 2-core CI machine (measured
per example in ``QUICK``'s comments); the examples' full runs are for people.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_close
from tolerances import tol

LOSS_ATOL = 1e-9  # float64 training parity, step by step (the README states what holds over longer runs)
F64 = tol("float64", "cpu", "gradient")
FORWARD = tol("float64", "cpu", "forward")


def assert_readable(fig, path) -> None:
    """What a reader needs from a figure, checked on the laid-out figure: a step axis counts
    in whole numbers; tick labels are plain numbers (no 4x10^0); no line runs outside its
    panel's limits (a clipped curve is a hidden one); every legend sits clear of every panel,
    in a readable size, and names each entry in a colour of its own."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.lines import Line2D

    name = path.name
    canvas = FigureCanvasAgg(fig)  # the figure was saved and closed: draw it again, as laid out
    canvas.draw()
    renderer = canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    for ax in panels:
        lo, hi = sorted(ax.get_xlim())
        if ax.get_xlabel() in ("step", "time step t"):
            shown = [t for t in ax.get_xticks() if lo <= t <= hi]
            assert shown and all(float(t).is_integer() for t in shown), f"{name}: step axis ticks {shown}"
        for label in ax.get_xticklabels() + ax.get_yticklabels():
            assert "times" not in label.get_text() and "^" not in label.get_text(), (
                f"{name}: a tick reads {label.get_text()!r}")
        ylo, yhi = sorted(ax.get_ylim())
        for line in ax.get_lines():
            if line.get_transform() != ax.transData:
                continue  # a mark placed in axes coordinates
            y = np.asarray(line.get_ydata(), dtype=float)
            y = y[np.isfinite(y)]
            if y.size:
                assert ylo <= y.min() and y.max() <= yhi, (
                    f"{name}: {line.get_label()!r} runs outside its panel ({y.min():.3g}..{y.max():.3g} "
                    f"against limits {ylo:.3g}..{yhi:.3g})")
    legends = [ax.get_legend() for ax in panels if ax.get_legend()] + list(fig.legends)
    for lg in legends:
        box = lg.get_window_extent(renderer)
        for ax in panels:
            assert not box.overlaps(ax.get_window_extent(renderer)), f"{name}: a legend lies over a panel"
        assert all(t.get_fontsize() >= 7 for t in lg.get_texts()), f"{name}: legend text under 7 pt"
        colours = [h.get_color() if isinstance(h, Line2D) else h.get_facecolor() for h in lg.legend_handles]
        keys = [str(c) for c in colours]
        assert len(set(keys)) == len(keys), f"{name}: legend entries share a colour: {keys}"


def run_example(name: str, argv: list[str], tmp_path, capsys, monkeypatch) -> tuple[dict, str]:
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from examples import _common

    module = importlib.import_module(f"examples.{name}")
    real = _common.save_figure

    def checked(fig, path, *args, **kwargs):
        real(fig, path, *args, **kwargs)
        assert_readable(fig, path)

    for where in (_common, module):
        if hasattr(where, "save_figure"):
            monkeypatch.setattr(where, "save_figure", checked)
    result = module.main([*argv, "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "largest" in printed, f"{name} did not print its largest NumPy-torch difference"
    assert not re.search(r"(?<![A-Za-z])nan(x|\b)", printed, re.IGNORECASE), f"{name} printed a NaN:\n{printed}"
    assert list(tmp_path.glob("*.png")), f"{name} saved no plot under --out"
    return result, printed


def assert_trained_alike(name: str, r: dict, steps: int, must_learn: bool = True) -> None:
    """NumPy and torch: the same losses at every step, the same final weights."""
    assert len(r["numpy"]) == len(r["torch"]) == steps
    assert_close(f"{name}: first loss", r["numpy"][:1], r["torch"][:1], *FORWARD)
    assert_close(f"{name}: losses step by step", r["numpy"], r["torch"], 0, LOSS_ATOL)
    for k, v in r["params_torch"].items():
        assert_close(f"{name}: final {k}", r["params_numpy"][k], v, 0, LOSS_ATOL)
    if must_learn:
        assert r["numpy"][-3:].mean() < r["numpy"][:3].mean(), f"{name}: training did not lower the loss"


def test_hello_ohlol_both_forms(tmp_path, capsys, monkeypatch):
    result, printed = run_example("hello_ohlol", ["--steps", "12"], tmp_path, capsys, monkeypatch)
    assert_trained_alike("hello_ohlol layer form", result["layer"], 12)
    assert_trained_alike("hello_ohlol cell form", result["cell"], 12)
    texts = result["cell"]["texts"]
    assert len(texts) == 12 and all(a == b for a, b in texts), f"cell form: NumPy and torch predicted {texts}"
    assert "epoch  12" in printed, "the cell form prints its prediction every epoch"
    assert (tmp_path / "hello_ohlol_cell.png").exists()


@pytest.mark.parametrize("batching", ["sequential", "random"])
def test_char_lm(batching, tmp_path, capsys, monkeypatch):
    argv = ["--steps", "8", "--batching", batching, "--generate", "The ", "--length", "30"]
    r, printed = run_example("char_lm", argv, tmp_path, capsys, monkeypatch)
    assert_trained_alike(f"char_lm {batching}", r, 8)
    assert_close("gradient norms before clipping", r["norms_numpy"], r["norms_torch"], *F64)
    for name in ("train", "held_out"):
        assert_close(f"perplexity ({name})", np.array(r[f"ppl_{name}_numpy"]), np.array(r[f"ppl_{name}_torch"]), *F64)
    assert set(r["generated"]) == {0.0, 0.7}
    for temperature, (np_text, t_text) in r["generated"].items():
        assert len(np_text) == 30
        assert np_text == t_text, f"temperature {temperature}: NumPy wrote {np_text!r}, torch {t_text!r}"
    assert "crossed on" in printed


def test_char_lm_generation_refuses_unknown_characters(tmp_path, capsys):
    pytest.importorskip("torch")
    from examples import char_lm

    with pytest.raises(ValueError, match="--generate"):
        char_lm.main(["--steps", "1", "--generate", "\u00e9t\u00e9", "--out", str(tmp_path)])


def test_name_classifier(tmp_path, capsys, monkeypatch):
    r, _ = run_example("name_classifier", ["--steps", "5"], tmp_path, capsys, monkeypatch)
    assert_trained_alike("name_classifier", r, 5)
    assert r["predictions_differ"] == 0 and r["accuracy_numpy"] == r["accuracy_torch"]
    assert r["confusion"].sum() == 320, "every held-out name is in the confusion matrix"
    assert (tmp_path / "name_classifier_confusion.png").exists()


def test_name_data_is_what_its_readme_says():
    import csv
    from pathlib import Path

    from examples import name_classifier

    with open(name_classifier.DATA, newline="") as f:
        rows = list(csv.DictReader(f))
    counts = {}
    for row in rows:
        counts[row["language"]] = counts.get(row["language"], 0) + 1
    assert len(rows) == 1598 and len(counts) == 8
    assert len({row["name"] for row in rows}) == len(rows), "each name has one label"
    readme = (Path(name_classifier.DATA).parent / "README.md").read_text()
    assert "MIT" in readme and "Faker" in readme, "the data's source and licence are named beside it"


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_digits_by_rows(mode, tmp_path, capsys, monkeypatch):
    pytest.importorskip("sklearn", reason="the examples extra (pip install -e .[examples]) brings scikit-learn")
    r, _ = run_example("digits_by_rows", ["--steps", "6", "--mode", mode], tmp_path, capsys, monkeypatch)
    assert_trained_alike(f"digits_by_rows {mode}", r, 6)
    assert r["predictions_differ"] == 0 and r["accuracy_numpy"] == r["accuracy_torch"]


def test_gradient_flow(tmp_path, capsys, monkeypatch):
    results, printed = run_example("gradient_flow", ["--steps", "10"], tmp_path, capsys, monkeypatch)
    for name, r in results.items():
        assert_close(f"||dL/dh_t|| ({name})", r["norms"], r["torch_norms"], *F64)
    assert results["GRU, update bias +4"]["ratio"] > 10 * results["GRU"]["ratio"]
    assert results["LSTM, forget bias +3"]["ratio"] > 10 * results["LSTM"]["ratio"]
    assert results["RNN relu, 2 W_hh"]["per_step"] > 1.1, "the explosion variant explodes"
    assert "Why GRU and LSTM vanish faster" in printed


def test_long_range(tmp_path, capsys, monkeypatch):
    results, printed = run_example("long_range", ["--steps", "4"], tmp_path, capsys, monkeypatch)
    assert list(results) == ["RNN", "GRU", "LSTM", "LSTM, forget bias +3"]
    for model, r in results.items():
        assert_trained_alike(f"long_range {model}", r, 4, must_learn=False)
        assert r["verdict"] in printed
        mean = r["numpy"].mean()  # 4 steps: the verdict's window is all of them
        assert f"mean loss over the last 4 steps {mean:.3f}" in r["verdict"], r["verdict"]


@pytest.mark.parametrize("losses, says", [
    ([0.7, 0.68, 0.66, 0.67], "above chance"),  # 4x chance: never "at chance"
    ([0.17, 0.16, 0.17, 0.165], "at chance"),
    ([0.1, 0.09, 0.08, 0.07], "below chance"),
    ([0.5] * 5 + [0.001] * 30, "solved at step 30"),
])
def test_long_range_verdict_follows_the_numbers(losses, says):
    pytest.importorskip("torch")
    from examples.long_range import CHANCE, verdict

    text = verdict(np.array(losses), CHANCE)
    assert says in text, text
    assert text.startswith("solved") == says.startswith("solved"), text
    words = {"above chance", "at chance", "below chance"}
    assert [w for w in words if w in text] == [w for w in words if w == says], text


def test_classify_sequences(tmp_path, capsys, monkeypatch):
    r, _ = run_example("classify_sequences", ["--steps", "4"], tmp_path, capsys, monkeypatch)
    assert_trained_alike("classify_sequences", r, 4)


def test_step_for_step(tmp_path, capsys, monkeypatch):
    r, printed = run_example("step_for_step", ["--steps", "6"], tmp_path, capsys, monkeypatch)
    assert_trained_alike("step_for_step", r, 6)
    assert_close("re-synchronised loss differences", r["sync_loss_diff"], np.zeros(6), 0, 1e-13)
    assert "re-synchronised" in printed
    assert r["growth_per_step"] is None and "too few snapshots" in printed, "6 steps cannot show a growth rate"


def test_step_for_step_growth_rate():
    """The rate is fitted only where the difference lies between rounding and saturation;
    a geometric series is read back exactly, and a flat one gives no rate (not NaN)."""
    pytest.importorskip("torch")
    from examples.step_for_step import growth_per_step

    assert growth_per_step(1e-12 * 1.07 ** np.arange(0, 200, 5), 5) == pytest.approx(1.07, rel=1e-9)
    assert growth_per_step(np.full(40, 2e-16), 5) is None


# -- your own NumPy LSTM (needs NumPy only) ----------------------------------------------------------


def test_my_numpy_lstm_matches_and_its_bug_is_localised(capsys):
    """The example's LSTM matches on every tensor, lengths included; its one-line bug (tanh' left
    out of the cell path) is named where it bites: a gradient step, at c."""
    from examples import my_numpy_lstm

    report = my_numpy_lstm.main([])
    assert report.passed and len(report.tensors) == 10, str(report)
    assert "RESULT: MATCH (10/10 tensors within tolerance)" in capsys.readouterr().out
    report = my_numpy_lstm.main(["--bug"])
    d = report.gradient
    assert not report.passed and report.forward is None
    assert (d.kind, d.layer, d.direction, d.gate) == ("gradient step", 0, 0, "c"), str(report)
    assert "forgets tanh'" in Path(my_numpy_lstm.__file__).read_text()  # the comment beside BUG says what it is


def test_my_numpy_lstm_uses_lengths():
    """The example is checked with lengths, and they matter: the same LSTM run as if every row
    were full length fails, placed in the sequence (the chaining), not in a step."""
    from examples.my_numpy_lstm import my_lstm
    from reference.verify import Spec, compare

    def ignores_lengths(*args, lengths=None, **kwargs):
        return my_lstm(*args, lengths=None, **kwargs)

    report = compare(ignores_lengths, Spec("LSTM", 3, 4), lengths=[5, 3, 4], seq_len=5)
    assert not report.passed and report.forward.kind == "sequence", str(report)


def test_my_numpy_lstm_refuses_what_it_does_not_run():
    from examples.my_numpy_lstm import my_lstm
    from reference.verify import Spec

    with pytest.raises(ValueError, match="one LSTM layer"):
        my_lstm(Spec("LSTM", 3, 4, num_layers=2), {}, np.zeros((2, 1, 3)), (None, None), None, None)
