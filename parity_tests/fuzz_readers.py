"""A fuzz pass over the readers: corrupted .npz, .pt and .onnx files and ONNX test-data folders through rnn-check.

    python -m parity_tests.fuzz_readers                      # the CI profile: 150 examples, derandomized
    python -m parity_tests.fuzz_readers --examples 3000      # the long profile, on demand (random seeds)
    FUZZ_EXAMPLES=3000 python -m pytest parity_tests/test_fuzz_readers.py    # the same, as the test

Each example takes a valid file (or test-data folder), corrupts it one way -- truncated, bytes
flipped, a window overwritten, a zip or .npy size field made to lie, the file replaced by a
link (to /dev/zero, to a directory, out of its folder) -- and runs ``rnn-check`` on it in this
process. Allowed: exit 0 or 1 (the corruption left a readable model), or exit 2 with one line
``error: ...`` that names the file (or its folder). Anything else -- exit 3, a traceback, an
exception out of ``main``, a second line -- fails, and hypothesis shrinks it to the smallest
corruption. Every run passes ``--memory-limit 512 MiB`` and ``--timeout 60``; the files' read
limits are the defaults. At the end the process's peak RSS (VmHWM) less its RSS after a
warm-up run of every seed is reported: it must stay under RSS_LIMIT (512 MiB), since nothing
a corruption declares may be allocated before it is checked. Prints one JSON line: counts by
outcome, seconds, peak RSS growth, and the first failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from reference.verify import Spec
from reference.verify.cli import main as rnn_check

RSS_LIMIT = 512 * 2**20  # peak RSS growth the whole pass may reach
CI_EXAMPLES = 150
BOUNDS = ["--memory-limit", str(512 * 2**20), "--timeout", "60"]


def _state() -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float32) for k, v in Spec("LSTM", 3, 4).reference(seed=1).state_dict().items()}


def make_seeds(root: Path) -> dict[str, tuple[Path, list[str]]]:
    """Valid files to corrupt: kind -> (the file the corruption edits, rnn-check's arguments)."""
    from parity_tests.hostile import onnx_lstm, onnx_lstm_fed, onnx_with_external_data, torch_sd

    seeds = {}
    np.savez(root / "w.npz", **_state())
    seeds["npz"] = (root / "w.npz", ["--model", str(root / "w.npz")])
    np.savez_compressed(root / "c.npz", **_state())
    seeds["npz compressed"] = (root / "c.npz", ["--model", str(root / "c.npz")])
    seeds["pt"] = (torch_sd(root / "m.pt"), ["--model", str(root / "m.pt")])
    seeds["pt legacy"] = (torch_sd(root / "legacy.pt", legacy=True), ["--model", str(root / "legacy.pt")])
    seeds["onnx"] = (onnx_lstm(root / "m.onnx"), ["--model", str(root / "m.onnx")])
    ext = onnx_with_external_data(root / "ext")
    seeds["onnx external data"] = (ext.parent / "ext.data", ["--model", str(ext)])
    model, data = onnx_lstm_fed(root / "fed")
    for j in range(4):
        seeds[f"test data input_{j}.pb"] = (Path(data) / f"input_{j}.pb", ["--model", model, "--inputs", data])
    return seeds


# -- corruptions: each takes the file's bytes and a hypothesis draw, and writes the corrupted file -------------


def truncate(raw: bytes, draw, st) -> bytes:
    return raw[:draw(st.integers(0, max(len(raw) - 1, 0)))]


def flip(raw: bytes, draw, st) -> bytes:
    out = bytearray(raw)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(out) - 1))
        out[at] ^= draw(st.integers(1, 255))
    return bytes(out)


def overwrite(raw: bytes, draw, st) -> bytes:
    at = draw(st.integers(0, len(raw) - 1))
    return raw[:at] + draw(st.binary(min_size=1, max_size=16)) + raw[at + 16:]


def lying_size(raw: bytes, draw, st) -> bytes:
    """A zip's size field (local or central header) or an .npy header's shape made to say something else."""
    out = bytearray(raw)
    fields = [(i, at) for sig, ats in ((b"PK\x03\x04", (18, 22)), (b"PK\x01\x02", (20, 24)))
              for i in _find_all(raw, sig) for at in ats]
    shapes = _find_all(raw, b"'shape': (")
    if not fields and not shapes:
        return overwrite(raw, draw, st)
    if shapes and (not fields or draw(st.booleans())):
        i = draw(st.sampled_from(shapes)) + len(b"'shape': (")
        end = out.index(b")", i)
        dims = draw(st.lists(st.sampled_from([0, 1, 3, 16, 2**20, 10**6, 2**31, 10**12]), min_size=1, max_size=3))
        text = ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "")
        return bytes(out[:i]) + text.encode() + bytes(out[end:])
    i, at = draw(st.sampled_from(fields))
    out[i + at:i + at + 4] = draw(st.sampled_from([0, 1, 2**31, 2**32 - 1]) | st.integers(0, 2**32 - 1)).to_bytes(
        4, "little")
    return bytes(out)


def _find_all(raw: bytes, sig: bytes) -> list[int]:
    found, i = [], raw.find(sig)
    while i >= 0:
        found.append(i)
        i = raw.find(sig, i + 1)
    return found


CORRUPTIONS = {"truncate": truncate, "flip": flip, "overwrite": overwrite, "lying size": lying_size}
LINKS = ("/dev/zero", "a directory", "out of its folder")


def corrupt(path: Path, how: str, draw, st, original: bytes) -> None:
    if os.path.lexists(path):
        os.remove(path) if not path.is_dir() or path.is_symlink() else shutil.rmtree(path)
    if how in LINKS:
        target = {"/dev/zero": "/dev/zero", "a directory": str(path.parent),
                  "out of its folder": str(path.parent.parent / "outside.bin")}[how]
        if how == "out of its folder":
            Path(target).write_bytes(original)
        os.symlink(target, path)
        return
    path.write_bytes(CORRUPTIONS[how](original, draw, st))


def run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = rnn_check([*args, *BOUNDS])
        except SystemExit as e:  # argparse: not expected here, and reported as such
            code = e.code if isinstance(e.code, int) else 99
    return code, out.getvalue(), err.getvalue()


def judge(code: int, err: str, names: tuple[str, ...]) -> str | None:
    """None when the outcome is allowed, else what is wrong with it."""
    if code in (0, 1):
        return None
    if code != 2:
        return f"exit {code}: {err.strip()[:300]}"
    if "Traceback" in err or err.count("\n") != 1 or not err.startswith("error: "):
        return f"exit 2 but not one line 'error: ...': {err[:300]!r}"
    if not any(n in err for n in names):
        return f"exit 2 without naming the file: {err.strip()[:300]}"
    return None


def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))


def fuzz(examples: int, derandomize: bool) -> dict:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    root = Path(tempfile.mkdtemp(prefix="fuzz_readers_"))
    counts: Counter = Counter()
    failures: list[str] = []
    try:
        seeds = make_seeds(root)
        originals = {kind: path.read_bytes() for kind, (path, _) in seeds.items()}
        for _, args in seeds.values():  # warm-up: every reader and runtime loaded, each seed valid
            code, out, err = run(args)
            assert code == 0, (args, out, err)
        base = _rss("VmRSS:")
        start = time.perf_counter()

        @settings(max_examples=examples, derandomize=derandomize, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def one(data):
            kind = data.draw(st.sampled_from(sorted(seeds)), label="seed")
            how = data.draw(st.sampled_from([*CORRUPTIONS, *LINKS]), label="corruption")
            path, args = seeds[kind]
            try:
                corrupt(path, how, data.draw, st, originals[kind])
                code, _, err = run(args)
            finally:
                if os.path.lexists(path):
                    os.remove(path)
                path.write_bytes(originals[kind])
            names = (path.name, path.parent.name, *(os.path.basename(a) for a in args if os.sep in a))
            wrong = judge(code, err, names)
            counts[f"exit {code}"] += 1
            counts[f"{kind}: exit {code}"] += 1
            if wrong:
                failures.append(f"{kind}, {how}: {wrong}")
            assert wrong is None, f"{kind}, {how}: {wrong}"

        try:
            one()
        except Exception as e:  # noqa: BLE001 -- hypothesis has shrunk a failure (recorded), or failed itself
            if not failures:
                failures.append(f"{type(e).__name__}: {e}")
        seconds = time.perf_counter() - start
        growth = _rss("VmHWM:") - base
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"examples": sum(v for k, v in counts.items() if k.startswith("exit ")), "seconds": round(seconds, 1),
            "rss_growth": growth, "rss_limit": RSS_LIMIT, "counts": dict(sorted(counts.items())),
            "failures": failures[:1] + failures[-1:]}


def main() -> int:
    examples = int(os.environ.get("FUZZ_EXAMPLES", CI_EXAMPLES))
    if "--examples" in sys.argv:
        examples = int(sys.argv[sys.argv.index("--examples") + 1])
    result = fuzz(examples, derandomize=examples <= CI_EXAMPLES)
    print(json.dumps(result))
    return 0 if not result["failures"] and result["rss_growth"] <= RSS_LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
