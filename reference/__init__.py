"""Pure-NumPy reference of torch.nn's recurrent layers, with hand-written BPTT."""

from .cells import GRUCell, LSTMCell, RNNCell
from .recurrent import GRU, LSTM, RNN
from .gradcheck import GradcheckReport, TensorCheck, check_gradients, check_module_gradients, check_vjp, numerical_gradient
from .gru_cell import gru_cell_backward, gru_cell_forward
from .lstm_cell import lstm_cell_backward, lstm_cell_forward
from .rnn_cell import rnn_cell_backward, rnn_cell_forward

__all__ = [
    "numerical_gradient", "check_gradients", "check_vjp", "check_module_gradients", "GradcheckReport", "TensorCheck",
    "RNN", "GRU", "LSTM",
    "RNNCell", "GRUCell", "LSTMCell",
    "rnn_cell_forward", "rnn_cell_backward",
    "gru_cell_forward", "gru_cell_backward",
    "lstm_cell_forward", "lstm_cell_backward",
]
