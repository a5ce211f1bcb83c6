"""Which matrix-product kernels a process runs, and the environment that decides it.

OpenBLAS picks its kernel from the CPU at load time unless ``OPENBLAS_CORETYPE``
names one. A machine that pins a lower core type (Haswell's AVX2 kernel on an
AVX-512 CPU: sgemm 253 against 467 GFLOP/s measured on such a machine, 2 threads)
times NumPy at half its matrix speed while torch's MKL and oneDNN run the CPU's own
kernels. So the worker processes are started without the pin (``child_env``), the
run says so, and every process reports the kernel it actually loaded
(``process_block``). ``--keep-blas-env`` times as configured.

Pure functions of an environment mapping and a CPU flag set, so the logic is
testable without touching the real environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Variables that choose or constrain a BLAS/LAPACK/oneDNN kernel or its threads; any found are recorded.
PINNING_PREFIXES = ("OPENBLAS_", "GOTO", "MKL_", "KMP_", "OMP_", "BLIS_", "VECLIB_", "NUMEXPR_", "ONEDNN_", "DNNL_",
                    "ATEN_CPU_CAPABILITY", "NPY_DISABLE_CPU_FEATURES", "XLA_FLAGS")
# Removed from the timing processes together when OPENBLAS_CORETYPE pins a lower core type:
# the L2 size is the pinned core's blocking parameter.
OPENBLAS_PIN = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# The instruction-set level each OpenBLAS x86-64 core type's kernels use.
ISA_LEVELS = ("sse", "avx", "avx2", "avx512", "avx512_bf16", "amx")
CORE_LEVEL = {
    **dict.fromkeys(("katmai", "coppermine", "northwood", "prescott", "banias", "core2", "penryn", "dunnington",
                     "nehalem", "atom", "athlon", "opteron", "opteron_sse3", "barcelona", "bobcat", "nano"), "sse"),
    **dict.fromkeys(("sandybridge", "bulldozer", "piledriver", "steamroller", "excavator"), "avx"),
    **dict.fromkeys(("haswell", "zen"), "avx2"),
    "skylakex": "avx512",
    "cooperlake": "avx512_bf16",
    "sapphirerapids": "amx",
}
FLAGS_SHOWN = ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
               "avx512_fp16", "amx_tile", "amx_bf16", "neon", "asimd", "sve")


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags (x86 "flags", Arm "Features") from /proc/cpuinfo; empty if unreadable."""
    if cpuinfo is None:
        cpuinfo = read_cpuinfo()
        if cpuinfo is None:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_level(flags: frozenset[str]) -> str:
    """The highest ISA_LEVELS entry the flags support."""
    if {"amx_tile", "avx512f"} <= flags:
        return "amx"
    if {"avx512_bf16", "avx512f"} <= flags:
        return "avx512_bf16"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    if "avx" in flags:
        return "avx"
    return "sse"


# The CPU features a bfloat16 or float16 kernel can use: AVX512-BF16's dot products, AMX's tiles
# (amx_tile, with amx_bf16 for bfloat16), AVX512-FP16's arithmetic. Without them torch converts.
LOW_PRECISION_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")


def low_precision_capability(cpuinfo: str | None, torch_capability: str | None) -> dict[str, str]:
    """Each LOW_PRECISION_FLAGS flag as "yes" or "no" from /proc/cpuinfo's text ("unknown" for all
    where there is none, or no flags line in it: not Linux, or not x86), and torch's CPU capability
    (``torch.backends.cpu.get_cpu_capability()``, the ISA its kernels dispatch to; "unknown" without torch)."""
    flags = cpu_flags(cpuinfo) if cpuinfo is not None else frozenset()
    known = bool(flags) and "flags" in {line.partition(":")[0].strip() for line in (cpuinfo or "").splitlines()}
    out = {f: ("yes" if f in flags else "no") if known else "unknown" for f in LOW_PRECISION_FLAGS}
    out["torch_cpu_capability"] = torch_capability or "unknown"
    return out


def read_cpuinfo() -> str | None:
    """/proc/cpuinfo's text, or None where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return None


def describe_capability(cap: dict) -> str:
    """One line: 'avx512_bf16 yes, amx_bf16 no, amx_tile no, avx512_fp16 no; torch CPU capability AVX512'."""
    flags = ", ".join(f"{f} {cap.get(f, 'unknown')}" for f in LOW_PRECISION_FLAGS)
    return f"{flags}; torch CPU capability {cap.get('torch_cpu_capability', 'unknown')}"


def pinning_vars(environ: Mapping[str, str]) -> dict[str, str]:
    """Every variable that pins a kernel, an instruction set or a thread count."""
    return {k: v for k, v in sorted(environ.items()) if k.startswith(PINNING_PREFIXES)}


def lowered_core(environ: Mapping[str, str], flags: frozenset[str]) -> str | None:
    """Why OPENBLAS_CORETYPE pins a lower kernel than the CPU supports, or None when it does not
    (unset, unknown to this table, or at the CPU's own level: nothing to undo)."""
    core = environ.get("OPENBLAS_CORETYPE")
    if not core or core.strip().lower() not in CORE_LEVEL or not flags:
        return None
    pinned, own = CORE_LEVEL[core.strip().lower()], cpu_level(flags)
    if ISA_LEVELS.index(pinned) >= ISA_LEVELS.index(own):
        return None
    return f"OPENBLAS_CORETYPE={core} pins {pinned} kernels on a CPU with {own}"


def child_env(environ: Mapping[str, str], flags: frozenset[str], keep_blas_env: bool = False
              ) -> tuple[dict[str, str], dict[str, str], str | None]:
    """(environment for a timing process, the variables removed from it, why).

    Where OPENBLAS_CORETYPE pins a lower core type than the CPU's, the child runs
    without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, so OpenBLAS picks the CPU's own
    kernel; ``keep_blas_env`` keeps them. The parent's environment is not changed.
    """
    env = dict(environ)
    why = lowered_core(environ, flags)
    if why is None or keep_blas_env:
        return env, {}, why
    removed = {k: env.pop(k) for k in OPENBLAS_PIN if k in env}
    return env, removed, why


def process_block(torch_loaded: bool) -> dict:
    """This process's kernels: NumPy's BLAS as threadpoolctl sees it (library, version,
    the kernel architecture it loaded, threads), torch's CPU capability and backends,
    the CPU's flags, and the pinning variables in this process's environment."""
    flags = cpu_flags()
    block: dict = {"pid": os.getpid(), "cpu_level": cpu_level(flags),
                   "cpu_flags": [f for f in FLAGS_SHOWN if f in flags], "pinning_env": pinning_vars(os.environ)}
    try:
        import numpy  # noqa: F401 -- loads the BLAS that threadpoolctl reports
        from threadpoolctl import threadpool_info
    except ImportError as e:
        block["blas"] = [{"error": f"{e} (install the bench extra)"}]
    else:
        block["blas"] = [{k: p.get(k) for k in ("user_api", "internal_api", "prefix", "version", "architecture",
                                                "threading_layer", "num_threads")}
                         for p in threadpool_info()]
    if torch_loaded:
        import torch

        block["torch"] = {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
                          "mkl": torch.backends.mkl.is_available(),
                          "onednn": torch.backends.mkldnn.is_available(),
                          "onednn_enabled": bool(torch.backends.mkldnn.enabled),
                          "openmp": torch.backends.openmp.is_available(), "threads": torch.get_num_threads()}
    return block


def describe(block: dict) -> str:
    """One line for the run's header: the kernels a process loaded."""
    parts = []
    for p in block.get("blas", []):
        if "error" in p:
            parts.append(f"BLAS unknown ({p['error']})")
        elif p.get("user_api") == "blas":
            parts.append(f"{p['internal_api']} {p['version']} {p.get('architecture') or ''} kernel, "
                         f"{p['num_threads']} threads".replace("  ", " "))
    t = block.get("torch")
    if t:
        parts.append(f"torch CPU capability {t['cpu_capability']}, MKL {'yes' if t['mkl'] else 'no'}, "
                     f"oneDNN {'on' if t['onednn'] and t['onednn_enabled'] else 'off'}, {t['threads']} threads")
    if block.get("jax"):
        parts.append(f"jax {block['jax']}")
    return "; ".join(parts) or "no BLAS loaded"
