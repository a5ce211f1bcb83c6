"""Hypothesis profiles and the device axis.

HYPOTHESIS_PROFILE picks a profile: dev (default; fast, random), ci
(derandomized, no deadline, no example database: the same examples on every
run) or thorough (many examples). RNN_TEST_MAX_SIZE bounds every drawn size.
"""

import importlib.util
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], print_blob=True)
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# Without torch (the torch-free CI run), files that import torch at module level are not collected;
# every other test runs. A file is torch-bound when one of its top-level imports names torch or a
# helper of this suite that does.
_TORCH_HELPERS = ("torch", "torch_impl", "torch_oracle", "broken_candidates", "power")
_TOP_IMPORT = re.compile(r"^(?:import|from) (\w+)", re.MULTILINE)
if importlib.util.find_spec("torch") is None:
    collect_ignore = [p.name for p in Path(__file__).parent.glob("test_*.py")
                      if set(_TOP_IMPORT.findall(p.read_text())) & set(_TORCH_HELPERS)]


COLLECTED = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """How many tests the run collected, before -k or -m deselects any: test_docs.py holds the
    README's test count to it."""
    config.stash[COLLECTED] = len(items)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    """The torch device axis: cuda cases skip cleanly without a GPU."""
    if request.param == "cuda" and not _cuda_available():
        pytest.skip("no CUDA device")
    return request.param


# Every switch that lets float32 matrix products or cuDNN RNNs run in TF32, as (object, attribute, exact value).
# torch 2.9+ adds the fp32_precision settings beside the older allow_tf32 flags; each is set where it exists.
def _tf32_switches(torch):
    switches = [(torch.backends.cudnn, "allow_tf32", False), (torch.backends.cuda.matmul, "allow_tf32", False)]
    for owner in (torch.backends.cuda.matmul, torch.backends.cudnn, getattr(torch.backends.cudnn, "rnn", None)):
        if owner is not None and hasattr(owner, "fp32_precision"):
            switches.append((owner, "fp32_precision", "ieee"))
    return switches


@pytest.fixture(autouse=True)
def _no_tf32():
    """Parity tests compare exact float32: TF32 is turned off for every test (cuDNN,
    matmul, and the newer fp32_precision settings) and restored afterwards.
    Benchmarks record the setting instead."""
    try:
        import torch
    except ImportError:
        yield
        return
    switches = _tf32_switches(torch)
    saved = [getattr(owner, name) for owner, name, _ in switches]
    for owner, name, value in switches:
        setattr(owner, name, value)
    yield
    for (owner, name, _), value in zip(switches, saved, strict=True):
        setattr(owner, name, value)
