""".npz weights and test data read without running code: member by member with ``allow_pickle=False``,
each member's header checked (format version, numeric dtype, declared size) and every member charged to
the check's budget before any is read.
"""

from __future__ import annotations

import math
import os
import zipfile
from typing import Any

import numpy as np

from .files import MAX_ARRAY_BYTES, charge_members, open_regular


def read_npz(path: str, what: str = "weights") -> dict[str, np.ndarray]:
    """The arrays of an .npz, read with ``allow_pickle=False`` once every member's header has been checked.

    A member compressed with a method NumPy does not write, holding Python objects
    (a pickle) or values that are not numbers, declaring a shape its bytes do not
    fill, or declaring more than ``MAX_ARRAY_BYTES`` is refused before anything is
    allocated, and the members' sizes are charged to the check's budget; a
    truncated or corrupt archive is refused by name. Big-endian arrays are
    returned in native byte order.
    """
    name = os.path.basename(path)
    arrays = {}
    try:
        with open_regular(path, what, charge=False) as f, zipfile.ZipFile(f) as z:
            infos = z.infolist()
            charge_members(infos, name, what)
            for info in infos:
                with z.open(info) as member:
                    _check_npy_header(member, info, name, what)
                with z.open(info) as member:
                    a = np.lib.format.read_array(member, allow_pickle=False)
                arrays[info.filename.removesuffix(".npy")] = a if a.dtype.isnative else \
                    a.astype(a.dtype.newbyteorder("="))
    except MemoryError:
        raise
    except (ValueError, TypeError) as e:
        if str(e).startswith(f"{what}: "):  # our own refusals, naming the member
            raise
        raise ValueError(f"{what}: {name} is not a readable .npz: {e}") from None
    except Exception as e:  # noqa: BLE001 -- whatever corrupt bytes make zipfile, zlib or NumPy raise
        raise ValueError(f"{what}: {name} is not a readable .npz (truncated or corrupt): {type(e).__name__}: "
                         f"{e}") from None
    return arrays


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
    if dtype.kind not in "biufc":  # the same refusal as every other weight that is not a number (spec.check_real)
        raise TypeError(f"{where}: holds values of dtype {dtype}; expected real numbers (float or integer arrays)")
    declared = math.prod(shape) * dtype.itemsize
    if declared > MAX_ARRAY_BYTES:
        raise ValueError(f"{where}: declares shape {shape} of {dtype} ({declared:.3g} bytes), over the limit of "
                         f"{MAX_ARRAY_BYTES} bytes")
    held = info.file_size - member.tell()
    if declared != held:
        raise ValueError(f"{where}: declares shape {shape} of {dtype} ({declared} bytes) but holds {held} bytes")
