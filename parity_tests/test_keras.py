"""Keras 3 layers checked as they are: LSTM, GRU (both forms), SimpleRNN, RNN(cell), Bidirectional, stacks.

The suite runs Keras on the torch backend (no TensorFlow needed); the JAX backend and, where it
is installed, TensorFlow run in a process of their own (Keras picks its backend once per process).
Each check uses the layer's own weights (non-zero random biases) and activations; gradients come
from the backend's autograd. Every verdict is also shown failing: a cell with one gate wrong is
named at that gate, layer and direction, and what the reference cannot express is refused by name.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if "keras" not in sys.modules:
    os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras 3 (the keras extra)")
if keras.backend.backend() != "torch":
    pytest.skip("this process's Keras runs another backend; the suite runs Keras on torch", allow_module_level=True)

from reference.verify import compare
from reference.verify.cli import main as rnn_check

L = keras.layers
ROOT = Path(__file__).resolve().parents[1]
I, H, T, B = 3, 4, 5, 2


def built(layer, input_size: int = I, seed: int = 0):
    """``layer`` built on (B, T, input_size), its biases set to random non-zero values."""
    layer(np.zeros((B, T, input_size), dtype="float32"))
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        if v.path.endswith("bias"):
            v.assign(rng.uniform(-0.5, 0.5, v.shape).astype("float32"))
    return layer


def model(*layers, input_size: int = I, seed: int = 0):
    m = keras.Sequential([keras.Input((None, input_size)), *layers])
    return built(m, input_size, seed)


LAYERS = {
    "LSTM": lambda: built(L.LSTM(H)),
    "GRU": lambda: built(L.GRU(H)),
    "GRU reset_after=False": lambda: built(L.GRU(H, reset_after=False)),
    "SimpleRNN tanh": lambda: built(L.SimpleRNN(H)),
    "SimpleRNN relu": lambda: built(L.SimpleRNN(H, activation="relu")),
    "RNN(LSTMCell)": lambda: built(L.RNN(L.LSTMCell(H))),
    "Bidirectional LSTM": lambda: built(L.Bidirectional(L.LSTM(H, return_sequences=True))),
    "Bidirectional GRU reset_after=False": lambda: built(L.Bidirectional(L.GRU(H, reset_after=False))),
    "stacked LSTM": lambda: model(L.LSTM(H, return_sequences=True), L.LSTM(H)),
    "stacked Bidirectional GRU": lambda: model(L.Bidirectional(L.GRU(H, return_sequences=True)),
                                               L.Bidirectional(L.GRU(H))),
    "stacked SimpleRNN": lambda: model(L.SimpleRNN(H, return_sequences=True), L.SimpleRNN(H, return_sequences=True),
                                       L.SimpleRNN(H)),
    # ONNX's options in the core: Keras's other activations, and go_backwards as one reverse direction
    "LSTM hard_sigmoid": lambda: built(L.LSTM(H, recurrent_activation="hard_sigmoid")),
    "GRU elu/softsign reset_after=False": lambda: built(L.GRU(H, activation="elu", recurrent_activation="softsign",
                                                              reset_after=False)),
    "SimpleRNN sigmoid": lambda: built(L.SimpleRNN(H, activation="sigmoid")),
    "Bidirectional SimpleRNN leaky_relu": lambda: built(L.Bidirectional(L.SimpleRNN(H, activation="leaky_relu"))),
    "LSTM go_backwards": lambda: built(L.LSTM(H, go_backwards=True, return_sequences=True)),
    "stacked GRU go_backwards": lambda: model(L.GRU(H, go_backwards=True, return_sequences=True),
                                              L.GRU(H, go_backwards=True)),
}


OTHER_ACTIVATIONS = {"LSTM hard_sigmoid", "GRU elu/softsign reset_after=False", "SimpleRNN sigmoid",
                     "Bidirectional SimpleRNN leaky_relu"}


def doubled(x):
    """An activation of the user's own (a Python function): no ONNX function is it."""
    return x * 2


@pytest.mark.parametrize("name", list(LAYERS))
def test_keras_layers_match_the_reference(name):
    """Forward and every gradient, with random initial states and lengths (Keras's mask)."""
    layer = LAYERS[name]()
    report = compare(layer, seq_len=T, batch=3, lengths=[5, 2, 4], seed=1)
    assert report.passed, str(report)
    assert report.dtype == "float32" and len(report.tensors) >= 7
    expected = {"bidirectional": "Bidirectional" in name,
                "num_layers": 3 if "SimpleRNN" in name and "stacked" in name else 2 if "stacked" in name else 1}
    for attr, want in expected.items():
        assert getattr(report.spec, attr) == want, (name, report.spec)
    assert report.spec.reset_after is ("reset_after=False" not in name)
    assert report.spec.reverse is ("go_backwards" in name)
    assert (report.spec.activations is None) is (name not in OTHER_ACTIVATIONS)


def test_the_reference_reads_the_layers_own_weights():
    """The candidate's weights are the layer's, in torch's names and gate order (Keras i, f, c, o = torch's)."""
    layer = LAYERS["LSTM"]()
    report = compare(layer, seed=2)
    assert "the candidate's own" in report.weights
    from reference.verify.adapters.keras import KerasCandidate

    params = KerasCandidate(layer).own_params
    kernel, recurrent, bias = (np.asarray(v.numpy()) for v in (layer.cell.kernel, layer.cell.recurrent_kernel,
                                                               layer.cell.bias))
    np.testing.assert_array_equal(params["weight_ih_l0"], kernel.T)
    np.testing.assert_array_equal(params["weight_hh_l0"], recurrent.T)
    np.testing.assert_array_equal(params["bias_ih_l0"] + params["bias_hh_l0"], bias)


@keras.saving.register_keras_serializable(package="parity_tests")
class TanhOutputGateLSTMCell(L.LSTMCell):
    """An LSTM cell with one planted bug: the output gate squashed by tanh instead of sigmoid."""

    def call(self, inputs, states, training=False):
        h, c = states
        z = keras.ops.matmul(inputs, self.kernel) + keras.ops.matmul(h, self.recurrent_kernel) + self.bias
        i, f, g, o = keras.ops.split(z, 4, axis=-1)
        c = keras.ops.sigmoid(f) * c + keras.ops.sigmoid(i) * keras.ops.tanh(g)
        h = keras.ops.tanh(o) * keras.ops.tanh(c)
        return h, [h, c]


@keras.saving.register_keras_serializable(package="parity_tests")
class SigmoidCandidateGRUCell(L.GRUCell):
    """A GRU cell (torch's form) whose candidate n is squashed by sigmoid instead of tanh."""

    def call(self, inputs, states, training=False):
        h = states[0] if isinstance(states, (list, tuple)) else states
        x = keras.ops.matmul(inputs, self.kernel) + self.bias[0]
        r_ = keras.ops.matmul(h, self.recurrent_kernel) + self.bias[1]
        xz, xr, xn = keras.ops.split(x, 3, axis=-1)
        rz, rr, rn = keras.ops.split(r_, 3, axis=-1)
        z = keras.ops.sigmoid(xz + rz)
        r = keras.ops.sigmoid(xr + rr)
        n = keras.ops.sigmoid(xn + r * rn)
        h = z * h + (1 - z) * n
        return h, [h]


def test_a_custom_cell_bug_is_named_at_its_gate_layer_and_direction():
    """A stack of two bidirectional layers of a cell whose output gate is wrong: MISMATCH, named at o, layer 0."""
    m = model(L.Bidirectional(L.RNN(TanhOutputGateLSTMCell(H), return_sequences=True)),
              L.Bidirectional(L.RNN(TanhOutputGateLSTMCell(H))))
    report = compare(m, seed=3)
    assert not report.passed
    div = report.forward
    assert div is not None and (div.kind, div.layer, div.direction, div.time, div.gate) == ("step", 0, 0, 0, "o"), \
        str(report)


def test_a_custom_gru_cell_bug_is_named_at_the_new_gate():
    m = model(L.RNN(SigmoidCandidateGRUCell(H), return_sequences=True))
    report = compare(m, seed=4)
    assert not report.passed
    assert report.forward is not None and report.forward.gate == "n" and report.forward.layer == 0, str(report)


@pytest.mark.parametrize("make, words", [
    (lambda: built(L.LSTM(H, recurrent_activation="gelu")), ["recurrent_activation='gelu'", "'hard_sigmoid'"]),
    (lambda: built(L.GRU(H, activation=doubled)), ["activation='doubled'", "'tanh'"]),
    (lambda: built(L.SimpleRNN(H, activation="silu")), ["activation='silu'", "'relu'"]),
    (lambda: built(L.Bidirectional(L.LSTM(H), merge_mode="sum")), ["merge_mode='sum'", "concat"]),
    (lambda: built(L.LSTM(H, stateful=True)), ["stateful=True"]),
    (lambda: model(L.LSTM(H, return_sequences=True), L.Dense(2)), ["Dense"]),
    (lambda: model(L.LSTM(H, return_sequences=True), L.LSTM(H + 1)), ["units"]),
    (lambda: model(L.LSTM(H, return_sequences=True), L.GRU(H)), ["mode"]),
    (lambda: model(L.LSTM(H, return_sequences=True), L.LSTM(H, recurrent_activation="hard_sigmoid")), ["functions"]),
])
def test_what_the_reference_cannot_express_is_refused_by_name(make, words):
    with pytest.raises(ValueError) as e:
        compare(make())
    for w in words:
        assert w in str(e.value), str(e.value)


def test_an_unbuilt_layer_is_refused():
    with pytest.raises(ValueError, match="not built"):
        compare(L.LSTM(H))


def test_rnn_check_runs_a_saved_keras_model(tmp_path, capsys):
    """``rnn-check --model m.keras``: loaded in safe mode, MATCH exits 0; an unsupported model exits 2."""
    good = tmp_path / "good.keras"
    model(L.Bidirectional(L.GRU(H, return_sequences=True, reset_after=False)), L.Bidirectional(L.GRU(
        H, reset_after=False))).save(good)
    assert rnn_check(["--model", str(good)]) == 0, capsys.readouterr()
    assert "MATCH" in capsys.readouterr().out
    bad = tmp_path / "bad.keras"
    model(L.LSTM(H, recurrent_activation="gelu")).save(bad)
    assert rnn_check(["--model", str(bad)]) == 2
    assert "gelu" in capsys.readouterr().err
    buggy = tmp_path / "buggy.keras"
    model(L.RNN(TanhOutputGateLSTMCell(H))).save(buggy)
    assert rnn_check(["--model", str(buggy)]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_a_damaged_keras_file_is_an_error_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"PK\x03\x04 not really a zip archive")
    assert rnn_check(["--model", str(path)]) == 2
    assert "could not be loaded by Keras" in capsys.readouterr().err


_OTHER_BACKEND = """
import numpy as np, keras
from reference.verify import compare
L = keras.layers
assert keras.backend.backend() == {backend!r}, keras.backend.backend()
for layer in (L.Bidirectional(L.GRU(4, reset_after=False)),):  # one layer: the backend compiles every shape
    layer(np.zeros((2, 3, 3), "float32"))
    for v in layer.weights:
        if v.path.endswith("bias"):
            v.assign(np.random.default_rng(0).uniform(-0.5, 0.5, v.shape).astype("float32"))
    report = compare(layer, lengths=[3, 1], batch=2, seq_len=3, localise=False)
    assert report.passed, str(report)
print("ok", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_keras_on_another_backend(backend):
    """The same check with gradients by jax.vjp or tf.GradientTape, where that backend is installed."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", _OTHER_BACKEND.format(backend=backend)], env=env, capture_output=True,
                       text=True, timeout=300, check=False)
    assert r.returncode == 0 and f"ok {backend}" in r.stdout, r.stdout + r.stderr[-3000:]


def test_a_keras_archive_counts_towards_the_checks_total_before_keras_unpacks_it(tmp_path, capsys):
    import zipfile

    from reference.verify import Limits, load_model

    path = tmp_path / "m.keras"
    model(L.LSTM(H)).save(path)
    with zipfile.ZipFile(path) as z:
        members = sum(i.file_size for i in z.infolist())
    assert load_model(str(path), limits=Limits(total_bytes=members)).name == "m.keras"
    with pytest.raises(ValueError, match=f"over the limit of {members - 1} bytes in all"):
        load_model(str(path), limits=Limits(total_bytes=members - 1))
    assert rnn_check(["--model", str(path), "--max-total-bytes", str(members - 1)]) == 2
    assert "m.keras's" in capsys.readouterr().err


# -- the user's own layers, in their own dtype ---------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: built(L.LSTM(H, dtype="float64"), seed=5),
    lambda: model(L.GRU(H, reset_after=False, return_sequences=True, dtype="float64"),
                  L.GRU(H, reset_after=False, dtype="float64")),
], ids=["LSTM", "2-layer GRU reset_after=False"])
def test_a_float64_layer_is_run_in_float64_and_judged_as_keras_computes_it(make):
    """Keras computes products of float64 arrays in float32 on torch and JAX; the layer runs in float64, is judged
    at float32's tolerance, and the report's header says so (a float32-sized error is no mismatch)."""
    report = compare(make(), seq_len=T, batch=3, lengths=[5, 2, 4], seed=1)
    assert report.passed and report.dtype == "float64", str(report)
    assert "judged as float32: Keras computes products of float64 arrays in float32" in str(report)
    assert max(t.max_abs for t in report.tensors) > 1e-12  # float32's products, not float64's: the note is needed


def test_a_bug_in_layer_1_alone_is_named_there_forward_and_backward():
    """Each layer of a stack, alone, is that layer: the layer-1 probes run layer 1, not a copy of layer 0."""
    from adapter_kit_keras import KitLSTMCell

    for bug, where in (("preact", ("step", 1, 0, 0, "f")), ("grad", ("gradient step", 1, 0, T - 1, "f"))):
        m = model(L.LSTM(H, return_sequences=True), L.RNN(KitLSTMCell(H, bug=bug), return_sequences=True))
        report = compare(m, seq_len=T, batch=3, seed=2)
        div = report.divergence
        assert not report.passed and div is not None, str(report)
        assert (div.kind, div.layer, div.direction, div.time, div.gate) == where, str(report)


def test_the_layers_own_settings_and_weights_are_left_as_they_were():
    from adapter_kit_keras import ScaledLSTM

    layer = built(ScaledLSTM(H, return_sequences=True))
    weights = [np.array(w) for w in layer.get_weights()]
    report = compare(layer, weights="draw", seed=3)
    assert not report.passed
    assert layer.return_sequences and not layer.return_state and not layer.zero_output_for_mask
    for w, before in zip(layer.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(w, before)


class TwoLayersTheirOwnWay(keras.Model):
    """A model whose call is its own: the verifier cannot run its layers in order in its place."""

    def __init__(self):
        super().__init__()
        self.a, self.b = L.LSTM(H, return_sequences=True), L.LSTM(H)

    def call(self, x):
        return self.b(self.a(x) * 2)


def test_a_model_the_verifier_cannot_run_layer_by_layer_is_refused_by_name():
    subclassed = TwoLayersTheirOwnWay()
    subclassed(np.zeros((B, T, I), "float32"))
    with pytest.raises(ValueError, match="its class TwoLayersTheirOwnWay overrides call"):
        compare(subclassed)
    x = keras.Input((None, I))
    twice = L.LSTM(I, return_sequences=True)  # one layer applied twice: listed once, run twice
    with pytest.raises(ValueError, match="not one chain from the model's input to its output"):
        compare(built(keras.Model(x, twice(twice(x)))))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_a_mixed_policy_is_judged_against_the_rounding_envelope(policy):
    """Keras under mixed_bfloat16 / mixed_float16: Keras's LSTM is a MATCH at that precision; the same layer of a
    cell whose forget gate reads 1.25 times its pre-activation is a MISMATCH naming the output."""
    from adapter_kit_keras import KitLSTMCell

    storage = policy.removeprefix("mixed_")
    right = compare(built(L.LSTM(H, return_sequences=True, dtype=policy)), seq_len=12)
    assert right.passed and str(right.verdict).startswith(f"MATCH at {storage}"), str(right)
    wrong = compare(built(L.RNN(KitLSTMCell(H, bug="preact"), return_sequences=True, dtype=policy)), seq_len=12)
    assert not wrong.passed and f"MISMATCH at {storage}: output leaves the envelope" in str(wrong), str(wrong)
