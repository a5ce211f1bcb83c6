"""Runnable study scripts: NumPy (reference) and torch trained side by side from the same weights."""
