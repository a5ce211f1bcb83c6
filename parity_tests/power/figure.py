"""The error-per-step figures of docs/low_precision.md: a correct bfloat16 kernel and a planted bug,
each against its rounding envelope (LSTM I=32 H=64 B=8, T=100, the study's problem of seed 0)."""

from __future__ import annotations

from pathlib import Path

from reference.verify.envelope import judge, measure_envelope, named_tensors, plot_envelope

from .kernels import torch_module_run
from .report import ROOT
from .study import KERNEL_CLAIMS, TORCH_CLAIMS, hand_kernel, problem

FIGURES = ROOT / "docs" / "figures"


def draw_error_figure(T: int = 100) -> list[Path]:
    claim, broad = KERNEL_CLAIMS["bfloat16"], TORCH_CLAIMS["bfloat16"]
    paths = []
    env = measure_envelope(problem(T, 0, broad), broad)
    verdict = judge(env, named_tensors(torch_module_run(env.problem, "bfloat16"), True))
    paths.append(Path(plot_envelope(verdict, str(FIGURES / "low_precision_torch_lstm.png"),
                                    f"torch.nn.LSTM in bfloat16, declared {broad}: {verdict}")))
    env = measure_envelope(problem(T, 0, claim), claim)
    verdict = judge(env, hand_kernel(env.problem, claim, "bias", 5e-3))
    paths.append(Path(plot_envelope(verdict, str(FIGURES / "low_precision_bias_bug.png"),
                                    f"forget-gate bias + 5e-3, declared {claim}: {verdict}")))
    return paths
