"""rnn-check's command line: its arguments, their types and checks, and the help text.

Every argument type here raises ``argparse.ArgumentTypeError`` naming what was expected and what was
given, so a bad value exits 2 with one line (argparse's own rule); :mod:`.cli` runs what they ask.
"""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from .files import MAX_FILE_BYTES, MAX_TOTAL_BYTES
from .layouts import LAYOUTS

EXIT_MATCH, EXIT_MISMATCH, EXIT_REFUSED, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130  # the exit contract

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
