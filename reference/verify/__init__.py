"""The verifier: check any recurrent implementation against the float64 reference, and say where it goes wrong.

Needs NumPy only. torch enters through ``torch_impl.compare`` when a torch module
or a torch file is checked; ONNX files need ``onnx`` and ``onnxruntime``
(``pip install 'rnn-reference[verify]'``); Flax and Equinox cells need JAX (``[jax]``);
``reference.verify.testing`` needs hypothesis.
"""

from .adapters.equinox import EquinoxCandidate
from .adapters.flax import FlaxCandidate, NnxCandidate
from .adapters.function import FunctionCandidate
from .adapters.onnx import OnnxCandidate
from .candidates import Candidate, CandidateError, CandidateFn, Problem
from .compare import compare
from .deadline import CheckTimeout
from .diff import WeightDifference, diff_weights
from .files import Limits
from .layouts import LAYOUTS, export_state_dict, export_weights, import_gradients, import_state_dict, import_weights
from .models import load_model, load_weights
from .report import CompareReport, Divergence, TensorResult, plot_errors
from .spec import Spec

__all__ = [
    "LAYOUTS",
    "Candidate",
    "CandidateError",
    "CandidateFn",
    "CheckTimeout",
    "CompareReport",
    "Divergence",
    "EquinoxCandidate",
    "FlaxCandidate",
    "FunctionCandidate",
    "Limits",
    "NnxCandidate",
    "OnnxCandidate",
    "Problem",
    "Spec",
    "TensorResult",
    "WeightDifference",
    "compare",
    "diff_weights",
    "export_state_dict",
    "export_weights",
    "import_gradients",
    "import_state_dict",
    "import_weights",
    "load_model",
    "load_weights",
    "plot_errors",
]
