"""The core on array-api-strict, with no torch installed: the proof that it uses only the standard.

array-api-strict implements the array API standard and nothing more (no NumPy
extras, no implicit flat indexing, no mixed kinds). Desired values are the NumPy
reference's own (proved against torch by the rest of the suite); this file runs
in the torch-free CI job too.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, in_dtype
from hypothesis import given
from strategies import cell_configs, layer_configs

strict = pytest.importorskip("array_api_strict")


def _to(a, dtype):
    if a is None:
        return None
    return tuple(_to(v, dtype) for v in a) if isinstance(a, tuple) else strict.asarray(np.asarray(a, dtype=dtype))


def _check(name, got, want, rtol=1e-13):
    for k, (g, w) in enumerate(zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,),
                                   strict=True)):
        assert type(g).__module__.startswith("array_api_strict"), f"{name}[{k}] is a {type(g).__name__}"
        assert_close(f"{name}[{k}]", np.asarray(g), w, rtol, 1e-6 if w.dtype == np.float32 else 1e-15)


@given(cfg=layer_configs())
def test_layers_on_array_api_strict_equal_numpy(cfg):
    m = cfg.build()
    x, hx, lengths, g_out, g_hid = cfg.data()
    x, hx = in_dtype(m.dtype, x, hx)
    out, hidden, tape = m.forward(x, hx, lengths=lengths)
    want = {"output": out, "hidden": hidden, **m.backward(tape, g_out, g_hid)}
    out2, hidden2, tape2 = m.forward(_to(x, cfg.dtype), _to(hx, cfg.dtype), lengths=lengths)
    got = {"output": out2, "hidden": hidden2, **m.backward(tape2, _to(g_out, cfg.dtype), _to(g_hid, cfg.dtype))}
    rtol = 1e-5 if cfg.dtype == "float32" else 1e-13  # the same ops; only BLAS blocking may differ
    for name, value in want.items():
        _check(name, got[name], value, rtol)


@given(cfg=cell_configs())
def test_cells_on_array_api_strict_equal_numpy(cfg):
    m = cfg.build()
    x, hx, cot = cfg.data()
    x, hx = in_dtype(m.dtype, x, hx)
    hidden, tape = m.forward(x, hx)
    want = {"hidden": hidden, **m.backward(tape, cot)}
    hidden2, tape2 = m.forward(_to(x, cfg.dtype), _to(hx, cfg.dtype))
    got = {"hidden": hidden2, **m.backward(tape2, _to(cot, cfg.dtype))}
    rtol = 1e-5 if cfg.dtype == "float32" else 1e-13
    for name, value in want.items():
        _check(name, got[name], value, rtol)
