"""The API reference as built (``python docs/api.py``): every internal link lands on a page and
an anchor that exist, every documented submodule is listed (``verify`` among them), and no reST
markup shows as text in a docstring. Built once, into a temporary folder (about 10 s)."""

from __future__ import annotations

import importlib.util
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _api():
    spec = importlib.util.spec_from_file_location("api", ROOT / "docs" / "api.py")
    api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(api)
    return api


class Page(HTMLParser):
    """A built page: its anchors, its links, its submodule list and its docstrings' prose (the
    text outside code, pre, style and script)."""

    def __init__(self, text: str):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.prose: list[str] = []
        self.submodules: list[str] = []
        self._open: list[tuple[str, bool]] = []
        self._in_submodules = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
            if self._in_submodules:
                self.submodules.append(a["href"])
        if tag == "ul" and self._in_submodules is None:
            self._in_submodules = True
        self._open.append((tag, "docstring" in (a.get("class") or "").split()))

    def handle_endtag(self, tag):
        if tag == "ul" and self._in_submodules:
            self._in_submodules = False
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if data.strip() == "Submodules" and self._open and self._open[-1][0] == "h2":
            self._in_submodules = None  # the next <ul> is the list
        tags = [t for t, _ in self._open]
        if any(doc for _, doc in self._open) and not {"code", "pre", "style", "script"} & set(tags):
            self.prose.append(data)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[Path, Page]:
    pytest.importorskip("pdoc", reason="the docs extra (pip install -e .[docs]) brings pdoc")
    out = tmp_path_factory.mktemp("api")
    assert _api().main(["-o", str(out)]) == 0
    return {p.resolve(): Page(p.read_text()) for p in out.rglob("*.html")}


def dead_links(pages: dict[Path, Page]) -> list[str]:
    dead = []
    for path, page in pages.items():
        for href in page.links:
            if "://" in href or href.startswith(("mailto:", "javascript:")):
                continue
            url, anchor = urldefrag(href)
            target = (path.parent / unquote(url)).resolve() if url else path
            if target not in pages:
                if not target.exists():
                    dead.append(f"{path.name}: {href} (no such page)")
            elif anchor and unquote(anchor) not in pages[target].ids:
                dead.append(f"{path.name}: {href} (no such anchor)")
    return sorted(set(dead))


def test_no_internal_link_is_dead(pages):
    assert len(pages) > 30, f"only {len(pages)} pages built"
    dead = dead_links(pages)
    assert not dead, f"{len(dead)} dead links in the API reference:\n" + "\n".join(dead[:20])


def test_the_link_check_finds_a_dead_anchor_and_a_missing_page(tmp_path):
    (tmp_path / "a.html").write_text('<p id="here"></p><a href="#here">x</a><a href="b.html#gone">y</a>'
                                     '<a href="c.html">z</a>')
    (tmp_path / "b.html").write_text('<p id="there"></p>')
    pages = {p.resolve(): Page(p.read_text()) for p in tmp_path.glob("*.html")}
    assert dead_links(pages) == ["a.html: b.html#gone (no such anchor)", "a.html: c.html (no such page)"]


def test_every_documented_submodule_is_listed(pages):
    top = next(page for path, page in pages.items() if path.name == "reference.html")
    listed = {Path(h).stem for h in top.submodules}
    assert {"verify", "cells", "lstm_cell", "gru_cell", "rnn_cell", "layer", "train", "jvp"} <= listed, listed


def test_no_rest_markup_shows_as_text(pages):
    shown = []
    for path, page in pages.items():
        prose = "".join(page.prose)
        for m in re.finditer(r".{0,50}(::|:class:|:func:|:meth:|``|~\w+\.\w+).{0,30}", prose):
            shown.append(f"{path.name}: {m.group(0)!r}")
    assert not shown, "\n".join(shown[:20])


def test_a_literal_block_becomes_a_fenced_block():
    """reST's 'Tangent::' over an indented block: a fence, so pdoc's Google-style pass does not read
    'Tangent:' as a section heading and run the equations together."""
    api = _api()
    text = "Forward::\n\n    a = b\n      c = d\n\n    e = f\n\nThen ``one\ntwo`` and :class:`~x.Y`."
    assert api.rest_to_markdown(text) == ("Forward:\n\n```\na = b\n  c = d\n\ne = f\n```\n\n"
                                          "Then ``one two`` and :class:`x.Y`.")
    assert api.rest_to_markdown("```\ncode\n```") == "```\ncode\n```"
