"""Check a candidate recurrent implementation against the reference, from the command line.

    python -m torch_impl.check --candidate mypkg.rnn:MyLSTM --mode LSTM --input-size 8 --hidden-size 16 \\
        --num-layers 2 --bidirectional --lengths 6,4,5 --plot err.png

``--candidate module:attr`` names a factory called with torch's constructor
arguments, ``attr(input_size, hidden_size, num_layers=, bias=, batch_first=False,
dropout=, bidirectional=[, proj_size=][, nonlinearity=])``, that returns either a
torch module with torch's parameter names and call signature (a torch.nn class
itself works: ``--candidate torch.nn:LSTM``) or a function following
``torch_impl.compare.CandidateFn``. Weights, inputs and cotangents are drawn from
``--seed``. Exit status: 0 match, 1 mismatch, 2 usage error (bad arguments, or a
candidate that cannot be imported, built or run).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .compare import CandidateError, Spec, compare, plot_errors
from .layouts import LAYOUTS


def _lengths(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m torch_impl.check", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidate", required=True, help="module.path:factory")
    p.add_argument("--mode", required=True, choices=["RNN", "RNN_TANH", "RNN_RELU", "GRU", "LSTM"])
    p.add_argument("--input-size", type=int, required=True)
    p.add_argument("--hidden-size", type=int, required=True)
    p.add_argument("--num-layers", type=int, default=1)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--proj-size", type=int, default=0)
    p.add_argument("--no-bias", action="store_true")
    p.add_argument("--nonlinearity", choices=["tanh", "relu"], default="tanh", help="for --mode RNN")
    p.add_argument("--dropout", type=float, default=0.0, help="with --train: masks are drawn and passed as dropout_masks=")
    p.add_argument("--train", action="store_true", help="training mode (dropout between layers)")
    p.add_argument("--seq-len", type=int, default=5)
    p.add_argument("--batch", type=int, default=3)
    p.add_argument("--lengths", type=_lengths, default=None, help="comma-separated, one per batch row, e.g. 5,3,4")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--device", default="cpu", help="torch device for torch module candidates")
    p.add_argument("--layout", choices=LAYOUTS, default="torch", help="weight layout of a function candidate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", metavar="PATH", default=None, help="write error per time step as a PNG")
    p.add_argument("--no-gradients", action="store_true", help="forward only")
    return p


def _load(path: str):
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--candidate: expected module.path:factory, got {path!r}")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # exits 2 on bad arguments
    mode = args.mode
    if mode == "RNN":
        mode = "RNN_TANH" if args.nonlinearity == "tanh" else "RNN_RELU"
    try:
        spec = Spec(mode, args.input_size, args.hidden_size, args.num_layers, not args.no_bias, args.bidirectional,
                    args.proj_size, args.dropout, args.train)
        if args.lengths is not None and len(args.lengths) != args.batch:
            args.batch = len(args.lengths)
        if args.lengths is not None and max(args.lengths) > args.seq_len:
            args.seq_len = max(args.lengths)
        spec.reference()  # validates the configuration
        factory = _load(args.candidate)
        candidate = factory(spec.input_size, spec.hidden_size, **spec.torch_kwargs())
        if hasattr(candidate, "named_parameters"):
            import torch

            candidate = candidate.to(device=args.device, dtype=getattr(torch, args.dtype)).train(args.train)

            def rebuild(s: Spec):
                return factory(s.input_size, s.hidden_size, **s.torch_kwargs())
        else:
            rebuild = None
        report = compare(candidate, spec, lengths=args.lengths, seed=args.seed, seq_len=args.seq_len,
                         batch=args.batch, dtype=args.dtype, layout=args.layout, factory=rebuild,
                         gradients=not args.no_gradients)
    except CandidateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ImportError, AttributeError, TypeError, ValueError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    print(report)
    if args.plot:
        print(f"plot: {plot_errors(report, args.plot)}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
