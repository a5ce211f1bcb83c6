"""A reference module as a candidate: e.g. the float32 reference against the float64 one, or a subclass
with its own forward or backward."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..candidates import Candidate, CandidateError
from ..precision import judged_dtype
from ..session import reference_run
from ..spec import Spec


class ReferenceCandidate(Candidate):
    """A reference module (any dtype) as a candidate: e.g. the float32 reference against the float64 one, or a
    subclass with its own forward or backward.

    The module itself runs every problem of its whole stack: on its own weights as it is (its training flag set
    for the call and restored), on other weights as a copy of it (``copy.deepcopy``: its class and every
    attribute, so the module's weights and their version stay untouched). A part of its stack (a layer alone)
    runs its class built for that part, past the fidelity gate.
    """

    declares_reset_after = True
    spec: Spec  # the module's own configuration, weights and dtype, set in __init__
    dtype: np.dtype
    rebuild_hint = ("it is the module's class, called with the reference's constructor arguments and loaded with "
                    "the same weights; a subclass whose forward depends on more than those is not rebuilt by it")

    def __init__(self, module: Any, rebuilt: bool = False, name: str | None = None):
        self.module, self.rebuilt = module, rebuilt
        self.spec = Spec.coerce(module)
        self.dtype = judged_dtype(module.dtype, type(module).__name__)
        self.own_params = {k: np.asarray(v) for k, v in module.state_dict().items()}
        self.name = name or f"{type(module).__name__} (reference, {self.dtype.name})"
        self._copy: Any = None

    def call(self, spec, params, x, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        diffs = [d for d in spec.differences(self.spec) if not (spec.num_layers == 1 and d.startswith("dropout"))]
        if diffs:
            raise CandidateError(f"{self.name} runs {self.spec}, asked {spec} ({'; '.join(diffs)})")
        current = self.module.state_dict()
        if all(np.array_equal(params[k], v) for k, v in current.items()):
            m, training = self.module, getattr(self.module, "training", False)
        else:
            if self._copy is None:
                self._copy = copy.deepcopy(self.module)
            m, training = self._copy, getattr(self._copy, "training", False)
            m.load_state_dict(params)
        try:
            m.train(spec.training)
            return reference_run(m, spec, x, hx, grad_output, grad_hidden, lengths, dropout_masks)[0]
        finally:
            m.train(training)

    def part(self, first: int, stop: int) -> ReferenceCandidate:
        return self._built(self.spec.layers(first, stop), f"layers {first}..{stop - 1}")

    def rebuild(self) -> ReferenceCandidate:
        return self._built(self.spec, "whole")

    def _built(self, spec: Spec, what: str) -> ReferenceCandidate:
        """The module's own class (a subclass's forward and backward are what is checked) built for ``spec``."""
        import warnings

        from ...recurrent import GRU, LSTM, RNN

        cls = type(self.module)
        name = f"{self.name} ({what}, rebuilt from its class)"
        if cls in (GRU, LSTM, RNN):
            return ReferenceCandidate(spec.reference(dtype=self.dtype), rebuilt=True, name=name)
        cfg = spec.config
        kwargs: dict[str, Any] = dict(num_layers=cfg.num_layers, bias=cfg.bias, batch_first=False,
                                      dropout=cfg.dropout, bidirectional=cfg.bidirectional, dtype=self.dtype)
        if cfg.mode == "LSTM":
            kwargs["proj_size"] = cfg.proj_size
        elif cfg.mode == "GRU":
            kwargs["reset_after"] = cfg.reset_after
        else:
            kwargs["nonlinearity"] = cfg.nonlinearity
        try:
            with warnings.catch_warnings():  # dropout with one layer: a warning, as torch gives
                warnings.simplefilter("ignore", UserWarning)
                m = cls(cfg.input_size, cfg.hidden_size, **kwargs)
        except Exception as e:
            raise CandidateError(f"could not build {self.name} for {spec} ({cls.__name__}(input_size, hidden_size, "
                                 f"**{sorted(kwargs)})): {type(e).__name__}: {e}") from e
        return ReferenceCandidate(m.train(spec.training), rebuilt=True, name=name)


def candidate(obj: Any, **_: Any) -> ReferenceCandidate:
    """The registry's builder: a reference module run as its own class."""
    return ReferenceCandidate(obj)
