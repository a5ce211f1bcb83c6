"""Reading model files that may be hostile: no code runs, and sizes are checked before anything is allocated.

Every file the verifier reads passes :func:`check_file` (it exists, is a regular
file, and its contents are what its extension says) before a loader sees it:

* .npz is read with ``allow_pickle=False``, after every member's .npy header has
  been read and its declared shape checked against the bytes it holds
  (:func:`read_npz`);
* .pt/.pth/.pkl/.bin is read by torch with ``weights_only=True`` (tensors and
  containers only); a pickled module, a TorchScript archive or any other pickle
  that needs full unpickling is refused unless the caller passes
  ``trust_pickle=True`` (``rnn-check --trust-pickle``), because full unpickling
  runs whatever code the file names (see ``torch_impl.compare.load_torch_file``);
* .onnx is parsed without its external data; external data must lie in the
  model's directory, and every tensor's declared shape must match the bytes it
  holds (``reference.verify.models``).

Needs NumPy only.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from typing import Any

import numpy as np

TORCH_SUFFIXES = (".pt", ".pth", ".pkl", ".bin")

# A .npz member or .onnx tensor declaring more than this many bytes is refused
# before it is read: 4 GiB is 4x the largest recurrent layer the float64
# reference checks in minutes (an LSTM with H = 4096: 4H x 2H float64 = 1 GiB),
# and far below what a hostile header can declare (10^12 elements = 4 TB).
MAX_ARRAY_BYTES = 2**32
# A model with a fixed input shape makes the check draw an input of that shape
# and about ten arrays like it, in float64: 2^24 elements is 128 MiB each.
MAX_INPUT_ELEMENTS = 2**24

TRUST_HINT = ("only if you trust the file (you made it, or it comes from someone you trust), pass trust_pickle=True "
              "(rnn-check --trust-pickle); better, save its state_dict: torch.save(module.state_dict(), path)")


def file_kind(path: str) -> str:
    """What the contents are, read from the first bytes (and a zip's names), whatever the extension says.

    "torch" (torch.save's zip, or a pickle, as legacy torch files are),
    "torchscript" (torch.jit.save's zip), "npz" (a zip of .npy members),
    "zip" (another zip), "broken zip" (truncated or corrupt), "empty", or "other" (ONNX files are protobuf, which has
    no signature).
    """
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "empty"
    if head[:1] == b"\x80":  # pickle's PROTO opcode, the first byte of every protocol >= 2 pickle
        return "torch"
    if head != b"PK\x03\x04":
        return "other"
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "broken zip"  # truncated or corrupt: the loader for the extension says what is wrong
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
    """``path`` as a str, once it names an existing regular file whose contents match its extension.

    Raises ValueError naming ``what`` (the argument), the path and what was found.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"{what}: no such file {path!r}") from None
    except OSError as e:
        raise ValueError(f"{what}: cannot read {path!r}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{what}: {path!r} is a directory; expected a model file")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what}: {path!r} is not a regular file (a device, pipe or socket)")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _EXPECTED:
        return path
    try:
        kind = file_kind(path)
    except OSError as e:
        raise ValueError(f"{what}: cannot read {path!r}: {e.strerror}") from None
    if kind == "empty":
        raise ValueError(f"{what}: {path!r} is empty")
    if kind not in _EXPECTED[suffix]:
        rename = f": rename it to {_SUFFIX_OF[kind]}" if kind in _SUFFIX_OF and _SUFFIX_OF[kind] != suffix else ""
        raise ValueError(f"{what}: {path!r} is named {suffix} but its contents are {_NAMES[kind]}{rename}")
    return path


def read_npz(path: str, what: str = "weights") -> dict[str, np.ndarray]:
    """The arrays of an .npz, read with ``allow_pickle=False`` once every member's header has been checked.

    A member holding Python objects (a pickle), declaring a shape its bytes do
    not fill, or declaring more than ``MAX_ARRAY_BYTES`` is refused before
    anything is allocated; a truncated or corrupt archive is refused by name.
    """
    name = os.path.basename(path)
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                with z.open(info) as member:
                    _check_npy_header(member, info, name, what)
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise ValueError(f"{what}: {name} is not a readable .npz (truncated or corrupt): {e}") from None
    except ValueError as e:
        if str(e).startswith(f"{what}: "):
            raise
        raise ValueError(f"{what}: {name} is not a readable .npz: {e}") from None


def _check_npy_header(member: Any, info: zipfile.ZipInfo, name: str, what: str) -> None:
    where = f"{what}: {name}, member {info.filename!r}"
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    version = np.lib.format.read_magic(member)
    if version not in readers:
        raise ValueError(f"{where}: .npy format version {version}; expected 1.0 or 2.0")
    shape, _, dtype = readers[version](member)
    if dtype.hasobject:
        raise ValueError(f"{where}: holds Python objects (a pickle); .npz files are read with allow_pickle=False, "
                         "so that loading one runs no code: save numeric arrays")
    declared = math.prod(shape) * dtype.itemsize
    if declared > MAX_ARRAY_BYTES:
        raise ValueError(f"{where}: declares shape {shape} of {dtype} ({declared:.3g} bytes), over the limit of "
                         f"{MAX_ARRAY_BYTES} bytes")
    held = info.file_size - member.tell()
    if declared != held:
        raise ValueError(f"{where}: declares shape {shape} of {dtype} ({declared} bytes) but holds {held} bytes")
