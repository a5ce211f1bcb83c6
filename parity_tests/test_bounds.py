"""The verifier's bounds: every limit's value, rnn-check's exit status, its numeric arguments, and the time limit.

Each limit is held at its value from both sides where that costs nothing: one byte
over is refused for the limit, and the limit itself is refused for another reason
(or read), so raising or lowering a limit fails here. Nothing here allocates what
it refuses: sizes are declared by headers that lie, sparse files, or limits set
small through the API.
"""

from __future__ import annotations

import importlib
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from parity_tests.hostile import (
    good_npz,
    npz_declaring,
    npz_members_declaring,
    onnx_lstm,
    run,
    run_subprocess,
    sparse,
    state,
    torch_expanded,
)
from reference.memory import MemoryLimitError, available_bytes
from reference.verify import CheckTimeout, Limits, compare, load_model, load_weights
from reference.verify.deadline import deadline
from reference.verify.files import MAX_ARRAY_BYTES, MAX_FILE_BYTES, MAX_INPUT_ELEMENTS, MAX_TOTAL_BYTES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a NumPy candidate (examples/my_numpy_lstm.py), so the exit contract is checked without torch too
BASE = ["--candidate", "examples.my_numpy_lstm:my_lstm", "--mode", "LSTM", "--input-size", "3", "--hidden-size", "4"]


def refused(call) -> str:
    with pytest.raises(ValueError) as e:
        call()
    return str(e.value)


# -- every limit's value ------------------------------------------------------------------------


def test_the_limits_are_the_documented_values():
    assert (MAX_FILE_BYTES, MAX_TOTAL_BYTES, MAX_ARRAY_BYTES, MAX_INPUT_ELEMENTS) == (2**31, 2**32, 2**32, 2**24)
    assert Limits() == Limits(2**31, 2**32)
    with open(os.path.join(ROOT, "docs", "validation.md")) as f:
        doc = f.read()
    for name, value in (("MAX_FILE_BYTES", MAX_FILE_BYTES), ("MAX_TOTAL_BYTES", MAX_TOTAL_BYTES),
                        ("MAX_ARRAY_BYTES", MAX_ARRAY_BYTES), ("MAX_INPUT_ELEMENTS", MAX_INPUT_ELEMENTS)):
        assert f"`{name}` = {value}" in doc, name


def test_the_per_file_limit_holds_at_its_value(tmp_path):
    over = str(sparse(MAX_FILE_BYTES + 1)(tmp_path / "over.npz"))
    assert "is 2147483649 bytes, over the limit of 2147483648 bytes per file" in refused(lambda: load_weights(over))
    at = str(sparse(MAX_FILE_BYTES)(tmp_path / "at.npz"))  # within the limit: refused for its contents instead
    message = refused(lambda: load_weights(at))
    assert "its contents are not a zip" in message and "per file" not in message


def test_the_total_limit_holds_at_its_value(tmp_path):
    # members declaring 2^31, 2^31 - 1 and 1 (or 2) bytes: each within the per-file limit, 2^32 (+ 1) together
    over = str(npz_members_declaring([2**31, 2**31 - 1, 2])(tmp_path / "over.npz"))
    assert "(4294967297 bytes) brings what this check reads to 4294967297 bytes, over the limit of 4294967296 bytes " \
           "in all" in refused(lambda: load_weights(over))
    at = str(npz_members_declaring([2**31, 2**31 - 1, 1])(tmp_path / "at.npz"))
    message = refused(lambda: load_weights(at))  # within the total: its members' headers are checked, and lie
    # (ours says the member "holds" less than declared; Python 3.13's zipfile finds the overlap first)
    assert "in all" not in message and ("but holds" in message or "Overlapped entries" in message), message


def test_the_total_counts_every_file_of_one_check(tmp_path):
    good = good_npz(tmp_path)
    size = os.path.getsize(good)
    members = sum(a.nbytes + 128 for a in state().values())  # each .npy: its data and a 128-byte header
    assert load_weights(good, limits=Limits(total_bytes=members))[0] != {}
    from reference.verify import diff_weights

    message = refused(lambda: diff_weights(good, good, limits=Limits(total_bytes=2 * members - 1)))
    assert f"over the limit of {2 * members - 1} bytes in all" in message
    assert diff_weights(good, good, limits=Limits(total_bytes=2 * members)) == []
    assert "per file" in refused(lambda: load_weights(good, limits=Limits(file_bytes=size - 1)))


def test_the_array_limit_holds_at_its_value(tmp_path):
    over = str(npz_declaring(tmp_path / "over.npz", (2**30 + 1,)))  # float32: 2^32 + 4 bytes
    assert "(4.29e+09 bytes), over the limit of 4294967296 bytes" in refused(lambda: load_weights(over))
    at = str(npz_declaring(tmp_path / "at.npz", (2**30,)))  # exactly 2^32 bytes: within, and a lie
    message = refused(lambda: load_weights(at))
    assert "over the limit" not in message and "(4294967296 bytes) but holds 16 bytes" in message


def test_the_array_limit_holds_for_torch_files(tmp_path):
    pytest.importorskip("torch")
    over = str(torch_expanded(tmp_path / "over.pt", (2**30 + 1,)))
    assert "over the limit of 4294967296 bytes" in refused(lambda: load_model(over))
    at = str(torch_expanded(tmp_path / "at.pt", (2**30,)))
    message = refused(lambda: load_model(at))
    assert "over the limit" not in message and "over a storage of 4 bytes" in message


def test_the_input_limit_holds_at_its_value(tmp_path):
    over = str(onnx_lstm(tmp_path / "over.onnx", x_dims=(1398102, 4, 3)))  # 16777224 elements: 8 over 2^24
    assert "(1.68e+07 elements), over the limit of 16777216" in refused(lambda: load_model(over))
    at = str(onnx_lstm(tmp_path / "at.onnx", x_dims=(1398101, 4, 3)))  # 16777212 elements: within, so it loads
    assert load_model(at).fixed_shape == (1398101, 4)


def test_limits_are_checked_and_settable_from_the_cli(tmp_path, capsys):
    good = good_npz(tmp_path)
    code, _, err = run(["--diff-weights", good, good, "--max-total-bytes", "1000"], capsys)
    assert code == 2 and "over the limit of 1000 bytes in all" in err, err
    code, _, err = run(["--diff-weights", good, good, "--max-file-bytes", "100"], capsys)
    assert code == 2 and "over the limit of 100 bytes per file" in err, err
    code, out, err = run(["--diff-weights", good, good, "--max-total-bytes", str(10**6)], capsys)
    assert code == 0 and "SAME" in out, err
    with pytest.raises(ValueError, match="file_bytes must be a positive int"):
        Limits(file_bytes=0)
    with pytest.raises(TypeError, match="limits: expected a reference.verify.Limits"):
        load_weights(good, limits={"total_bytes": 1})


# -- rnn-check's numeric arguments, and sizes that do not fit ----------------------------------------------


BAD_ARGUMENTS = [  # (arguments, what the one line says)
    (["--hidden-size", "1e9"], "argument --hidden-size: expected a positive integer, got '1e9'"),
    (["--hidden-size", "4.0"], "argument --hidden-size: expected a positive integer, got '4.0'"),
    (["--hidden-size", "0"], "argument --hidden-size: expected a positive integer, got '0'"),
    (["--input-size", "-1"], "argument --input-size: expected a positive integer, got '-1'"),
    (["--seq-len", "-3"], "argument --seq-len: expected a positive integer, got '-3'"),
    (["--seq-len", "1e9"], "argument --seq-len: expected a positive integer, got '1e9'"),
    (["--batch", "0"], "argument --batch: expected a positive integer, got '0'"),
    (["--num-layers", "0"], "argument --num-layers: expected a positive integer, got '0'"),
    (["--proj-size", "-1"], "argument --proj-size: expected an integer >= 0, got '-1'"),
    (["--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
    (["--dropout", "1.5"], "argument --dropout: expected a number in [0, 1], got '1.5'"),
    (["--dropout", "nan"], "argument --dropout: expected a number in [0, 1], got 'nan'"),
    (["--lengths", "3,0,2"], "argument --lengths: expected comma-separated positive integers, got '3,0,2'"),
    (["--lengths", "3,x"], "argument --lengths: expected comma-separated positive integers, got '3,x'"),
    (["--timeout", "0"], "argument --timeout: expected a positive number of seconds, got '0'"),
    (["--timeout", "inf"], "argument --timeout: expected a positive number of seconds, got 'inf'"),
    (["--max-file-bytes", "1e3"], "argument --max-file-bytes: expected a positive integer, got '1e3'"),
    (["--max-total-bytes", "0"], "argument --max-total-bytes: expected a positive integer, got '0'"),
    (["--memory-limit", "lots"], ("argument --memory-limit: expected 'available', 'none' or a positive number of "
                                  "bytes, got 'lots'")),
]


@pytest.mark.parametrize("extra,says", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_a_numeric_argument_that_is_not_one_exits_2_naming_it(extra, says, capsys):
    code, out, err = run([*BASE, *extra], capsys)
    assert code == 2 and err == f"error: {says} (rnn-check --help lists the arguments)\n", out + err


SIZES_THAT_DO_NOT_FIT = [  # sizes that are integers but whose check would not fit in 1 GiB
    ["--hidden-size", "30000"],
    ["--seq-len", "1000000000"],
    ["--batch", "10000000", "--hidden-size", "16"],
]


@pytest.mark.parametrize("extra", SIZES_THAT_DO_NOT_FIT, ids=[" ".join(a) for a in SIZES_THAT_DO_NOT_FIT])
def test_sizes_that_do_not_fit_exit_2_with_the_estimate_before_anything_is_built(extra, capsys):
    code, out, err = run([*BASE, *extra, "--memory-limit", str(2**30)], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, out + err
    for text in (f"{extra[0]} {extra[1]}", "needs about", "reference ", "candidate ", "the verifier's copies",
                 "1 GiB allowed (memory_limit)", "--memory-limit none"):
        assert text in err, (text, err)


@pytest.mark.skipif(available_bytes() > 100 * 2**30, reason="the point is a size above the memory available")
def test_hidden_size_30000_is_refused_at_the_default_limit_with_the_estimate(capsys):
    code, _, err = run(["--candidate", "torch.nn:LSTM", "--mode", "LSTM", "--input-size", "256", "--hidden-size",
                        "30000"], capsys)
    assert code == 2 and "--hidden-size 30000" in err and "GiB available" in err and "LSTM(I=256, H=30000" in err


def test_the_memory_limit_is_settable_and_none_runs_on_purpose(capsys):
    code, out, err = run([*BASE, "--memory-limit", "1000"], capsys)
    assert code == 2 and "1000 bytes allowed" in err, out + err
    code, out, err = run([*BASE, "--memory-limit", "none"], capsys)
    assert code == 0 and "RESULT: MATCH" in out, out + err


# -- the exit status contract -----------------------------------------------------------------------


def _raising(exc):
    def compare_that_raises(*args, **kwargs):
        raise exc
    return compare_that_raises


def test_any_other_exception_exits_3_as_an_internal_error_without_a_traceback(monkeypatch, capsys):
    monkeypatch.setattr(sys.modules["reference.verify.compare"], "compare", _raising(RuntimeError("boom\nsecond line")))
    code, _, err = run(BASE, capsys)
    assert code == 3 and "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("rnn-check: internal error: RuntimeError: boom; second line") and "please report" in err


def test_debug_prints_the_traceback_and_keeps_the_status(monkeypatch, capsys):
    monkeypatch.setattr(sys.modules["reference.verify.compare"], "compare", _raising(RuntimeError("boom")))
    code, _, err = run([*BASE, "--debug"], capsys)
    assert code == 3 and "Traceback" in err and "RuntimeError: boom" in err
    monkeypatch.setattr(sys.modules["reference.verify.compare"], "compare", _raising(ValueError("input: bad")))
    code, _, err = run([*BASE, "--debug"], capsys)
    assert code == 2 and "Traceback" in err and err.rstrip().endswith("error: input: bad")


def test_keyboard_interrupt_exits_130_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(sys.modules["reference.verify.compare"], "compare", _raising(KeyboardInterrupt()))
    code, _, err = run(BASE, capsys)
    assert code == 130 and err == "rnn-check: interrupted\n"


def test_ctrl_c_on_a_hanging_candidate_exits_130_with_one_line(tmp_path):
    started = tmp_path / "started"
    (tmp_path / "hang.py").write_text(textwrap.dedent(f"""\
        import time

        def fn(spec, params, input, hx, grad_output, grad_hidden, **kw):
            open({str(started)!r}, "w").close()
            while True:
                time.sleep(0.01)
        """))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "reference.verify.cli", "--candidate", f"{tmp_path / 'hang.py'}:fn",
                             "--mode", "GRU", "--input-size", "3", "--hidden-size", "4"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline_at = time.monotonic() + 120
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline_at:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)  # a loaded machine may take long to deliver and unwind
    assert proc.returncode == 130 and err == "rnn-check: interrupted\n", (proc.returncode, out, err)


def test_a_mismatch_is_the_only_exit_1(capsys, tmp_path):
    (tmp_path / "bug.py").write_text("from examples.my_numpy_lstm import with_bug\n\nbuggy = with_bug()\n")
    code, out, _ = run(["--candidate", f"{tmp_path / 'bug.py'}:buggy", *BASE[2:]], capsys)  # NumPy, one BPTT bug
    assert code == 1 and "MISMATCH" in out, out
    (tmp_path / "bad.py").write_text("raise AttributeError('no such thing at import')\n")
    code, _, err = run(["--candidate", f"{tmp_path / 'bad.py'}:f", "--mode", "LSTM", "--input-size", "3",
                        "--hidden-size", "4"], capsys)
    assert code == 2 and "executing" in err and "AttributeError: no such thing at import" in err, err


def test_the_console_program_keeps_the_contract_in_a_subprocess(tmp_path):
    r = run_subprocess("--model", str(sparse(3 * 2**30)(tmp_path / "s.pt")))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "per file" in r.stderr, r.stderr


# -- the time limit ---------------------------------------------------------------------------------


def _torch():
    return pytest.importorskip("torch")


@pytest.fixture
def warm():
    """One check of torch.nn.LSTM first: torch imports parts of itself on its first forward and backward, which
    under load can take longer than the short limits below (an import is never interrupted)."""
    assert compare(_torch().nn.LSTM(3, 4)).passed


def hanging_lstm(hang_on=lambda x: False, hang_backward=False, wrong=False):
    """A torch LSTM(3, 4) whose forward never returns on the inputs ``hang_on`` picks, whose backward never
    returns (``hang_backward``), and whose output is 1% off (``wrong``, so that localisation runs its probes)."""
    torch = _torch()

    class Hanging(torch.nn.LSTM):
        def forward(self, x, hx=None):
            if hang_on(x):
                while True:
                    pass
            out, h = super().forward(x, hx)
            if hang_backward and out.requires_grad:
                out.register_hook(lambda g: time.sleep(3600))
            return (out * 1.01 if wrong else out), h

    return Hanging(3, 4)


@pytest.mark.parametrize("cand,step", [
    (lambda: hanging_lstm(hang_on=lambda x: True), "in the candidate's forward"),
    (lambda: hanging_lstm(hang_backward=True), "in the candidate's backward"),
], ids=["forward", "backward"])
def test_compare_stops_a_candidate_past_its_timeout_naming_the_step(cand, step, warm):
    start = time.monotonic()
    with pytest.raises(CheckTimeout) as e:
        compare(cand(), timeout=1)
    assert time.monotonic() - start < 30
    assert isinstance(e.value, TimeoutError) and f"during the main check, {step}" in str(e.value), str(e.value)


def test_a_localisation_probe_past_the_timeout_is_named(warm):
    start = time.monotonic()  # the same check, never hanging: how long the main check and localisation take here
    compare(hanging_lstm(hang_on=lambda x: False, wrong=True))
    limit = max(3.0, 3 * (time.monotonic() - start))  # past the main check whatever the machine's load
    cand = hanging_lstm(hang_on=lambda x: x.shape[0] == 1, wrong=True)  # the teacher-forced steps run T = 1
    with pytest.raises(CheckTimeout) as e:
        compare(cand, timeout=limit)
    assert "during localisation (running teacher-forced steps of layer 0 (T=1)), in the candidate's forward" \
        in str(e.value), str(e.value)


def test_a_function_candidate_past_the_timeout_is_named():
    def fn(spec, params, input, hx, grad_output, grad_hidden, **kw):
        while True:
            time.sleep(0.01)

    with pytest.raises(CheckTimeout, match="in the candidate's forward and backward"):
        compare(fn, {"mode": "GRU", "input_size": 3, "hidden_size": 4}, timeout=0.5)


def test_the_watchdog_stops_a_candidate_in_another_thread(warm):
    found = []

    def check():
        try:
            compare(hanging_lstm(hang_on=lambda x: True), timeout=0.5)
        except CheckTimeout as e:
            found.append(str(e))

    thread = threading.Thread(target=check)
    thread.start()
    thread.join(60)
    assert not thread.is_alive() and found and "in the candidate's forward" in found[0]


def test_rnn_check_timeout_exits_2_naming_the_step(tmp_path, capsys):
    (tmp_path / "slow.py").write_text("import time\n\ndef fn(spec, params, input, hx, grad_output, grad_hidden, **kw):"
                                      "\n    time.sleep(3600)\n")
    start = time.monotonic()
    code, _, err = run(["--candidate", f"{tmp_path / 'slow.py'}:fn", "--mode", "GRU", "--input-size", "3",
                        "--hidden-size", "4", "--timeout", "0.5"], capsys)
    assert time.monotonic() - start < 30
    assert code == 2 and err.count("\n") == 1 and "timeout: the check ran past its limit of 0.5 s" in err, err
    assert "during the main check, in the candidate's forward and backward" in err, err


def test_a_check_within_its_timeout_is_unchanged_and_the_callers_alarm_is_restored():
    _torch()
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *a: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 120)
        assert compare(_torch().nn.GRU(3, 4), timeout=60).passed
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 120 and not fired
        assert signal.getsignal(signal.SIGALRM) is not None and not isinstance(signal.getsignal(signal.SIGALRM), int)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_an_import_under_way_is_not_interrupted(tmp_path, monkeypatch):
    (tmp_path / "slow_import_for_deadline.py").write_text("import time\ntime.sleep(0.5)\nDONE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CheckTimeout), deadline(0.05):
        module = importlib.import_module("slow_import_for_deadline")
        while True:
            pass
    assert module.DONE and sys.modules["slow_import_for_deadline"] is module


def test_timeout_arguments_are_checked():
    with pytest.raises(ValueError, match="timeout: expected a positive number of seconds, got -1"):
        compare(_torch().nn.GRU(3, 4), timeout=-1)
    with pytest.raises(ValueError, match="got nan"), deadline(math.nan):
        pass


def test_a_memory_refusal_from_compare_names_the_sizes():
    with pytest.raises(MemoryLimitError) as e:
        compare(_torch().nn.GRU(3, 4), seq_len=1000, batch=500, memory_limit=2**20)
    text = str(e.value)
    assert "GRU(I=3, H=4, L=1, D=1), T=1000, B=500, float32" in text and "1 MiB allowed" in text, text
    with pytest.raises(ValueError, match="memory_limit: expected 'available'"):
        compare(_torch().nn.GRU(3, 4), memory_limit=0)
    assert np.isfinite(available_bytes())


def test_external_data_counts_towards_the_total(tmp_path):
    pytest.importorskip("onnxruntime")
    from parity_tests.hostile import onnx_with_external_data

    path = str(onnx_with_external_data(tmp_path / "ext"))
    model_bytes, data_bytes = os.path.getsize(path), os.path.getsize(tmp_path / "ext" / "ext.data")
    assert load_model(path, limits=Limits(total_bytes=model_bytes + data_bytes)).own_params
    message = refused(lambda: load_model(path, limits=Limits(total_bytes=model_bytes + data_bytes - 1)))
    assert f"over the limit of {model_bytes + data_bytes - 1} bytes in all" in message, message
