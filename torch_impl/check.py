"""``python -m torch_impl.check``: the same program as the ``rnn-check`` console script
(:mod:`reference.verify.cli`)."""

import sys

from reference.verify.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
