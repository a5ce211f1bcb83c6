"""CI runs exactly the README's test command: the quick start's pytest line and the one
``.ci/run`` calls (through ``pytest_or_fail``) name the same profile and options; and it runs it on
every Python that ``pyproject.toml`` declares, no more and no fewer."""

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


def declared_pythons(pyproject: str) -> tuple[list[str], str]:
    """(the classifiers' "3.X" versions, requires-python) of a pyproject.toml's text."""
    versions = re.findall(r'"Programming Language :: Python :: (3\.\d+)"', pyproject)
    requires = re.search(r'^requires-python = "([^"]+)"', pyproject, re.MULTILINE)
    assert requires, "pyproject.toml: no requires-python"
    return versions, requires.group(1)


def ci_pythons(text: str) -> list[str]:
    """.ci/run's DECLARED=(...) list: the Pythons whose legs it runs."""
    match = re.search(r"^DECLARED=\(([^)]*)\)", text, re.MULTILINE)
    assert match, ".ci/run: no DECLARED=(...) list of Pythons"
    return match.group(1).split()


def admitted(requires: str, version: str) -> bool:
    """Does a requires-python of ">=a.b,<c.d" clauses admit Python ``version``?"""
    v = tuple(int(n) for n in version.split("."))
    for clause in requires.split(","):
        op, bound = re.fullmatch(r"\s*(>=|<|<=|>)\s*(\d+\.\d+)\s*", clause).groups()
        b = tuple(int(n) for n in bound.split("."))
        if not {">=": v >= b, "<": v < b, "<=": v <= b, ">": v > b}[op]:
            return False
    return True


def check_declared(pyproject: str, ci: str) -> None:
    classifiers, requires = declared_pythons(pyproject)
    runs = ci_pythons(ci)
    assert classifiers == runs, f"pyproject.toml's classifiers list {classifiers}, .ci/run runs {runs}"
    admitted_here = [f"3.{minor}" for minor in range(6, 20) if admitted(requires, f"3.{minor}")]
    assert admitted_here == runs, f"requires-python {requires!r} admits {admitted_here}, .ci/run runs {runs}"


def test_ci_runs_every_python_the_project_declares_and_no_other():
    check_declared((ROOT / "pyproject.toml").read_text(), (ROOT / ".ci" / "run").read_text())


def test_a_python_declared_but_not_run_is_caught():
    ci = "DECLARED=(3.10 3.11 3.12 3.13)\n"
    ok = ('requires-python = ">=3.10,<3.14"\n' + "".join(f'"Programming Language :: Python :: {v}",\n'
                                                         for v in ("3.10", "3.11", "3.12", "3.13")))
    check_declared(ok, ci)
    for wrong in (ok.replace('"Programming Language :: Python :: 3.12",\n', ""),  # a classifier missing
                  ok.replace(">=3.10,<3.14", ">=3.10"),  # 3.14 and later admitted, never run
                  ok.replace(">=3.10,<3.14", ">=3.11,<3.14")):  # 3.10 run but refused at install
        try:
            check_declared(wrong, ci)
        except AssertionError:
            continue
        raise AssertionError(f"not caught: {wrong!r}")
