"""The suite's tolerance table: one table, kept in ``reference/tolerances.py``
so the tools outside the tests read the same numbers (see the measurements there)."""

from reference.tolerances import TOLERANCES, candidate_tol, tol

__all__ = ["TOLERANCES", "candidate_tol", "tol"]
