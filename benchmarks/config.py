"""What to run: one row is a layer configuration on a device in a dtype.

Suites are lists of rows, each with the implementations it compares and the phases
it times; CLI filters (--cells, --dtypes, --devices) cut the rows down.
All rows are one layer, one direction, batch-second (T, B, I), zero dropout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

CELLS = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
DTYPES = ("float32", "float64")
# The formats people train and infer in. Only torch implementations run them (NumPy has no bfloat16
# kernel), and each is validated against the rounding envelope, not the tolerance table (envelope_check.py).
LOW_PRECISION = ("bfloat16", "float16")
ALL_DTYPES = DTYPES + LOW_PRECISION
ITEMSIZE = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}
DEVICES = ("cpu", "cuda")
GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
SUITES = ("quick", "full", "goals", "smoke", "small", "scaling", "gpu")

BASELINE = "torch-nn"  # every "x" ratio divides by it
FLOOR = "gemm-floor"  # the floor: the matrix products of the reference's BPTT alone ("reference / floor" divides by it)
# Every implementation, in table order (torch nn first). See impls.py for what each one is.
ALL_IMPLS = ("torch-nn", "reference", "gemm-floor", "reference-torch", "torch-function", "torch-autograd", "jax")
PHASES = ("inference", "forward", "backward", "step")  # step = forward + backward, timed together


@dataclass(frozen=True)
class Row:
    cell: str  # a key of GATES
    T: int
    B: int
    I: int
    H: int
    dtype: str  # a key of ITEMSIZE
    device: str  # "cpu" or "cuda"
    inference_only: bool = False  # GPU latency rows (B = 1, 4): no training phases
    P: int = 0  # LSTM proj_size (0: none)
    tf32: bool = False  # CUDA float32: timed with TF32 products (validated with TF32 off)

    @property
    def name(self) -> str:
        return f"{self.cell} {self.size} {self.dtype}{' tf32' if self.tf32 else ''} {self.device}"

    @property
    def low_precision(self) -> bool:
        return self.dtype in LOW_PRECISION

    @property
    def size(self) -> str:
        return f"T{self.T} B{self.B} I{self.I} H{self.H}" + (f" P{self.P}" if self.P else "")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Suite:
    rows: tuple[Row, ...]
    impls: dict[str, tuple[str, ...]]  # device -> implementations, BASELINE first
    phases: tuple[str, ...] = PHASES


CPU_IMPLS = ("torch-nn", "reference", "gemm-floor", "reference-torch", "torch-function", "jax")
GPU_IMPLS = ("torch-nn", "reference-torch", "torch-function", "torch-autograd", "gemm-floor")


def _grid(shapes: list[tuple[str, int, int, int, int]], cells, dtypes, device, inference_only=False) -> list[Row]:
    """shapes: (cell or "*", T, B, I, H); "*" expands to every cell."""
    rows = []
    for cell_spec, T, B, I, H in shapes:
        for cell in (cells if cell_spec == "*" else (cell_spec,)):
            rows += [Row(cell, T, B, I, H, dt, device, inference_only) for dt in dtypes]
    return rows


# --suite scaling: one axis at a time around this point (I = H throughout), each axis from 10 -> 1000
# steps, 1 -> 256 sequences, 32 -> 2048 units. The base is small so that H = 2048 in float64 fits a
# ten-minute run on 2 quiet cores; T and B are swept at H = 128.
SCALING_BASE = {"T": 25, "B": 16, "H": 128}
SCALING_AXES = {"T": (10, 25, 100, 1000), "B": (1, 4, 16, 64, 256), "H": (32, 128, 512, 2048)}


def scaling_rows(cells=CELLS, dtypes=DTYPES) -> list[Row]:
    """Every point of every axis once (the base point is shared by the three axes)."""
    points = []
    for axis, values in SCALING_AXES.items():
        for v in values:
            p = {**SCALING_BASE, axis: v}
            if p not in points:
                points.append(p)
    return [Row(c, p["T"], p["B"], p["H"], p["H"], dt, "cpu") for c in cells for dt in dtypes for p in points]


def _with_tf32(rows: list[Row]) -> list[Row]:
    """Each float32 CUDA row twice: TF32 off, then on (float64 has no TF32)."""
    out = []
    for r in rows:
        out.append(r)
        if r.dtype == "float32":
            out.append(Row(**{**r.as_dict(), "tf32": True}))
    return out


def suite(name: str) -> Suite:
    """A suite's rows (before filters), implementations and phases. GPU rows are listed;
    the runner drops them without CUDA."""
    cpu_gpu = {"cpu": CPU_IMPLS, "cuda": GPU_IMPLS}
    if name == "smoke":  # the test's: seconds, not a measurement; one process per implementation costs ~3 s
        return Suite(tuple(_grid([("LSTM", 3, 2, 4, 5), ("GRU", 3, 2, 4, 5)], CELLS, (*DTYPES, "bfloat16"), "cpu")),
                     {"cpu": ("torch-nn", "reference", "gemm-floor", "reference-torch")})
    if name == "quick":  # about 2 minutes on 2 quiet cores
        return Suite(tuple(_grid([("*", 50, 16, 128, 128)], ("LSTM", "GRU", "RNN_TANH"), DTYPES, "cpu")
                           + _grid([("LSTM", 50, 16, 128, 128)], CELLS, ("bfloat16",), "cpu")
                           + _grid([("LSTM", 100, 64, 256, 256)], CELLS, ("float32",), "cpu")
                           + _grid([("LSTM", 25, 64, 1024, 1024)], CELLS, ("float32",), "cuda")), cpu_gpu)
    if name == "full":
        cpu = _grid([("*", 50, 16, 128, 128), ("*", 100, 64, 256, 256), ("*", 100, 64, 512, 512),
                     ("LSTM", 25, 64, 1024, 1024),  # DeepBench
                     ("GRU", 187, 32, 1024, 1024), ("RNN_RELU", 50, 16, 1760, 1760)], CELLS, DTYPES, "cpu")
        cpu += _grid([("*", 50, 16, 128, 128), ("*", 100, 64, 256, 256), ("*", 100, 64, 512, 512)], CELLS,
                     ("bfloat16",), "cpu")
        # float16 runs on torch's CPU kernels but without a fast product on CPUs lacking AVX512-FP16/AMX-FP16:
        # LSTM T100 B64 H256, 13.9 s a step against 0.24 s in float32 (2 cores, measured): the smallest shape only
        cpu += _grid([("*", 50, 16, 128, 128)], CELLS, ("float16",), "cpu")
        cpu += [Row("LSTM", 100, 64, 512, 512, dt, "cpu", P=256) for dt in DTYPES]  # the projection's products
        gpu = _grid([("LSTM", 25, B, H, H) for H in (512, 1024, 2048) for B in (16, 64, 128)], CELLS, DTYPES, "cuda")
        gpu += _grid([("LSTM", 25, B, H, H) for H in (512, 1024, 2048) for B in (1, 4)], CELLS, DTYPES, "cuda",
                     inference_only=True)
        return Suite(tuple(cpu + _with_tf32(gpu)), {**cpu_gpu, "cpu": (*CPU_IMPLS, "torch-autograd")})
    if name == "goals":  # the rows the project's speed goals are stated at: T100 B64, I = H = 256 and 512
        return Suite(tuple(_grid([("*", 100, 64, 256, 256), ("*", 100, 64, 512, 512)], CELLS,
                                 (*DTYPES, "bfloat16"), "cpu")),
                     {"cpu": ("torch-nn", "reference", "gemm-floor", "reference-torch", "torch-function")})
    if name == "small":  # the per-step overhead: small layers over many steps (microseconds per step)
        rows = _grid([("*", 1000, B, H, H) for B in (1, 8) for H in (8, 64)], ("LSTM", "GRU", "RNN_TANH"), DTYPES,
                     "cpu")
        return Suite(tuple(rows), {"cpu": ("torch-nn", "reference", "gemm-floor", "reference-torch",
                                           "torch-function")})
    if name == "scaling":  # time against size, one axis at a time; the step only
        return Suite(tuple(scaling_rows()), {"cpu": ("torch-nn", "reference", "gemm-floor", "jax")}, ("step",))
    if name == "gpu":  # one GPU, under 8 minutes: 3 sizes x 3 cells x (float32 TF32 off/on, float64), and
        # cuDNN's bfloat16 and float16 at the smallest size (each validated against the rounding envelope first,
        # in emulated arithmetic on the CPU: about 30 s a row at H256, so the larger sizes would not fit the slot)
        rows = _grid([("*", 25, 64, 1024, 1024), ("*", 100, 64, 512, 512), ("*", 100, 8, 256, 256)],
                     ("LSTM", "GRU", "RNN_TANH"), DTYPES, "cuda")
        rows += _grid([("*", 100, 8, 256, 256)], ("LSTM", "GRU", "RNN_TANH"), LOW_PRECISION, "cuda")
        return Suite(tuple(_with_tf32(rows)), {"cuda": GPU_IMPLS})
    raise ValueError(f"suite: expected one of {', '.join(SUITES)}, got {name!r}")


def select(rows, cells=None, dtypes=None, devices=None) -> list[Row]:
    """Rows whose cell, dtype and device are in the given lists (None keeps all)."""
    return [r for r in rows if (not cells or r.cell in cells) and (not dtypes or r.dtype in dtypes)
            and (not devices or r.device in devices)]
