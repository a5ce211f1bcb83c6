"""Everything torch: converters, explicit torch equations, the hand-written BPTT as an autograd Function."""

from .bptt import RNNBPTTFunction, rnn_bptt
from .convert import from_torch, load_into, to_torch
from .equations import gru_cell, lstm_cell, module_config, rnn_cell, rnn_forward

__all__ = [
    "from_torch", "to_torch", "load_into",
    "rnn_forward", "rnn_cell", "gru_cell", "lstm_cell", "module_config",
    "rnn_bptt", "RNNBPTTFunction",
]
