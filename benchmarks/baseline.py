"""--baseline-ref REV: a previous revision of the reference, timed side by side with this one.

A detached ``git worktree`` of REV goes into a temporary directory; the row
"reference@REV" runs in a worker whose ``reference`` is imported from there
(worker.REFERENCE_ROOT_VAR: sys.path of that process only). The worktree is
removed when the run ends.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise ValueError(f"--baseline-ref: git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def resolve(root: Path, rev: str) -> str:
    """The short commit hash of ``rev``; ValueError naming the argument when git does not know it."""
    return _git(root, "rev-parse", "--short", "--verify", "--end-of-options", f"{rev}^{{commit}}")


def impl_name(short: str) -> str:
    return f"reference@{short}"


@contextmanager
def worktree(root: Path, rev: str) -> Iterator[tuple[str, Path]]:
    """(short hash, directory holding that revision's ``reference`` package), for the ``with`` block."""
    short = resolve(root, rev)
    tmp = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    path = tmp / short
    _git(root, "worktree", "add", "--detach", str(path), short)
    try:
        if not (path / "reference" / "__init__.py").exists():
            raise ValueError(f"--baseline-ref: revision {rev} ({short}) has no reference package")
        yield short, path
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(path)], capture_output=True,
                       check=False)
        shutil.rmtree(tmp, ignore_errors=True)
