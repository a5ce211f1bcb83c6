"""Tests of `python -m benchmarks`: it runs, validates, and writes readable files; and the
pieces that decide what it measures (kernel environment, GEMM floor, suites, memory, ETA).

No timing assertions: the numbers depend on the machine. One tiny configuration.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {"cell", "T", "B", "I", "H", "dtype", "device", "impl", "phase", "status", "ms", "spread", "tokens_per_s",
          "gflops", "pct_peak", "ratio_to_torch", "ratio_to_floor", "us_per_step", "peak_gflops",
          "step_peak_rss_bytes", "setup_rss_bytes"}


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, "-m", "benchmarks", "--suite", "smoke", "--cells", "LSTM", "--dtypes", "float64",
           "--devices", "cpu", "--repeat", "1", "--threads", "1", "--out", str(out)]
    # 25 s of CPU; on a shared machine at a load average of 16 (2 cores) it took 270 s of wall time
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reference" in proc.stdout and "step ms" in proc.stdout and "step / floor" in proc.stdout, proc.stdout
    assert "ETA" in proc.stderr, proc.stderr  # the progress line
    return out


def test_json_has_environment_and_validated_rows(bench_out):
    doc = json.loads((bench_out / "results.json").read_text())
    env = doc["environment"]
    for key in ("cpu_model", "cpu_count", "numpy", "torch", "numpy_blas", "thread_env", "check_process"):
        assert key in env
    assert set(env["allocator_env"]) >= {"MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"}  # the default
    # what a bfloat16 or float16 row can use: the CPU's flags (or "unknown") and torch's capability
    cap = env["cpu_low_precision"]
    assert set(cap) == {"avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16", "torch_cpu_capability"}, cap
    assert {cap[f] for f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")} <= {"yes", "no", "unknown"}
    assert cap["torch_cpu_capability"] == env["check_process"]["torch"]["cpu_capability"]
    assert doc["matmul_peaks"] and doc["matmul_peaks"][0]["peak"] > 0
    rows = doc["rows"]
    assert {r["impl"] for r in rows} >= {"reference", "torch-nn", "gemm-floor"}
    for r in rows:
        if r["phase"] is None:  # an implementation this machine cannot run, and says why
            assert r["status"].startswith("unavailable"), r
            continue
        assert FIELDS <= set(r), sorted(FIELDS - set(r))
        assert r["status"] in ("ok", "baseline") or r["status"].startswith("floor"), r["status"]
    ref = [r for r in rows if r["impl"] == "reference"]
    assert {r["phase"] for r in ref} == {"inference", "forward", "backward", "step"}
    fwd = next(r for r in ref if r["phase"] == "forward")
    assert fwd["tape_bytes"] >= fwd["min_activation_bytes"] > 0
    step = next(r for r in ref if r["phase"] == "step")
    floor = next(r for r in rows if r["impl"] == "gemm-floor" and r["phase"] == "step")
    assert step["ratio_to_floor"] == pytest.approx(step["ms"] / floor["ms"], rel=1e-12, abs=0)
    assert step["us_per_step"] == pytest.approx(1e3 * step["ms"] / step["T"], rel=1e-12, abs=0)
    assert step["step_peak_rss_bytes"] is not None and step["step_peak_rss_bytes"] >= 0
    assert doc["settings"]["memory_method"]
    assert doc["settings"]["commit"] and doc["settings"]["date"].endswith("UTC")  # what the report prints
    # every timing carries its unreliable-timing flag (trust.py), and the load it was judged by
    assert all(isinstance(r["unreliable"], list) for r in rows if r["phase"]), rows[0]
    assert isinstance(doc["settings"]["load_average_start"], float) and doc["settings"]["spread_limit"] == 0.25


def test_each_implementation_process_reports_its_kernels(bench_out):
    procs = json.loads((bench_out / "results.json").read_text())["environment"]["processes"]
    assert {"reference", "torch-nn", "gemm-floor"} <= set(procs)
    blas = [p for p in procs["reference"]["blas"] if p.get("user_api") == "blas"]
    assert blas and blas[0]["internal_api"] and "architecture" in blas[0], procs["reference"]
    assert "torch" not in procs["reference"]  # the NumPy process never loads torch
    assert procs["torch-nn"]["torch"]["cpu_capability"]
    assert "cpu_level" in procs["reference"] and "pinning_env" in procs["reference"]


def test_csv_parses_like_the_json(bench_out):
    with (bench_out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    doc = json.loads((bench_out / "results.json").read_text())
    assert len(rows) == len(doc["rows"]) and FIELDS <= set(rows[0])


def test_figures_are_png(bench_out):
    pngs = sorted(bench_out.glob("*.png"))
    assert {p.name for p in pngs} >= {"step-ratio.png", "phase-ratio.png"}
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- which kernel the timing processes run -------------------------------------------------------------------

AVX512 = frozenset({"avx", "avx2", "fma", "avx512f", "avx512bw"})
AVX2 = frozenset({"avx", "avx2", "fma"})


def test_a_lower_openblas_core_is_removed_from_the_child_env_only():
    from benchmarks.kernel import child_env

    parent = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576", "PATH": "/bin"}
    env, removed, why = child_env(parent, AVX512)
    assert removed == {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576"}
    assert "OPENBLAS_CORETYPE" not in env and "OPENBLAS_L2_SIZE" not in env and env["PATH"] == "/bin"
    assert "avx2" in why and "avx512" in why
    assert parent["OPENBLAS_CORETYPE"] == "Haswell"  # the caller's mapping is not changed


def test_keep_blas_env_times_as_configured():
    from benchmarks.kernel import child_env

    parent = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576"}
    env, removed, why = child_env(parent, AVX512, keep_blas_env=True)
    assert env == parent and removed == {} and why  # still says the pin is lower


@pytest.mark.parametrize("parent, flags", [
    ({}, AVX512),  # nothing pinned (this machine today)
    ({"OPENBLAS_L2_SIZE": "1048576"}, AVX512),  # a size without a core type pins no kernel
    ({"OPENBLAS_CORETYPE": "Haswell"}, AVX2),  # the CPU's own level: nothing to undo
    ({"OPENBLAS_CORETYPE": "SkylakeX"}, AVX512),
    ({"OPENBLAS_CORETYPE": "MadeUpCore"}, AVX512),  # unknown: left as configured
])
def test_the_child_env_is_unchanged_unless_a_lower_core_is_pinned(parent, flags):
    from benchmarks.kernel import child_env

    env, removed, why = child_env(parent, flags)
    assert env == parent and removed == {} and why is None


def test_cpu_flags_and_level_from_cpuinfo():
    from benchmarks.kernel import cpu_flags, cpu_level

    info = "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_bf16\n"
    assert cpu_level(cpu_flags(info)) == "avx512_bf16"
    assert cpu_level(frozenset({"avx", "avx2"})) == "avx2"
    assert cpu_level(frozenset()) == "sse"


def test_pinning_vars_are_found_and_workers_get_threads_and_the_child_env():
    from benchmarks.kernel import pinning_vars
    from benchmarks.runner import KEEP_FREED_MEMORY, worker_env

    found = pinning_vars({"MKL_CBWR": "AVX2", "OPENBLAS_CORETYPE": "Haswell", "HOME": "/root", "OMP_NUM_THREADS": "4"})
    assert found == {"MKL_CBWR": "AVX2", "OMP_NUM_THREADS": "4", "OPENBLAS_CORETYPE": "Haswell"}
    env = worker_env({"HOME": "/root"}, threads=3, extra={"BENCH_REFERENCE_ROOT": "/tmp/x"})
    assert env["OPENBLAS_NUM_THREADS"] == "3" and env["OMP_NUM_THREADS"] == "3" and "OPENBLAS_CORETYPE" not in env
    assert env["BENCH_REFERENCE_ROOT"] == "/tmp/x" and KEEP_FREED_MEMORY.items() <= env.items()


def test_the_run_says_when_it_removed_a_pin():
    from benchmarks.__main__ import blas_note

    assert blas_note({}, None, False) is None
    line = blas_note({"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1"}, "why", False)
    assert "OPENBLAS_CORETYPE" in line and "OPENBLAS_L2_SIZE" in line and "--keep-blas-env" in line
    assert "as configured" in blas_note({}, "why", True)


# --- the GEMM floor -------------------------------------------------------------------------------------------

class CountingArray:
    """A shape that counts the FLOPs of every product it takes part in."""

    flops = 0.0

    def __init__(self, shape):
        self.shape = tuple(shape)

    @property
    def T(self):
        return CountingArray(self.shape[::-1])

    def __getitem__(self, t):
        return CountingArray(self.shape[1:])

    def reshape(self, *shape):
        n = int(np.prod(self.shape))
        return CountingArray(tuple(n // int(np.prod([s for s in shape if s != -1])) if s == -1 else s for s in shape))

    def __matmul__(self, other):
        (m, k), (k2, n) = self.shape, other.shape
        assert k == k2, (self.shape, other.shape)
        CountingArray.flops += 2.0 * m * k * n
        return CountingArray((m, n))


@pytest.mark.parametrize("cell, P", [("LSTM", 0), ("LSTM", 3), ("GRU", 0), ("RNN_TANH", 0)])
def test_the_floor_does_the_products_the_flop_count_names(cell, P):
    from benchmarks import floor
    from benchmarks.config import Row
    from benchmarks.measure import matmul_flops

    row = Row(cell, 7, 2, 5, 6, "float64", "cpu", P=P)
    a = floor.floor_arrays(row, CountingArray)
    for phase, fn in (("forward", floor.forward), ("backward", floor.backward)):
        CountingArray.flops = 0.0
        products = fn(a)
        assert CountingArray.flops == matmul_flops(row, phase), phase
        assert len(products) == floor.product_counts(row)[phase]


def test_the_floor_runs_on_numpy_with_the_reference_shapes():
    from benchmarks.config import Row
    from benchmarks.impls import prepare

    p = prepare("gemm-floor", Row("LSTM", 4, 3, 5, 6, "float32", "cpu", P=2))
    out = p.forward()
    assert out[0].shape == (12, 24) and out[1].shape == (3, 24) and out[2].shape == (3, 2)
    grads = p.backward(out)
    assert [g.shape for g in grads[-4:]] == [(12, 5), (24, 5), (24, 2), (2, 6)]  # dx, dW_ih, dW_hh, dW_hr
    assert p.results is None  # nothing to validate


# --- suites and usage -----------------------------------------------------------------------------------------

def test_the_gpu_suite_lists_cuda_rows_with_tf32_off_and_on():
    from benchmarks.config import suite

    s = suite("gpu")
    assert s.rows and all(r.device == "cuda" for r in s.rows)
    assert set(s.impls["cuda"]) >= {"torch-nn", "reference-torch", "torch-function", "torch-autograd", "gemm-floor"}
    assert s.impls["cuda"][0] == "torch-nn"
    f32 = [r for r in s.rows if r.dtype == "float32"]
    assert {r.tf32 for r in f32} == {False, True} and len(f32) == 2 * sum(not r.tf32 for r in f32)
    assert not any(r.tf32 for r in s.rows if r.dtype == "float64")
    assert {r.cell for r in s.rows} >= {"LSTM", "GRU", "RNN_TANH"}
    low = [r for r in s.rows if r.low_precision]  # cuDNN's bfloat16 and float16, validated by the envelope
    assert {r.dtype for r in low} == {"bfloat16", "float16"} and {r.cell for r in low} == {"LSTM", "GRU", "RNN_TANH"}
    assert not any(r.tf32 for r in low)


def test_the_small_and_scaling_suites_cover_their_ranges():
    from benchmarks.config import CELLS, DTYPES, suite

    small = suite("small").rows
    assert {(r.T, r.B, r.H) for r in small} == {(1000, b, h) for b in (1, 8) for h in (8, 64)}
    assert {r.cell for r in small} == {"LSTM", "GRU", "RNN_TANH"} and {r.dtype for r in small} == set(DTYPES)
    scaling = suite("scaling")
    assert scaling.phases == ("step",) and "gemm-floor" in scaling.impls["cpu"]
    rows = scaling.rows
    assert {r.cell for r in rows} == set(CELLS) and {r.dtype for r in rows} == set(DTYPES)
    for axis, lo, hi in (("T", 10, 1000), ("B", 1, 256), ("H", 32, 2048)):
        values = {getattr(r, axis) for r in rows}
        assert min(values) == lo and max(values) == hi, axis
    assert len(rows) == len(set(rows))  # the shared base point once


@pytest.mark.parametrize("argv, word", [(["--suite", "nope"], "suite"), (["--cells", "LSTMX"], "cell"),
                                        (["--devices", "tpu"], "device"), (["--dtypes", "int8"], "dtype")])
def test_unknown_choices_are_a_usage_error_listing_the_choices(argv, word, capsys):
    from benchmarks.__main__ import parse_args
    from benchmarks.config import ALL_DTYPES, CELLS, DEVICES, SUITES

    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    choices = {"suite": SUITES, "cell": CELLS, "device": DEVICES, "dtype": ALL_DTYPES}[word]
    assert f"unknown {word}" in err and all(c in err for c in choices), err


def test_the_gpu_suite_skips_cleanly_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the gpu suite would run for real")
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--suite", "gpu", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CUDA is not available" in proc.stdout and "nothing was timed" in proc.stdout, proc.stdout


def test_an_unknown_baseline_revision_is_a_usage_error(tmp_path):
    from benchmarks.__main__ import main

    assert main(["--suite", "smoke", "--baseline-ref", "no-such-revision-xyz", "--out", str(tmp_path)]) == 2


def test_the_baseline_worktree_holds_that_revision_and_is_removed():
    from benchmarks import baseline

    with baseline.worktree(ROOT, "HEAD") as (short, path):
        assert (path / "reference" / "__init__.py").exists()
        assert baseline.impl_name(short) == f"reference@{short}"
    assert not path.exists()
    listed = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True,
                            check=False).stdout
    assert str(path) not in listed


# --- validation ------------------------------------------------------------------------------------------------

def _relu_row_results(dtype: str):
    from benchmarks.config import Row
    from benchmarks.impls import as_numpy, prepare

    row = Row("RNN_RELU", 4, 3, 5, 6, dtype, "cpu")
    return row, as_numpy(prepare("torch-nn", row).results())


def test_a_relu_kink_flip_with_float64_agreement_is_accepted_and_named():
    from benchmarks.worker import _relu_kinks

    row, desired = _relu_row_results("float32")
    _, desired64 = _relu_row_results("float64")
    actual = {k: v.copy() for k, v in desired.items()}
    t, b, h = np.argwhere(desired["output"] > 0)[0]
    desired["output"][t, b, h] = 1e-8  # one pre-activation within rounding of 0, positive in torch ...
    actual["output"][t, b, h] = 0.0  # ... and not in the candidate ...
    actual["d_input"][t, b] += 1.0  # ... and the gradient that the jump of relu' carries
    got = _relu_kinks(row, actual, desired, desired64, desired64)
    assert got["valid"] and "1 relu kink flip" in got["status"], got
    wrong64 = {k: v.copy() for k, v in desired64.items()}
    wrong64["d_input"][0, 0] += 1.0
    assert _relu_kinks(row, actual, desired, wrong64, desired64) == {}  # float64 must agree too


def test_a_gradient_mismatch_without_a_kink_flip_stays_a_mismatch():
    from benchmarks.worker import _relu_kinks

    row, desired = _relu_row_results("float32")
    _, desired64 = _relu_row_results("float64")
    actual = {k: v.copy() for k, v in desired.items()}
    actual["d_input"][0, 0] += 1.0  # a wrong gradient with every relu on the same side
    assert _relu_kinks(row, actual, desired, desired64, desired64) == {}


def test_validation_reads_the_reference_tolerance_table(monkeypatch):
    import reference.tolerances
    from benchmarks.worker import compare

    a = {"output": np.ones(3), "d_x": np.ones(3)}
    d = {"output": np.ones(3) + 1e-9, "d_x": np.ones(3)}
    assert compare(a, d, "float64", "cpu")["valid"] is False  # 1e-9 is over the table's float64 budget
    monkeypatch.setattr(reference.tolerances, "tol", lambda dtype, device, kind: (1e-6, 0.0))
    assert compare(a, d, "float64", "cpu")["valid"] is True
    sources = "".join(p.read_text() for p in (ROOT / "benchmarks").glob("*.py"))
    assert "parity_tests" not in sources


def test_jax_row_validates_against_torch_nn():
    pytest.importorskip("jax")
    from benchmarks.config import Row
    from benchmarks.impls import as_numpy, prepare
    from benchmarks.worker import compare

    for cell in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"):
        row = Row(cell, 5, 3, 4, 6, "float64", "cpu")
        got = compare(as_numpy(prepare("jax", row).results()), as_numpy(prepare("torch-nn", row).results()),
                      "float64", "cpu")
        assert got["valid"], (cell, got)



@pytest.mark.parametrize("impl", ["torch-function", "torch-autograd", "reference-torch"])
def test_the_torch_rows_validate_against_torch_nn(impl):
    """The rows the gpu suite times on CUDA, validated here on the CPU: the hand-written
    BPTT as an autograd Function, autograd through the core's forward, the core on tensors."""
    pytest.importorskip("torch")
    from benchmarks.config import Row
    from benchmarks.impls import as_numpy, prepare
    from benchmarks.worker import compare

    for cell, P in (("LSTM", 0), ("LSTM", 2), ("GRU", 0), ("RNN_TANH", 0)):
        row = Row(cell, 5, 3, 4, 6, "float64", "cpu", P=P)
        got = compare(as_numpy(prepare(impl, row).results()), as_numpy(prepare("torch-nn", row).results()),
                      "float64", "cpu")
        assert got["valid"], (impl, cell, P, got)

# --- timing, memory, progress ----------------------------------------------------------------------------------

def test_rows_are_timed_side_by_side_in_rounds_and_pooled(monkeypatch, tmp_path):
    """Row by row, each implementation in turn, once per round; the rounds' samples pooled."""
    from benchmarks import runner
    from benchmarks.config import Row

    jobs = []

    class FakeWorker:
        def __init__(self, env):
            self.proc = type("P", (), {"poll": staticmethod(lambda: None)})()

        def run(self, job):
            jobs.append((job["row"]["H"], job["impl"], job["repeat"], job["memory"]))
            k = sum(1 for j in jobs if j[:2] == jobs[-1][:2])  # this (row, impl)'s round, from 1
            yield {"type": "time", "impl": job["impl"], "row": job["row"],
                   "times_ms": {"forward": [float(k)] * job["repeat"]}}

        def close(self):
            pass

    monkeypatch.setattr(runner, "Worker", FakeWorker)
    monkeypatch.setattr(runner, "SETTLE_S", 0.0)
    rows = [Row("GRU", 2, 1, 3, H, "float64", "cpu") for H in (4, 5)]
    impls = ("torch-nn", "reference", "gemm-floor")
    valid = {(i, r): {"valid": True} for i in impls for r in rows}
    session = runner.Session(1, {}, workdir=tmp_path)
    timed = runner.time_all(session, rows, lambda r: impls, valid, repeat=5, rounds=3, on_record=lambda rec: None)
    expected = [(r.H, i, 2, k == 0) for r in rows for k in range(3) for i in impls]  # ceil(5 / 3) = 2 per round
    assert jobs == expected
    pooled = timed[(impls[0], rows[0])]
    assert pooled["rounds"] == 3 and pooled["phases"]["forward"]["repeats"] == 6
    assert pooled["phases"]["forward"]["ms"] == 2.0  # the median of 1, 1, 2, 2, 3, 3


def test_an_invalid_row_is_never_timed(monkeypatch, tmp_path):
    from benchmarks import runner
    from benchmarks.config import Row

    timed_impls = []

    class FakeWorker:
        def __init__(self, env):
            self.proc = type("P", (), {"poll": staticmethod(lambda: None)})()

        def run(self, job):
            timed_impls.append(job["impl"])
            yield {"type": "time", "impl": job["impl"], "row": job["row"], "times_ms": {"step": [1.0]}}

    monkeypatch.setattr(runner, "Worker", FakeWorker)
    monkeypatch.setattr(runner, "SETTLE_S", 0.0)
    row = Row("GRU", 2, 1, 3, 4, "float64", "cpu")
    valid = {("torch-nn", row): {"valid": True}, ("reference", row): {"valid": False, "status": "mismatch: x"}}
    session = runner.Session(1, {}, workdir=tmp_path)
    timed = runner.time_all(session, [row], lambda r: ("torch-nn", "reference"), valid, 1, 1, lambda rec: None)
    assert timed_impls == ["torch-nn"]
    results = runner.result_rows([row], lambda r: ("torch-nn", "reference"), valid, timed, {})
    ref = [r for r in results if r["impl"] == "reference"]
    assert len(ref) == 1 and ref[0]["phase"] is None and ref[0]["status"] == "mismatch: x"


def test_step_memory_sees_what_one_step_allocates():
    from benchmarks.measure import reset_peak_rss, step_memory

    if not reset_peak_rss():
        pytest.skip("this kernel cannot reset the resident high-water mark")
    mib = 2 ** 20

    def run(_):
        a = np.ones(64 * mib // 8)  # 64 MiB, every page touched
        return float(a.sum())

    got = step_memory(lambda: np.ones(16 * mib // 8), run)
    assert got["step_peak_rss_bytes"] >= 56 * mib, got
    assert got["setup_rss_bytes"] >= 12 * mib, got


def test_progress_eta_scales_the_estimate_by_the_observed_rate():
    from benchmarks.config import Row
    from benchmarks.progress import Progress, job_cost

    p = Progress(total_cost=100.0, total_rows=4, stream=io.StringIO())
    assert p.eta(5.0) is None
    p.advance(25.0, rows=1)
    assert p.eta(10.0) == pytest.approx(30.0, rel=1e-12, abs=0)  # a quarter done in 10 s: 30 s left
    assert "1/4 rows, 25%" in p.stream.getvalue() and "ETA" in p.stream.getvalue()
    p.close()
    assert p.stream.getvalue().splitlines()[-1].startswith("[done] 1/4 rows in")
    small, big = Row("LSTM", 10, 1, 8, 8, "float32", "cpu"), Row("LSTM", 100, 64, 1024, 1024, "float32", "cpu")
    assert job_cost(big, ("step",), 2) > 100 * job_cost(small, ("step",), 2)


def test_the_call_counter_counts_every_library_call_of_a_step():
    """benchmarks.calls: known calls are counted exactly, and the reference's per-step
    counts are whole numbers (what does not grow with T cancels; the pairwise bias sum,
    which grows like log T, leaves a few hundredths)."""
    import numpy as np

    from benchmarks import calls

    with calls.counting() as counted:
        a = np.zeros((2, 3))  # a constructor: not counted, but its array is
        b = np.tanh(a) * a + 1  # tanh, multiply, add
        np.concatenate([a, b])  # one dispatched function
        b[0] = 5.0  # item assignment: not a library call
    assert dict(counted) == {"tanh": 1, "multiply": 1, "add": 1, "concatenate": 1}
    assert np.zeros is not calls.Counted and not isinstance(np.zeros(1), calls.Counted), "constructors restored"
    lstm = calls.per_step("LSTM")
    from reference.activations import sigmoid

    assert type(sigmoid(np, np.zeros(2))) is np.ndarray, "nothing counted outlives the block (the core's cached 1)"
    for phase in ("forward", "backward"):
        assert lstm[phase]["total"] > 0 and abs(lstm[phase]["total"] - round(lstm[phase]["total"])) < 0.1, lstm
    assert lstm["forward"]["by_name"]["matmul"] == 1 and lstm["backward"]["by_name"]["matmul"] == 1, lstm



def test_ab_loads_two_revisions_side_by_side_in_one_process():
    """benchmarks.ab imports a second ``reference`` under another name and times both on the
    same arrays: here this tree against itself, on one tiny row."""
    import reference
    from benchmarks import ab
    from benchmarks.config import Row

    twin = ab.load_reference(ROOT, "reference_twin_for_test")
    assert twin.__name__ == "reference_twin_for_test" and twin.LSTM is not reference.LSTM
    got = ab.compare(reference, twin, Row("GRU", 4, 2, 3, 5, "float64", "cpu"), reps=2)
    assert got["new_ms"] > 0 and got["old_ms"] > 0 and got["ratio"] > 0
