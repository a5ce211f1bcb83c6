"""Everything torch: converters, the core on torch tensors as an autograd Function (and under autograd), the verifier's torch candidates."""

from .bptt import RNNBPTTFunction, module_config, rnn_bptt, rnn_forward
from .convert import from_torch, load_into, to_torch

__all__ = [
    "RNNBPTTFunction",
    "from_torch",
    "load_into",
    "module_config",
    "rnn_bptt",
    "rnn_forward",
    "to_torch",
]

from .compare import CandidateError, CompareReport, Divergence, Spec, TorchCandidate, compare, plot_errors
from .layouts import export_weights, import_weights

__all__ += [
    "CandidateError",
    "CompareReport",
    "Divergence",
    "Spec",
    "TorchCandidate",
    "compare",
    "export_weights",
    "import_weights",
    "plot_errors",
]
