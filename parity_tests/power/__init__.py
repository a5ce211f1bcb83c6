"""The low-precision power study: ``python -m parity_tests.power`` (see ``study`` and ``report``)."""
