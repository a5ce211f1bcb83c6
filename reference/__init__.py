"""Pure-NumPy reference of torch.nn's recurrent layers, with hand-written BPTT."""

from .cells import GRUCell, LSTMCell, RNNCell
from .recurrent import GRU, LSTM, RNN
from .gradcheck import GradcheckReport, TensorCheck, check_gradients, check_module_gradients, check_vjp, numerical_gradient
from . import train
from .gru_cell import gru_cell_backward, gru_cell_forward
from .lstm_cell import lstm_cell_backward, lstm_cell_forward
from .gradient_flow import hidden_gradient_norms, step_jacobians, step_singular_values
from .jvp import jvp
from .rnn_cell import rnn_cell_backward, rnn_cell_forward

__all__ = [
    "numerical_gradient", "check_gradients", "check_vjp", "check_module_gradients", "GradcheckReport", "TensorCheck",
    "RNN", "GRU", "LSTM",
    "jvp", "hidden_gradient_norms", "step_jacobians", "step_singular_values", "train",
    "RNNCell", "GRUCell", "LSTMCell",
    "rnn_cell_forward", "rnn_cell_backward",
    "gru_cell_forward", "gru_cell_backward",
    "lstm_cell_forward", "lstm_cell_backward",
]
