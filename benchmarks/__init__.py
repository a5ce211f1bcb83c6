"""Benchmarks: validate every implementation against torch.nn, then time it next to torch.

    python -m benchmarks                     # quick suite, results under bench_results/
    python -m benchmarks --suite full --cells LSTM --dtypes float32

Modules: ``config`` (rows, suites and their implementations), ``problem`` (the data every
implementation sees), ``prepared`` (the interface every implementation fills), ``impls`` (the implementations behind
it), ``floor`` (the
reference's matrix products alone), ``jax_impl`` (the optional JAX row), ``kernel`` (which
BLAS kernel each process runs, and the environment that decides it), ``measure`` (clocks,
FLOPs, bytes, resident memory), ``worker`` (the subprocess that runs jobs), ``runner``
(validates and times rows side by side on the workers, derives ratios), ``progress`` (the
ETA line), ``baseline`` (a previous revision's reference), ``report`` (table, JSON, CSV),
``plots`` (PNG).
"""
