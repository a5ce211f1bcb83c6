"""rnn-check (= python -m torch_impl.check): the README's example as written, every kind of input, exit codes."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from reference.verify.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = ["--mode", "LSTM", "--input-size", "3", "--hidden-size", "4"]


def run(args, capsys):
    try:
        code = main(args)
    except SystemExit as e:  # argparse
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _subprocess(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def _readme_commands() -> list[list[str]]:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text[text.index("## Checking your own implementation"):]
    block = section[section.index("```bash") + 7:]
    block = block[:block.index("```")].replace("\\\n", " ")
    return [shlex.split(line) for line in block.strip().splitlines()]


def test_readme_example_as_written_a_class_without_mode(tmp_path, monkeypatch, capsys):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "rnn.py").write_text("from parity_tests.broken_candidates import MyLSTM  # no .mode\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    command = _readme_commands()[0]
    assert command[:3] == ["rnn-check", "--candidate", "mypkg.rnn:MyLSTM"] and "--mode" in command
    code, out, err = run(command[1:], capsys)
    assert code == 0, out + err
    assert "RESULT: MATCH" in out and "candidate float32" in out and (tmp_path / "err.png").read_bytes()[:4] == b"\x89PNG"


def test_help_lists_the_factory_protocol_and_exit_codes_and_python_m_is_the_same_program():
    r = _subprocess(sys.executable, "-m", "torch_impl.check", "--help")
    assert r.returncode == 0, r.stderr
    for text in ("rnn-check", "factory protocol", "FACTORY(input_size, hidden_size", "path/to/file.py:FACTORY",
                 "0    match", "1    mismatch (also when localisation stopped", "2    usage error", "unavailable device",
                 "3    internal error", "130  interrupted"):
        assert text in r.stdout, text


@pytest.mark.skipif(shutil.which("rnn-check") is None, reason="the console script is installed by pip install -e .")
def test_console_script():
    r = _subprocess("rnn-check", "--candidate", "parity_tests.broken_candidates:broken_factory", *BASE)
    assert r.returncode == 1 and ", i:" in r.stdout, r.stdout + r.stderr


def test_mismatch_exits_1_with_the_gate(capsys):
    code, out, _ = run(["--candidate", "parity_tests.broken_candidates:broken_factory", *BASE], capsys)
    assert code == 1 and "MISMATCH" in out and "time step 0" in out and ", i:" in out


def test_localisation_stopped_still_exits_1(capsys):
    code, out, _ = run(["--candidate", "parity_tests.broken_candidates:fixed_length_broken_factory", *BASE,
                        "--seq-len", "6"], capsys)
    assert code == 1 and "localisation stopped" in out and "6 steps only" in out


def test_candidate_from_a_file_path_and_a_function_factory(tmp_path, capsys):
    path = tmp_path / "my_rnn.py"
    path.write_text("import torch\n\ndef make(input_size, hidden_size, **kw):\n"
                    "    return torch.nn.GRU(input_size, hidden_size, **kw)\n")
    code, out, err = run(["--candidate", f"{path}:make", "--mode", "GRU", "--input-size", "3", "--hidden-size", "4",
                          "--bidirectional"], capsys)
    assert code == 0, out + err
    code, out, err = run(["--candidate", "parity_tests.broken_candidates:numpy_factory", *BASE, "--layout", "ifog"],
                         capsys)
    assert code == 0 and "drawn from seed 0" in out, out + err


def test_partial_cotangents_and_gradients(tmp_path, capsys):
    path = tmp_path / "no_dx.py"
    path.write_text("from parity_tests.broken_candidates import numpy_lstm\n\n"
                    "def fn(spec, params, input, hx, grad_output, grad_hidden, **kw):\n"
                    "    res = dict(numpy_lstm(spec, params, input, hx, grad_output, grad_hidden, **kw))\n"
                    "    del res['input']\n    return res\n")
    code, out, err = run(["--candidate", f"{path}:fn", *BASE, "--layout", "ifog", "--gradients",
                          "h_0,c_0,weights"], capsys)
    assert code == 0 and "not checked (the candidate does not provide them): grad input" in out, out + err
    code, out, err = run(["--candidate", f"{path}:fn", *BASE, "--layout", "ifog"], capsys)
    assert code == 2 and "no gradient 'input'" in err


def test_model_files(tmp_path, capsys):
    torch.manual_seed(0)
    m = torch.nn.LSTM(3, 4, num_layers=2).double()
    torch.save(m.state_dict(), tmp_path / "sd.pt")
    code, out, err = run(["--model", str(tmp_path / "sd.pt"), "--lengths", "5,2,4"], capsys)
    assert code == 0 and "LSTM(3, 4, num_layers=2)" in out, out + err
    np.savez(tmp_path / "w.npz", **{k: v.numpy() for k, v in m.state_dict().items()})
    code, out, err = run(["--model", str(tmp_path / "w.npz"), "--no-gradients"], capsys)
    assert code == 0 and "RESULT: MATCH" in out, out + err
    code, out, err = run(["--candidate", "parity_tests.broken_candidates:broken_factory", "--with-weights",
                          str(tmp_path / "w.npz")], capsys)  # configuration and weights from the file
    assert code == 1 and "LSTM(3, 4, num_layers=2)" in out and "the reference module's" in out, out + err


def test_diff_weights(tmp_path, capsys):
    torch.manual_seed(1)
    sd = {k: v.numpy() for k, v in torch.nn.GRU(3, 4, bidirectional=True).state_dict().items()}
    np.savez(tmp_path / "a.npz", **sd)
    w = sd["weight_hh_l0_reverse"]
    np.savez(tmp_path / "b.npz", **{**sd, "weight_hh_l0_reverse": np.concatenate([w[4:8], w[:4], w[8:]])})
    code, out, _ = run(["--diff-weights", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")], capsys)
    assert code == 1 and "layer 0 reverse: weight_hh blocks r and z swapped" in out
    code, out, _ = run(["--diff-weights", str(tmp_path / "a.npz"), str(tmp_path / "a.npz")], capsys)
    assert code == 0 and "RESULT: SAME" in out


@pytest.mark.parametrize("args,message", [
    (["--candidate", "no_such_module:factory", *BASE], "no_such_module"),
    (["--candidate", "torch.nn:LSTM", *BASE, "--proj-size", "9"], "proj_size"),
    (["--candidate", "torch.nn", *BASE], "MODULE:FACTORY"),
    (["--candidate", "torch.nn:NoSuchThing", *BASE], "no attribute 'NoSuchThing'"),
    (["--candidate", "torch.nn:LSTM", *BASE, "--num-layers", "2", "--dropout", "0.5", "--train"], "eval mode"),
    (["--candidate", "torch.nn:LSTM", "--mode", "LSTM"], "--input-size, --hidden-size"),
    (["--model", "no_such_file.onnx"], "no such file"),
    (["--mode", "LSTM"], "one of the arguments"),  # argparse
])
def test_usage_errors_exit_2(args, message, capsys):
    code, out, err = run(args, capsys)
    assert code == 2 and message in err, out + err


def test_a_factory_that_builds_no_recurrent_module_exits_2(tmp_path, capsys):
    (tmp_path / "lin.py").write_text("import torch\n\ndef make(input_size, hidden_size, **kw):\n"
                                     "    return torch.nn.Linear(input_size, hidden_size)\n")
    code, out, err = run(["--candidate", f"{tmp_path / 'lin.py'}:make", *BASE], capsys)
    assert code == 2 and "Linear: expected a recurrent module" in err, out + err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a missing device")
def test_unavailable_device_exits_2(capsys):
    code, _, err = run(["--candidate", "torch.nn:LSTM", *BASE, "--device", "cuda"], capsys)
    assert code == 2 and "not available" in err and "Traceback" not in err
