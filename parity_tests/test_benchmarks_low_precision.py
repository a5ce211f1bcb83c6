"""The benchmarks' bfloat16 and float16 rows: which suites have them, who runs them, how they are
validated before timing (the rounding envelope, which must be able to fail), and the CPU capability
the results record. One tiny configuration; compare() judges it in seconds.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from benchmarks.config import CELLS, Row, suite

TINY = Row("LSTM", 3, 2, 4, 5, "bfloat16", "cpu")


def test_the_goals_and_full_suites_have_bfloat16_rows_beside_float32_and_full_has_float16():
    goals = suite("goals").rows
    for H in (256, 512):
        shape = {(r.cell, r.dtype) for r in goals if (r.T, r.B, r.I, r.H) == (100, 64, H, H)}
        assert shape >= {(c, d) for c in CELLS for d in ("float32", "bfloat16")}, H
    full = {(r.cell, r.H, r.dtype) for r in suite("full").rows}
    assert {(c, H, "bfloat16") for c in CELLS for H in (128, 256, 512)} <= full
    assert {(c, 128, "float16") for c in CELLS} <= full
    assert any(r.dtype == "bfloat16" for r in suite("quick").rows)


@pytest.mark.parametrize("impl", ["reference", "gemm-floor", "reference-torch", "jax"])
def test_implementations_without_a_bfloat16_kernel_say_so_instead_of_running(impl):
    from benchmarks.impls import Unavailable, prepare

    with pytest.raises(Unavailable, match="bfloat16 rows run torch implementations only"):
        prepare(impl, TINY)


def test_torch_implementations_run_a_bfloat16_row_in_bfloat16():
    from benchmarks.impls import prepare

    for impl in ("torch-nn", "torch-function"):
        p = prepare(impl, TINY)
        out = p.forward()
        assert out[0].dtype == torch.bfloat16, impl
        assert p.candidate is not None, impl  # what the envelope judges


class _Scaled(torch.nn.LSTM):
    """A planted bug: torch's LSTM whose output is 5% too large."""

    def forward(self, input, hx=None):
        out, hidden = super().forward(input, hx)
        return out * 1.05, hidden


def _validation(monkeypatch, module_class):
    """worker's validation of torch-nn at TINY, with torch-nn's module built from ``module_class``."""
    from benchmarks import impls, worker

    def prepare_planted(row):
        module = module_class(row.I, row.H).to(torch.bfloat16)
        return impls.Prepared(None, None, None, None, None, candidate=module)

    monkeypatch.setitem(impls.PREPARE, "torch-nn", prepare_planted)
    return worker._validate_row("torch-nn", TINY, {})


def test_a_correct_bfloat16_module_validates_against_the_envelope(monkeypatch):
    rec = _validation(monkeypatch, torch.nn.LSTM)
    assert rec["valid"] and rec["status"].startswith("ok: MATCH at bfloat16"), rec
    assert 0 < rec["envelope_multiple"] <= 1 and rec["validated_at"] == "T5 B8" and rec["validation_s"] >= 0


class _Session:
    """A runner session whose workers record the jobs they are sent instead of running them."""

    threads = 1

    def __init__(self):
        self.jobs: list[dict] = []

    def worker(self, impl):
        session = self

        class Worker:
            def run(self, job):
                session.jobs.append(job)
                yield {"type": "time", "impl": impl, "row": job["row"], "times_ms": {"step": [1.0]}}

        return Worker()


def test_a_planted_bug_fails_validation_and_is_not_timed(monkeypatch):
    from benchmarks import runner

    rec = _validation(monkeypatch, _Scaled)
    assert not rec["valid"] and rec["status"].startswith("mismatch: MISMATCH at bfloat16"), rec
    assert "output leaves the envelope" in rec["status"] and rec["envelope_multiple"] > 1
    session = _Session()
    valid = {("torch-nn", TINY): rec, ("torch-function", TINY): {"valid": True}}
    timed = runner.time_all(session, [TINY], lambda r: ("torch-nn", "torch-function"), valid, 1, 1,
                            lambda rec: None, ("step",))
    assert [job["impl"] for job in session.jobs] == ["torch-function"]
    assert ("torch-nn", TINY) not in timed


# --- the CPU's low-precision capability ---------------------------------------------------------------------------

X86 = "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n"


@pytest.mark.parametrize("cpuinfo, expected", [
    (X86, {"avx512_bf16": "yes", "amx_bf16": "no", "amx_tile": "yes", "avx512_fp16": "no"}),
    (None, dict.fromkeys(("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16"), "unknown")),  # no /proc/cpuinfo
    ("processor\t: 0\nFeatures\t: fp asimd bf16\n",  # Arm: no x86 flags line to read them from
     dict.fromkeys(("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16"), "unknown")),
])
def test_the_low_precision_capability_is_read_from_cpuinfo(cpuinfo, expected):
    from benchmarks.kernel import low_precision_capability

    cap = low_precision_capability(cpuinfo, "AVX512")
    assert cap == {**expected, "torch_cpu_capability": "AVX512"}
    assert low_precision_capability(cpuinfo, None)["torch_cpu_capability"] == "unknown"


def _doc(nn32: float, nn16: float) -> dict:
    """A results file's essentials: torch.nn's phases in float32 and bfloat16 on one shape."""
    def records(dtype, ms, extra):
        return [{"cell": "LSTM", "T": 100, "B": 64, "I": 256, "H": 256, "P": 0, "dtype": dtype, "device": "cpu",
                 "impl": "torch-nn", "phase": ph, "ms": ms * k, "status": "ok", "spread": 0.01, **extra}
                for ph, k in (("forward", 0.4), ("backward", 0.6), ("step", 1.0))]
    validation = {"envelope_multiple": 0.2, "validated_at": "T5 B8", "validation_s": 30.0}
    cap = {"avx512_bf16": "yes", "amx_bf16": "no", "amx_tile": "no", "avx512_fp16": "no",
           "torch_cpu_capability": "AVX512"}
    return {"settings": {"suite": "goals", "threads": 2}, "environment": {"cpu_low_precision": cap},
            "rows": records("float32", nn32, {}) + records("bfloat16", nn16, validation)}


def test_the_precision_view_sets_bfloat16_beside_float32_and_names_the_capability():
    from benchmarks.report import markdown

    table = markdown(_doc(200.0, 100.0), view="precision")
    line = next(ln for ln in table.split("\n") if ln.startswith("| LSTM"))
    assert line.split(" | ")[1:4] == ["200.0", "100.0", "0.50"], line
    assert "0.2x at T5 B8, 30 s" in line
    assert "CPU low precision: avx512_bf16 yes, amx_bf16 no, amx_tile no, avx512_fp16 no; torch CPU capability " \
           "AVX512" in table
