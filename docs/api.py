"""Build the API reference from the docstrings: ``python docs/api.py [-o build/api]``.

pdoc renders ``reference`` and ``torch_impl`` (the two installed packages) as HTML, with the
docstrings' equations and shapes. Every warning pdoc raises is an error, so a docstring or an
annotation the reference cannot resolve fails the build (CI runs it). The output is not committed.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("reference", "torch_impl")


def modules(packages=PACKAGES) -> list[str]:
    names = []
    for name in packages:
        package = importlib.import_module(name)
        names.append(name)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, f"{name}.")
                  if not any(part.startswith("_") for part in m.name.split("."))]  # private modules stay out
    for name in names:
        importlib.import_module(name)
    return names


def resolve_named_tuples(names: list[str]) -> None:
    """A NamedTuple's constructor is compiled by ``collections.namedtuple`` in a module of its own
    (``namedtuple_StepRecord``), where pdoc cannot resolve the annotations the class's module
    imported (``Any``, ``np``). Point the constructor at the class's module."""
    for name in names:
        for _, cls in inspect.getmembers(sys.modules[name], inspect.isclass):
            new = cls.__new__ if "__new__" in cls.__dict__ else None
            if hasattr(cls, "_fields") and getattr(new, "__module__", "").startswith("namedtuple_"):
                new.__module__ = cls.__module__


def specs(names: list[str]) -> list[str]:
    """pdoc's module specs for every module: a package's spec adds only the submodules its
    ``__all__`` names, and the cells, the loop and the verifier's parts are not among them."""
    from pdoc import extract

    out: list[str] = []
    covered: set[str] = set()
    for name in names:
        if name not in covered:
            out.append(name)
            covered.update(extract.walk_specs([name]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python docs/api.py", description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "build" / "api", help="default: build/api")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import pdoc

    names = modules()
    resolve_named_tuples(names)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning is a broken reference: fail the build
        pdoc.render.configure(docformat="google", search=True, show_source=True)
        pdoc.pdoc(*specs(names), output_directory=args.output)
    print(f"wrote the API reference of {', '.join(PACKAGES)} ({len(names)} modules) to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
