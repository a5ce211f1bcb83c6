"""Export the sample inputs of torch's own module tests for the six recurrent modules.

    python parity_tests/torch_samples.py OUT.pkl

``torch.testing._internal.common_modules`` (the ``ModuleInfo`` entries of nn.RNN, nn.GRU,
nn.LSTM and the three cells) is imported here, in a process of its own: importing it freezes
torch's global backend flags (``torch.backends.disable_global_flags``) and takes seconds, and
neither must reach the suite's processes. Each sample becomes plain data: the module's name,
its constructor arguments, the input as a NumPy array (a PackedSequence as its time-major padded
data and lengths) and the initial states, for float64 and float32.

torch's sample functions take a ``training`` flag, and for these modules give the same samples
under both (every one has dropout 0, so training and evaluation compute the same): the export
checks that and keeps each sample once, to run in training mode.
"""

from __future__ import annotations

import pickle
import sys

MODULES = ("RNN", "GRU", "LSTM", "RNNCell", "GRUCell", "LSTMCell")


def _array(t):
    return t.detach().cpu().numpy().copy()


def _signature(sample) -> tuple:
    """What a sample asks for, values aside: constructor arguments and the forward arguments' shapes."""
    shapes = [tuple(getattr(a, "data", a).shape) if hasattr(getattr(a, "data", a), "shape") else type(a).__name__
              for a in sample.forward_input.args]
    return (sample.constructor_input.args, sorted(sample.constructor_input.kwargs.items()), shapes)


def export() -> list[dict]:
    import torch
    from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence
    from torch.testing._internal.common_modules import module_db

    samples = []
    for info in module_db:
        name = info.module_cls.__name__
        if info.module_cls is not getattr(torch.nn, name, None) or name not in MODULES:
            continue
        for dtype in (torch.float64, torch.float32):
            extra = {} if name.endswith("Cell") else {"with_packed_sequence": True}
            inputs, evaluation = (info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=True,
                                                          training=training, **extra) for training in (True, False))
            if [_signature(s) for s in inputs] != [_signature(s) for s in evaluation]:
                raise SystemExit(f"{info.name}: torch's samples differ between training and evaluation")
            for n, sample in enumerate(inputs):
                if sample.constructor_input.kwargs.get("dropout", 0):
                    raise SystemExit(f"{info.name}: a sample with dropout; training and evaluation now differ")
                first, *rest = sample.forward_input.args
                lengths = None
                if isinstance(first, PackedSequence):
                    first, lengths = pad_packed_sequence(first)  # (T, B, I): torch's samples pack time-major
                    lengths = lengths.numpy().copy()
                hx = rest[0] if rest else None
                samples.append(dict(
                    id=f"{info.name}-{str(dtype).split('.')[-1]}-{n}", module=name, dtype=str(dtype).split(".")[-1],
                    args=tuple(sample.constructor_input.args), kwargs=dict(sample.constructor_input.kwargs),
                    input=_array(first), lengths=lengths,
                    hx=None if hx is None else tuple(_array(t) for t in (hx if isinstance(hx, tuple) else (hx,))),
                    hx_pair=isinstance(hx, tuple)))
    return samples


if __name__ == "__main__":
    with open(sys.argv[1], "wb") as f:
        pickle.dump(export(), f)
