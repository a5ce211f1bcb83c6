"""One direction of one recurrent layer over a whole sequence: the time loop.

This is the only time loop in the project: forward carries the state (h[, c]) from
the first step to the last, backward carries its gradient (dh[, dc]) the other way,
and forward mode (``reference.jvp``) carries tangents. The three cells plug in through
their step functions (``Cell``)::

    forward:   xw = x W_ih^T + b            the input projection, before the loop
               for each step: state = step(xw_t, state)     only h W_hh^T inside
    backward:  for each step, last first: carry dh (and dc) back through the step
               dW_ih = sum_t dxw_t^T x_t    one matrix product after the loop
               dW_hh = sum_t dhw_t^T h_{t-1}

``blocks.py`` holds what makes it fast without changing a number: the input projection
and backward's partial derivatives are formed for a block of steps at once, and each
step's gradient is written over its own share of the block's partials.

Variable lengths are a boolean ``mask`` (T, B, 1): on a padded step the carry
passes through unchanged -- the state in forward, the gradient in backward, the
tangent in forward mode -- and the output there is zero. Run in reverse (t = T-1
... 0), the same rule makes each sequence start at its own last valid step,
which is what torch's packed sequences do.

Every function takes ``xp``, the array namespace of its arrays.

Shapes: T time, B batch, I input, H hidden, P output (proj_size or H), G gates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ._linear import affine, affine_backward, sum_rows, weight_grad
from ._namespace import Placement, row_major_transpose
from .blocks import GradientHistory, history, partials_steps, per_step, projection_steps, step_blocks
from .config import RNNConfig
from .gate_rows import loop_rows
from .gru_cell import (
    gru_general_derivatives,
    gru_general_partials,
    gru_general_step,
    gru_input_grad,
    gru_partials,
    gru_step,
    gru_step_backward,
    gru_step_jvp,
    rz_and_n,
)
from .lstm_cell import (
    lstm_general_partials,
    lstm_general_step,
    lstm_general_step_jvp,
    lstm_partials,
    lstm_peephole_grad,
    lstm_projection_input,
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
    """One layer and direction's weights as the loop uses them: torch's, with W_hh also transposed,
    the biases folded where they can be, and the LSTM's gate rows in the loop's order (``gate_rows``)."""

    w_ih: Any  # (G*H, I)
    w_hh: Any  # (G*H, P) for dh_prev = dhw W_hh
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
    if cfg.mode == "LSTM":  # the loop's gate order, o, i, f, g: gate_rows says why
        w_ih, w_hh = loop_rows(xp, w_ih), loop_rows(xp, w_hh)
        b_ih, b_hh = (None, None) if b_ih is None else (loop_rows(xp, b_ih), loop_rows(xp, b_hh))
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

    Backward is split in two: ``partials`` forms, for the steps lo .. hi-1 at once, every
    partial derivative of the step's chain rule (they depend on forward's values only);
    ``step_backward`` is then the chain rule of one step, given its share of them.
    ``dhw_block`` names the partial a step writes its dhw over (``blocks.chain_in_place``),
    or is None where dhw is a new array each step."""

    step: Callable  # (xp, xw_t, state, w) -> (state', cache)
    partials: Callable  # (xp, tape, lo, hi) -> the partials of steps lo .. hi-1, (K, B, ...)
    step_backward: Callable  # (xp, dstate', partials_t, w) -> (dhw_t, dstate)
    step_jvp: Callable  # (xp, xw_dot_t, state_dot, state, state', cache, w, w_dot) -> state_dot'
    gate_values: Callable  # (cache) -> {gate letter: (B, H)} in torch's letters
    input_grad: Callable | None = None  # (xp, dhw, dh', partials) -> dxw for K steps; None: dxw = dhw
    dhw_block: Callable | None = None  # (partials) -> the partial that becomes dhw; None: dhw is new each step


def _rnn_cell(nonlinearity: str) -> Cell:
    def step(xp, xw, state, w):
        h, cache = rnn_step(xp, xw, state[0], w, nonlinearity)
        return (h,), cache

    def partials(xp, tape, lo, hi):
        return rnn_partials(states_after(tape, 0, lo, hi), nonlinearity)

    def step_backward(xp, dstate, dh_da, w):
        da, dh_prev = rnn_step_backward(xp, dstate[0], dh_da, w, nonlinearity)
        return da, (dh_prev,)

    def step_jvp(xp, xw_dot, state_dot, prev, new, cache, w, w_dot):
        return (rnn_step_jvp(xp, xw_dot, state_dot[0], prev[0], new[0], w, w_dot, nonlinearity),)

    return Cell(step, partials, step_backward, step_jvp, lambda cache: {},
                dhw_block=(lambda p: p) if nonlinearity == "tanh" else None)  # relu's da is a select


def _gru_gate_values(cache):
    gates = {"r": cache.r, "z": cache.z, "n": cache.n}
    return gates if cache.hn is None else {**gates, "hn": cache.hn}


def _gru_cell(reset_after: bool) -> Cell:
    def step(xp, xw, state, w):
        h, cache = gru_step(xp, xw, state[0], w, reset_after)
        return (h,), cache

    def partials(xp, tape, lo, hi):
        return gru_partials(xp, _rows(tape.caches, lo, hi), states_before(tape, 0, lo, hi))

    def step_backward(xp, dstate, p, w):
        dhw, dh_prev = gru_step_backward(xp, dstate[0], p, w)
        return dhw, (dh_prev,)

    def step_jvp(xp, xw_dot, state_dot, prev, new, cache, w, w_dot):
        return (gru_step_jvp(xp, xw_dot, state_dot[0], prev[0], cache, w, w_dot, reset_after),)

    return Cell(step, partials, step_backward, step_jvp, _gru_gate_values, gru_input_grad if reset_after else None,
                (lambda p: p.dh_dhw) if reset_after else None)  # the paper's dhw is a concatenation


def _lstm_partials(xp, tape, lo, hi):
    return lstm_partials(xp, _rows(tape.caches, lo, hi), states_before(tape, 1, lo, hi))


def _lstm_step_jvp(xp, xw_dot, state_dot, prev, new, cache, w, w_dot):
    return lstm_step_jvp(xp, xw_dot, state_dot[0], state_dot[1], prev[0], prev[1], cache, w, w_dot)


def _lstm_gate_values(cache):
    return {"i": cache.i, "f": cache.f, "g": cache.g, "o": cache.o}


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

        def lstm_step_jvp_(xp, xw_dot, state_dot, prev, new, cache, w, w_dot):
            return lstm_general_step_jvp(xp, xw_dot, state_dot[0], state_dot[1], prev[0], prev[1], new[1], cache, w, w_dot, acts,
                                         clip, input_forget)

        return Cell(lstm_step_, lstm_partials_, lstm_step_backward, lstm_step_jvp_, _lstm_gate_values,
                    dhw_block=lambda p: p.dcm_da)
    if cfg.mode == "GRU":
        default = _gru_cell(cfg.reset_after)

        def gru_step_(xp, xw, state, w):
            h, cache = gru_general_step(xp, xw, state[0], w, acts, clip, cfg.reset_after)
            return (h,), cache

        def gru_partials_(xp, tape, lo, hi):
            return gru_general_partials(xp, _rows(tape.caches, lo, hi), states_before(tape, 0, lo, hi), acts, clip)

        def gru_step_jvp_(xp, xw_dot, state_dot, prev, new, cache, w, w_dot):
            return (gru_step_jvp(xp, xw_dot, state_dot[0], prev[0], cache, w, w_dot, cfg.reset_after,
                                 gru_general_derivatives(xp, cache, acts, clip)),)

        return default._replace(step=gru_step_, partials=gru_partials_, step_jvp=gru_step_jvp_)

    def rnn_step_(xp, xw, state, w):
        h, cache = rnn_general_step(xp, xw, state[0], w, acts[0], clip)
        return (h,), cache

    def rnn_partials_(xp, tape, lo, hi):
        return rnn_general_partials(xp, tape.caches.a[lo:hi, ...], states_after(tape, 0, lo, hi), acts[0], clip)

    def rnn_step_backward_(xp, dstate, dh_da, w):
        da, dh_prev = rnn_step_backward(xp, dstate[0], dh_da, w, "tanh")  # da = dh * f'(a~), in place
        return da, (dh_prev,)

    def rnn_step_jvp_(xp, xw_dot, state_dot, prev, new, cache, w, w_dot):
        return (rnn_general_step_jvp(xp, xw_dot, state_dot[0], prev[0], new[0], cache.a, w, w_dot, acts[0], clip),)

    return Cell(rnn_step_, rnn_partials_, rnn_step_backward_, rnn_step_jvp_, lambda cache: {},
                dhw_block=lambda p: p)


def cell_of(cfg: RNNConfig, direction: int = 0) -> Cell:
    """How one direction's cell plugs into the loop (only ONNX's activations differ by direction)."""
    if cfg.general:
        return _general_cell(cfg, direction)
    if cfg.mode == "LSTM":
        return Cell(lstm_step, _lstm_partials, lstm_step_backward, _lstm_step_jvp, _lstm_gate_values,
                    dhw_block=lambda p: p.dcm_da)
    if cfg.mode == "GRU":
        return _gru_cell(cfg.reset_after)
    return _rnn_cell(cfg.nonlinearity)


# -- the loop ----------------------------------------------------------------------


def time_steps(T: int, reverse: bool) -> range:
    """Time indices in processing order."""
    return range(T - 1, -1, -1) if reverse else range(T)


def carry_past_padding(xp: Any, valid: Any, new: tuple, carry: tuple) -> tuple:
    """The carry after a step: ``new`` where the step is valid (``valid`` (B, 1) bool), else
    ``carry`` unchanged -- the state in forward, its gradient in backward, its tangent."""
    return tuple(xp.where(valid, n, c) for n, c in zip(new, carry, strict=True))


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
            states.extend(history(xp, T + 1, v) for v in new)
            for states_k, s0 in zip(states, state0, strict=True):
                states_k[T * (1 - after), ...] = s0
            caches.extend([cache, *(() if cache is None else (None if v is None else history(xp, T, v) for v in cache))])
            fields.extend(k for k in range(len(caches) - 1) if caches[k + 1] is not None)
        for states_k, v in zip(states, new, strict=True):
            states_k[t + after, ...] = v
        for k in fields:
            caches[k + 1][t, ...] = cache[k]

    state = state0
    for block in step_blocks(T, projection_steps(T, B), reverse):
        lo = min(block)
        xw = affine(xp, x[lo : lo + len(block), ...], w.w_ih, w.b_x)  # (K, B, G*H) the block's input projection
        for t in block:
            new, cache = cell.step(xp, xw[t - lo, ...], state, w)
            state = new if mask is None else carry_past_padding(xp, mask[t, ...], new, state)
            keep(t, state, cache)
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

    The carry ``dstate`` is the gradient at the state after step t: (dh,) or (dh, dc). From
    the last step to the first (the reverse direction: first to last), step t adds the
    gradient at its output to dh, sends the sum back through the step, and the gradient at
    the state before the step is the next carry; a padded step passes the carry through.
    Each step also gives dhw, the gradient at its hidden product; after the loop, the weight
    gradients are one product each over every step (``_weight_grads``).

    Args:
        dout: (T, B, P) gradient at the output, or None; ignored on padded steps
            (the output there is a constant zero).
        dstate_n: gradient at the final state, (dh_n,) or (dh_n, dc_n).
    """
    w, mask, T, B = tape.weights, tape.mask, tape.x.shape[0], tape.x.shape[1]
    if dout is not None and mask is not None:
        dout = _zero_padding(xp, mask, dout)  # (T, B, P) padded outputs are constants
    kept = GradientHistory(xp, T, cell.dhw_block, keep_dh=cell.input_grad is not None or w.w_hr is not None)
    carries: list | None = [None] * T if keep_carries else None
    dxw = None  # (T, B, G*H) where the gradient at xw is not dhw's (torch's GRU)
    dstate = dstate_n
    for block in step_blocks(T, partials_steps(T, B, w.w_ih.shape[0]), not tape.reverse):  # time the other way
        lo, hi = min(block), max(block) + 1
        partials = cell.partials(xp, tape, lo, hi)  # every step of the block at once: (K, B, ...)
        partials_of = per_step(xp, partials)  # partials_of[t - lo]: step t's
        for t in block:
            dstate_t = dstate if dout is None else (dstate[0] + dout[t, ...], *dstate[1:])  # h_t feeds the output too
            dhw_t, dprev = cell.step_backward(xp, dstate_t, partials_of[t - lo], w)
            kept.keep(t, dhw_t, dstate_t[0])
            if carries is not None:
                carries[t] = dstate_t
            dstate = dprev if mask is None else carry_past_padding(xp, mask[t, ...], dprev, dstate)
        kept.end_block(block, partials)
        if cell.input_grad is not None:  # dxw differs from dhw in the n rows: formed for the block at once
            dxw = history(xp, T, kept.dhw[0, ...]) if dxw is None else dxw  # (T, B, G*H)
            dxw[lo:hi, ...] = cell.input_grad(xp, kept.dhw[lo:hi, ...], kept.dh[lo:hi, ...], partials)
    dx, dw_ih, dw_hh, db_ih, db_hh, dw_hr, dw_p = _weight_grads(xp, cfg, tape, kept.dhw, dxw, kept.dh)
    return LayerGrads(dx, dstate, dw_ih, dw_hh, db_ih, db_hh, dw_hr, carries, dw_p)


def _weight_grads(xp: Any, cfg: RNNConfig, tape: LayerTape, dhw: Any, dxw: Any, dh: Any) -> tuple:
    """dx and every weight's gradient, one product (or sum) each over all steps, from the
    steps' gradients at the hidden product dhw (T, B, G*H), at xw (dxw, or None where it is
    dhw) and at h (dh (T, B, P), where kept): (dx, dW_ih, dW_hh, db_ih, db_hh, dW_hr, dW_p)."""
    x, w, mask, h_prev = tape.x, tape.weights, tape.mask, tape.h_prev
    own_dxw = dxw is not None  # torch's GRU: b_hh's gradient is dhw's, not dxw's
    dxw = dhw if dxw is None else dxw  # (T, B, G*H)
    if mask is not None:  # padded steps contribute nothing; zero their operands too, so 0 * NaN cannot leak in
        dxw, h_prev = _zero_padding(xp, mask, dxw), _zero_padding(xp, mask, h_prev)
        dhw = _zero_padding(xp, mask, dhw) if own_dxw else dxw
    has_bias = w.b_x is not None
    dx, dw_ih, db_ih = affine_backward(xp, dxw, x, w.w_ih, has_bias)  # (T, B, I), (G*H, I), (G*H,)
    dw_hh = _hidden_weight_grad(xp, cfg, dhw, h_prev, tape.caches)  # (G*H, P)
    db_hh = None
    if has_bias:  # b_hh enters the same sum as b_ih, except GRU's b_hn (inside the reset product)
        db_hh = sum_rows(xp, xp.reshape(dhw, (-1, dhw.shape[-1]))) if own_dxw else xp.asarray(db_ih, copy=True)
    dw_hr = None
    if w.w_hr is not None:  # h = m W_hr^T at every step: dW_hr = sum_t dh_t^T m_t
        m = lstm_projection_input(tape.caches)  # (T, B, H)
        if mask is not None:
            dh, m = _zero_padding(xp, mask, dh), _zero_padding(xp, mask, m)
        dw_hr = weight_grad(xp, dh, m)  # (P, H)
    dw_p = None
    if w.w_p is not None:  # a_i += p_i c, a_f += p_f c, a_o += p_o c' at every step: one sum each over t and b
        c_prev, c = tape.c_prev, tape.c
        if mask is not None:
            c_prev, c = _zero_padding(xp, mask, c_prev), _zero_padding(xp, mask, c)
        dw_p = lstm_peephole_grad(xp, dhw, c_prev, c)  # (3H,)
    return dx, dw_ih, dw_hh, db_ih, db_hh, dw_hr, dw_p


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
        dhw_rz, dhw_n = rz_and_n(dhw)  # (T, B, 2H), (T, B, H)
        dw_hrz = weight_grad(xp, dhw_rz, h_prev)  # (2H, H)
        return xp.concat([dw_hrz, weight_grad(xp, dhw_n, caches.r * h_prev)], axis=0)  # (3H, H)
    return weight_grad(xp, dhw, h_prev)  # (G*H, P)
