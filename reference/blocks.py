"""The layer loop's speed: steps taken in blocks, and backward's gradients written in place.

Nothing here changes a number; ``layer.py`` reads the same with blocks of one step. Three
devices, each with the measurement that keeps it:

**Forward: the input projection a block of steps at a time.** ``xw = x W_ih^T + b`` does
not depend on the state, so it is one matrix product for several steps. One product for
all T steps would hold the whole (T, B, G*H) projection through the loop, next to the
gates the tape keeps (for LSTM that is 1.57x the tape). Blocks of at least
``PROJECTION_ROWS`` rows keep the products efficient; at most eight blocks (at least T/8
steps each) keep the extra memory near a tenth of the tape.

**Backward: each block's partial derivatives at once.** A step's partial derivatives
(gate derivatives, products of gates with states) depend on forward's values only, so
the cell forms them for a block of steps in a few array calls (``Cell.partials``); the
loop then keeps the chain rule alone. A step's share is written when its block's are
formed and read back by the step, which is free while the block stays in cache:
``PARTIALS_ELEMENTS`` = 2^17 numbers is 512 KiB in float32 (a core's L2 cache here) and
1 MiB in float64. Backward's time over the in-place loop this core replaced (21291b4),
same process: LSTM T100 B64 H256 float32 0.96-0.98x with blocks of 2 steps, 1.04x with
4 and 1.06-1.17x with 16; RNN T50 B16 H128 float64 0.98-1.04x with one block of 50
steps, 1.05-1.07x with two (a block costs a few array calls, and more than one block a
copy into the history).

**Backward: each step's gradient written over its own partial.** A step's last product,
``dx = dy * dy_dx``, is written over its share of the block's ``dy_dx``
(``chain_in_place``), which no other step reads. The block then ends holding its steps'
gradients, kept with one copy per block into the history (none when one block covers
every step) instead of one copy per step (``GradientHistory``). The standard leaves
views to the library: where a row of a block is a copy (``rows_are_views``), each step's
gradient is copied instead.
"""

from __future__ import annotations

from typing import Any

from ._namespace import rows_are_views, unstack

PROJECTION_ROWS = 256  # forward: the fewest rows (steps x batch) one input-projection product gets
PARTIALS_ELEMENTS = 1 << 17  # backward: a block's partial the width of dhw holds at most this many numbers


def projection_steps(T: int, B: int) -> int:
    """Steps per forward block, whose input projection is one matrix product."""
    return min(T, max(-(-T // 8), -(-PROJECTION_ROWS // max(B, 1))))


def partials_steps(T: int, B: int, width: int) -> int:
    """Steps per backward block, whose partial derivatives are formed at once."""
    return max(1, min(T, PARTIALS_ELEMENTS // max(B * width, 1)))


def step_blocks(T: int, K: int, reverse: bool) -> list[range]:
    """Time steps in processing order, cut into blocks of K steps (the last may be shorter)."""
    blocks = [range(lo, min(lo + K, T)) for lo in range(0, T, K)]
    return [range(b.stop - 1, b.start - 1, -1) for b in reversed(blocks)] if reverse else blocks


def per_step(xp: Any, partials: Any) -> list:
    """A block's partials (a NamedTuple of (K, ...) arrays or None, or one array) -> K per-step
    NamedTuples (or arrays) of views, made in one pass."""
    if not isinstance(partials, tuple):
        return unstack(xp, partials)
    K = next(a for a in partials if a is not None).shape[0]
    fields = [[None] * K if a is None else unstack(xp, a) for a in partials]
    return [type(partials)(*row) for row in zip(*fields, strict=True)]


def chain_in_place(dy_dx: Any, dy: Any) -> Any:
    """dx = dy * dy_dx, written over ``dy_dx`` (a step's own share of its block's partials)."""
    dy_dx *= dy
    return dy_dx


def history(xp: Any, T: int, first: Any) -> Any:
    """An empty (T, *first.shape) array for one value per step, like ``first``."""
    return xp.empty((T, *first.shape), dtype=first.dtype, device=getattr(first, "device", None))


class GradientHistory:
    """Each step's gradients, kept for the products after the loop: dhw (T, B, G*H) at
    the hidden product, and dh (T, B, P) at each step's h where asked (``keep_dh``).
    ``dhw_block`` names the partial a cell's step writes its dhw over (see the module's
    docstring), or is None: dhw is then copied each step."""

    def __init__(self, xp: Any, T: int, dhw_block: Any, keep_dh: bool):
        self.xp, self.T, self.keep_dh = xp, T, keep_dh
        self.dhw_block = dhw_block if dhw_block is not None and rows_are_views(xp) else None
        self.dhw: Any = None  # (T, B, G*H), allocated at the first step
        self.dh: Any = None  # (T, B, P) or None

    def keep(self, t: int, dhw: Any, dh: Any) -> None:
        """Step t's gradient at the hidden product, and the total gradient at its h."""
        if self.dhw is None:
            self.dhw = history(self.xp, self.T, dhw)
            self.dh = history(self.xp, self.T, dh) if self.keep_dh else None
        if self.dhw_block is None:
            self.dhw[t, ...] = dhw
        if self.keep_dh:
            self.dh[t, ...] = dh

    def end_block(self, block: range, partials: Any) -> None:
        """After the block's steps: where they wrote their dhw over the block's partial, keep it."""
        if self.dhw_block is None:
            return
        lo, hi = min(block), max(block) + 1
        if hi - lo == self.T:  # one block: its partial, now every step's dhw, is the history
            self.dhw = self.dhw_block(partials)  # (T, B, G*H)
        else:
            self.dhw[lo:hi, ...] = self.dhw_block(partials)  # (K, B, G*H)

