"""rnn-check: check a recurrent implementation, a model file or two weight sets against the reference.

    rnn-check --candidate mypkg.rnn:MyLSTM --mode LSTM --input-size 8 --hidden-size 16 \\
        --num-layers 2 --bidirectional --lengths 6,4,5 --dtype float32
    rnn-check --candidate path/to/my_rnn.py:make --mode GRU --input-size 3 --hidden-size 4
    rnn-check --model exported.onnx
    rnn-check --model model.onnx --inputs test_data_set_0
    rnn-check --diff-weights exported.onnx trained.npz

``python -m torch_impl.check`` is the same program.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from ..memory import MemoryLimitError, memory_limit
from .adapters.function import FunctionCandidate
from .candidates import Candidate, CandidateError
from .cli_parser import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_REFUSED, parser
from .deadline import deadline, phase
from .files import Limits, reading
from .footprint import check_footprint
from .spec import Spec

# what a refusal raises: a bad argument or file (ValueError, TypeError; MemoryLimitError and a file over a limit are
# ValueErrors), a file that cannot be read (OSError; CheckTimeout is a TimeoutError, one of them), a candidate that
# cannot be imported, built or run as the protocol says (ImportError, CandidateError). Anything else is a bug here.
REFUSALS = (CandidateError, ValueError, TypeError, OSError, ImportError)

def load_object(target: str) -> Any:
    """``module.path:attr`` or ``path/to/file.py:attr`` -> the object."""
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise ValueError(f"--candidate: expected MODULE:FACTORY or path/to/file.py:FACTORY, got {target!r}")
    if where.endswith(".py"):
        if not os.path.isfile(where):
            raise ValueError(f"--candidate: no such file {where!r}")
        name = "_rnn_check_" + os.path.splitext(os.path.basename(where))[0]
        spec = importlib.util.spec_from_file_location(name, where)
        assert spec is not None and spec.loader is not None  # an existing .py path always gets a source loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        _run_user_code(f"--candidate: executing {where}", spec.loader.exec_module, module)
    else:
        module = _run_user_code(f"--candidate: importing {where}", importlib.import_module, where)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"--candidate: {where} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _run_user_code(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, where ``fn`` runs the user's code: whatever it raises is the user's to fix (exit 2)."""
    try:
        return fn(*args)
    except ImportError:
        raise
    except Exception as e:  # the user's module, not this program, raised it
        raise CandidateError(f"{what} raised {type(e).__name__}: {e}") from e


def _spec(args: argparse.Namespace) -> Spec:
    missing = [f"--{n.replace('_', '-')}" for n in ("mode", "input_size", "hidden_size") if getattr(args, n) is None]
    if missing:
        raise ValueError(f"--candidate needs {', '.join(missing)}")
    mode = args.mode
    if mode == "RNN":
        mode = "RNN_TANH" if args.nonlinearity == "tanh" else "RNN_RELU"
    return Spec(mode, args.input_size, args.hidden_size, args.num_layers, not args.no_bias, args.bidirectional,
                args.proj_size, args.dropout, args.train, args.reset_after)


def _check_sizes(args: argparse.Namespace, spec: Spec, T: int, B: int, dtype: str) -> None:
    """Refuse, before anything is built, sizes whose check would not fit in memory, naming the arguments."""
    try:
        check_footprint(spec, T, B, dtype, args.lengths is not None)
    except MemoryLimitError as e:
        given = [f"--{n.replace('_', '-')} {getattr(args, n)}" for n in ("input_size", "hidden_size", "num_layers",
                                                                           "proj_size") if getattr(args, n)]
        given += [f"--seq-len {T}", f"--lengths {','.join(map(str, args.lengths))}" if args.lengths else
                  f"--batch {B}"]
        raise MemoryLimitError(f"{' '.join(given)}: {e}") from None


def _check_device(device: str) -> None:
    if device == "cpu":
        return
    try:
        import torch

        dev = torch.device(device)
    except (ImportError, RuntimeError) as e:
        raise ValueError(f"--device: {device!r} is not a device here: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device: {device!r} is not available (torch.cuda.is_available() is False)")


def _candidate(args, spec: Spec, factory: Any):
    """(candidate object, factory for other Specs or None) from the user's factory."""
    params = list(inspect.signature(factory).parameters) if callable(factory) else []
    if params[:1] == ["spec"]:
        return FunctionCandidate(factory, args.layout or "torch", args.dtype or "float64"), None
    build = lambda s: factory(s.input_size, s.hidden_size, **s.torch_kwargs())
    made = _run_user_code(f"--candidate: the factory {args.candidate}", build, spec)
    if hasattr(made, "named_parameters"):
        import torch

        dtype = getattr(torch, args.dtype or "float64")
        made = made.to(device=args.device, dtype=dtype).train(args.train)
        return made, lambda s: build(s).to(device=args.device, dtype=dtype)
    if callable(made):
        return FunctionCandidate(made, args.layout or "torch", args.dtype or "float64"), None
    raise CandidateError(f"the factory returned {type(made).__name__}; expected a torch module or a function "
                         "fn(spec, params, input, hx, grad_output, grad_hidden, *, lengths, dropout_masks)")


def _diff(args) -> int:
    from .diff import diff_weights

    mode = None if args.mode is None else _spec_mode(args)
    diffs = diff_weights(*args.diff_weights, mode=mode, reset_after=None if args.reset_after else False,
                         trust_pickle=args.trust_pickle)
    for d in diffs:
        print(d)
    print(f"RESULT: {'SAME' if not diffs else 'DIFFERENT'} ({len(diffs)} difference{'s' if len(diffs) != 1 else ''})")
    return 1 if diffs else 0


def _spec_mode(args) -> str:
    if args.mode == "RNN":
        return "RNN_TANH" if args.nonlinearity == "tanh" else "RNN_RELU"
    return args.mode


def _run(args) -> int:
    from .compare import compare
    from .models import load_model, load_weights
    from .report import CompareReport, plot_errors

    if args.diff_weights:
        return _diff(args)
    _check_device(args.device)
    common = dict(lengths=args.lengths, seed=args.seed, seq_len=args.seq_len, weights=args.weights,
                  compute=args.compute, accumulate=args.accumulate,
                  cotangents=args.cotangents, gradients=False if args.no_gradients else args.gradients)
    if args.lengths is not None:
        common["batch"] = len(args.lengths)
        common["seq_len"] = max(args.seq_len, max(args.lengths))
    if args.inputs is not None and not (args.model or "").endswith(".onnx"):
        raise ValueError("--inputs: only with --model FILE.onnx (the values of its graph inputs)")
    expected = None
    dtype = {"bfloat16": "float32", "float16": "float32"}.get(args.dtype, args.dtype or "float64")  # arrays' dtype
    if args.model:
        mode = None if args.mode is None else _spec_mode(args)
        with phase("loading the model"):
            candidate = load_model(args.model, mode=mode, layout=args.layout, trust_pickle=args.trust_pickle,
                                   inputs=args.inputs)
        expected = candidate.check_expected() if hasattr(candidate, "check_expected") else None
        if (args.device != "cpu" or args.dtype in ("bfloat16", "float16")) and hasattr(candidate, "module"):
            import torch

            rebuild: Callable[..., Candidate] = type(candidate)  # a module candidate: (module, name=...)
            to = dict(device=args.device) | ({"dtype": getattr(torch, args.dtype)} if args.dtype else {})
            candidate = rebuild(candidate.module.to(**to), name=candidate.name)
        report = compare(candidate, dtype=args.dtype, **common)
    else:
        if args.with_weights:
            state, spec, _ = load_weights(args.with_weights, layout=None if args.layout in (None, "torch") else
                                          args.layout, mode=None if args.mode is None else _spec_mode(args),
                                          trust_pickle=args.trust_pickle)
            reference_module: Any = spec.reference(state)
            common["weights"] = args.weights or "reference"
        else:
            spec = _spec(args)
            reference_module = spec
        _check_sizes(args, spec, common["seq_len"], common.get("batch", args.batch), dtype)
        with phase("importing the candidate"):
            factory = load_object(args.candidate)
        with phase("building the candidate"):
            candidate, factory = _candidate(args, spec, factory)
        report = compare(candidate, reference_module, factory=factory,
                         dtype=None if hasattr(candidate, "named_parameters") else args.dtype, **common)
    print(report)
    if expected is not None:
        print(expected)
    if args.plot:
        drawn = plot_errors(report, args.plot) if isinstance(report, CompareReport) else report.plot(args.plot)
        print(f"plot: {drawn}")
    return 0 if report.passed and (expected is None or expected.passed) else 1


def main(argv: list[str] | None = None) -> int:
    """The console script: returns the exit status (argparse exits 2 itself on bad arguments).

    0 match, 1 mismatch, 2 refused (one line on stderr naming the argument, file or tensor), 3 internal error,
    130 interrupted; a traceback only with --debug.
    """
    args = parser().parse_args(argv)
    try:
        with reading(Limits(args.max_file_bytes, args.max_total_bytes)), memory_limit(args.memory_limit), \
                deadline(args.timeout):
            return _run(args)
    except KeyboardInterrupt:
        _say(args, "rnn-check: interrupted")
        return EXIT_INTERRUPTED
    except REFUSALS as e:
        named = "" if isinstance(e, (CandidateError, ValueError, TimeoutError)) else f"{type(e).__name__}: "
        _say(args, f"error: {named}{e}")
        return EXIT_REFUSED
    except Exception as e:  # noqa: BLE001 -- the contract: exit 3, one line, no traceback without --debug
        _say(args, f"rnn-check: internal error: {type(e).__name__}: {e} -- a bug in rnn-check, not in your "
                   "candidate or files: please report it with the command line and the output of --debug")
        return EXIT_INTERNAL


def _say(args: argparse.Namespace, text: str) -> None:
    """One line on stderr (a message's own line breaks joined), after the traceback with --debug."""
    if args.debug:
        traceback.print_exc()
    print("; ".join(line.strip() for line in text.splitlines() if line.strip()), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
