"""Everything torch: converters, explicit torch equations, the hand-written BPTT as an autograd Function."""

from .bptt import RNNBPTTFunction, rnn_bptt
from .convert import from_torch, load_into, to_torch
from .equations import gru_cell, lstm_cell, module_config, rnn_cell, rnn_forward

__all__ = [
    "RNNBPTTFunction",
    "from_torch",
    "gru_cell",
    "load_into",
    "lstm_cell",
    "module_config",
    "rnn_bptt",
    "rnn_cell",
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
