"""The reference at emulated precision: rounding formats, a rounding array namespace, and rounding models.

NumPy only. ``ml_dtypes`` (NumPy's bfloat16) is not needed here: values in a
narrow format are held in a wider NumPy carrier (see ``formats``).
"""

from .formats import FORMATS, Format, round_mantissa, round_to
from .models import Precision, rounding_models, truth_rounding
from .namespace import RoundedArray, Rounding, RoundingNamespace, namespace

__all__ = [
    "FORMATS",
    "Format",
    "Precision",
    "RoundedArray",
    "Rounding",
    "RoundingNamespace",
    "namespace",
    "round_mantissa",
    "round_to",
    "rounding_models",
    "truth_rounding",
]
