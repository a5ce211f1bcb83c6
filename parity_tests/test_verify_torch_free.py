"""The verifier needs NumPy only: with torch made unimportable it compares, localises, diffs and runs its CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent('''
    import sys


    class NoTorch:
        """A sys.meta_path finder that makes torch unimportable, as on a machine without it."""

        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"{name} is blocked in this test")
            return None


    sys.meta_path.insert(0, NoTorch())

    import numpy as np

    from reference.verify import Spec, compare, diff_weights, import_weights
    from reference.verify.cli import main
    from reference.verify.testing import assert_matches_reference


    def gru(spec, params, input, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        """A NumPy candidate: the reference in float32 (a swapped-gates variant reads rows as z, r, n)."""
        if SWAP:
            H = spec.hidden_size
            swap = lambda a: np.concatenate([a[H:2 * H], a[:H], a[2 * H:]])
            params = {k: swap(v) for k, v in params.items()}
        m = spec.reference(params, dtype=np.float32)
        out, h_n, tape = m.forward(input, hx[0], lengths=lengths)
        res = {"output": out, "hidden": (h_n,)}
        if grad_output is not None:
            g = m.backward(tape, grad_output, grad_hidden[0])
            res.update({k: v for k, v in g.items() if k != "hx"}, hx=(g["hx"],))
            if SWAP:
                res.update((k, swap(res[k])) for k in params)
        return res


    SWAP = False


    if __name__ == "__main__":
        spec = Spec("GRU", 3, 4, bidirectional=True)
        report = compare(gru, spec, dtype="float32", lengths=[5, 2, 4])
        assert report.passed, str(report)
        assert_matches_reference(gru, spec, dtype="float32")
        SWAP = True  # this file's module-level switch, read by gru()
        report = compare(gru, spec, dtype="float32")
        div = report.forward
        assert (div.kind, div.layer, div.direction, div.time, div.gate) == ("step", 0, 0, 0, "r"), str(report)
        try:
            assert_matches_reference(gru, spec, dtype="float32")
            raise SystemExit("assert_matches_reference did not fail")
        except AssertionError as e:
            assert "layer 0, forward direction, time step 0 (batch row 0), in r" in str(e), str(e)
        w = {"W": np.ones((12, 3)), "R": np.ones((12, 4)), "B": np.ones(24)}
        assert set(import_weights("onnx", "GRU", w)) == {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
        assert diff_weights({"l0": w}, {"l0": w}, mode="GRU") == []
        assert main(["--candidate", __file__ + ":gru", "--mode", "GRU", "--input-size", "3", "--hidden-size", "4",
                     "--dtype", "float32"]) == 0  # loaded afresh by path: SWAP off
        assert main(["--model", "weights.npz"]) == 2  # usage error, not a traceback
        assert not any(name == "torch" or name.startswith("torch.") for name in sys.modules), "torch was imported"
        print("torch-free: ok")
''')


def test_verifier_runs_without_torch(tmp_path):
    script = tmp_path / "no_torch.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0 and "torch-free: ok" in r.stdout, r.stdout + r.stderr
