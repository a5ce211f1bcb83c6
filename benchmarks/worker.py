"""Jobs in their own process: check (probe the machine, then validate) or time one implementation on one row.

    python -m benchmarks.worker < jobs.jsonl      # one job per line in; one JSON record per line out

The runner sets the BLAS/OpenMP thread variables in this process's environment
before Python starts, so they hold before NumPy or torch is imported; torch's
intra-op pool is set here to the same count.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import traceback

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def _torch(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


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


def probe(job: dict) -> None:
    """The environment block, and the matrix-product peak per (device, dtype)."""
    import numpy as np

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
           "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32}
    emit({"type": "env", "env": env})
    for device, dtype in job["peaks"]:
        if device == "cuda" and not cuda:
            continue
        emit({"type": "peak", "device": device, "dtype": dtype, **matmul_peak(device, dtype)})


def _tolerance(dtype: str, device: str, kind: str) -> tuple[float, float]:
    try:  # the suite's one table, when the parity tests are importable (a source checkout)
        from parity_tests.tolerances import tol
    except ImportError:  # installed without the tests: the same budgets as that table's CPU rows
        return {("float64", "forward"): (1e-13, 1e-15), ("float64", "gradient"): (1e-13, 1e-15),
                ("float32", "forward"): (1e-5, 1e-6), ("float32", "gradient"): (3e-5, 1e-6)}[(dtype, kind)]
    return tol(dtype, device, kind)


def compare(actual: dict, desired: dict, dtype: str, device: str) -> dict:
    """Norm-wise relative error per tensor; passes when max|a - d| <= atol + rtol * max|d|."""
    import numpy as np

    worst, failed = 0.0, []
    for name, d in desired.items():
        a = actual.get(name)
        kind = "forward" if name in ("output", "h_n", "c_n") else "gradient"
        rtol, atol = _tolerance(dtype, device, kind)
        if a is None or np.shape(a) != np.shape(d):
            failed.append(f"{name}: missing or shape {np.shape(a)} != {np.shape(d)}")
            continue
        a64, d64 = np.asarray(a, np.float64), np.asarray(d, np.float64)
        err, scale = float(np.abs(a64 - d64).max(initial=0)), float(np.abs(d64).max(initial=0))
        rel = err / scale if scale > 0 else err
        worst = max(worst, rel)
        if not err <= atol + rtol * scale:
            failed.append(f"{name}: relative error {rel:.2e} > rtol {rtol:.0e}")
    return {"valid": not failed, "max_rel_error": worst, "failures": failed}


def _relu_kinks(impl: str, row, actual: dict, desired: dict) -> dict:
    """A float32 relu RNN whose gradients differ from torch's only because some
    pre-activation within rounding of 0 came out positive in one and zero in the
    other (a "kink flip": relu' jumps there, so that one element of dL/dpre differs
    by the whole incoming gradient). Accepted only when the outputs agree, such a
    flip is seen, and the same row validates in float64, where flips do not occur.
    Returns the fields to update; nothing when the mismatch is not of this kind."""
    from .config import BASELINE, Row
    from .impls import as_numpy, prepare

    if row.cell != "RNN_RELU" or row.dtype != "float32":
        return {}
    flips = int(((actual["output"] > 0) != (desired["output"] > 0)).sum())
    forward = compare({"output": actual["output"]}, {"output": desired["output"]}, row.dtype, row.device)
    if not flips or not forward["valid"]:
        return {}
    row64 = Row(**{**row.as_dict(), "dtype": "float64"})
    check64 = compare(as_numpy(prepare(impl, row64).results()), as_numpy(prepare(BASELINE, row64).results()),
                      "float64", row.device)
    if not check64["valid"]:
        return {}
    return {"valid": True, "status": f"ok: float32 gradients differ at {flips} relu kink flip(s); "
                                     f"float64 agrees ({check64['max_rel_error']:.1e})"}


def validate(job: dict) -> None:
    """Every implementation of every row against torch.nn on the row's device
    (torch.nn on CUDA against the reference on the CPU)."""
    from .config import BASELINE, Row
    from .impls import Unavailable, as_numpy, prepare

    _torch(job["threads"])
    for item in job["items"]:
        row, impls = Row(**item["row"]), item["impls"]
        try:
            desired = as_numpy(prepare(BASELINE, row).results())
        except Unavailable as e:
            for impl in impls:
                emit({"type": "valid", "impl": impl, "row": row.as_dict(), "valid": False, "status": f"unavailable: {e}"})
            continue
        for impl in impls:
            rec = {"type": "valid", "impl": impl, "row": row.as_dict()}
            try:
                if impl == BASELINE and row.device == "cpu":
                    rec.update(valid=True, status="baseline", max_rel_error=0.0)
                elif impl == BASELINE:
                    ref = as_numpy(prepare("reference", Row(**{**row.as_dict(), "device": "cpu"})).results())
                    rec.update(compare(desired, ref, row.dtype, row.device))
                else:
                    actual = as_numpy(prepare(impl, row).results())
                    rec.update(compare(actual, desired, row.dtype, row.device))
                    if not rec["valid"]:
                        rec.update(_relu_kinks(impl, row, actual, desired))
                rec["status"] = rec.get("status") or ("ok" if rec["valid"] else
                                                      "mismatch: " + "; ".join(rec.get("failures", [])))
            except Unavailable as e:
                rec.update(valid=False, status=f"unavailable: {e}")
            except Exception as e:  # noqa: BLE001 -- a failing implementation is a row's status, not a crash
                rec.update(valid=False, status=f"error: {type(e).__name__}: {e}",
                           traceback=traceback.format_exc(limit=3))
            emit(rec)


def time_impl(job: dict) -> None:
    """Time one implementation on one row: inference, forward, backward, step. Emits
    the raw times (ms) per phase, which the runner pools over rounds; with
    ``memory`` also what the reference's tape keeps and the forward's peak."""
    from .config import Row
    from .impls import prepare
    from .measure import min_activation_bytes, peak_traced_bytes, retained_bytes, time_calls

    impl, repeat, row = job["impl"], job["repeat"], Row(**job["row"])
    torch = None if impl == "reference" else _torch(job["threads"])
    rec = {"type": "time", "impl": impl, "row": row.as_dict(), "times_ms": {}}
    try:
        p = prepare(impl, row)
        calls = {"inference": p.infer}
        if not row.inference_only:
            fwd = p.forward()
            calls.update(forward=p.forward, backward=lambda: p.backward(fwd), step=lambda: p.backward(p.forward()))
        for phase, call in calls.items():
            rec["times_ms"][phase] = [t * 1e3 for t in time_calls(call, p.sync, repeat)]
        if job.get("memory") and p.tape is not None and not row.inference_only:  # the reference
            tape = p.tape(fwd)
            layer = tape.layers[0][0]  # one layer, one direction
            inputs = [layer.x, *(w for w in layer.weights if w is not None)]  # the caller's, not the tape's
            rec["tape_bytes"] = retained_bytes(tape, exclude=tuple(inputs))
            rec["forward_peak_bytes"] = peak_traced_bytes(p.forward)
            rec["min_activation_bytes"] = min_activation_bytes(row)
        if torch is not None and row.device == "cuda":
            rec["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
            rec["cuda_max_memory_bytes"] = torch.cuda.max_memory_allocated()
    except Exception as e:  # noqa: BLE001 -- reported in the row, the other rows still run
        rec["error"] = f"{type(e).__name__}: {e}"
    emit(rec)


def check(job: dict) -> None:
    """probe then validate, in one process (each interpreter start with torch costs seconds)."""
    probe(job)
    validate(job)


JOBS = {"check": check, "time": time_impl}


def main() -> None:
    """Jobs arrive one JSON object per line; each ends with a "done" record. EOF ends the process."""
    for line in sys.stdin:
        if line.strip():
            job = json.loads(line)
            JOBS[job["kind"]](job)
            emit({"type": "done"})


if __name__ == "__main__":
    main()
