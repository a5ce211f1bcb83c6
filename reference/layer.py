"""One direction of one recurrent layer over a whole sequence: the time loop.

This is the only time loop in the project. ``scan`` walks the steps carrying a
state; forward carries (h[, c]), backward carries (dh[, dc]) the other way, and
forward mode (``reference.jvp``) carries tangents. The three cells plug in
through their step functions. Structure (the fast one is also the clear one)::

    forward:   xw = x W_ih^T + b            input projection, a few steps per matrix product
               for each step: state = step(xw_t, state)     only h W_hh^T inside
    backward:  per block of steps: the steps' partial derivatives, all at once
               for each step, last first: carry dh (and dc) back through the step
               dW_ih = sum_t dxw_t^T x_t    one matrix product after the loop
               dW_hh = sum_t dhw_t^T h_{t-1}

A step's partial derivatives (gate derivatives, products of gates) do not depend on
the gradient arriving from later steps, so backward forms them for a block of steps
in a few array calls; what stays in the loop is the chain rule itself (a handful of
products and one matrix product per step). The step's last product is written over
its own share of the block's partials, so the block ends holding its steps' dhw:
one copy per block into the history, none when one block covers every step. Blocks
are sized to stay in cache between the two passes over them.

Variable lengths are a boolean ``mask`` (T, B, 1): on a padded step the carry
passes through unchanged -- the state in forward, the gradient in backward, the
tangent in forward mode -- and the output there is zero. Run in reverse (t = T-1
... 0), the same rule makes each sequence start at its own last valid step,
which is what torch's packed sequences do.

Every function takes ``xp``, the array namespace of its arrays.

Shapes: T time, B batch, I input, H hidden, P output (proj_size or H), G gates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ._linear import affine, affine_backward, sum_rows, weight_grad
from ._namespace import Placement, row_major_transpose, rows_are_views, unstack
from .config import RNNConfig
from .gru_cell import (
    gru_general_derivatives,
    gru_general_partials,
    gru_general_step,
    gru_input_grad,
    gru_partials,
    gru_step,
    gru_step_backward,
    gru_step_jvp,
)
from .lstm_cell import (
    lstm_general_partials,
    lstm_general_step,
    lstm_general_step_jvp,
    lstm_partials,
    lstm_peephole_grad,
    lstm_projection_input,
    lstm_rows,
    lstm_step,
    lstm_step_backward,
    lstm_step_jvp,
)
from .rnn_cell import (
    rnn_general_partials,
    rnn_general_step,
    rnn_general_step_jvp,
    rnn_partials,
    rnn_step,
    rnn_step_backward,
    rnn_step_jvp,
)

State = tuple  # (h,) for RNN and GRU, (h, c) for LSTM


class LayerWeights(NamedTuple):
    """One layer and direction's weights as the loop uses them (LSTM rows in o, i, f, g order)."""

    w_ih: Any  # (G*H, I)
    w_hh: Any  # (G*H, P) for dh_prev = dgates W_hh
    w_hh_T: Any  # (P, G*H) row-major, for h W_hh^T in every forward step
    b_x: Any  # (G*H,) biases added on the input side (b_ih, and b_hh where it enters the same sum), or None
    b_hn: Any  # (H,) GRU in torch's form: b_hn stays inside the reset product; else None
    w_hr: Any = None  # (P, H) LSTM projection
    w_hr_T: Any = None  # (H, P)
    w_p: Any = None  # (3H,) LSTM peepholes p_i, p_f, p_o (ONNX), or None


def prepare_weights(place: Placement, cfg: RNNConfig, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any,
                    w_hr: Any = None, w_p: Any = None) -> LayerWeights:
    """torch-layout weights (in the call's namespace) -> the loop's LayerWeights. Linear in
    the weights, so it also prepares weight tangents (``reference.jvp``)."""
    xp, H = place.xp, cfg.hidden_size
    if cfg.mode == "LSTM":
        w_ih, w_hh = lstm_rows(xp, w_ih, H), lstm_rows(xp, w_hh, H)
        b_ih, b_hh = (None, None) if b_ih is None else (lstm_rows(xp, b_ih, H), lstm_rows(xp, b_hh, H))
    b_x = b_hn = None
    if b_ih is not None:
        if cfg.mode == "GRU" and cfg.reset_after:  # b_hr, b_hz join the input side; b_hn must wait for r
            b_x = b_ih + xp.concat([b_hh[: 2 * H], xp.zeros_like(b_hh[2 * H :])])  # (3H,)
            b_hn = b_hh[2 * H :]  # (H,)
        else:
            b_x = b_ih + b_hh  # (G*H,)
    w_hr_T = None if w_hr is None else row_major_transpose(place, w_hr)
    return LayerWeights(w_ih, w_hh, row_major_transpose(place, w_hh), b_x, b_hn, w_hr, w_hr_T, w_p)


class Cell(NamedTuple):
    """How a cell plugs into the loop; every function takes ``xp`` first.

    Backward is split in two: ``partials`` forms, for K steps at once, every factor
    of the step's chain rule that the incoming gradient does not change; the loop
    then calls ``step_backward`` with one step's share of them. Where ``dhw_block``
    is given, step_backward writes dhw over its share of that (K, B, G*H) partial (a
    fresh array, each step's rows read by that step alone), so the block of partials
    ends as the block of dhw and the loop keeps it with one copy per block."""

    step: Callable  # (xp, xw_t, state, w) -> (state', cache)
    partials: Callable  # (xp, tape, lo, hi) -> the partials of steps lo .. hi-1, (K, B, ...)
    step_backward: Callable  # (xp, dstate', partials_t, w) -> (dhw_t, dstate)
    step_jvp: Callable  # (xp, dxw_t, dstate, state, state', cache, w, dw) -> dstate'
    gate_values: Callable  # (cache, state') -> {gate letter: (B, H)} in torch's letters
    input_grad: Callable | None = None  # (xp, dhw, dh', partials) -> dxw for K steps; None: dxw = dhw
    dhw_block: Callable | None = None  # (partials) -> the partial that becomes dhw; None: dhw is new each step


def _rnn_cell(nonlinearity: str) -> Cell:
    def step(xp, xw, state, w):
        h, cache = rnn_step(xp, xw, state[0], w, nonlinearity)
        return (h,), cache

    def partials(xp, tape, lo, hi):
        return rnn_partials(states_after(tape, 0, lo, hi), nonlinearity)

    def step_backward(xp, dnew, d_act, w):
        da, dh_prev = rnn_step_backward(xp, dnew[0], d_act, w, nonlinearity)
        return da, (dh_prev,)

    def step_jvp(xp, dxw, dprev, prev, new, cache, w, dw):
        return (rnn_step_jvp(xp, dxw, dprev[0], prev[0], new[0], w, dw, nonlinearity),)

    return Cell(step, partials, step_backward, step_jvp, lambda cache, new: {},
                dhw_block=(lambda p: p) if nonlinearity == "tanh" else None)  # relu's da is a select


def _gru_cell(reset_after: bool) -> Cell:
    def step(xp, xw, state, w):
        h, cache = gru_step(xp, xw, state[0], w, reset_after)
        return (h,), cache

    def partials(xp, tape, lo, hi):
        return gru_partials(xp, _rows(tape.caches, lo, hi), states_before(tape, 0, lo, hi))

    def step_backward(xp, dnew, p, w):
        dhw, dh_prev = gru_step_backward(xp, dnew[0], p, w)
        return dhw, (dh_prev,)

    def step_jvp(xp, dxw, dprev, prev, new, cache, w, dw):
        return (gru_step_jvp(xp, dxw, dprev[0], prev[0], cache, w, dw, reset_after),)

    def gate_values(cache, new):
        H = cache.n.shape[-1]
        gates = {"r": cache.rz[..., :H], "z": cache.rz[..., H:], "n": cache.n}
        return gates if cache.hn is None else {**gates, "hn": cache.hn}

    def input_grad(xp, dhw, dh, p):
        return gru_input_grad(xp, dhw, dh, p)

    return Cell(step, partials, step_backward, step_jvp, gate_values, input_grad if reset_after else None,
                (lambda p: p.drz) if reset_after else None)  # the paper's dhw is a concatenation


def _lstm_partials(xp, tape, lo, hi):
    return lstm_partials(xp, _rows(tape.caches, lo, hi), states_before(tape, 1, lo, hi))


def _lstm_step_jvp(xp, dxw, dprev, prev, new, cache, w, dw):
    return lstm_step_jvp(xp, dxw, dprev[0], dprev[1], prev[0], prev[1], cache, w, dw)


def _lstm_gate_values(cache, new):
    H = cache.g.shape[-1]
    return {"i": cache.oif[..., H : 2 * H], "f": cache.oif[..., 2 * H :], "g": cache.g, "o": cache.oif[..., :H]}


def _general_cell(cfg: RNNConfig, direction: int) -> Cell:
    """ONNX's cells (``general`` configurations): the gate functions of this direction, the clip,
    input_forget and peepholes. Backward reuses torch's step_backward: only the partials differ."""
    acts, clip = cfg.gate_functions(direction), cfg.clip
    if cfg.mode == "LSTM":
        input_forget = cfg.input_forget

        def lstm_step_(xp, xw, state, w):
            return lstm_general_step(xp, xw, state, w, acts, clip, input_forget)

        def lstm_partials_(xp, tape, lo, hi):
            return lstm_general_partials(xp, _rows(tape.caches, lo, hi), states_before(tape, 1, lo, hi),
                                         states_after(tape, 1, lo, hi), tape.weights.w_p, acts, clip, input_forget)

        def lstm_step_jvp_(xp, dxw, dprev, prev, new, cache, w, dw):
            return lstm_general_step_jvp(xp, dxw, dprev[0], dprev[1], prev[0], prev[1], new[1], cache, w, dw, acts,
                                         clip, input_forget)

        return Cell(lstm_step_, lstm_partials_, lstm_step_backward, lstm_step_jvp_, _lstm_gate_values,
                    dhw_block=lambda p: p.da_dmc)
    if cfg.mode == "GRU":
        default = _gru_cell(cfg.reset_after)

        def gru_step_(xp, xw, state, w):
            h, cache = gru_general_step(xp, xw, state[0], w, acts, clip, cfg.reset_after)
            return (h,), cache

        def gru_partials_(xp, tape, lo, hi):
            return gru_general_partials(xp, _rows(tape.caches, lo, hi), states_before(tape, 0, lo, hi), acts, clip)

        def gru_step_jvp_(xp, dxw, dprev, prev, new, cache, w, dw):
            return (gru_step_jvp(xp, dxw, dprev[0], prev[0], cache, w, dw, cfg.reset_after,
                                 gru_general_derivatives(xp, cache, acts, clip)),)

        return default._replace(step=gru_step_, partials=gru_partials_, step_jvp=gru_step_jvp_)

    def rnn_step_(xp, xw, state, w):
        h, cache = rnn_general_step(xp, xw, state[0], w, acts[0], clip)
        return (h,), cache

    def rnn_partials_(xp, tape, lo, hi):
        return rnn_general_partials(xp, tape.caches.a[lo:hi, ...], states_after(tape, 0, lo, hi), acts[0], clip)

    def rnn_step_backward_(xp, dnew, d_act, w):
        da, dh_prev = rnn_step_backward(xp, dnew[0], d_act, w, "tanh")  # da = dh' * f'(a~), in place
        return da, (dh_prev,)

    def rnn_step_jvp_(xp, dxw, dprev, prev, new, cache, w, dw):
        return (rnn_general_step_jvp(xp, dxw, dprev[0], prev[0], new[0], cache.a, w, dw, acts[0], clip),)

    return Cell(rnn_step_, rnn_partials_, rnn_step_backward_, rnn_step_jvp_, lambda cache, new: {},
                dhw_block=lambda p: p)


def cell_of(cfg: RNNConfig, direction: int = 0) -> Cell:
    """How one direction's cell plugs into the loop (only ONNX's activations differ by direction)."""
    if cfg.general:
        return _general_cell(cfg, direction)
    if cfg.mode == "LSTM":
        return Cell(lstm_step, _lstm_partials, lstm_step_backward, _lstm_step_jvp, _lstm_gate_values,
                    dhw_block=lambda p: p.da_dmc)
    if cfg.mode == "GRU":
        return _gru_cell(cfg.reset_after)
    return _rnn_cell(cfg.nonlinearity)


# -- the loop ----------------------------------------------------------------------


def time_steps(T: int, reverse: bool) -> range:
    """Time indices in processing order."""
    return range(T - 1, -1, -1) if reverse else range(T)


def scan(xp: Any, step: Callable, carry: tuple, steps: Sequence[int], mask: Any = None,
         keep: Callable = lambda t, new, out: (t, new, out)) -> tuple[tuple, list]:
    """carry', out_t = step(carry, t) for t in ``steps``; where mask[t] is False the
    carry passes through unchanged. Returns the last carry and the list of
    keep(t, carry after t, out_t) (by default the triple itself)."""
    records = []
    for t in steps:
        new, out = step(carry, t)
        if mask is not None:  # padded rows keep their carry
            new = tuple(xp.where(mask[t, ...], n, c) for n, c in zip(new, carry, strict=True))
        records.append(keep(t, new, out))
        carry = new
    return carry, records


PROJECTION_ROWS = 256  # forward: the fewest rows (steps x batch) one input-projection product gets
PARTIALS_ELEMENTS = 1 << 17  # backward: a block's partial the width of dhw holds at most this many numbers


def projection_steps(T: int, B: int) -> int:
    """Steps per forward block, whose input projection is one matrix product.

    One product for all T steps would hold the whole (T, B, G*H) projection through the
    loop, next to the gates the tape keeps (for LSTM that is 1.57x the tape). Blocks of
    at least PROJECTION_ROWS rows keep the products efficient; at most eight blocks (at
    least T/8 steps each) keep the extra memory near a tenth of the tape."""
    return min(T, max(-(-T // 8), -(-PROJECTION_ROWS // max(B, 1))))


def partials_steps(T: int, B: int, width: int) -> int:
    """Steps per backward block, whose partial derivatives are formed at once.

    A step's share of the partials is written when its block's are formed and read
    back by the step, which is free while the block stays in cache: 2^17 numbers is
    512 KiB in float32 (a core's L2 cache here) and 1 MiB in float64. Backward's time
    over the in-place loop this core replaced (21291b4), same process: LSTM T100 B64
    H256 float32 0.96-0.98x with blocks of 2 steps, 1.04x with 4 and 1.06-1.17x with 16;
    RNN T50 B16 H128 float64 0.98-1.04x with one block of 50 steps, 1.05-1.07x with two
    (a block costs a few array calls, and more than one block a copy into the history)."""
    return max(1, min(T, PARTIALS_ELEMENTS // max(B * width, 1)))


def step_blocks(T: int, K: int, reverse: bool) -> list[range]:
    """Time steps in processing order, cut into blocks of K steps (the last may be shorter)."""
    blocks = [range(lo, min(lo + K, T)) for lo in range(0, T, K)]
    return [range(b.stop - 1, b.start - 1, -1) for b in reversed(blocks)] if reverse else blocks


class LayerTape(NamedTuple):
    """What one layer and direction's forward recorded (public, read-only).

    ``h`` and ``c`` are the states after each step, in time order (padded steps
    carry the state); ``h_prev`` and ``c_prev`` the states each step started from
    (for the reverse direction, the state after step t + 1). Both are views of one
    (T + 1)-row history that holds the initial state once. ``caches`` holds every
    step's gate values, one (T, B, .) array per field (``cache(t)`` is step t's).
    """

    x: Any  # (T, B, I) the layer's input, time-major
    state0: State  # (h0,) or (h0, c0)
    weights: LayerWeights
    mask: Any  # (T, B, 1) bool or None
    reverse: bool
    h: Any  # (T, B, P) states after each step (also the output, before padding is zeroed)
    c: Any  # (T, B, H) LSTM only, else None
    caches: Any  # the cell's step cache with every field (T, B, .); None for the RNN
    h_prev: Any = None  # (T, B, P) the state each step started from
    c_prev: Any = None  # (T, B, H) LSTM only, else None

    def state(self, t: int) -> State:
        """The state after step t."""
        return (self.h[t, ...],) if self.c is None else (self.h[t, ...], self.c[t, ...])

    def state_before(self, t: int) -> State:
        """The state step t started from."""
        return (self.h_prev[t, ...],) if self.c_prev is None else (self.h_prev[t, ...], self.c_prev[t, ...])

    def cache(self, t: int) -> Any:
        """Step t's cache: the cell's gate values, (B, .) each."""
        return None if self.caches is None else _rows(self.caches, t, t + 1, squeeze=True)


def _rows(fields: tuple, lo: int, hi: int, squeeze: bool = False) -> tuple:
    """Time rows lo .. hi-1 of every field of a (Named)tuple of (T, ...) arrays (None stays None)."""
    def rows(a: Any) -> Any:
        return None if a is None else a[lo, ...] if squeeze else a[lo:hi, ...]

    return type(fields)(*(rows(a) for a in fields))


def _history(xp: Any, T: int, first: Any) -> Any:
    """An empty (T, *first.shape) array for one value per step, like ``first``."""
    return xp.empty((T, *first.shape), dtype=first.dtype, device=getattr(first, "device", None))


def layer_forward(xp: Any, cell: Cell, x: Any, state0: State, w: LayerWeights, mask: Any = None,
                  reverse: bool = False) -> tuple[Any, State, LayerTape]:
    """Run one layer in one direction over time.

    Args:
        x: (T, B, I) time-major input, T >= 1.
        state0: (h0,) or (h0, c0); h0 (B, P), c0 (B, H).
        w: the loop's weights (``prepare_weights``).
        mask: (T, B, 1) bool or None (every step valid).
        reverse: walk t = T-1 ... 0.
    Returns:
        h (T, B, P) the states after each step in time order (the output before
        padding is zeroed; shared with the tape), the final state (each
        sequence's state after its own last valid step) and the tape.
    """
    T, B = x.shape[0], x.shape[1]
    # Each step's states and gate values go straight into histories, which are what the tape
    # keeps (h is also the output): stacking lists of steps at the end would hold everything
    # twice for a moment (a plain RNN's forward then peaked at 1.56x its tape), and backward
    # reads a block of steps as one slice. A state history has T + 1 rows, the initial state
    # first in processing order, so the states after the steps and the states before them are
    # two views of it: row t + 1 holds the state after step t (reverse: row t, and row T is h0).
    after = 0 if reverse else 1  # the row offset of "after step t"
    states: list = []  # (T + 1, B, .) per state part, allocated at the first step, which fixes the shapes
    caches: list = []  # the first step's cache, then (T, B, .) per cache field (None stays None)
    fields: list = []  # the cache fields that are arrays

    def keep(t, new, cache):
        if not states:
            states.extend(_history(xp, T + 1, v) for v in new)
            for history, s0 in zip(states, state0, strict=True):
                history[T * (1 - after), ...] = s0
            caches.extend([cache, *(() if cache is None else (None if v is None else _history(xp, T, v) for v in cache))])
            fields.extend(k for k in range(len(caches) - 1) if caches[k + 1] is not None)
        for history, v in zip(states, new, strict=True):
            history[t + after, ...] = v
        for k in fields:
            caches[k + 1][t, ...] = cache[k]

    state = state0
    for block in step_blocks(T, projection_steps(T, B), reverse):
        lo = min(block)
        xw = affine(xp, x[lo : lo + len(block), ...], w.w_ih, w.b_x)  # (K, B, G*H)
        state, _ = scan(xp, lambda s, t, xw=xw, lo=lo: cell.step(xp, xw[t - lo, ...], s, w), state, block, mask, keep)
        del xw  # freed before the next block's projection: one block at a time next to the histories
    h, h_prev = states[0][after : after + T, ...], states[0][1 - after : 1 - after + T, ...]  # (T, B, P) each
    c, c_prev = (states[1][after : after + T, ...], states[1][1 - after : 1 - after + T, ...]) if len(states) == 2 \
        else (None, None)  # (T, B, H) each
    cache = None if caches[0] is None else type(caches[0])(*caches[1:])
    return h, state, LayerTape(x, state0, w, mask, reverse, h, c, cache, h_prev, c_prev)


class LayerGrads(NamedTuple):
    dx: Any  # (T, B, I)
    dstate0: State  # gradient at the initial state
    w_ih: Any  # (G*H, I), loop row order
    w_hh: Any  # (G*H, P)
    b_ih: Any  # (G*H,) or None
    b_hh: Any  # (G*H,) or None
    w_hr: Any  # (P, H) or None
    carries: list | None  # T tuples in time order: the total gradient at the state after step t
    w_p: Any = None  # (3H,) LSTM peepholes p_i, p_f, p_o, or None


def layer_backward(xp: Any, cell: Cell, cfg: RNNConfig, dout: Any, dstate_n: State, tape: LayerTape,
                   keep_carries: bool = False) -> LayerGrads:
    """Backpropagation through time for one layer and direction.

    Args:
        dout: (T, B, P) gradient at the output, or None; ignored on padded steps
            (the output there is a constant zero).
        dstate_n: gradient at the final state, (dh_n,) or (dh_n, dc_n).
    """
    x, w, mask, caches, h_prev = tape.x, tape.weights, tape.mask, tape.caches, tape.h_prev
    T, B = x.shape[0], x.shape[1]
    if dout is not None and mask is not None:
        dout = _zero_padding(xp, mask, dout)  # (T, B, P) padded outputs are constants

    def step(dstate, t, partials_t):
        if dout is not None:  # h_t feeds the output and the next step: the two gradients add
            dstate = (dstate[0] + dout[t, ...],) + dstate[1:]
        dhw, dprev = cell.step_backward(xp, dstate, partials_t, w)
        return dprev, (dhw, dstate)

    keep_dh = cell.input_grad is not None or w.w_hr is not None
    histories: list = []  # dhw, and dh where needed: (T, B, .) each, allocated at the first step
    carries: list = [None] * T if keep_carries else []
    dhw_block = cell.dhw_block if rows_are_views(xp) else None  # each step writes its dhw into the block
    in_place = dhw_block is not None

    def keep(t, new, out):
        dhw, dstate = out
        if not histories:
            histories.extend([_history(xp, T, dhw)] + ([_history(xp, T, dstate[0])] if keep_dh else []))
        if not in_place:
            histories[0][t, ...] = dhw
        if keep_dh:
            histories[1][t, ...] = dstate[0]
        if keep_carries:
            carries[t] = dstate

    dstate0, dxw = dstate_n, None
    K = partials_steps(T, B, w.w_ih.shape[0])
    for block in step_blocks(T, K, not tape.reverse):  # backward walks time the other way
        lo, hi = min(block), max(block) + 1
        partials = cell.partials(xp, tape, lo, hi)  # every step of the block at once: (K, B, ...)
        shares = _per_step(xp, partials)
        dstate0, _ = scan(xp, lambda s, t, lo=lo, shares=shares: step(s, t, shares[t - lo]), dstate0, block, mask,
                          keep)
        if dhw_block is not None and hi - lo == T:  # one block: its partial, now every step's dhw, is the history
            histories[0] = dhw_block(partials)  # (T, B, G*H)
        elif dhw_block is not None:  # the block's partial now holds its steps' dhw
            histories[0][lo:hi, ...] = dhw_block(partials)  # (K, B, G*H)
        if cell.input_grad is not None:  # dxw differs from dhw (torch's GRU): formed for the block at once
            dxw = _history(xp, T, histories[0][0, ...]) if dxw is None else dxw  # (T, B, G*H)
            dxw[lo:hi, ...] = cell.input_grad(xp, histories[0][lo:hi, ...], histories[1][lo:hi, ...], partials)
    dhw = histories[0]  # (T, B, G*H)
    dh = histories[1] if keep_dh else None  # (T, B, P) total gradient at each step's h
    dxw = dhw if dxw is None else dxw  # (T, B, G*H)
    if mask is not None:  # padded steps contribute nothing; zero their operands too, so 0 * NaN cannot leak in
        dxw, h_prev = _zero_padding(xp, mask, dxw), _zero_padding(xp, mask, h_prev)
        dhw = _zero_padding(xp, mask, dhw) if cell.input_grad is not None else dxw
    has_bias = w.b_x is not None
    dx, dw_ih, db_ih = affine_backward(xp, dxw, x, w.w_ih, has_bias)  # (T, B, I), (G*H, I), (G*H,)
    dw_hh = _hidden_weight_grad(xp, cfg, dhw, h_prev, caches)  # (G*H, P)
    db_hh = None
    if has_bias:  # b_hh enters the same sum as b_ih, except GRU's b_hn (inside the reset product)
        db_hh = sum_rows(xp, xp.reshape(dhw, (-1, dhw.shape[-1]))) if cell.input_grad is not None else xp.asarray(db_ih, copy=True)
    dw_hr = None
    if w.w_hr is not None:  # h' = m W_hr^T at every step: dW_hr = sum_t dh'_t^T m_t
        m = lstm_projection_input(caches)  # (T, B, H)
        if mask is not None:
            dh, m = _zero_padding(xp, mask, dh), _zero_padding(xp, mask, m)
        dw_hr = weight_grad(xp, dh, m)  # (P, H)
    dw_p = None
    if w.w_p is not None:  # a_i += p_i c, a_f += p_f c, a_o += p_o c' at every step: one sum each over t and b
        c_prev, c = tape.c_prev, tape.c
        if mask is not None:
            c_prev, c = _zero_padding(xp, mask, c_prev), _zero_padding(xp, mask, c)
        dw_p = lstm_peephole_grad(xp, dhw, c_prev, c)  # (3H,)
    return LayerGrads(dx, dstate0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, carries if keep_carries else None, dw_p)


def _per_step(xp: Any, partials: Any) -> list:
    """A block's partials (a NamedTuple of (K, ...) arrays, or one array) -> K per-step
    tuples (or arrays) of views, made in one pass."""
    if not isinstance(partials, tuple):
        return unstack(xp, partials)
    fields = [[None] * partials[0].shape[0] if a is None else unstack(xp, a) for a in partials]
    return list(zip(*fields, strict=True))


def states_after(tape: LayerTape, k: int, lo: int, hi: int) -> Any:
    """State component k (0: h, 1: c) after steps lo .. hi-1: (K, B, .)."""
    return (tape.h if k == 0 else tape.c)[lo:hi, ...]


def states_before(tape: LayerTape, k: int, lo: int, hi: int) -> Any:
    """State component k (0: h, 1: c) that steps lo .. hi-1 started from: (K, B, .)."""
    return (tape.h_prev if k == 0 else tape.c_prev)[lo:hi, ...]


def _zero_padding(xp: Any, mask: Any, a: Any) -> Any:
    """a (T, B, n) with the padded steps set to 0."""
    return xp.where(mask, a, xp.zeros_like(a[:1, :1, :1]))


def _hidden_weight_grad(xp: Any, cfg: RNNConfig, dhw: Any, h_prev: Any, caches: Any) -> Any:
    """dW_hh = sum_t dhw_t^T h_{t-1}: one product over all steps. In the paper's GRU
    the n rows multiply r * h, not h."""
    if cfg.mode == "GRU" and not cfg.reset_after:
        H = cfg.hidden_size
        r = caches.rz[..., :H]  # (T, B, H)
        dw_hrz = weight_grad(xp, dhw[..., : 2 * H], h_prev)  # (2H, H)
        return xp.concat([dw_hrz, weight_grad(xp, dhw[..., 2 * H :], r * h_prev)], axis=0)  # (3H, H)
    return weight_grad(xp, dhw, h_prev)  # (G*H, P)
