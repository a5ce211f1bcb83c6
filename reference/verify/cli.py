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
import math
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from ..memory import MemoryLimitError, memory_limit
from .adapters.function import FunctionCandidate
from .candidates import Candidate, CandidateError
from .deadline import deadline, phase
from .files import MAX_FILE_BYTES, MAX_TOTAL_BYTES, Limits, reading
from .footprint import check_footprint
from .layouts import LAYOUTS
from .spec import Spec

EXIT_MATCH, EXIT_MISMATCH, EXIT_REFUSED, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# what a refusal raises: a bad argument or file (ValueError, TypeError; MemoryLimitError and a file over a limit are
# ValueErrors), a file that cannot be read (OSError; CheckTimeout is a TimeoutError, one of them), a candidate that
# cannot be imported, built or run as the protocol says (ImportError, CandidateError). Anything else is a bug here.
REFUSALS = (CandidateError, ValueError, TypeError, OSError, ImportError)

EPILOG = """\
factory protocol (--candidate MODULE:FACTORY or path/to/file.py:FACTORY):
  FACTORY(input_size, hidden_size, num_layers=, bias=, batch_first=False, dropout=,
          bidirectional=[, proj_size=][, nonlinearity=])
  is called with torch's constructor arguments (from --mode, --input-size, ...) and
  returns either
    * a torch module with torch's parameter names (weight_ih_l0, ...) and call
      signature module(input, hx) -> (output, hidden); a torch.nn class itself
      works (--candidate torch.nn:LSTM), and so does a class without a .mode
      attribute: --mode says what it is; or
    * a function fn(spec, params, input, hx, grad_output, grad_hidden, *,
      lengths=None, dropout_masks=None) -> {"output", "hidden", "input", "hx",
      <parameter gradients>} (see reference.verify.candidates), with its weights in
      --layout.
  A FACTORY whose first parameter is named `spec` is taken as that function itself.

--model FILE checks a file as it is: .onnx (ONNX Runtime, forward only), .pt/.pth
(a state_dict run in torch.nn, or, with --trust-pickle, a pickled torch module),
.npz (weights in the torch, keras, onnx or ifog layout, run in torch.nn).
--candidate ... --with-weights FILE runs your candidate on a file's weights instead
(configuration from the file).
--inputs DIR|FILE.npz (with an .onnx model) gives the graph inputs that are not
constants (weights, initial states, sequence lengths): an ONNX test-data folder
(input_<j>.pb for the graph's input j) or an .npz keyed by input name; where the
folder has output_<j>.pb, the reference on its inputs is checked against them too
(its own RESULT line; the exit status is 1 if either fails). Sequence lengths given
there (sequence_lens) are checked like --lengths and both sides run with them.

files run no code: a .pt/.pth is read with torch's weights_only=True (tensors only),
an .npz with allow_pickle=False, an .onnx without external data from outside its
directory. A pickled module (torch.save(module)) is refused unless --trust-pickle:
unpickling runs any code the file names, with your permissions (it can read,
write or delete your files), so use it only on files you made or trust; a
state_dict (torch.save(module.state_dict())) needs no trust. A missing,
truncated, mislabelled or oversized file exits 2 saying why.
--candidate runs code by design: it imports the module or executes the .py file you name.

limits (each refusal exits 2 before the work it refuses starts):
  every file read must be a regular file (a symlink is followed, and from a test-data
  folder or beside an .onnx it must stay in that folder), at most --max-file-bytes
  (default 2 GiB; an archive's members count uncompressed), and one check reads at
  most --max-total-bytes in all (default 4 GiB). The check's memory is estimated from
  the sizes before anything is allocated, and refused above --memory-limit (default:
  the memory available). --timeout SECONDS stops a candidate that runs past it.

exit status:
  0    match (no difference, for --diff-weights)
  1    mismatch (also when localisation stopped; differences, for --diff-weights)
  2    usage error: bad arguments, a candidate that cannot be imported, built or run
       as the protocol says, a file refused (see above), a size that does not fit in
       memory, a timeout, or an unavailable device; one line on stderr names the
       argument, file or tensor
  3    internal error: a bug in rnn-check; please report it (--debug shows the traceback)
  130  interrupted (Ctrl-C)
"""


def _int(text: str, minimum: int) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = None
    if value is None or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
    return value


def positive(text: str) -> int:
    """A size: an integer >= 1, written in decimal digits ("1e9" and "3.0" are refused)."""
    return _int(text, 1)


def natural(text: str) -> int:
    """An integer >= 0 (--proj-size, --seed)."""
    return _int(text, 0)


def _ints(text: str) -> list[int]:
    parts = text.split(",")
    try:
        return [positive(v.strip()) for v in parts]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None


def _real(text: str, low: float, high: float, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (low <= value <= high) or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def probability(text: str) -> float:
    return _real(text, 0.0, 1.0, "a number in [0, 1]")


def seconds(text: str) -> float:
    value = _real(text, 0.0, math.inf, "a positive number of seconds")
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def memory(text: str) -> float | str:
    """--memory-limit: "available", "none" (no check, on purpose) or a positive number of bytes."""
    if text in ("available", "none"):
        return "available" if text == "available" else math.inf
    try:
        return positive(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'available', 'none' or a positive number of bytes, got "
                                         f"{text!r}") from None


class _Parser(argparse.ArgumentParser):
    """argparse, with its refusals on one line (the argument and why), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_REFUSED, f"error: {message} (rnn-check --help lists the arguments)\n")


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rnn-check", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--candidate", metavar="MODULE:FACTORY",
                      help="module.path:factory or path/to/file.py:factory; runs that code by design (imports it)")
    what.add_argument("--model", metavar="FILE", help="check a model file as it is (.onnx, .pt/.pth, .npz)")
    what.add_argument("--diff-weights", nargs=2, metavar=("A", "B"),
                      help="compare two weight sets (files in any supported layout) per layer, direction and gate")
    p.add_argument("--with-weights", metavar="FILE", help="with --candidate: run it on these weights (.npz, ...)")
    p.add_argument("--inputs", metavar="DIR|FILE.npz", default=None,
                   help="with --model FILE.onnx: values of its graph inputs (an ONNX test-data folder or an .npz)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="let a .pt/.pth that is a pickled module (not a state_dict) load in full: unpickling runs "
                        "any code the file names, as you; only for files you made or trust")
    cfg = p.add_argument_group("configuration (required with --candidate)")
    cfg.add_argument("--mode", choices=["RNN", "RNN_TANH", "RNN_RELU", "GRU", "LSTM"])
    cfg.add_argument("--input-size", type=positive)
    cfg.add_argument("--hidden-size", type=positive)
    cfg.add_argument("--num-layers", type=positive, default=1)
    cfg.add_argument("--bidirectional", action="store_true")
    cfg.add_argument("--proj-size", type=natural, default=0)
    cfg.add_argument("--no-bias", action="store_true")
    cfg.add_argument("--nonlinearity", choices=["tanh", "relu"], default="tanh", help="for --mode RNN")
    cfg.add_argument("--reset-after", action=argparse.BooleanOptionalAction, default=True,
                     help="GRU: torch's form (default); --no-reset-after: the paper's, W_hn (r * h)")
    cfg.add_argument("--dropout", type=probability, default=0.0, help="with --train: masks are drawn, passed as dropout_masks=")
    cfg.add_argument("--train", action="store_true", help="training mode (dropout between layers)")
    run = p.add_argument_group("the check")
    run.add_argument("--seq-len", type=positive, default=5)
    run.add_argument("--batch", type=positive, default=3)
    run.add_argument("--lengths", type=_ints, default=None, help="comma-separated, one per batch row, e.g. 5,3,4")
    run.add_argument("--dtype", choices=["float32", "float64", "bfloat16", "float16"], default=None,
                     help="the candidate's dtype (default: float64, or a model file's own); bfloat16 and float16 "
                          "are judged against the rounding envelope")
    run.add_argument("--compute", choices=["float32", "bfloat16", "float16", "tf32"], default=None,
                     help="what the candidate computes intermediates in: tf32 for float32 with TF32 products "
                          "(cuDNN's allow_tf32); with --dtype bfloat16/float16: float32 for a fused kernel (default: "
                          "the storage format, the widest claim)")
    run.add_argument("--accumulate", choices=["float32", "bfloat16", "float16"], default=None,
                     help="the format matrix products' partial sums run in (default: see --compute)")
    run.add_argument("--device", default="cpu", help="torch device for torch module candidates")
    run.add_argument("--layout", choices=LAYOUTS, default=None, help="weight layout of a function candidate or .npz")
    run.add_argument("--weights", choices=["candidate", "reference", "draw"], default=None,
                     help="whose weights both sides run on (default: the candidate's own, else drawn)")
    run.add_argument("--cotangents", type=_names, default=None,
                     help="outputs carrying a gradient, e.g. output or output,h_n (default: all)")
    run.add_argument("--gradients", type=_names, default=None,
                     help="gradients the candidate provides, among input,h_0,c_0,weights,weight_ih,... (default: all)")
    run.add_argument("--no-gradients", action="store_true", help="forward only")
    run.add_argument("--seed", type=natural, default=0)
    run.add_argument("--plot", metavar="PATH", default=None, help="write error per time step as a PNG")
    bounds = p.add_argument_group("bounds (see limits below)")
    bounds.add_argument("--timeout", type=seconds, metavar="SECONDS", default=None,
                        help="stop the check (exit 2) if it runs longer, naming the step that was running")
    bounds.add_argument("--max-file-bytes", type=positive, metavar="BYTES", default=MAX_FILE_BYTES,
                        help=f"refuse a file (or archive member) larger than this (default {MAX_FILE_BYTES})")
    bounds.add_argument("--max-total-bytes", type=positive, metavar="BYTES", default=MAX_TOTAL_BYTES,
                        help=f"refuse to read more than this for one check (default {MAX_TOTAL_BYTES})")
    bounds.add_argument("--memory-limit", type=memory, metavar="BYTES|available|none", default="available",
                        help="refuse a check estimated to need more memory (default: what is available now; none: "
                             "run it anyway, on purpose)")
    p.add_argument("--debug", action="store_true", help="print the traceback of an error (exit status unchanged)")
    return p


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
