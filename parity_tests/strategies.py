"""Hypothesis strategies: configurations of cells and layers, and their data.

Sizes are bounded by RNN_TEST_MAX_SIZE (default 6). Data are drawn from a NumPy
generator seeded by hypothesis (fast, and shrinkable through the seed): inputs
and states ~ U(-1, 1), cotangents ~ N(0, 1); weights keep torch's init scale
U(-1/sqrt(H), 1/sqrt(H)) and the biases are non-zero, so that saturated gates
cannot make a comparison pass trivially and b_ih cannot hide b_hh.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
from hypothesis import strategies as st

import reference

MAX_SIZE = int(os.environ.get("RNN_TEST_MAX_SIZE", "6"))
MAX_T = 8
MAX_LAYERS = 3


@dataclass(frozen=True)
class CellConfig:
    kind: str  # "RNNCell", "GRUCell", "LSTMCell"
    input_size: int
    hidden_size: int
    bias: bool
    nonlinearity: str
    batch: int | None  # None: unbatched
    hx_given: bool
    dtype: str
    seed: int

    def build(self, dtype=None):
        kw = {"nonlinearity": self.nonlinearity} if self.kind == "RNNCell" else {}
        cls = getattr(reference, self.kind)
        return cls(self.input_size, self.hidden_size, self.bias, dtype=dtype or self.dtype, seed=self.seed, **kw)

    def data(self):
        """(input, hx, cotangent) as float64 arrays."""
        rng = np.random.default_rng(self.seed)
        lead = () if self.batch is None else (self.batch,)
        x = rng.uniform(-1, 1, lead + (self.input_size,))
        state = lambda: rng.uniform(-1, 1, lead + (self.hidden_size,))
        lstm = self.kind == "LSTMCell"
        hx = None
        if self.hx_given:
            hx = (state(), state()) if lstm else state()
        cot = lambda: rng.standard_normal(lead + (self.hidden_size,))
        return x, hx, ((cot(), cot()) if lstm else cot())

    def repro(self) -> str:
        return f"CellConfig(**{asdict(self)})"


@dataclass(frozen=True)
class LayerConfig:
    mode: str  # "RNN", "GRU", "LSTM"
    input_size: int
    hidden_size: int
    num_layers: int
    bias: bool
    batch_first: bool
    bidirectional: bool
    nonlinearity: str
    proj_size: int
    seq_len: int
    batch: int | None  # None: unbatched
    use_lengths: bool
    hx_given: bool
    dtype: str
    seed: int

    @property
    def D(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def P(self) -> int:
        return self.proj_size or self.hidden_size

    @property
    def config(self) -> reference.RNNConfig:
        """The layer itself, as the project's one configuration type (the rest is test data)."""
        mode = ("RNN_RELU" if self.nonlinearity == "relu" else "RNN_TANH") if self.mode == "RNN" else self.mode
        return reference.RNNConfig(mode, self.input_size, self.hidden_size, self.num_layers, self.bias,
                                   self.batch_first, 0.0, self.bidirectional, self.proj_size)

    def kwargs(self) -> dict:
        kw = dict(num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                  bidirectional=self.bidirectional)
        if self.mode == "RNN":
            kw["nonlinearity"] = self.nonlinearity
        if self.mode == "LSTM":
            kw["proj_size"] = self.proj_size
        return kw

    def build(self, dtype=None):
        return self.config.module(dtype=dtype or self.dtype, seed=self.seed)

    def data(self):
        """(input, hx, lengths, grad_output, grad_hidden), float64, in the module's layout."""
        rng = np.random.default_rng(self.seed + 1)
        T, B, DL = self.seq_len, self.batch, self.D * self.num_layers
        if B is None:
            x_shape, h_lead = (T, self.input_size), (DL,)
        else:
            x_shape = (B, T, self.input_size) if self.batch_first else (T, B, self.input_size)
            h_lead = (DL, B)
        x = rng.uniform(-1, 1, x_shape)
        lstm = self.mode == "LSTM"
        hx = None
        if self.hx_given:
            h0 = rng.uniform(-1, 1, h_lead + (self.P,))
            hx = (h0, rng.uniform(-1, 1, h_lead + (self.hidden_size,))) if lstm else h0
        lengths = None
        if self.use_lengths and B is not None:
            lengths = rng.integers(1, T + 1, size=B)
            lengths[rng.integers(B)] = T  # torch pads to the longest sequence; keep one full length
        out_shape = x_shape[:-1] + (self.D * self.P,)
        grad_output = rng.standard_normal(out_shape)
        dh = rng.standard_normal(h_lead + (self.P,))
        grad_hidden = (dh, rng.standard_normal(h_lead + (self.hidden_size,))) if lstm else dh
        return x, hx, lengths, grad_output, grad_hidden

    def repro(self) -> str:
        return f"LayerConfig(**{asdict(self)})"


dtypes = st.sampled_from(["float64", "float32"])


@st.composite
def cell_configs(draw, dtype=dtypes, kinds=("RNNCell", "GRUCell", "LSTMCell")) -> CellConfig:
    return CellConfig(
        kind=draw(st.sampled_from(kinds)),
        input_size=draw(st.integers(1, MAX_SIZE)),
        hidden_size=draw(st.integers(1, MAX_SIZE)),
        bias=draw(st.booleans()),
        nonlinearity=draw(st.sampled_from(["tanh", "relu"])),
        batch=draw(st.none() | st.integers(1, MAX_SIZE)),
        hx_given=draw(st.booleans()),
        dtype=draw(dtype),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@st.composite
def layer_configs(draw, dtype=dtypes, modes=("RNN", "GRU", "LSTM"), max_layers=MAX_LAYERS) -> LayerConfig:
    mode = draw(st.sampled_from(modes))
    hidden = draw(st.integers(1, MAX_SIZE))
    proj = draw(st.integers(0, hidden - 1)) if mode == "LSTM" and hidden > 1 else 0
    batch = draw(st.none() | st.integers(1, MAX_SIZE))
    return LayerConfig(
        mode=mode,
        input_size=draw(st.integers(1, MAX_SIZE)),
        hidden_size=hidden,
        num_layers=draw(st.integers(1, max_layers)),
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bidirectional=draw(st.booleans()),
        nonlinearity=draw(st.sampled_from(["tanh", "relu"])),
        proj_size=proj,
        seq_len=draw(st.integers(1, MAX_T)),
        batch=batch,
        use_lengths=batch is not None and draw(st.booleans()),
        hx_given=draw(st.booleans()),
        dtype=draw(dtype),
        seed=draw(st.integers(0, 2**31 - 1)),
    )
