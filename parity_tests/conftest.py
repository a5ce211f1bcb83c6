"""Hypothesis profiles and the device axis.

HYPOTHESIS_PROFILE picks a profile: dev (default; fast, random), ci
(derandomized, no deadline, no example database: the same examples on every
run) or thorough (many examples). RNN_TEST_MAX_SIZE bounds every drawn size.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


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


@pytest.fixture(autouse=True)
def _no_tf32():
    """Parity tests compare exact float32: TF32 (cuDNN and matmul) is turned off
    for every test, and restored afterwards. Benchmarks record it instead."""
    try:
        import torch
    except ImportError:
        yield
        return
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
