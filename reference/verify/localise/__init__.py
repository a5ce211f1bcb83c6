"""Where a candidate first goes wrong: (layer, direction, time step, gate or quantity).

Runs only when a comparison fails, on sub-problems posed from the reference's
own tape (``tape.layer_input``, ``tape.steps``, backward's ``carries``), so an
upstream error cannot hide a downstream one.

Forward, layer by layer:

1. *isolated layer*: the layer alone on the input the reference gave it; the
   first (direction, time step) whose output differs, in each row's own
   processing order (a reverse row starts at its own last valid step).
2. *teacher-forced steps*: T=1 runs from the reference's state before each step.
   A step whose state differs means the cell equations are wrong ("step"); one
   whose state is right but whose output is not names the output ("step",
   "output": a layer's output at a step is its h'). If every step agrees, a step
   and the one before it, from the reference's state, that still differ mean the
   chaining is wrong ("sequence": order, state carry; "lengths" when the layer
   agrees once lengths are dropped); if they agree but the steps from the first
   up to the one that differs do not, that step is wrong where it runs as the
   step it is (its index, the first or last step: a "step", isolated on that run).
3. *isolation* of a wrong step, on that step's own input and state (the
   reference's, from its tape):
   GRU's other form (reset before W_hn) and RNN's other nonlinearity are tried
   whole; each bias is zeroed, its blocks moved into the other bias where the
   two share a sum, so every pre-activation stays (a step that then agrees
   names the bias, and its gate blocks); then every gate is pinned to the same
   value through its bias (its W_ih and W_hh rows 0, its b_ih block asinh 1, so
   sigmoid = tanh = 1/sqrt 2 and a permutation of gates cannot show; the input
   and the state stay the step's own, so a bug that fires on the input's value,
   its sign or one batch row fires in the probes too; without biases, through
   x_0 = 1 and W_ih's first column). A pinned cell that still differs is named at
   one gate when one wrong value of that gate alone, in the rows the error shows
   in, reproduces it (tried with each gate moved to a second pinned value too),
   so a wrong activation is named where it is, not where its value goes; else at
   the combination (c, h, or W_hr when h' is not W_hr times the unprojected
   state read through selecting W_hr's).
   A pinned cell that agrees names the gates whose own rows alone reproduce the
   error (GRU's r keeps W_hn and b_hn, through which it acts, and where r and n
   both reproduce it, r is named when one value of r explains it; LSTM's i and
   g are tried from c = 0, where f cannot matter, and i, f, g count only where c
   differs, since they reach h through c).
4. truncated stacks find the first layer boundary that goes wrong ("dropout"
   when dropout is active, else "stacking").

Backward (when the forward agrees), layers top-down as BPTT runs:

1. each layer alone, given the reference's gradient at its output;
2. teacher-forced single steps given the reference's incoming gradient at the
   state after the step (``carries``), in BPTT order per row; the per-gate row
   blocks of the weight gradients name the gate (without weight gradients, the
   input gradient with one gate's W_ih rows kept; one gate's rows of one weight
   gradient, all else right, name that gate; a bias gradient alone, that bias);
   a step whose gate blocks agree names the carry (h, c) or the input gradient;
3. if every step agrees, runs that start at each step find the first state
   whose incoming gradient differs ("gradient sequence").

Every sub-problem names the layers of the candidate it poses (``Problem.layers``): the
session runs the user's own object for them where its adapter can, else a rebuild that has
passed the fidelity gate (:mod:`reference.verify.session`). When a sub-problem cannot run
(the candidate refuses another shape, a rebuild does not reproduce the user's object), the
report keeps the mismatch and says where and why localisation stopped.

What agreement is on a sub-problem (:mod:`.bounds`): the tolerance table's one rule at float32 and
float64; at bfloat16, float16 and TF32, the sub-problem's own rounding envelope, so one step is
allowed what rounding does in one step.

The phases live apart: :mod:`.forward` (layers, teacher-forced steps, stacks), :mod:`.gates`
(isolating the gate of a wrong forward step, on the probes of :mod:`.pinned`), :mod:`.backward` and :mod:`.backward_gates` (the same
for gradients), over the helpers of :mod:`.common`; :func:`localise` (:mod:`.locate`) runs them.
"""

from .locate import localise

__all__ = ["localise"]
