"""CI runs exactly the README's test command: the quick start's pytest line and the one
``.ci/run`` calls (through ``pytest_or_fail``) name the same profile and options."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_test_command(text: str) -> str:
    """The pytest command of the README's quick-start block, without its comment."""
    block = re.search(r"## Quick start\s*```bash\n(.*?)```", text, re.DOTALL)
    assert block, "README.md: no ```bash block under '## Quick start'"
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines() if "-m pytest" in line]
    assert len(lines) == 1, f"README.md quick start: expected one pytest line, got {lines}"
    return lines[0]


def ci_test_command(text: str) -> str:
    """The pytest command inside .ci/run's pytest_or_fail, without the forwarded "$@"."""
    match = re.search(r"^\s*(HYPOTHESIS_PROFILE=\S+ python -m pytest[^|\n]*?)\s*\"\$@\"", text, re.MULTILINE)
    assert match, ".ci/run: no 'HYPOTHESIS_PROFILE=... python -m pytest ... \"$@\"' line in pytest_or_fail"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command():
    readme = readme_test_command((ROOT / "README.md").read_text())
    ci = ci_test_command((ROOT / ".ci" / "run").read_text())
    assert readme == ci, f"README runs {readme!r}, .ci/run runs {ci!r}"
    assert "-n auto" in readme, "the suite runs in parallel (pytest-xdist): -n auto"


def test_a_drifted_command_is_caught():
    """The parsers see a difference: a README without -n auto differs from CI's line."""
    readme = "## Quick start\n\n```bash\npip install -e .\nHYPOTHESIS_PROFILE=ci python -m pytest   # tests\n```\n"
    ci = 'pytest_or_fail() {\n  HYPOTHESIS_PROFILE=ci python -m pytest -n auto "$@" || status=$?\n}\n'
    assert readme_test_command(readme) == "HYPOTHESIS_PROFILE=ci python -m pytest"
    assert ci_test_command(ci) == "HYPOTHESIS_PROFILE=ci python -m pytest -n auto"
    assert readme_test_command(readme) != ci_test_command(ci)
