"""python -m parity_tests.power [--cells bfloat16:100 ...] [-j N] | --update | --check

Without --update/--check: run the study's cells (all by default; about two hours on two
cores), merge them into results/power.json, draw the figures and update the docs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

from benchmarks.worker import _cpu_model

from . import report


def _run(cell: tuple[str, int]) -> dict:
    from .study import run_cell

    return run_cell(*cell, log=lambda s: print(s, flush=True))


def run(cells: list[tuple[str, int]], jobs: int) -> None:
    """Run ``cells`` (the slowest first), merging each into the results file as it finishes."""
    import numpy
    import torch

    from reference.verify.envelope import FACTORS

    doc = report.load() if report.RESULTS.exists() else {"cells": {}}
    doc["factors"] = FACTORS
    doc["environment"] = {"cpu": _cpu_model(), "threads": 1, "torch": torch.__version__.split("+")[0],
                          "numpy": numpy.__version__, "jobs": jobs}
    report.RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(_run, c) for c in sorted(cells, key=lambda c: -c[1])]
        for future in as_completed(futures):
            record = future.result()
            doc["cells"][f"{record['precision']} T={record['T']}"] = record
            report.RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
    from .figure import draw_error_figure

    draw_error_figure()
    report.plot_power(doc)
    report.update()


def main(argv: list[str] | None = None) -> int:
    from .study import KERNEL_CLAIMS, STEPS

    ap = argparse.ArgumentParser(prog="python -m parity_tests.power", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", nargs="*", help="precision:T pairs (default: every precision at T = 10, 100, 1000)")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="processes (default 1)")
    ap.add_argument("--torch-modules", action="store_true",
                    help="judge torch.nn.RNN, GRU and LSTM in bfloat16 and float16, into the results file")
    ap.add_argument("--update", action="store_true", help="regenerate the docs' tables and figure from the results")
    ap.add_argument("--check", action="store_true", help="exit 1 when the docs' tables differ from the results")
    args = ap.parse_args(argv)
    if args.check:
        if stale := report.stale():
            print(f"{', '.join(map(str, stale))}: the power tables differ from {report.RESULTS}; run: "
                  "python -m parity_tests.power --update", file=sys.stderr)
            return 1
        print("the power tables match their results file")
        return 0
    if args.torch_modules:
        from .torch_modules import run_modules

        doc = report.load()
        doc["torch modules"] = run_modules(log=lambda r: print(r, flush=True))
        report.RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
        report.update()
        return 0
    if args.update:
        report.plot_power(report.load())
        print("updated" if report.update() else "already up to date")
        return 0
    cells = [(n, t) for n in KERNEL_CLAIMS for t in STEPS] if not args.cells else \
        [(c.split(":")[0], int(c.split(":")[1])) for c in args.cells]
    bad = [c for c in cells if c[0] not in KERNEL_CLAIMS or c[1] < 1]
    if bad:
        ap.error(f"--cells: expected precision:T with precision one of {list(KERNEL_CLAIMS)}, got {bad}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run(cells, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
