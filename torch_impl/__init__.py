"""Everything torch: converters, explicit torch equations, the hand-written BPTT as an autograd Function."""

from .convert import from_torch, load_into, to_torch

__all__ = ["from_torch", "to_torch", "load_into"]
