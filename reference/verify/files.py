"""Reading model files that may be hostile: no code runs, and every read is bounded before it starts.

Every file the verifier reads (model, weights, test data, external data) is
opened by :func:`open_regular`: a symlink is resolved (and, for files found in
a folder, must stay inside that folder), the target must be a regular file (not
a device such as /dev/zero, a pipe or a socket), and its size is charged to the
check's :class:`Budget` before a byte is read. The budget holds two limits
(:class:`Limits`): one per file (an archive's member counts at its uncompressed
size) and one for the total read by one check (a model, its weights, its test
data and its external data together). A check is one call of ``compare``,
``load_model``, ``load_weights``, ``diff_weights`` or one ``rnn-check``; each
takes ``limits=`` (``rnn-check --max-file-bytes``, ``--max-total-bytes``).

What each reader adds (:func:`check_file` first checks that the contents are what
the extension says):

* .npz is read member by member with ``allow_pickle=False``, after every member's
  compression method, .npy header and declared shape have been checked against
  the bytes it holds (:func:`~reference.verify.npz.read_npz`); big-endian arrays come back in native order;
* .pt/.pth/.pkl/.bin is read by torch with ``weights_only=True`` (tensors and
  containers only); a pickled module, a TorchScript archive or any other pickle
  that needs full unpickling is refused unless the caller passes
  ``trust_pickle=True`` (``rnn-check --trust-pickle``), because full unpickling
  runs whatever code the file names (see ``torch_impl.compare.load_torch_file``);
* .onnx is read within the limits; its external data is read only from regular
  files inside the model's directory, and every tensor's declared shape must
  match the data it holds (``reference.verify.adapters.onnx_tensors``);
* .keras archives are charged member by member before Keras unpacks them
  (:func:`charge_archive`).

Needs NumPy only.
"""

from __future__ import annotations

import contextlib
import os
import stat
import zipfile
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

TORCH_SUFFIXES = (".pt", ".pth", ".pkl", ".bin")

# A .npz member or .onnx tensor declaring more than this many bytes is refused
# before it is read: 4 GiB is 4x the largest recurrent layer the float64
# reference checks in minutes (an LSTM with H = 4096: 4H x 2H float64 = 1 GiB),
# and far below what a hostile header can declare (10^12 elements = 4 TB).
MAX_ARRAY_BYTES = 2**32
# One file (or one archive member, uncompressed) larger than this is refused before it is read: 2 GiB is
# protobuf's limit for one message (an .onnx file above it must keep its weights as external data), and an
# .npz or .pt of 2 GiB holds an LSTM with H = 8192 in float32.
MAX_FILE_BYTES = 2**31
# Everything one check reads together: two files at the per-file limit. Reading is not the largest cost: the
# check's forward and backward are estimated separately (reference.verify.footprint).
MAX_TOTAL_BYTES = 2**32
# A model with a fixed input shape makes the check draw an input of that shape
# and about ten arrays like it, in float64: 2^24 elements is 128 MiB each.
MAX_INPUT_ELEMENTS = 2**24

TRUST_HINT = ("only if you trust the file (you made it, or it comes from someone you trust), pass trust_pickle=True "
              "(rnn-check --trust-pickle); better, save its state_dict: torch.save(module.state_dict(), path)")


@dataclass(frozen=True)
class Limits:
    """How much one check may read: ``file_bytes`` per file (or archive member, uncompressed), ``total_bytes``
    over every file it reads."""

    file_bytes: int = MAX_FILE_BYTES
    total_bytes: int = MAX_TOTAL_BYTES

    def __post_init__(self):
        for name in ("file_bytes", "total_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"limits: {name} must be a positive int (bytes), got {value!r}")


class Budget:
    """What one check has read so far, against its :class:`Limits`."""

    def __init__(self, limits: Limits):
        self.limits, self.read = limits, 0

    def check_size(self, nbytes: int, what: str, name: str) -> None:
        """ValueError naming ``name`` when ``nbytes`` exceeds the per-file limit."""
        if nbytes > self.limits.file_bytes:
            raise ValueError(f"{what}: {name} is {nbytes} bytes, over the limit of {self.limits.file_bytes} bytes per "
                             "file (limits=Limits(file_bytes=...); rnn-check --max-file-bytes)")

    def charge(self, nbytes: int, what: str, name: str) -> None:
        """Count ``nbytes`` about to be read from the file ``name``; ValueError naming it past either limit."""
        self.check_size(nbytes, what, name)
        self.add(nbytes, what, name)

    def add(self, nbytes: int, what: str, name: str) -> None:
        """Count ``nbytes`` about to be read (an archive's members together); ValueError past the total."""
        if self.read + nbytes > self.limits.total_bytes:
            raise ValueError(f"{what}: {name} ({nbytes} bytes) brings what this check reads to {self.read + nbytes} "
                             f"bytes, over the limit of {self.limits.total_bytes} bytes in all "
                             "(limits=Limits(total_bytes=...); rnn-check --max-total-bytes)")
        self.read += nbytes


_BUDGET: ContextVar[Budget | None] = ContextVar("read_budget", default=None)


@contextlib.contextmanager
def reading(limits: Limits | None = None) -> Iterator[Budget]:
    """One check's budget: a new one with ``limits`` (default :class:`Limits`), or, when ``limits`` is None inside
    another check, that check's (a check that loads a model and its weights counts both)."""
    if limits is not None and not isinstance(limits, Limits):
        raise TypeError(f"limits: expected a reference.verify.Limits, got {type(limits).__name__}")
    active = _BUDGET.get()
    if active is not None and limits is None:
        yield active
        return
    budget = Budget(limits or Limits())
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def budget() -> Budget:
    """The budget of the check in progress, or a fresh one with the default limits outside any."""
    return _BUDGET.get() or Budget(Limits())


def resolve(path: Any, what: str, inside: str | None = None) -> str:
    """``path`` with every symlink resolved; with ``inside`` (a folder), refused unless it resolves into it."""
    path = os.fspath(path)
    real = os.path.realpath(path)
    if inside is not None:
        root = os.path.realpath(inside)
        if os.path.commonpath([root, real]) != root:
            raise ValueError(f"{what}: {path!r} resolves to {real!r}, outside {inside!r}: files are read only from "
                             "inside the folder they belong to")
    return real


def regular_size(path: str, what: str, inside: str | None = None) -> int:
    """The size of the regular file ``path`` names (through symlinks, kept ``inside`` a folder when given);
    ValueError naming it when it is missing, a directory, or not a regular file (a device, pipe or socket)."""
    real = resolve(path, what, inside)
    link = f", a link to {real!r}," if os.path.islink(path) else ""
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise ValueError(f"{what}: no such file {path!r}" + (f" (a broken link to {real!r})" if link else "")) from None
    except OSError as e:
        raise ValueError(f"{what}: cannot read {path!r}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{what}: {path!r}{link} is a directory; expected a file")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what}: {path!r}{link} is not a regular file (a device, pipe or socket)")
    return st.st_size


@contextlib.contextmanager
def open_regular(path: Any, what: str, inside: str | None = None, charge: bool = True) -> Iterator[IO[bytes]]:
    """``path`` opened for reading once it is a regular file within the limits, its size charged to the check's
    budget (``charge=False``: the caller charges what it will read, an archive's members). The opened file is
    checked again (a link swapped for a device after the first check is refused, not read)."""
    path = os.fspath(path)
    size = regular_size(path, what, inside)
    budget().check_size(size, what, repr(path))
    if charge:
        budget().add(size, what, repr(path))
    try:  # O_NONBLOCK: opening a pipe swapped in since the check must not wait for a writer
        fd = os.open(resolve(path, what, inside), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise ValueError(f"{what}: cannot read {path!r}: {e.strerror}") from None
    f = os.fdopen(fd, "rb")
    with f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > size:
            raise ValueError(f"{what}: {path!r} changed while it was being opened; expected the regular file of "
                             f"{size} bytes it was")
        yield f


def read_bounded(path: Any, what: str, inside: str | None = None) -> bytes:
    """The bytes of a regular file, charged to the check's budget before they are read."""
    with open_regular(path, what, inside) as f:
        return f.read(os.fstat(f.fileno()).st_size)  # what was charged, even if the file grows meanwhile


def file_kind(path: str, what: str = "model") -> str:
    """What the contents are, read from the first bytes (and a zip's names), whatever the extension says.

    "torch" (torch.save's zip, or a pickle, as legacy torch files are),
    "torchscript" (torch.jit.save's zip), "npz" (a zip of .npy members),
    "zip" (another zip), "broken zip" (truncated or corrupt), "empty", or "other" (ONNX files are protobuf, which has
    no signature). Reads a few bytes and a zip's directory, charged to nothing.
    """
    with open_regular(path, what, charge=False) as f:
        head = f.read(4)
        if not head:
            return "empty"
        if head[:1] == b"\x80":  # pickle's PROTO opcode, the first byte of every protocol >= 2 pickle
            return "torch"
        if head != b"PK\x03\x04":
            return "other"
        try:
            with zipfile.ZipFile(f) as z:
                names = z.namelist()
        except Exception:  # noqa: BLE001 -- truncated or corrupt: the loader for the extension says what is wrong
            return "broken zip"
    if any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in names):
        return "torchscript"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "torch"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


_EXPECTED = {".onnx": ("other",), ".npz": ("npz", "broken zip"), ".keras": ("zip", "broken zip"),
             **{s: ("torch", "torchscript", "zip", "broken zip") for s in TORCH_SUFFIXES}}
_NAMES = {"torch": "a torch file (torch.save)", "torchscript": "a TorchScript archive (torch.jit.save)",
          "npz": "a .npz archive of arrays", "zip": "a zip archive",
          "broken zip": "a truncated or corrupt zip archive", "other": "not a zip or a pickle (.onnx?)"}
_SUFFIX_OF = {"torch": ".pt", "torchscript": ".pt", "npz": ".npz"}


def check_file(path: Any, what: str) -> str:
    """``path`` as a str, once it names a regular file (through symlinks) within the per-file limit whose
    contents match its extension. Nothing is charged: the reader charges what it reads.

    Raises ValueError naming ``what`` (the argument), the path and what was found.
    """
    path = os.fspath(path)
    budget().check_size(regular_size(path, what), what, repr(path))
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _EXPECTED:
        return path
    kind = file_kind(path, what)
    if kind == "empty":
        raise ValueError(f"{what}: {path!r} is empty")
    if kind not in _EXPECTED[suffix]:
        rename = f": rename it to {_SUFFIX_OF[kind]}" if kind in _SUFFIX_OF and _SUFFIX_OF[kind] != suffix else ""
        raise ValueError(f"{what}: {path!r} is named {suffix} but its contents are {_NAMES[kind]}{rename}")
    return path


# the compression methods NumPy writes (np.savez, np.savez_compressed); zipfile reads others, or fails on them
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}


def charge_members(infos: list[zipfile.ZipInfo], name: str, what: str) -> None:
    """Refuse an archive member compressed with another method or over the per-file limit, then charge the
    members' uncompressed sizes (what reading them allocates) to the check's budget."""
    b = budget()
    for info in infos:
        where = f"{name}, member {info.filename!r}"
        if info.compress_type not in ZIP_METHODS:
            raise ValueError(f"{what}: {where} is compressed with zip method {info.compress_type}; expected "
                             f"{' or '.join(ZIP_METHODS.values())} (as NumPy and torch write them)")
        b.check_size(info.file_size, what, f"{where} (uncompressed)")
    b.add(sum(info.file_size for info in infos), what, f"{name}'s {len(infos)} members (uncompressed)")


def charge_archive(path: str, what: str) -> None:
    """Charge a zip archive's members (uncompressed) to the check's budget before another library unpacks it
    (Keras's .keras); a corrupt archive is left for that library to refuse."""
    with open_regular(path, what, charge=False) as f:
        try:
            infos = zipfile.ZipFile(f).infolist()
        except Exception:  # noqa: BLE001 -- not a readable zip: the loader says what is wrong with it
            return
        charge_members(infos, os.path.basename(path), what)
