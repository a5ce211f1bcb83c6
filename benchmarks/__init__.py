"""Benchmarks: validate the NumPy reference against torch.nn, then time it next to torch.

    python -m benchmarks                     # quick suite, results under bench_results/
    python -m benchmarks --suite full --cells LSTM --dtypes float32

Modules: ``config`` (rows and suites), ``problem`` (the data every implementation
sees), ``impls`` (reference, torch nn, torch equations, torch Function), ``measure``
(clocks, FLOPs, bytes), ``worker`` (the subprocess that runs jobs), ``runner``
(times rows side by side on the workers, derives ratios), ``report`` (table, JSON, CSV), ``plots`` (PNG).
"""
