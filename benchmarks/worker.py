"""Jobs in their own process: check (probe the machine, compute the desired results),
validate one implementation, or time it on one row.

    python -m benchmarks.worker < jobs.jsonl      # one job per line in; one JSON record per line out

The runner sets the BLAS/OpenMP thread variables (and, where a lower OpenBLAS core is
pinned, removes the pin) in this process's environment before Python starts, so they
hold before NumPy or torch is imported; torch's intra-op pool is set here to the same
count. An implementation validates in the very process that then times it, so a
kernel that computes wrong results is caught there. With BENCH_REFERENCE_ROOT set
(--baseline-ref), ``reference`` is imported from that directory in this process only.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import traceback
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")
REFERENCE_ROOT_VAR = "BENCH_REFERENCE_ROOT"


def emit(record: dict) -> None:
    print(json.dumps(record, default=str), flush=True)


def _torch(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


def uses_torch(impl: str, device: str) -> bool:
    """NumPy-only implementations never import torch (its idle threads would share the cores)."""
    base = impl.split("@")[0]
    return not (base == "reference" or base == "jax" or (base == "gemm-floor" and device == "cpu"))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas() -> str:
    import numpy as np

    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{cfg.get('name')} {cfg.get('version')}"
    except Exception:  # noqa: BLE001 -- older NumPy has no mode="dicts"
        return "unknown"


def desired_file(directory: str, row) -> Path:
    """Where the check process leaves a row's desired results (TF32 rows share their TF32-off file)."""
    key = json.dumps({**row.as_dict(), "tf32": False}, sort_keys=True)
    return Path(directory) / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"


def probe(job: dict) -> None:
    """The machine's environment block, and the matrix-product peak per (device, dtype)."""
    import numpy as np

    from .kernel import low_precision_capability, process_block, read_cpuinfo
    from .measure import matmul_peak

    torch = _torch(job["threads"])
    cuda = torch.cuda.is_available()
    env = {"python": sys.version.split()[0], "platform": platform.platform(), "cpu_model": _cpu_model(),
           "cpu_count": os.cpu_count(), "numpy": np.__version__, "numpy_blas": _blas(), "torch": torch.__version__,
           "torch_blas": "MKL" if torch.backends.mkl.is_available() else "other",
           "torch_threads": torch.get_num_threads(),
           # float32 nn.RNN/GRU/LSTM on the CPU run oneDNN's fused RNN kernels when this is on
           "torch_cpu_onednn_rnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
           "thread_env": {k: os.environ.get(k) for k in THREAD_VARS},
           # the C allocator's settings (see runner.KEEP_FREED_MEMORY). LSTM T100 B64 H512 float32,
           # medians of 3: torch.nn step 509 ms with glibc as is, 435 ms keeping freed memory;
           # the reference 590 and 582 ms. GRU H256 float64 forward: the reference 148 and 97 ms.
           "allocator_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "LD_PRELOAD"},
           "cuda_available": cuda, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if cuda else None,
           "gpu": torch.cuda.get_device_name(0) if cuda else None,
           "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
           # what a bfloat16 or float16 row can use on this CPU (kernel.LOW_PRECISION_FLAGS)
           "cpu_low_precision": low_precision_capability(read_cpuinfo(), torch.backends.cpu.get_cpu_capability()),
           "check_process": process_block(torch_loaded=True)}
    emit({"type": "env", "env": env})
    for device, dtype in job["peaks"]:
        if device == "cuda" and not cuda:
            continue
        emit({"type": "peak", "device": device, "dtype": dtype, **matmul_peak(device, dtype)})


def _set_tf32(on: bool) -> dict | None:
    """TF32 for CUDA products and cuDNN; returns the setting now in force (None without torch)."""
    if "torch" not in sys.modules:
        return None
    import torch

    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    return {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}


def desired(job: dict) -> None:
    """torch.nn's results per row (TF32 off), saved for the workers to validate against; for CUDA
    rows also the reference's on the CPU (what torch.nn on CUDA is checked against); for float32
    relu rows also the float64 results (see _relu_kinks)."""
    import numpy as np

    from .config import BASELINE, Row
    from .impls import Unavailable, as_numpy, prepare

    _set_tf32(False)
    for item in job["rows"]:
        row = Row(**item)
        path = desired_file(job["dir"], row)
        rec = {"type": "desired", "row": row.as_dict()}
        if not path.exists() and not row.low_precision:  # those are judged against the envelope instead
            try:
                arrays = {f"nn__{k}": v for k, v in as_numpy(prepare(BASELINE, row).results()).items()}
                if row.device != "cpu":
                    cpu = Row(**{**row.as_dict(), "device": "cpu", "tf32": False})
                    arrays.update({f"cpu__{k}": v for k, v in as_numpy(prepare("reference", cpu).results()).items()})
                if row.cell == "RNN_RELU" and row.dtype == "float32":
                    row64 = Row(**{**row.as_dict(), "dtype": "float64", "tf32": False})
                    arrays.update({f"f64__{k}": v for k, v in as_numpy(prepare(BASELINE, row64).results()).items()})
                np.savez(path, **arrays)
            except Unavailable as e:
                rec["error"] = f"unavailable: {e}"
            except Exception as e:  # noqa: BLE001 -- the row's status, not a crash
                rec["error"] = f"error: {type(e).__name__}: {e}"
        emit(rec)


def check(job: dict) -> None:
    """probe then the desired results, in one process (each interpreter start with torch costs seconds)."""
    probe(job)
    desired(job)


def compare(actual: dict, desired: dict, dtype: str, device: str) -> dict:
    """Per tensor, the tolerance table's rule: passes when max|a - d| <= atol + rtol * max|d|
    (``reference.tolerances``, never the parity tests'); reports the worst norm-wise relative error."""
    import numpy as np

    from reference import tolerances

    worst, failed = 0.0, []
    for name, d in desired.items():
        a = actual.get(name)
        kind = "forward" if name in ("output", "h_n", "c_n") else "gradient"
        rtol, atol = tolerances.tol(dtype, device, kind)
        if a is None or np.shape(a) != np.shape(d):
            failed.append(f"{name}: missing or shape {np.shape(a)} != {np.shape(d)}")
            continue
        a64, d64 = np.asarray(a, np.float64), np.asarray(d, np.float64)
        if hasattr(tolerances, "compare_arrays"):
            ok, _, rel = tolerances.compare_arrays(a64, d64, rtol, atol)
        else:  # the same rule, in a reference that predates compare_arrays (--baseline-ref)
            err, scale = float(np.abs(a64 - d64).max(initial=0)), float(np.abs(d64).max(initial=0))
            ok, rel = err <= atol + rtol * scale, (err / scale if scale > 0 else err)
        worst = max(worst, float(rel))
        if not ok:
            failed.append(f"{name}: relative error {float(rel):.2e} > rtol {rtol:.0e}")
    return {"valid": not failed, "max_rel_error": worst, "failures": failed}


def _relu_kinks(row, actual: dict, desired: dict, actual64: dict | None, desired64: dict | None) -> dict:
    """A float32 relu RNN whose gradients differ from torch's only because some
    pre-activation within rounding of 0 came out positive in one and zero in the
    other (a "kink flip": relu' jumps there, so that one element of dL/dpre differs
    by the whole incoming gradient). Accepted only when the outputs agree, such a
    flip is seen, and the same row validates in float64 (``actual64`` against
    ``desired64``), where flips do not occur. Returns the fields to update; nothing
    when the mismatch is not of this kind."""
    if row.cell != "RNN_RELU" or row.dtype != "float32" or actual64 is None or desired64 is None:
        return {}
    flips = int(((actual["output"] > 0) != (desired["output"] > 0)).sum())
    forward = compare({"output": actual["output"]}, {"output": desired["output"]}, row.dtype, row.device)
    if not flips or not forward["valid"]:
        return {}
    check64 = compare(actual64, desired64, "float64", row.device)
    if not check64["valid"]:
        return {}
    return {"valid": True, "status": f"ok: float32 gradients differ at {flips} relu kink flip(s); "
                                     f"float64 agrees ({check64['max_rel_error']:.1e})"}


def _validate_row(impl: str, row, saved: dict) -> dict:
    """One implementation on one row against the saved results (TF32 off)."""
    from .config import BASELINE, FLOOR, Row
    from .impls import as_numpy, prepare

    def part(prefix):
        return {k[len(prefix):]: v for k, v in saved.items() if k.startswith(prefix)}

    if row.low_precision:
        return _validate_low_precision(impl, row)
    if impl == BASELINE and row.device == "cpu":
        return {"valid": True, "status": "baseline", "max_rel_error": 0.0}
    if impl == FLOOR:
        prepare(impl, row)  # it builds on this device
        return {"valid": True, "status": "floor: matrix products only, nothing to validate"}
    _set_tf32(False)
    if impl == BASELINE:  # torch.nn on CUDA against the reference on the CPU
        rec = compare(as_numpy(prepare(impl, row).results()), part("cpu__"), row.dtype, row.device)
    else:
        actual = as_numpy(prepare(impl, row).results())
        rec = compare(actual, part("nn__"), row.dtype, row.device)
        if not rec["valid"] and row.cell == "RNN_RELU" and row.dtype == "float32":
            row64 = Row(**{**row.as_dict(), "dtype": "float64", "tf32": False})
            rec.update(_relu_kinks(row, actual, part("nn__"), as_numpy(prepare(impl, row64).results()),
                                   part("f64__")))
    if rec["valid"] and row.tf32:  # what TF32 changes, recorded; the row was validated with it off
        _set_tf32(True)
        reference = part("cpu__") if impl == BASELINE else part("nn__")
        rec["tf32_max_rel_error"] = compare(as_numpy(prepare(impl, row).results()), reference,
                                            row.dtype, row.device)["max_rel_error"]
        _set_tf32(False)
    return rec


def _validate_low_precision(impl: str, row) -> dict:
    """A bfloat16 or float16 row: the implementation's own object against the rounding envelope
    (envelope_check.py), torch.nn included (it is no baseline here: it is judged like the others)."""
    from .envelope_check import judge
    from .impls import Unavailable, prepare

    candidate = prepare(impl, row).candidate
    if candidate is None:
        raise Unavailable(f"{impl} has nothing compare() can judge at {row.dtype}")
    return judge(candidate, row)


def validate(job: dict) -> None:
    """Every row for one implementation, in this process, before it times anything; then
    this process's kernel block (what NumPy's BLAS and torch loaded here)."""
    import numpy as np

    from .config import Row
    from .impls import Unavailable
    from .kernel import process_block

    impl = job["impl"]
    for item in job["rows"]:
        row = Row(**item)
        if uses_torch(impl, row.device):
            _torch(job["threads"])
        rec = {"type": "valid", "impl": impl, "row": row.as_dict()}
        path = desired_file(job["dir"], row)
        try:
            saved = {}
            if not row.low_precision:
                if not path.exists():
                    raise Unavailable(job["desired_errors"].get(row.name, "no desired results"))
                with np.load(path) as f:
                    saved = dict(f)
            rec.update(_validate_row(impl, row, saved))
            rec["status"] = rec.get("status") or ("ok" if rec["valid"] else
                                                  "mismatch: " + "; ".join(rec.get("failures", [])))
        except Unavailable as e:
            rec.update(valid=False, status=f"unavailable: {e}")
        except Exception as e:  # noqa: BLE001 -- a failing implementation is a row's status, not a crash
            rec.update(valid=False, status=f"error: {type(e).__name__}: {e}", traceback=traceback.format_exc(limit=3))
        emit(rec)
    block = process_block(torch_loaded="torch" in sys.modules)
    if "jax" in sys.modules:
        block["jax"] = sys.modules["jax"].__version__
    if os.environ.get(REFERENCE_ROOT_VAR):
        block["reference_root"] = os.environ[REFERENCE_ROOT_VAR]
    emit({"type": "process", "impl": impl, "env": block})


def time_impl(job: dict) -> None:
    """Time one implementation on one row: the suite's phases. Emits the raw times (ms)
    per phase, which the runner pools over rounds; with ``memory``, after timing, the
    peak resident memory of one forward + backward (measure.step_memory) and, for the
    reference, what its tape keeps and the forward's traced peak."""
    from .config import PHASES, Row
    from .impls import prepare
    from .measure import (
        arrays_in,
        min_activation_bytes,
        peak_traced_bytes,
        retained_bytes,
        step_memory,
        time_calls,
    )

    impl, repeat, row = job["impl"], job["repeat"], Row(**job["row"])
    phases = [ph for ph in job.get("phases", PHASES) if ph == "inference" or not row.inference_only]
    torch = _torch(job["threads"]) if uses_torch(impl, row.device) else None
    rec = {"type": "time", "impl": impl, "row": row.as_dict(), "times_ms": {}}
    try:
        if torch is not None and row.device == "cuda":
            rec["tf32"] = _set_tf32(row.tf32)
        p = prepare(impl, row)
        fwd = None if row.inference_only else p.forward()
        calls = {"inference": p.infer, "forward": p.forward, "backward": lambda: p.backward(fwd),
                 "step": p.step or (lambda: p.backward(p.forward()))}
        for k, phase in enumerate(phases):  # the first phase settles threads and allocator; then 1 call + 50 ms
            times = time_calls(calls[phase], p.sync, repeat, warmup_s=0.25 if k == 0 else 0.05)
            rec["times_ms"][phase] = [t * 1e3 for t in times]
        if job.get("memory") and p.tape is not None and fwd is not None:  # the reference on NumPy
            caller = arrays_in(p.caller)
            rec["tape_bytes"] = retained_bytes(p.tape(fwd), exclude=tuple(caller), skip_objects=p.caller[:1])
            rec["forward_peak_bytes"] = peak_traced_bytes(p.forward)
            rec["min_activation_bytes"] = min_activation_bytes(row)
        if job.get("memory"):
            del p, fwd, calls
            run = (lambda q: q.infer()) if row.inference_only else (lambda q: q.backward(q.forward()))
            if torch is not None and row.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            rec.update(step_memory(lambda: prepare(impl, row), run))
            if torch is not None and row.device == "cuda":
                rec["cuda_max_memory_bytes"] = torch.cuda.max_memory_allocated()
    except Exception as e:  # noqa: BLE001 -- reported in the row, the other rows still run
        rec["error"] = f"{type(e).__name__}: {e}"
    finally:
        _set_tf32(False)
    emit(rec)


JOBS = {"check": check, "validate": validate, "time": time_impl}


def main() -> None:
    """Jobs arrive one JSON object per line; each ends with a "done" record. EOF ends the process."""
    root = os.environ.get(REFERENCE_ROOT_VAR)
    if root:  # --baseline-ref: this process's `reference` is that revision's
        sys.path.insert(0, root)
    for line in sys.stdin:
        if line.strip():
            job = json.loads(line)
            JOBS[job["kind"]](job)
            emit({"type": "done"})


if __name__ == "__main__":
    main()
