"""The planted-bug catalogue and its runner: ``python -m parity_tests.mutants`` (see ``runner``)."""

from .catalogue import CATALOGUE, Mutant

__all__ = ["CATALOGUE", "Mutant"]
