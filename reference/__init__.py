"""Pure-NumPy reference of torch.nn's recurrent layers, with hand-written BPTT."""

from . import train
from .cells import GRUCell, LSTMCell, RNNCell
from .gradcheck import (
    GradcheckReport,
    TensorCheck,
    check_gradients,
    check_module_gradients,
    check_vjp,
    numerical_gradient,
)
from .gradient_flow import hidden_gradient_norms, step_jacobians, step_singular_values
from .gru_cell import gru_cell_backward, gru_cell_forward
from .jvp import jvp
from .lstm_cell import lstm_cell_backward, lstm_cell_forward
from .recurrent import GRU, LSTM, RNN
from .rnn_cell import rnn_cell_backward, rnn_cell_forward

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "GradcheckReport",
    "LSTMCell",
    "RNNCell",
    "TensorCheck",
    "check_gradients",
    "check_module_gradients",
    "check_vjp",
    "gru_cell_backward",
    "gru_cell_forward",
    "hidden_gradient_norms",
    "jvp",
    "lstm_cell_backward",
    "lstm_cell_forward",
    "numerical_gradient",
    "rnn_cell_backward",
    "rnn_cell_forward",
    "step_jacobians",
    "step_singular_values",
    "train",
]
