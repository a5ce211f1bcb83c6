"""A reference module as a candidate: e.g. the float32 reference against the float64 one, or a subclass
with its own forward or backward."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..candidates import Candidate, CandidateError
from ..session import reference_run
from ..spec import Spec


class ReferenceCandidate(Candidate):
    """A reference module (any dtype) as a candidate: e.g. the float32 reference against the float64 one, or a
    subclass with its own forward or backward (run as its own class, for every configuration localisation poses)."""

    declares_reset_after = True

    def __init__(self, module: Any):
        self.module = module
        self.spec = Spec.coerce(module)
        self.dtype = np.dtype(module.dtype)
        self.own_params = {k: np.asarray(v) for k, v in module.state_dict().items()}
        self.name = f"{type(module).__name__} (reference, {self.dtype.name})"

    def call(self, spec, params, x, hx, grad_output, grad_hidden, *, lengths=None, dropout_masks=None):
        return reference_run(self._module(spec, params), spec, x, hx, grad_output, grad_hidden, lengths,
                             dropout_masks)[0]

    def _module(self, spec: Spec, params: dict) -> Any:
        """The module's own class (a subclass's forward and backward are what is checked) built for ``spec``."""
        import warnings

        from ...recurrent import GRU, LSTM, RNN

        cls = type(self.module)
        if cls in (GRU, LSTM, RNN):
            return spec.reference(params, dtype=self.dtype)

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
            m.load_state_dict(params)
        except Exception as e:
            raise CandidateError(f"could not build {self.name} for {spec} ({cls.__name__}(input_size, hidden_size, "
                                 f"**{sorted(kwargs)})): {type(e).__name__}: {e}") from e
        return m.train(spec.training)


def candidate(obj: Any, **_: Any) -> ReferenceCandidate:
    """The registry's builder: a reference module run as its own class."""
    return ReferenceCandidate(obj)
