"""Run the planted-bug catalogue: one mutant per copy of the tree, its tests run there, a kill rate.

    python -m parity_tests.mutants                  # every mutant, one per core at a time
    python -m parity_tests.mutants --list           # the catalogue
    python -m parity_tests.mutants --only truncated_carry --only lengths_off_by_one -j 2

The working tree is never edited (others edit it while this runs): reference/,
torch_impl/, parity_tests/ and pyproject.toml are copied once into a temporary
directory; each mutant gets its own copy of that snapshot with one snippet
replaced, and pytest runs there with PYTHONPATH pointing at the copy and
HYPOTHESIS_PROFILE=ci. A baseline run of the same tests on the unmutated
snapshot goes alongside: if it fails, no outcome means anything.

Outcomes: killed (a test failed), survived (every test passed: a gap in the
suite; also when no test ran because the entry names only ``test_mutants.py``,
whose snippet meta-test the plugin deselects: a kill by it is no behaviour), error (pytest could not run: an import error, a timeout), stale (the
snippet no longer occurs exactly once in the source: the catalogue is out of
date). The exit status is 1 unless the baseline passes and every mutant is
killed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import NamedTuple

from .catalogue import CATALOGUE, Mutant

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ("reference", "torch_impl", "parity_tests", "examples", "pyproject.toml")  # examples: the suite runs some
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
# One test process per core: each is capped to one BLAS / OpenMP thread so that N processes
# do not fight over the cores (the sizes drawn are tiny; threads buy nothing there).
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class Outcome(NamedTuple):
    status: str  # "killed", "survived", "error", "stale"; "passed" / "failed" for the baseline
    seconds: float
    detail: str  # the failing test, or why the run could not conclude


def stale_snippets(mutants: Iterable[Mutant], root: Path = ROOT) -> dict[str, str]:
    """name -> problem, for every mutant whose snippet is not in its file exactly once."""
    problems = {}
    for m in mutants:
        path = root / m.file
        if not path.is_file():
            problems[m.name] = f"{m.file} does not exist"
            continue
        count = path.read_text().count(m.original)
        if count != 1:
            problems[m.name] = f"snippet occurs {count} times in {m.file} (expected once): {m.original[:60]!r}"
    return problems


def snapshot(root: Path, dest: Path) -> None:
    """Copy the parts of the tree the tests need (never written afterwards)."""
    dest.mkdir(parents=True)
    for name in SNAPSHOT:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=_IGNORE)
        else:
            shutil.copy2(src, dest / name)


def apply(base: Path, dest: Path, m: Mutant) -> None:
    """A copy of the snapshot ``base`` at ``dest`` with ``m`` planted."""
    shutil.copytree(base, dest, ignore=_IGNORE)
    path = dest / m.file
    text = path.read_text()
    if text.count(m.original) != 1:
        raise ValueError(f"{m.name}: snippet not found exactly once in {m.file}")
    path.write_text(text.replace(m.original, m.replacement, 1))


INTERRUPTED = 2  # pytest's exit status for an interrupted session
_XDIST_STOPPED = "xdist.dsession.Interrupted: stopping after 1 failures"


def run_tests(where: Path, tests: Sequence[str], timeout: float, xdist: int = 0) -> tuple[int | None, float, str]:
    """(pytest's exit status or None on timeout, seconds, output) for ``tests`` run inside ``where``;
    ``xdist`` > 0 spreads them over that many pytest-xdist workers."""
    env = dict(os.environ, HYPOTHESIS_PROFILE="ci", PYTHONPATH=str(where), PYTHONDONTWRITEBYTECODE="1")
    for var in _THREAD_VARS:
        env.setdefault(var, "1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "--tb=no", "-p", "no:cacheprovider",
           "-p", "parity_tests.mutants.plugin", *(("-n", str(xdist)) if xdist else ()),
           *(f"parity_tests/{t}" for t in tests)]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, check=False, cwd=where, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, time.perf_counter() - start, out
    output = done.stdout + done.stderr
    if xdist and done.returncode == INTERRUPTED and _XDIST_STOPPED in output:
        return 1, time.perf_counter() - start, output  # -x under xdist: the first failure interrupts the session
    return done.returncode, time.perf_counter() - start, output


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ", 1)[1].removeprefix("parity_tests/")[:150]
    return ""


def _tail(output: str, lines: int = 3) -> str:
    return " | ".join(s.strip() for s in output.strip().splitlines()[-lines:])


NO_TESTS_RAN = 5  # pytest's exit status when every test was deselected (or none collected)


def run_mutant(base: Path, work: Path, m: Mutant, timeout: float, xdist: int = 0) -> Outcome:
    dest = work / m.name
    apply(base, dest, m)
    try:
        rc, seconds, output = run_tests(dest, m.tests, timeout, xdist)
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    if rc is None:
        return Outcome("error", seconds, f"timed out after {timeout:.0f} s")
    if rc == 1:
        return Outcome("killed", seconds, _first_failure(output))
    if rc == 0:
        return Outcome("survived", seconds, "every test passed")
    if rc == NO_TESTS_RAN:
        return Outcome("survived", seconds, "no behavioural test ran (test_mutants.py is deselected in mutant runs)")
    return Outcome("error", seconds, f"pytest exit status {rc}: {_tail(output)}")


def run_baseline(base: Path, tests: Sequence[str], timeout: float, xdist: int = 0) -> Outcome:
    rc, seconds, output = run_tests(base, tests, timeout, xdist)
    if rc == 0:
        return Outcome("passed", seconds, "")
    why = f"timed out after {timeout:.0f} s" if rc is None else f"exit status {rc}: {_first_failure(output) or _tail(output)}"
    return Outcome("failed", seconds, why)


def union(mutants: Iterable[Mutant]) -> list[str]:
    """Every test named by ``mutants``, once, in first-use order."""
    return list(dict.fromkeys(t for m in mutants for t in m.tests))


def run_catalogue(mutants: Sequence[Mutant], jobs: int, timeout: float, root: Path = ROOT,
                  echo=print, xdist: int = 0) -> tuple[Outcome, dict[str, Outcome]]:
    """(baseline outcome, name -> outcome); stale mutants are reported without running."""
    outcomes = {name: Outcome("stale", 0.0, why) for name, why in stale_snippets(mutants, root).items()}
    runnable = [m for m in mutants if m.name not in outcomes]
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        base = Path(tmp) / "base"
        snapshot(root, base)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            tests = union(runnable)  # every mutant's tests in one run, all of them when nothing fails: a longer limit
            baseline_job = pool.submit(run_baseline, base, tests, timeout * max(1, -(-len(tests) // 10)), xdist)
            jobs_by_future = {pool.submit(run_mutant, base, Path(tmp), m, timeout, xdist): m for m in runnable}
            for future in as_completed(jobs_by_future):
                m = jobs_by_future[future]
                outcomes[m.name] = future.result()
                o = outcomes[m.name]
                echo(f"  {o.status:8} {m.name:42} {o.seconds:5.1f} s  {o.detail}", flush=True)
            baseline = baseline_job.result()
    return baseline, outcomes


def report(mutants: Sequence[Mutant], baseline: Outcome, outcomes: dict[str, Outcome], wall: float) -> bool:
    """Print the per-mutant table and the kill rate; True when the catalogue passes."""
    print(f"\n{'outcome':8}  {'mutant':42} {'category':17} {'time':>7}  killed by / why")
    for m in mutants:
        o = outcomes[m.name]
        print(f"{o.status:8}  {m.name:42} {m.category:17} {o.seconds:5.1f} s  {o.detail}")
    killed = sum(outcomes[m.name].status == "killed" for m in mutants)
    print(f"\nbaseline (unmutated, {len(union(mutants))} test ids): {baseline.status} in {baseline.seconds:.1f} s"
          + (f": {baseline.detail}" if baseline.detail else ""))
    print(f"kill rate: {killed}/{len(mutants)} ({100 * killed / max(len(mutants), 1):.1f}%) in {wall:.0f} s wall")
    for status in ("survived", "error", "stale"):
        names = [m.name for m in mutants if outcomes[m.name].status == status]
        if names:
            print(f"{status}: {', '.join(names)}")
    return baseline.status == "passed" and killed == len(mutants)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity_tests.mutants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print the catalogue and exit")
    parser.add_argument("--only", action="append", metavar="NAME", help="run this mutant (repeatable)")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="test processes at once")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per test run")
    parser.add_argument("--xdist", type=int, default=0, metavar="N",
                        help="run each mutant's tests on N pytest-xdist workers (default 0: in one process)")
    args = parser.parse_args(argv)
    mutants: Sequence[Mutant] = CATALOGUE
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in CATALOGUE})
        if unknown:
            parser.error(f"--only: no mutant named {', '.join(unknown)} (see --list)")
        mutants = [m for m in CATALOGUE if m.name in args.only]
    if args.list:
        for m in mutants:
            print(f"{m.name:42} {m.category:17} {m.file:26} {', '.join(m.tests)}\n{'':42} {m.bug}")
        print(f"{len(mutants)} mutants")
        return 0
    if args.jobs < 1:
        parser.error(f"-j: expected a positive number of processes, got {args.jobs}")
    if args.xdist < 0:
        parser.error(f"--xdist: expected a number of workers >= 0, got {args.xdist}")
    print(f"{len(mutants)} mutants, {args.jobs} at a time" + (f", {args.xdist} xdist workers each" if args.xdist else "")
          + f", on a snapshot of {ROOT}")
    start = time.perf_counter()
    baseline, outcomes = run_catalogue(mutants, args.jobs, args.timeout, xdist=args.xdist)
    return 0 if report(mutants, baseline, outcomes, time.perf_counter() - start) else 1
