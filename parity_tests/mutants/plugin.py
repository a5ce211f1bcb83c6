"""pytest plugin for mutant runs (``-p parity_tests.mutants.plugin``), loaded by the runner only.

* The first failing example is the verdict: hypothesis skips its shrink phase
  (a minimal counterexample is worth nothing here, and shrinking a bug that
  fails almost every example costs minutes). The examples tried are those of
  the profile in force (HYPOTHESIS_PROFILE=ci): the same, in the same order.
* The run must test the copy it stands in, not the working tree or an installed
  package: it stops with a usage error otherwise.
* ``test_mutants.py`` is deselected: its snippet meta-test fails on any edit to a
  quoted line, whatever the edit does, so it would count a kill that no behaviour
  made. A mutant only it could kill comes back as a survivor.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import Phase, settings


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    here = Path.cwd().resolve()
    for name in ("reference", "torch_impl"):  # located, not imported: torch may be absent
        spec = importlib.util.find_spec(name)
        path = Path(spec.origin if spec and spec.origin else "?").resolve()
        if here not in path.parents:
            raise pytest.UsageError(f"mutant run in {here} would import {name} from {path}")
    settings.register_profile("mutant", parent=settings.default,
                              phases=[Phase.explicit, Phase.reuse, Phase.generate])
    settings.load_profile("mutant")


META = "test_mutants.py"  # the catalogue's own checks: never a behavioural kill


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    meta = [item for item in items if item.path.name == META]
    if meta:
        config.hook.pytest_deselected(items=meta)
        items[:] = [item for item in items if item.path.name != META]
