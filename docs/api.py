"""Build the API reference from the docstrings: ``python docs/api.py [-o build/api]``.

pdoc renders ``reference`` and ``torch_impl`` (the two installed packages) as HTML, with the
docstrings' equations and shapes. Every warning pdoc raises is an error, so a docstring or an
annotation the reference cannot resolve fails the build (CI runs it). The output is not committed.

Three things pdoc does not do by itself, configured here so that every link of the built pages
resolves and no markup shows as text (parity_tests/test_api_docs.py checks the built HTML):

- a private base class whose methods public classes inherit (the cells' ``_CellBase``, with
  ``forward`` and ``backward``) gets a page section of its own, the target of those links;
- each page lists every documented submodule (pdoc lists only those a package's ``__all__``
  names, which left out ``reference.verify``);
- reST's literal-block marker (``Forward::``) becomes a colon, and a ````code```` span that
  runs over two lines is joined into one; a method without a docstring that overrides another
  library's (``RNNBPTTFunction.forward``, torch's ``Function.forward``) is left out, rather
  than shown with that library's docstring, about names these pages do not document.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
import sys
import tempfile
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


def private_bases(names: list[str]) -> set[str]:
    """Full names of the private classes (``_CellBase``) that a documented public class derives from."""
    shown = set()
    for name in names:
        for _, cls in inspect.getmembers(sys.modules[name], inspect.isclass):
            if cls.__module__ != name or cls.__name__.startswith("_"):
                continue
            shown |= {f"{b.__module__}.{b.__qualname__}" for b in cls.__mro__[1:]
                      if b.__name__.startswith("_") and b.__module__.split(".")[0] in PACKAGES}
    return shown


def submodules(names: list[str]) -> dict[str, list[str]]:
    """Each documented package's documented submodules, by full name."""
    out: dict[str, list[str]] = {}
    for name in names:
        parent = name.rpartition(".")[0]
        if parent in names:
            out.setdefault(parent, []).append(name)
    return out


def foreign_overrides(names: list[str]) -> set[str]:
    """Full names of the methods defined here without a docstring that override a method of
    another library (``RNNBPTTFunction.forward`` overrides torch's ``Function.forward``): pdoc
    would show that library's docstring, about names these pages do not document."""
    hidden = set()
    for name in names:
        for _, cls in inspect.getmembers(sys.modules[name], inspect.isclass):
            if cls.__module__ != name:
                continue
            for attr, member in vars(cls).items():
                func = getattr(member, "__func__", member)
                if attr.startswith("_") or not callable(func) or func.__doc__ is not None \
                        or inspect.unwrap(func).__doc__ is not None:
                    continue  # private or a dunder (pdoc's own rules), or it has a docstring
                if any(attr in vars(b) and b.__module__.split(".")[0] not in PACKAGES for b in cls.__mro__[1:]):
                    hidden.add(f"{name}.{cls.__qualname__}.{attr}")
    return hidden


LITERAL_MARKER = re.compile(r"::[ \t]*$")  # reST: "Forward::" opens an indented literal block
SPLIT_CODE = re.compile(r"(?<!`)``(?!`)([^`]+?)``(?!`)")  # a ``code`` span, not a ``` fence


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def literal_blocks(docstring: str) -> str:
    """reST's "Paragraph::" and the indented block under it, as Markdown: "Paragraph:" and a fenced
    code block (a bare "::" line goes). Fenced, not left indented: pdoc's Google-style pass would
    read "Tangent:" over an indented block as a section heading and run the block together."""
    lines, out, k = docstring.split("\n"), [], 0
    while k < len(lines):
        line = lines[k]
        k += 1
        if not LITERAL_MARKER.search(line) or line.lstrip().startswith(".. "):  # a directive is pdoc's to read
            out.append(line)
            continue
        if line.strip() != "::":
            out.append(LITERAL_MARKER.sub(":", line))
        level, block = _indent(line), []
        while k < len(lines) and (not lines[k].strip() or _indent(lines[k]) > level):
            block.append(lines[k])
            k += 1
        while block and not block[-1].strip():  # trailing blank lines stay outside the fence
            block.pop()
            k -= 1
        while block and not block[0].strip():
            block.pop(0)
        if not block:
            continue
        cut = min(_indent(b) for b in block if b.strip())
        fence = " " * level + "```"
        out += ["", fence, *[" " * level + b[cut:] if b.strip() else "" for b in block], fence]
    return "\n".join(out)


SHORT_ROLE = re.compile(r"(:\w+:`)~")  # :class:`~a.b.C`: reST shows "C"; pdoc would show the tilde


def rest_to_markdown(docstring: str) -> str:
    """What pdoc leaves of reST as text: literal blocks (``literal_blocks``), a ````code```` span
    broken over lines (joined into one line), and the tilde of a role's short form."""
    text = SHORT_ROLE.sub(r"\1", literal_blocks(docstring))
    return SPLIT_CODE.sub(lambda m: "``" + " ".join(m.group(1).split()) + "``" if "\n" in m.group(1) else m.group(0),
                          text)


TEMPLATE = """{% extends "default/module.html.jinja2" %}
{% macro is_public(doc) %}{% if doc.taken_from | join(".") in foreign_overrides %}{%
    elif doc.kind == "class" and doc.fullname in shown_private_bases %}true{%
    else %}{{ default_is_public(doc) }}{% endif %}{% endmacro %}
{% block nav_submodules %}
    {% if documented_submodules.get(module.modulename) %}
        <h2>Submodules</h2>
        <ul>
            {% for name in documented_submodules[module.modulename] %}
                <li>{{ (name, "") | link(text=name.rpartition(".")[2]) }}</li>
            {% endfor %}
        </ul>
    {% endif %}
{% endblock %}
"""


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
    convert = pdoc.docstrings.convert
    pdoc.docstrings.convert = lambda text, *a, **k: convert(rest_to_markdown(text), *a, **k)
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as templates:
        warnings.simplefilter("error")  # a warning is a broken reference: fail the build
        (Path(templates) / "module.html.jinja2").write_text(TEMPLATE)
        pdoc.render.configure(docformat="google", search=True, show_source=True, template_directory=Path(templates))
        pdoc.render.env.globals.update(shown_private_bases=private_bases(names), documented_submodules=submodules(names),
                                       foreign_overrides=foreign_overrides(names))
        pdoc.pdoc(*specs(names), output_directory=args.output)
    pdoc.docstrings.convert = convert
    print(f"wrote the API reference of {', '.join(PACKAGES)} ({len(names)} modules) to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
