"""Every example in its quick form, run as a user runs it (``main([...])`` with
``--steps`` and ``--out``): NumPy and torch trained side by side must agree step
by step, the plots must be written, and each example's own claim is checked
(the same generated text, the same predictions, the same gradient norms).

The quick forms together take about 30-40 s on the 2-core CI machine (measured
per example in ``QUICK``'s comments); the examples' full runs are for people.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from helpers import assert_close
from tolerances import tol

LOSS_ATOL = 1e-9  # float64 training parity, step by step (the README states what holds over longer runs)
F64 = tol("float64", "cpu", "gradient")
FORWARD = tol("float64", "cpu", "forward")


def run_example(name: str, argv: list[str], tmp_path, capsys) -> tuple[dict, str]:
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    module = importlib.import_module(f"examples.{name}")
    result = module.main([*argv, "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "largest" in printed, f"{name} did not print its largest NumPy-torch difference"
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


def test_hello_ohlol_both_forms(tmp_path, capsys):
    result, printed = run_example("hello_ohlol", ["--steps", "12"], tmp_path, capsys)
    assert_trained_alike("hello_ohlol layer form", result["layer"], 12)
    assert_trained_alike("hello_ohlol cell form", result["cell"], 12)
    texts = result["cell"]["texts"]
    assert len(texts) == 12 and all(a == b for a, b in texts), f"cell form: NumPy and torch predicted {texts}"
    assert "epoch  12" in printed, "the cell form prints its prediction every epoch"
    assert (tmp_path / "hello_ohlol_cell.png").exists()


@pytest.mark.parametrize("batching", ["sequential", "random"])
def test_char_lm(batching, tmp_path, capsys):
    argv = ["--steps", "8", "--batching", batching, "--generate", "The ", "--length", "30"]
    r, printed = run_example("char_lm", argv, tmp_path, capsys)
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


def test_name_classifier(tmp_path, capsys):
    r, _ = run_example("name_classifier", ["--steps", "5"], tmp_path, capsys)
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
def test_digits_by_rows(mode, tmp_path, capsys):
    pytest.importorskip("sklearn", reason="the examples extra (pip install -e .[examples]) brings scikit-learn")
    r, _ = run_example("digits_by_rows", ["--steps", "6", "--mode", mode], tmp_path, capsys)
    assert_trained_alike(f"digits_by_rows {mode}", r, 6)
    assert r["predictions_differ"] == 0 and r["accuracy_numpy"] == r["accuracy_torch"]


def test_gradient_flow(tmp_path, capsys):
    results, printed = run_example("gradient_flow", ["--steps", "10"], tmp_path, capsys)
    for name, r in results.items():
        assert_close(f"||dL/dh_t|| ({name})", r["norms"], r["torch_norms"], *F64)
    assert results["GRU, update bias +4"]["ratio"] > 10 * results["GRU"]["ratio"]
    assert results["LSTM, forget bias +3"]["ratio"] > 10 * results["LSTM"]["ratio"]
    assert results["RNN relu, 2 W_hh"]["per_step"] > 1.1, "the explosion variant explodes"
    assert "Why GRU and LSTM vanish faster" in printed


def test_long_range(tmp_path, capsys):
    results, printed = run_example("long_range", ["--steps", "4"], tmp_path, capsys)
    assert list(results) == ["RNN", "GRU", "LSTM", "LSTM, forget bias +3"]
    for model, r in results.items():
        assert_trained_alike(f"long_range {model}", r, 4, must_learn=False)
        assert r["verdict"] in printed


def test_classify_sequences(tmp_path, capsys):
    r, _ = run_example("classify_sequences", ["--steps", "4"], tmp_path, capsys)
    assert_trained_alike("classify_sequences", r, 4)


def test_step_for_step(tmp_path, capsys):
    r, printed = run_example("step_for_step", ["--steps", "6"], tmp_path, capsys)
    assert_trained_alike("step_for_step", r, 6)
    assert_close("re-synchronised loss differences", r["sync_loss_diff"], np.zeros(6), 0, 1e-13)
    assert "re-synchronised" in printed
