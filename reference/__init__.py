"""Reference of torch.nn's recurrent layers, with hand-written BPTT, on any array library.

NumPy is the default and the only requirement; torch tensors (any device) and
other array API libraries run through the same code (``array_api_compat`` is
imported only when such arrays arrive).
"""

from . import train
from .cells import (
    GRUCell,
    LSTMCell,
    RNNCell,
    gru_cell_backward,
    gru_cell_forward,
    lstm_cell_backward,
    lstm_cell_forward,
    rnn_cell_backward,
    rnn_cell_forward,
)
from .config import RNNConfig
from .gradcheck import (
    GradcheckReport,
    TensorCheck,
    check_gradients,
    check_module_gradients,
    check_vjp,
    numerical_gradient,
)
from .gradient_flow import gate_means, hidden_gradient_norms, step_jacobians, step_singular_values
from .jvp import jvp
from .memory import MemoryLimitError, memory_limit
from .recurrent import GRU, LSTM, RNN
from .tape import RecurrentTape, StepRecord

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "GradcheckReport",
    "LSTMCell",
    "MemoryLimitError",
    "RNNCell",
    "RNNConfig",
    "RecurrentTape",
    "StepRecord",
    "TensorCheck",
    "check_gradients",
    "check_module_gradients",
    "check_vjp",
    "gate_means",
    "gru_cell_backward",
    "gru_cell_forward",
    "hidden_gradient_norms",
    "jvp",
    "lstm_cell_backward",
    "lstm_cell_forward",
    "memory_limit",
    "numerical_gradient",
    "rnn_cell_backward",
    "rnn_cell_forward",
    "step_jacobians",
    "step_singular_values",
    "train",
]
