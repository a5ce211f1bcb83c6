"""The core reads top-down: no import cycle, no module reaching into another's private names,
and the one way to change a module's dtype.

The core is ``reference/*.py`` and ``reference/train/`` (the verifier, ``reference/verify/``,
is a user of the core, not part of it). An import inside a function counts: it hides a cycle
from Python's loader, not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import reference

ROOT = Path(__file__).resolve().parents[1]
CORE = sorted([*ROOT.glob("reference/*.py"), *ROOT.glob("reference/train/*.py")])


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, names imported from it) for every import in the file, deferred ones included."""
    name, found = _name(path), []
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - (node.level - 1)] + ([base] if base else []))
            found.append((base, [a.name for a in node.names]))
    return found


def _graph() -> dict[str, set[str]]:
    """Core module -> the core modules it imports (a name imported from a package counts as its submodule)."""
    modules = {_name(p): p for p in CORE}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for base, names in _imports(path):
            targets = {f"{base}.{n}" for n in names} | {base}
            graph[module] |= {t for t in targets if t in modules and t != module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        path.pop()
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_the_core_has_no_import_cycle():
    graph = _graph()
    assert len(graph) >= 20, f"only {len(graph)} core modules found: did the layout change?"
    cycle = _cycle(graph)
    assert cycle is None, "the core imports in a circle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    """The check above can fail: a graph with a loop is reported as one."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_core_module_imports_another_modules_private_name():
    """A private module (``_checks``, ``_namespace``, ...) may be imported; a private *name* may not."""
    reaching = [f"{_name(path)} imports {base}.{n}" for path in CORE for base, names in _imports(path)
                for n in names if n.startswith("_") and not n.startswith("__")]
    assert not reaching, "\n".join(reaching)


# -- astype: the model-side fix the dtype refusal names ------------------------------------------

@pytest.mark.parametrize("make", [lambda dt: reference.LSTM(3, 4, num_layers=2, proj_size=2, dtype=dt, seed=0),
                                  lambda dt: reference.GRUCell(3, 4, dtype=dt, seed=0)], ids=["LSTM", "GRUCell"])
def test_astype_is_a_copy_in_the_other_dtype_and_leaves_the_module_alone(make):
    m = make(np.float32)
    before = m.state_dict()
    m64 = m.astype(np.float64)
    assert type(m64) is type(m) and m64.dtype == np.float64 and m.dtype == np.float32
    assert m64.config == m.config
    for name, value in m64.state_dict().items():
        assert value.dtype == np.float64
        np.testing.assert_array_equal(value, before[name].astype(np.float64))  # float32 -> float64 is exact
    x = np.random.default_rng(1).uniform(-1, 1, (5, 2, 3) if isinstance(m, reference.LSTM) else (2, 3))
    result = m64.forward(x)
    assert result[0].dtype == np.float64
    with pytest.raises(ValueError, match="another module"):  # each has its own tapes
        m.backward(result[-1])
    m64.load_state_dict({k: np.zeros_like(v) for k, v in m64.state_dict().items()})
    for name, value in m.state_dict().items():  # the original keeps its parameters and dtype
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, before[name])
    assert m.astype(np.float32) is not m


def test_astype_copies_the_generator_state_without_sharing_it():
    m = reference.LSTM(3, 4, num_layers=2, dropout=0.5, seed=0)
    copy = m.astype(np.float32)
    x = np.zeros((5, 2, 3), dtype=np.float32)
    mask_copy = copy.forward(x)[2].dropout_masks[0]
    mask_m = m.forward(x.astype(np.float64))[2].dropout_masks[0]  # m's generator did not advance
    np.testing.assert_array_equal(mask_copy, mask_m)


def test_astype_refuses_a_dtype_other_than_float32_or_float64():
    with pytest.raises(TypeError, match="dtype"):
        reference.RNN(3, 4).astype(np.float16)


# -- the reading path: the step functions and the BPTT loop ---------------------------------------

READ_FIRST = {  # what a learner reads: each cell's step, partials and step backward, and the loop
    "reference.rnn_cell": ("rnn_step", "rnn_partials", "rnn_step_backward"),
    "reference.gru_cell": ("gru_step", "gru_partials", "gru_step_backward", "gru_input_grad"),
    "reference.lstm_cell": ("lstm_step", "lstm_partials", "lstm_step_backward"),
    "reference.layer": ("layer_backward",),
}


def _code_lines(fn) -> list[str]:
    """The function's lines after its signature and docstring, without blank lines and comments."""
    import inspect

    tree = ast.parse(inspect.getsource(fn).lstrip())
    body = tree.body[0].body
    start = body[1].lineno if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body[0].lineno
    lines = inspect.getsource(fn).lstrip().splitlines()[start - 1:]
    return [ln for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _functions():
    import importlib

    return [(f"{module}.{name}", getattr(importlib.import_module(module), name))
            for module, names in READ_FIRST.items() for name in names]


@pytest.mark.parametrize("name, fn", _functions(), ids=[n for n, _ in _functions()])
def test_the_reading_path_counts_no_rows(name, fn):
    """Gates are read by name (``gate_rows``): no line a learner reads slices by multiples of H."""
    import re

    counting = [ln.strip() for ln in _code_lines(fn) if re.search(r"\d\s*\*\s*H|\bH\s*:|:\s*H\b", ln)]
    assert not counting, f"{name} counts rows:\n" + "\n".join(counting)


def test_the_chain_rule_of_bptt_fits_on_a_screen():
    import reference.layer

    lines = _code_lines(reference.layer.layer_backward)
    assert len(lines) <= 30, f"layer_backward has {len(lines)} lines of code"


def test_the_checks_above_can_fail():
    def counting(xp, a, H):
        return a[..., : 3 * H]

    assert any("3 * H" in ln for ln in _code_lines(counting))
