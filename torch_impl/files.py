"""Reading torch files without running code from them: ``torch.load(weights_only=True)``, every byte
charged to the check's budget before torch allocates it, and each refusal naming the file and why.

:func:`read_torch_file` returns what the file holds (a state_dict, or, trusted, a pickled module);
``torch_impl.compare.load_torch_file`` makes it a candidate.
"""

from __future__ import annotations

from typing import Any

import torch


def read_torch_file(path: str, *, trust_pickle: bool = False) -> Any:
    """The object a .pt/.pth file holds, read with ``weights_only=True`` unless ``trust_pickle``.

    Raises:
        ValueError: naming the file: a TorchScript archive or a pickle that needs more than tensors (untrusted),
            a truncated or corrupt file, one over the check's limits.
    """
    import os
    import pickle
    import warnings

    from reference.verify.files import TRUST_HINT, check_file, file_kind, open_regular

    path = check_file(path, "model")
    name = os.path.basename(path)
    kind = file_kind(path)
    if kind == "torchscript" and not trust_pickle:
        raise ValueError(f"model: {name} is a TorchScript archive (torch.jit.save); loading it runs the code it "
                         f"holds: {TRUST_HINT}")
    try:
        with open_regular(path, "model", charge=False) as f:
            _charge(f, name, kind)
            with warnings.catch_warnings():  # torch's notice about protocols it may not read: the refusal says it
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                obj = torch.load(f, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as e:
        if trust_pickle:
            raise ValueError(f"model: {name} is not a readable torch file: {_first_line(str(e))}") from None
        raise ValueError(f"model: {name} is not a plain state_dict: torch's weights_only=True reader refused it "
                         f"({_weights_only_reason(str(e))}). It holds a pickled module or other objects, and "
                         f"unpickling it in full runs whatever code the file names: {TRUST_HINT}") from None
    except MemoryError:
        raise
    except ValueError as e:
        if str(e).startswith("model: "):  # refused by the checks above
            raise
        raise ValueError(f"model: {name} is not a readable torch file (truncated or corrupt?): ValueError: "
                         f"{_first_line(str(e))}") from None
    except Exception as e:  # noqa: BLE001 -- whatever corrupt bytes (or, trusted, code that is not importable
        # here) make torch's readers raise: RuntimeError, EOFError, KeyError, UnicodeDecodeError, ...
        raise ValueError(f"model: {name} is not a readable torch file (truncated or corrupt?): "
                         f"{type(e).__name__}: {_first_line(str(e)) or 'unexpected end of file'}") from None
    return obj


def _charge(f: Any, name: str, kind: str) -> None:
    """Charge what torch.load will allocate to the check's budget before it runs: a zip's members (uncompressed;
    stored or deflated only), or a legacy pickle's bytes."""
    import os
    import zipfile

    from reference.verify.files import budget, charge_members

    if kind in ("torch", "torchscript", "zip") and f.read(4) == b"PK\x03\x04":
        f.seek(0)
        with zipfile.ZipFile(f) as z:
            charge_members(z.infolist(), name, "model")
    else:
        budget().charge(os.fstat(f.fileno()).st_size, "model", name)
    f.seek(0)


def check_declared_size(t: Any, where: str) -> None:
    """Refuse a tensor whose shape its storage does not fill (an expanded view declaring 10^12 elements over
    4 bytes would be allocated in full downstream) or that exceeds the verifier's limit."""
    from reference.verify.files import MAX_ARRAY_BYTES

    declared = t.numel() * t.element_size()
    held = t.untyped_storage().nbytes()
    if declared > MAX_ARRAY_BYTES:
        raise ValueError(f"{where}: declares shape {tuple(t.shape)} ({declared:.3g} bytes), over the limit of "
                         f"{MAX_ARRAY_BYTES} bytes")
    if declared > held:
        raise ValueError(f"{where}: declares shape {tuple(t.shape)} ({declared} bytes) over a storage of {held} "
                         "bytes (an expanded or overlapping view); a state_dict holds each weight in full")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _weights_only_reason(message: str) -> str:
    """torch's one-line reason from its long weights_only message (e.g. the global it would have to import)."""
    import re

    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    if found:
        return f"it names {found.group(1)}, which weights_only=True does not import"
    after = message.split("WeightsUnpickler error:", 1)
    return _first_line(after[1]) if len(after) == 2 else _first_line(message)
