"""The planted-bug catalogue: realistic BPTT bugs, each one edit to the core.

Every entry is one bug someone could write (or did, in another project): a
derivative taken from the wrong value, a carry dropped, a mask forgotten on one
side of the loop, the reverse direction reading the forward's neighbours, a
dropout mask kept out of backward, an alias handed to the caller, a float64
constant in a float32 module, a case (bias=False, T = 1, B = 0) nobody ran. The
runner (``python -m parity_tests.mutants``) applies one entry at a time to a
copy of the tree and runs the tests the entry names; each must fail there.

``original`` must occur exactly once in ``file`` (``test_mutants.py`` checks
this), so a change to the core that moves a snippet fails loudly instead of
quietly testing nothing. ``tests`` are the cheapest tests that kill the bug,
written as pytest node ids under ``parity_tests/``.
"""

from __future__ import annotations

from typing import NamedTuple


class Mutant(NamedTuple):
    name: str
    category: str
    file: str  # relative to the repository root
    original: str  # exact text, found once in the file
    replacement: str
    tests: tuple[str, ...]  # pytest node ids relative to parity_tests/
    bug: str  # what goes wrong, in one line


CELL = "test_cells.py::test_cell_matches_torch"
LAYER = "test_layers.py::test_layer_matches_torch"
DROPOUT = "test_properties.py::test_dropout_masks_equal_composition_of_layers_and_masks"
EMPTY = "test_validation.py::test_empty_batch_forward_and_backward_as_torch"
PAPER_GRU = "test_gru_variant.py::test_paper_gru_matches_autograd_of_explicit_equations"
CELL_NUMERIC = "test_numeric.py::test_cell_gradients_match_finite_differences"  # runs load_state_dict between forwards
GAPS = "test_core_gaps.py"  # the tests the catalogue found missing
CARRIES = GAPS + "::test_carries_are_the_gradient_at_each_state_as_torch_computes_it"
ONNX = "test_onnx_operators.py::test_onnx_options_match_autograd_of_explicit_equations"

CATALOGUE: tuple[Mutant, ...] = (
    # -- derivatives -------------------------------------------------------------------------------
    Mutant("tanh_derivative_from_output", "derivative", "reference/activations.py",
           "return 1 - y * y", "return 1 - y", (CELL,),
           "tanh' written as 1 - y instead of 1 - y^2 (the RNN step)"),
    Mutant("relu_derivative_at_zero", "derivative", "reference/activations.py",
           "return y > 0", "return y >= 0", (CELL,),
           "relu passes the gradient where its output is 0, i.e. for every negative input"),
    Mutant("rnn_dh_prev_through_transpose", "derivative", "reference/rnn_cell.py",
           "return da, da @ w.w_hh  # (B, H), (B, H)", "return da, da @ w.w_hh_T  # (B, H), (B, H)", (CELL,),
           "dh_prev = da W_hh^T instead of da W_hh: square, so no shape error"),
    Mutant("lstm_candidate_derivative", "derivative", "reference/lstm_cell.py",
           "i * tanh_derivative(g)],", "i * (1 - g)],", (CELL,),
           "the cell candidate's tanh' taken as 1 - g"),
    Mutant("lstm_sigmoid_derivative", "derivative", "reference/lstm_cell.py",
           "ds = sigmoid_derivative(oif)", "ds = 1 - oif", (CELL,),
           "sigmoid' taken as 1 - s for the o, i, f gates"),
    Mutant("lstm_tanh_c_derivative", "derivative", "reference/lstm_cell.py",
           "return LSTMPartials(o * tanh_derivative(tanh_c), da_dmc, f)",
           "return LSTMPartials(o * (1 - tanh_c), da_dmc, f)", (CELL,),
           "the gradient from h into c through tanh(c) uses 1 - tanh(c)"),
    Mutant("gru_new_gate_weighted_by_z", "derivative", "reference/gru_cell.py",
           "dn = (1 - z) * (tanh_derivative(n) if dg is None else dg)", "dn = z * (tanh_derivative(n) if dg is None else dg)",
           (CELL,),
           "h' = (1 - z) n + z h differentiated with z and 1 - z swapped"),
    Mutant("gru_update_gate_sign", "derivative", "reference/gru_cell.py",
           "dz = (h_prev - n) * ds[..., H:]", "dz = (n - h_prev) * ds[..., H:]",
           (CELL,), "dL/dz with the sign of (h - n) flipped"),
    Mutant("gru_reset_left_out_of_hidden_rows", "derivative", "reference/gru_cell.py",
           "dz, dn * r], axis=-1), None)", "dz, dn], axis=-1), None)",
           (CELL,), "the n rows of W_hh get dn instead of dn * r (the reset product forgotten)"),
    Mutant("gru_no_direct_path_to_h", "derivative", "reference/gru_cell.py",
           "return drz, dh * z + drz @ w.w_hh", "return drz, drz @ w.w_hh", (CELL,),
           "dh_prev misses the z * h term of h' = n + z (h - n)"),
    Mutant("dw_hh_from_state_after_step", "derivative", "reference/layer.py",
           "dw_hh = _hidden_weight_grad(xp, cfg, dhw, h_prev, caches)",
           "dw_hh = _hidden_weight_grad(xp, cfg, dhw, tape.h, caches)", (CELL,),
           "dW_hh = sum dhw_t^T h_t instead of h_{t-1}: the classic off-by-one"),
    # -- carries -----------------------------------------------------------------------------------
    Mutant("truncated_carry", "carry", "reference/layer.py",
           "dstate = (dstate[0] + dout[t, ...],) + dstate[1:]", "dstate = (dout[t, ...],) + dstate[1:]", (LAYER,),
           "the gradient from later steps is dropped at every step (BPTT truncated to one step)"),
    Mutant("lstm_cell_carry_dropped", "carry", "reference/lstm_cell.py",
           "dc = dc + dm * dc_dm  # (B, H) total gradient at c'",
           "dc = dm * dc_dm  # (B, H) total gradient at c'", (CELL,),
           "the incoming dc' (from the next step and from c_n) is ignored"),
    Mutant("lstm_forget_gate_not_in_dc_prev", "carry", "reference/lstm_cell.py",
           "return dgates, (dgates @ w.w_hh, dc * f)", "return dgates, (dgates @ w.w_hh, dc)", (CELL,),
           "dc_prev = dc instead of dc * f"),
    Mutant("grad_hidden_ignored", "carry", "reference/layer.py",
           "dstate0, dxw = dstate_n, None",
           "dstate0, dxw = tuple(xp.zeros_like(s) for s in dstate_n), None", (CELL,),
           "backward starts from zero instead of dL/dh_n (and dL/dc_n)"),
    Mutant("initial_state_in_the_wrong_row", "carry", "reference/layer.py",
           "history[T * (1 - after), ...] = s0", "history[0, ...] = s0", (LAYER,),
           "the reverse direction's h0 is written where the state after step 0 goes: the last step it "
           "processes is differentiated around uninitialised memory"),
    Mutant("carries_one_step_early", "carry", "reference/layer.py",
           "carries[t] = dstate",
           "carries[t] = new",
           (CARRIES,),
           "carries[t] is the gradient at the state before step t, not after it"),
    Mutant("stack_state_index_torch_order_mixed", "carry", "reference/stack.py",
           "            idx = layer * D + d\n            d_dir",
           "            idx = d * cfg.num_layers + layer\n            d_dir", (LAYER,),
           "dL/dh_n read for the wrong (layer, direction): h_n is ordered layer-major"),
    # -- masks (packed lengths) --------------------------------------------------------------------
    Mutant("lengths_off_by_one", "mask", "reference/recurrent.py",
           "mask = (np.arange(T)[:, None] < lengths[None, :])[:, :, None]",
           "mask = (np.arange(T)[:, None] <= lengths[None, :])[:, :, None]", (LAYER,),
           "each sequence runs one step past its length"),
    Mutant("forward_state_not_carried_over_padding", "mask", "reference/layer.py",
           "block, mask, keep)",
           "block, None, keep)", (LAYER,),
           "forward keeps stepping on padding, so h_n is the state after T steps"),
    Mutant("output_not_zeroed_on_padding", "mask", "reference/stack.py",
           "x = xp.where(mask, x, xp.zeros_like(x[:1, :1, :1]))", "x = x", (LAYER,),
           "the output past each length holds the carried state instead of 0"),
    Mutant("padded_output_gradient_leaks", "mask", "reference/layer.py",
           "dout = _zero_padding(xp, mask, dout)  # (T, B, P) padded outputs are constants",
           "dout = dout  # (T, B, P) padded outputs are constants", (CARRIES,),
           "the cotangent at padded outputs (constants) is counted in the carries there"),
    Mutant("backward_carry_not_masked", "mask", "reference/layer.py",
           "dstate0, block, mask,", "dstate0, block, None,", (LAYER,),
           "backward pushes the carry through padded steps that forward skipped"),
    Mutant("padded_steps_in_weight_gradient", "mask", "reference/layer.py",
           "dxw, h_prev = _zero_padding(xp, mask, dxw), _zero_padding(xp, mask, h_prev)",
           "h_prev = _zero_padding(xp, mask, h_prev)", (LAYER,),
           "the gate gradients of padded steps are summed into dW_ih, dW_hh and the biases"),
    # -- the reverse direction ---------------------------------------------------------------------
    Mutant("reverse_history_rows_as_forward", "reverse", "reference/layer.py",
           "after = 0 if reverse else 1", "after = 1", (LAYER,),
           "the reverse direction's states are stored as the forward's: the state before step t is read "
           "as h_{t-1} instead of h_{t+1}"),
    Mutant("state_before_is_state_after", "carry", "reference/layer.py",
           "states[0][1 - after : 1 - after + T, ...]  # (T, B, P) each",
           "states[0][after : after + T, ...]  # (T, B, P) each", (CELL,),
           "h_prev is the same view as h: every step is differentiated around its own output"),
    Mutant("lstm_c_prev_is_c", "carry", "reference/layer.py",
           "states[1][1 - after : 1 - after + T, ...]) if len(states) == 2",
           "states[1][after : after + T, ...]) if len(states) == 2", (CELL,),
           "the forget gate's gradient dc * c_prev is taken with the cell state after the step"),
    Mutant("reverse_blocks_in_forward_order", "reverse", "reference/layer.py",
           "for b in reversed(blocks)] if reverse else blocks",
           "for b in blocks] if reverse else blocks",
           (GAPS + "::test_sequences_long_enough_for_several_projection_blocks_match_torch",),
           "long reverse sequences walk their input-projection blocks first to last"),
    Mutant("reverse_reads_forward_half_of_dout", "reverse", "reference/stack.py",
           "d_dir = None if dout is None else dout[..., d * P : (d + 1) * P]  # (T, B, P)",
           "d_dir = None if dout is None else dout[..., :P]  # (T, B, P)", (LAYER,),
           "both directions take the forward half of dL/doutput"),
    Mutant("directions_input_gradients_not_summed", "reverse", "reference/stack.py",
           "dx = g.dx if dx is None else dx + g.dx", "dx = g.dx", (LAYER,),
           "the input gradient keeps only the last direction's share"),
    # -- blocks of steps (backward forms each block's partial derivatives at once) -----------------
    Mutant("block_partials_in_processing_order", "block", "reference/layer.py",
           "step(s, t, shares[t - lo])", "step(s, t, shares[hi - 1 - t])", (LAYER,),
           "the backward walk takes the block's partials in its own (reversed) order, not by time index"),
    Mutant("block_input_grad_of_first_block_only", "block", "reference/layer.py",
           "dxw[lo:hi, ...] = cell.input_grad(xp, histories[0][lo:hi, ...], histories[1][lo:hi, ...], partials)",
           "dxw[lo:hi, ...] = cell.input_grad(xp, histories[0][:hi - lo, ...], histories[1][:hi - lo, ...], partials)",
           (GAPS + "::test_sequences_long_enough_for_several_projection_blocks_match_torch",),
           "GRU's dxw of every block is formed from the first block's gradients"),
    Mutant("block_gradients_never_kept", "block", "reference/layer.py",
           "histories[0][lo:hi, ...] = dhw_block(partials)  # (K, B, G*H)", "pass",
           (GAPS + "::test_sequences_long_enough_for_several_projection_blocks_match_torch",),
           "the steps write their dhw over the block's partials, and the block is never copied into the history"),
    Mutant("single_block_gradients_never_kept", "block", "reference/layer.py",
           "histories[0] = dhw_block(partials)  # (T, B, G*H)", "pass", (CELL,),
           "with one block, the history is left as allocated instead of becoming the block's dhw"),
    Mutant("per_step_gradients_dropped_without_views", "block", "reference/layer.py",
           "        if not in_place:\n            histories[0][t, ...] = dhw\n", "",
           (GAPS + "::test_backward_without_row_views_copies_each_step",),
           "a library whose rows are copies: each step's dhw must be copied, and is not"),
    Mutant("tanh_derivative_in_place_over_the_tape", "aliasing", "reference/activations.py",
           "return 1 - y * y", "y *= -y\n    y += 1\n    return y",
           ("test_properties.py::test_backward_is_repeatable_and_forward_changes_nothing",),
           "1 - y^2 formed in place to save an allocation: y is the tape's state or gate history"),
    # -- dropout -----------------------------------------------------------------------------------
    Mutant("dropout_mask_not_in_backward", "dropout", "reference/stack.py",
           "dx = dx * tape.dropout[layer - 1]  # (T, B, D*P)", "dx = dx  # (T, B, D*P)", (DROPOUT,),
           "backward forgets the dropout mask between layers"),
    Mutant("dropout_not_rescaled", "dropout", "reference/recurrent.py",
           "scale = 0.0 if self.dropout == 1 else 1.0 / (1.0 - self.dropout)", "scale = 1.0", (DROPOUT,),
           "inverted dropout without the 1 / (1 - p) scale"),
    Mutant("dropout_first_mask_everywhere", "dropout", "reference/stack.py",
           "dx = dx * tape.dropout[layer - 1]  # (T, B, D*P)", "dx = dx * tape.dropout[0]  # (T, B, D*P)",
           ("test_numeric.py::test_dropout_gradients_match_finite_differences",),
           "every layer boundary's gradient is masked with the first boundary's mask"),
    # -- projection --------------------------------------------------------------------------------
    Mutant("projection_input_without_output_gate", "projection", "reference/lstm_cell.py",
           "return cache.oif[..., :H] * cache.tanh_c", "return cache.tanh_c", (LAYER,),
           "dW_hr formed with tanh(c) instead of m = o * tanh(c)"),
    Mutant("projection_grad_from_previous_state", "projection", "reference/layer.py",
           "histories[1][t, ...] = dstate[0]",
           "histories[1][t, ...] = new[0]", (LAYER,),
           "dW_hr uses the gradient at h_{t-1} instead of at h_t"),
    Mutant("projection_padding_in_weight_gradient", "projection", "reference/layer.py",
           "dh, m = _zero_padding(xp, mask, dh), _zero_padding(xp, mask, m)", "pass", (LAYER,),
           "padded steps contribute to dW_hr"),
    # -- bias --------------------------------------------------------------------------------------
    Mutant("gru_b_hn_outside_reset", "bias", "reference/layer.py",
           'if cfg.mode == "GRU" and cfg.reset_after:', 'if cfg.mode == "GRU" and not cfg.reset_after:', (CELL,),
           "GRU's b_hn added outside the reset product, like every other bias"),
    Mutant("gru_bias_hh_gradient_as_bias_ih", "bias", "reference/layer.py",
           "sum_rows(xp, xp.reshape(dhw, (-1, dhw.shape[-1]))) if cell.input_grad is not None else",
           "sum_rows(xp, xp.reshape(dxw, (-1, dxw.shape[-1]))) if cell.input_grad is not None else", (CELL,),
           "GRU's d b_hn taken as d b_in: the reset gate's factor r forgotten"),
    Mutant("gru_bias_false_crash", "bias", "reference/gru_cell.py",
           "hn = hw[..., 2 * H :] if w.b_hn is None else hw[..., 2 * H :] + w.b_hn  # (B, H)",
           "hn = hw[..., 2 * H :] + w.b_hn  # (B, H)", (CELL,),
           "a GRU with bias=False adds None: the option nobody ran"),
    Mutant("bias_gradient_not_pairwise", "bias", "reference/_linear.py",
           "dbias = sum_rows(xp, xp.reshape(dy, (-1, dy.shape[-1]))) if has_bias else None",
           "dbias = xp.sum(xp.reshape(dy, (-1, dy.shape[-1])), axis=0) if has_bias else None",
           ("test_reliability.py::test_float32_bias_gradients_are_summed_as_accurately_as_torch",),
           "bias gradients summed row by row: float32 error grows like T * B"),
    Mutant("pairwise_sum_drops_odd_row", "bias", "reference/_linear.py",
           "odd_rows.append(a[n - 1, ...])  # (M,)", "pass  # (M,)", (CELL,),
           "the pairwise sum loses the last row of every odd-length halving"),
    # -- GRU in the paper's form (reset_after=False) -----------------------------------------------
    Mutant("paper_gru_dh_without_reset", "reset_after=False", "reference/gru_cell.py",
           "dh * z + d_rh * r + d_rz @", "dh * z + d_rh + d_rz @", (PAPER_GRU,),
           "d(r * h)/dh taken as 1 instead of r"),
    Mutant("paper_gru_dw_hn_without_reset", "reset_after=False", "reference/layer.py",
           "weight_grad(xp, dhw[..., 2 * H :], r * h_prev)", "weight_grad(xp, dhw[..., 2 * H :], h_prev)", (PAPER_GRU,),
           "dW_hn = sum dn^T h instead of dn^T (r * h)"),
    # -- the LSTM's loop row order (i, f, o, g) against torch's (i, f, g, o) ------------------------
    Mutant("lstm_gradients_in_loop_order", "row order", "reference/stack.py",
           'rows = (lambda a: torch_rows(xp, a, H)) if cfg.mode == "LSTM" else (lambda a: a)',
           "rows = (lambda a: a)", (CELL,),
           "LSTM gradients returned in the loop's o, i, f, g rows, not torch's i, f, g, o"),
    Mutant("lstm_tape_gates_g_and_o_swapped", "row order", "reference/layer.py",
           '"g": cache.g, "o": cache.oif[..., :H]}', '"g": cache.oif[..., :H], "o": cache.g}',
           (GAPS + "::test_tape_steps_hold_each_gate_under_its_torch_letter",),
           "the tape's gate values name the loop's rows by torch's order"),
    # -- aliasing ----------------------------------------------------------------------------------
    Mutant("bias_gradients_share_memory", "aliasing", "reference/layer.py",
           "else xp.asarray(db_ih, copy=True)", "else db_ih", (GAPS + "::test_every_gradient_is_its_own_array",),
           "grads['bias_hh'] is grads['bias_ih']: writing one changes the other"),
    Mutant("output_view_of_tape_writable", "aliasing", "reference/recurrent.py",
           "            output.flags.writeable = False\n", "",
           ("test_properties.py::test_writing_into_the_outputs_leaves_the_tape_intact",),
           "the output handed out is the tape's state history, writable"),
    Mutant("input_kept_without_copy", "aliasing", "reference/_checks.py",
           "copy=True if copy else None", "copy=None",
           ("test_properties.py::test_writing_into_the_callers_arrays_afterwards_changes_no_result",),
           "forward keeps the caller's array in the tape"),
    # -- dtype -------------------------------------------------------------------------------------
    Mutant("default_state_float64", "dtype", "reference/recurrent.py",
           "out.append(from_numpy(place, np.zeros(shape, dtype=self.dtype)))",
           "out.append(from_numpy(place, np.zeros(shape)))", (LAYER,),
           "hx=None becomes float64 zeros: a float32 module promotes to float64"),
    Mutant("drawn_dropout_masks_float64", "dtype", "reference/recurrent.py",
           "(self._rng.random(shape) >= self.dropout).astype(self.dtype) * scale)",
           "(self._rng.random(shape) >= self.dropout) * scale)",
           (GAPS + "::test_float32_training_with_drawn_dropout_stays_float32",),
           "masks drawn in float64: a float32 module in training mode returns float64"),
    # -- T = 1 and B = 0 ---------------------------------------------------------------------------
    Mutant("unbatched_output_squeezed", "T=1", "reference/recurrent.py",
           "return a[:, 0, :]  # (T, .)", "return np.squeeze(a)  # (T, .)",
           ("test_properties.py::test_layer_unbatched_equals_batch_of_one",),
           "squeeze() drops the time axis too when T = 1 (and the feature axis when it is 1)"),
    Mutant("empty_batch_pairwise_sum", "B=0", "reference/_linear.py",
           "    if a.shape[0] == 0:\n        return xp.sum(a, axis=0)  # (M,) zeros\n", "", (EMPTY,),
           "the pairwise sum reads row 0 of an empty batch"),
    Mutant("empty_batch_block_size", "B=0", "reference/layer.py",
           "-(-PROJECTION_ROWS // max(B, 1))", "-(-PROJECTION_ROWS // B)", (EMPTY,),
           "forward's block size divides by the batch size"),
    Mutant("empty_batch_partials_block_size", "B=0", "reference/layer.py",
           "PARTIALS_ELEMENTS // max(B * width, 1)", "PARTIALS_ELEMENTS // (B * width)", (EMPTY,),
           "backward's block size divides by the batch size"),
    # -- the weights version -----------------------------------------------------------------------
    Mutant("stale_tape_accepted", "version", "reference/recurrent.py",
           "if tape.version != version:", "if tape.version > version:",
           ("test_reliability.py::test_a_tape_after_load_state_dict_is_refused",),
           "a tape recorded before load_state_dict is differentiated with the new weights"),
    Mutant("prepared_weights_never_refreshed", "version", "reference/module.py",
           "if cached is not None and cached[0] == weights.version:", "if cached is not None:", (CELL_NUMERIC,),
           "forward after load_state_dict still runs the weights prepared before it"),
    # -- ONNX's options (the general cells) --------------------------------------------------------
    Mutant("onnx_output_peephole_left_out_of_dc", "onnx", "reference/lstm_cell.py",
           "dc_dm = dc_dm + w_p[2 * H :] * do_dm", "dc_dm = dc_dm", (ONNX,),
           "the output gate's peephole reads c', but backward forgets that path into dc'"),
    Mutant("onnx_input_forget_without_the_forget_path", "onnx", "reference/lstm_cell.py",
           "((g - c_prev) if input_forget else g)", "g", (ONNX,),
           "with f = 1 - i, dL/di misses the -dc' * c term through the forget gate"),
    Mutant("onnx_peephole_o_gradient_from_c_prev", "onnx", "reference/lstm_cell.py",
           "dgates[..., :H] * c],", "dgates[..., :H] * c_prev],", (ONNX,),
           "dp_o formed with the state before the step; the output gate's peephole reads the state after it"),
    Mutant("onnx_clip_derivative_dropped", "onnx", "reference/gru_cell.py",
           "d_rz, d_n = d_rz * dclip[..., : 2 * H], d_n * dclip[..., 2 * H :]", "pass", (ONNX,),
           "the clip's derivative (0 outside [-clip, clip]) is left out of the GRU's gates"),
    Mutant("onnx_reverse_runs_forward", "onnx", "reference/stack.py",
           "reverse=d == 1 or cfg.reverse)", "reverse=d == 1)", (ONNX,),
           "reverse=True without bidirectional walks time forward"),
)
