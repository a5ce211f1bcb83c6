"""Token streams for language models: sequential batching with truncated BPTT,
and random windows.

Sequential (torch's word_language_model example)::

    data = batchify(tokens, B)                 (N // B, B): column b is the b-th slice of the stream
    for x, y in bptt_chunks(data, T):          x = data[i : i+T], y = data[i+1 : i+1+T]
        out, h, tape = rnn.forward(embed(x), h)
        ...backward with grad_hidden = None...
        h = detach(h)                          carry the state, drop its history

Truncated BPTT: the state at the start of chunk k is the final state of chunk
k-1, but the gradient stops there. In torch that is ``h.detach()``; here the
tape of chunk k simply does not reach chunk k-1, and ``backward`` of chunk k
returns a gradient for its ``hx`` that the training loop discards. ``detach``
copies the arrays so that nothing in a later chunk can alias an earlier tape.

Shapes: N tokens, B batch (stream columns), T chunk length (bptt).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def batchify(tokens: np.ndarray, batch_size: int) -> np.ndarray:
    """(N // B, B): the stream cut into B contiguous columns; the remainder is dropped."""
    tokens = np.asarray(tokens)
    rows = len(tokens) // batch_size
    if rows < 2:
        raise ValueError(f"tokens: need at least 2 * batch_size = {2 * batch_size} tokens, got {len(tokens)}")
    return tokens[: rows * batch_size].reshape(batch_size, rows).T.copy()  # (N // B, B)


def bptt_chunks(data: np.ndarray, bptt: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Consecutive (input, target) chunks of a batchified stream, each (T, B) with T <= bptt.

    The target is the input shifted by one step; the last chunk is shorter
    when the rows do not divide evenly (torch's get_batch does the same).
    """
    for i in range(0, len(data) - 1, bptt):
        T = min(bptt, len(data) - 1 - i)
        yield data[i : i + T], data[i + 1 : i + 1 + T]  # (T, B), (T, B)


def random_windows(tokens: np.ndarray, batch_size: int, seq_len: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """B windows at random offsets: (input, target), each (T, B), target shifted by one.

    Each batch starts from a zero state: windows are independent, so there is
    no state to carry (the alternative to truncated BPTT).
    """
    tokens = np.asarray(tokens)
    starts = rng.integers(0, len(tokens) - seq_len, size=batch_size)  # (B,)
    idx = starts[None, :] + np.arange(seq_len)[:, None]  # (T, B)
    return tokens[idx], tokens[idx + 1]


def detach(hidden):
    """The state to carry into the next chunk: copies, with no tie to the tape
    (h, or the pair (h, c)); the gradient does not flow back through it."""
    if isinstance(hidden, tuple):
        return tuple(np.array(h, copy=True) for h in hidden)
    return None if hidden is None else np.array(hidden, copy=True)
