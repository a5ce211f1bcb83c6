"""What to run: one row is a layer configuration on a device in a dtype.

Suites are lists of rows; CLI filters (--cells, --dtypes, --devices) cut them down.
All rows are one layer, one direction, batch-second (T, B, I), zero dropout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

CELLS = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda")
GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}

# Implementations per device, torch nn first: it is the baseline every ratio divides by.
IMPLS = {"cpu": ("torch-nn", "reference", "torch-equations"),
         "cuda": ("torch-nn", "torch-equations", "torch-function")}
BASELINE = "torch-nn"
PHASES = ("inference", "forward", "backward", "step")  # step = forward + backward, timed together


@dataclass(frozen=True)
class Row:
    cell: str  # a key of GATES
    T: int
    B: int
    I: int
    H: int
    dtype: str  # "float32" or "float64"
    device: str  # "cpu" or "cuda"
    inference_only: bool = False  # GPU latency rows (B = 1, 4): no training phases

    @property
    def name(self) -> str:
        return f"{self.cell} T{self.T} B{self.B} I{self.I} H{self.H} {self.dtype} {self.device}"

    @property
    def size(self) -> str:
        return f"T{self.T} B{self.B} I{self.I} H{self.H}"

    def as_dict(self) -> dict:
        return asdict(self)


def _grid(shapes: list[tuple[str, int, int, int, int]], cells, dtypes, device, inference_only=False) -> list[Row]:
    """shapes: (cell or "*", T, B, I, H); "*" expands to every cell."""
    rows = []
    for cell_spec, T, B, I, H in shapes:
        for cell in (cells if cell_spec == "*" else (cell_spec,)):
            rows += [Row(cell, T, B, I, H, dt, device, inference_only) for dt in dtypes]
    return rows


def suite_rows(suite: str) -> list[Row]:
    """Every row of a suite, before filters. GPU rows are listed; the runner drops them without CUDA."""
    if suite == "smoke":  # the test's: seconds, not a measurement
        return _grid([("LSTM", 3, 2, 4, 5), ("GRU", 3, 2, 4, 5)], CELLS, DTYPES, "cpu")
    if suite == "quick":  # under 2 minutes on 2 cores
        return (_grid([("*", 50, 16, 128, 128)], ("LSTM", "GRU", "RNN_TANH"), DTYPES, "cpu")
                + _grid([("LSTM", 100, 64, 256, 256)], CELLS, ("float32",), "cpu")
                + _grid([("LSTM", 25, 64, 1024, 1024)], CELLS, ("float32",), "cuda"))
    if suite == "full":
        cpu = _grid([("*", 50, 16, 128, 128), ("*", 100, 64, 256, 256), ("*", 100, 64, 512, 512),
                     ("LSTM", 25, 64, 1024, 1024),  # DeepBench
                     ("GRU", 187, 32, 1024, 1024), ("RNN_RELU", 50, 16, 1760, 1760)], CELLS, DTYPES, "cpu")
        gpu = _grid([("LSTM", 25, B, H, H) for H in (512, 1024, 2048) for B in (16, 64, 128)], CELLS, DTYPES, "cuda")
        gpu += _grid([("LSTM", 25, B, H, H) for H in (512, 1024, 2048) for B in (1, 4)], CELLS, DTYPES, "cuda",
                     inference_only=True)
        return cpu + gpu
    raise ValueError(f"suite: expected smoke, quick or full, got {suite!r}")


def select(rows: list[Row], cells=None, dtypes=None, devices=None) -> list[Row]:
    """Rows whose cell, dtype and device are in the given lists (None keeps all)."""
    return [r for r in rows if (not cells or r.cell in cells) and (not dtypes or r.dtype in dtypes)
            and (not devices or r.device in devices)]
