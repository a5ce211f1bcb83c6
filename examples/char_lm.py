"""Character-level language model on a small shipped text: truncated BPTT or random
windows, gradient clipping that fires, perplexity on training and held-out text,
and text generation, NumPy and torch side by side.

Batching (``--batching``):

- ``sequential``: the text is cut into B parallel streams (``batchify``); each
  step trains on the next chunk of T characters, starting from the previous
  chunk's final state, detached (``detach``): the state carries over, the
  gradient does not (truncated BPTT). At the end of the stream the state resets.
- ``random``: B windows of T characters at random offsets (``random_windows``),
  each from a zero state; no state is carried between steps.

Clipping: SGD with a large learning rate, as in the classic from-scratch
recipe, and ``clip_grad_norm_`` at a threshold the raw gradient norm really
crosses; the script prints how often it fired and plots the norm before
clipping against the threshold.

Perplexity = exp(mean cross-entropy per character): 1 is a perfect model, the
vocabulary size is a uniform guess. It is measured on the training text and on
the held-out last 10% (read as parallel streams of about 250 characters),
at ten points during training.

Generation (``--generate PREFIX``): the trained model reads the prefix (warm-up:
its state absorbs the prefix), then writes ``--length`` characters, each fed
back as the next input: greedily (the most likely character) and by sampling
from softmax(logits / ``--temperature``). NumPy and torch sample from the same
stream of uniform numbers (one per character, same seed), so with the same
weights they write the same text.

    python examples/char_lm.py --steps 300 --generate "The river" --temperature 0.7 --out examples_out
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from examples._common import (
    Batch,
    Recipe,
    Spec,
    compare,
    init_params,
    legend,
    numpy_loss_and_grads,
    one_thread,
    parser,
    plain_log_ticks,
    plot_pair,
    pyplot,
    report,
    rnn_module,
    save_figure,
    step_axis,
    torch_loss,
    torch_model,
)
from reference import train as nt

TEXT = Path(__file__).resolve().parent / "data" / "tiny_text.txt"
BATCH, BPTT = 8, 25
# Measured at seed 0 over 300 steps: raw gradient norms 0.18-0.75, median 0.36 (with Adam at lr 5e-3 they stay at
# 0.2-0.6, and a threshold of 1.0 never fires); a threshold of 0.4 is crossed on about a third of the steps.
RECIPE = Recipe(optimizer="sgd", lr=2.0, clip_norm=0.4)


def corpus() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(train tokens, held-out tokens, vocabulary)."""
    text = TEXT.read_text()
    vocab = sorted(set(text))
    tokens = np.array([vocab.index(ch) for ch in text])
    split = int(0.9 * len(tokens))
    return tokens[:split], tokens[split:], vocab


def spec(vocab_size: int, cell: str = "LSTM") -> Spec:
    return Spec(cell, input_size=vocab_size, hidden_size=48, out_features=vocab_size, embedding_dim=16)


def sequential_batches(tokens: np.ndarray, batch: int = BATCH, bptt: int = BPTT):
    """step -> Batch: consecutive chunks, the state carried within a pass over the stream."""
    chunks = list(nt.bptt_chunks(nt.batchify(tokens, batch), bptt))

    def batches(step: int) -> Batch:
        k = step % len(chunks)
        x, y = chunks[k]
        return Batch(x, y, carry=k > 0)

    return batches


def random_batches(tokens: np.ndarray, seed: int, batch: int = BATCH, bptt: int = BPTT):
    """step -> Batch: B independent windows at random offsets, each from a zero state."""

    def batches(step: int) -> Batch:
        x, y = nt.random_windows(tokens, batch, bptt, np.random.default_rng([seed, step]))  # (T, B) each
        return Batch(x, y)

    return batches


# -- perplexity -------------------------------------------------------------------


EVAL_STREAM, EVAL_BPTT = 250, 50  # perplexity reads a text as parallel streams of about 250 characters


def eval_chunks(tokens: np.ndarray):
    """(x, y) chunks that cover ``tokens`` as parallel streams of about EVAL_STREAM characters:
    fewer, wider steps than one long stream, while each stream stays long enough to warm up."""
    return nt.bptt_chunks(nt.batchify(tokens, max(1, len(tokens) // EVAL_STREAM)), EVAL_BPTT)


def numpy_perplexity(sp: Spec, params: dict, tokens: np.ndarray) -> float:
    rnn = rnn_module(sp)
    total, count, hidden = 0.0, 0, None
    for x, y in eval_chunks(tokens):
        loss, _, hidden, _ = numpy_loss_and_grads(sp, rnn, params, Batch(x, y), nt.detach(hidden))
        total, count = total + loss * y.size, count + y.size
    return float(np.exp(total / count))


def torch_perplexity(sp: Spec, params: dict, tokens: np.ndarray) -> float:
    import torch

    model = torch_model(sp, params)
    total, count, hidden = 0.0, 0, None
    with torch.no_grad(), one_thread():
        for x, y in eval_chunks(tokens):
            logits, hidden = model(torch.as_tensor(x), hidden)
            total, count = total + torch_loss(sp, logits, y).item() * y.size, count + y.size
    return float(np.exp(total / count))


# -- generation -------------------------------------------------------------------


def pick(logits: np.ndarray, temperature: float, u: float) -> int:
    """One character from (V,) logits: the argmax when temperature is 0, else the
    inverse CDF of softmax(logits / temperature) at the uniform number u."""
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits / temperature  # (V,)
    p = np.exp(z - z.max())  # (V,)
    cdf = np.cumsum(p / p.sum())  # (V,)
    return int(min(np.searchsorted(cdf, u, side="right"), len(cdf) - 1))


def numpy_generate(sp: Spec, params: dict, prefix: list[int], length: int, temperature: float, seed: int) -> list[int]:
    rnn = rnn_module(sp)
    rnn.load_state_dict({k[4:]: v for k, v in params.items() if k.startswith("rnn.")})
    emb, w, b = params["embedding.weight"], params["fc.weight"], params["fc.bias"]
    u = np.random.default_rng(seed).uniform(size=length)  # (length,) the same draws on both sides
    out, hidden, _ = rnn.forward(emb[np.array(prefix)][:, None, :])  # warm-up: (T, 1, H)
    logits = out[-1, 0] @ w.T + b  # (V,) the prediction after the last prefix character
    text = []
    for k in range(length):
        token = pick(logits, temperature, u[k])
        text.append(token)
        out, hidden, _ = rnn.forward(emb[[token]][:, None, :], hidden)  # (1, 1, H)
        logits = out[-1, 0] @ w.T + b  # (V,)
    return text


def torch_generate(sp: Spec, params: dict, prefix: list[int], length: int, temperature: float, seed: int) -> list[int]:
    import torch

    model = torch_model(sp, params)
    u = np.random.default_rng(seed).uniform(size=length)  # (length,)
    text = []
    with torch.no_grad(), one_thread():
        logits, hidden = model(torch.as_tensor(prefix)[:, None])  # (T, 1, V)
        for k in range(length):
            token = pick(logits[-1, 0].numpy(), temperature, u[k])
            text.append(token)
            logits, hidden = model(torch.as_tensor([[token]]), hidden)  # (1, 1, V)
    return text


# -- the run --------------------------------------------------------------------------


def plot(path: Path, result: dict, every: int, vocab_size: int, title: str) -> None:
    """Three panels on one step axis (step k: the k-th update; perplexity measured after it)."""
    plt = pyplot()
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(17, 4.2))
    plot_pair(a, result["numpy"], result["torch"], "training batch")
    a.set_ylabel("cross-entropy per character")
    a.set_title(title, fontsize=10)
    plot_pair(b, result["norms_numpy"], result["norms_torch"], "norm before clipping")
    b.axhline(RECIPE.clip_norm, color="r", lw=1, label=f"clip_grad_norm_ threshold {RECIPE.clip_norm}")
    b.set_ylim(0, 1.15 * max(RECIPE.clip_norm, float(result["norms_numpy"].max())))  # the threshold clear of the frame
    b.set_ylabel("global gradient norm")
    b.set_title(f"clipping fired on {result['clipped']:.0%} of steps", fontsize=10)
    x = every * np.arange(1, len(result["ppl_train_numpy"]) + 1)
    for name in ("train", "held_out"):
        plot_pair(c, np.array(result[f"ppl_{name}_numpy"]), np.array(result[f"ppl_{name}_torch"]),
                  name.replace("_", "-"), x=x)
    c.axhline(vocab_size, color="k", ls="--", lw=0.8, label=f"uniform guess ({vocab_size})")
    c.set_yscale("log")
    c.set_ylim(top=1.3 * vocab_size)  # the uniform guess's line clear of the frame
    plain_log_ticks(c)
    c.set_ylabel("perplexity (log scale)")
    c.set_title("perplexity = exp(cross-entropy)", fontsize=10)
    for ax in (a, b, c):
        step_axis(ax)
        ax.set_xlim(0.5, len(result["numpy"]) + 0.5)
        legend(ax)
    save_figure(fig, path)


def run(steps: int = 300, seed: int = 0, out: Path | None = None, cell: str = "LSTM", batching: str = "sequential",
        generate: str | None = None, length: int = 120, temperature: float = 0.7) -> dict:
    train, held_out, vocab = corpus()
    sp = spec(len(vocab), cell)
    batches = sequential_batches(train) if batching == "sequential" else random_batches(train, seed)
    every = max(1, steps // 10)
    result = compare(sp, init_params(sp, seed), batches, steps, RECIPE, snapshot_every=every)
    label = f"char-LM ({cell}, {batching} batches of {BATCH} x {BPTT}, SGD lr {RECIPE.lr}, clip {RECIPE.clip_norm})"
    report(label, result, steps)
    norms = result["norms_numpy"]
    result["clipped"] = float((norms > RECIPE.clip_norm).mean())
    print(f"gradient norm before clipping: {norms.min():.3f} .. {norms.max():.3f}; threshold {RECIPE.clip_norm} "
          f"crossed on {int((norms > RECIPE.clip_norm).sum())} of {steps} steps ({result['clipped']:.0%}); "
          f"largest NumPy-torch norm difference {result['max_norm_diff']:.2e}")
    for name, tokens in (("train", train), ("held_out", held_out)):
        result[f"ppl_{name}_numpy"] = [numpy_perplexity(sp, p, tokens) for p in result["snapshots_numpy"]]
        result[f"ppl_{name}_torch"] = [torch_perplexity(sp, p, tokens) for p in result["snapshots_torch"]]
    print(f"perplexity after {steps} steps (uniform guess: {len(vocab)}): "
          f"training text NumPy {result['ppl_train_numpy'][-1]:.6f} torch {result['ppl_train_torch'][-1]:.6f}; "
          f"held-out NumPy {result['ppl_held_out_numpy'][-1]:.6f} torch {result['ppl_held_out_torch'][-1]:.6f}")
    if generate is not None:
        unknown = sorted(set(generate) - set(vocab))
        if unknown:
            raise ValueError(f"--generate: characters not in the text's vocabulary: {unknown}")
        prefix = [vocab.index(ch) for ch in generate]
        result["generated"] = {}
        for temp in (0.0, temperature):
            texts = [f(sp, result[f"params_{side}"], prefix, length, temp, seed)
                     for f, side in ((numpy_generate, "numpy"), (torch_generate, "torch"))]
            np_text, t_text = ("".join(vocab[k] for k in t) for t in texts)
            result["generated"][temp] = (np_text, t_text)
            how = "greedy" if temp == 0 else f"temperature {temp}, seed {seed}"
            print(f"generated ({how}), NumPy: {generate + np_text!r}")
            print(f"generated ({how}), torch: {generate + t_text!r} -> {'the same' if np_text == t_text else 'DIFFERENT'}")
    if out is not None:
        plot(Path(out) / f"char_lm_{batching}.png", result, every, len(vocab), f"char-LM ({cell}), {batching} batching")
    return result


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], steps=300)
    p.add_argument("--cell", choices=["RNN", "GRU", "LSTM"], default="LSTM")
    p.add_argument("--batching", choices=["sequential", "random"], default="sequential")
    p.add_argument("--generate", metavar="PREFIX", default="The river", help="prefix to continue (default %(default)r)")
    p.add_argument("--length", type=int, default=120, help="characters to generate (default %(default)s)")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default %(default)s)")
    args = p.parse_args(argv)
    if args.temperature <= 0:
        p.error(f"--temperature: expected a positive number, got {args.temperature}")
    with one_thread():  # tiny models: one thread each for NumPy and torch
        return run(args.steps, args.seed, args.out, args.cell, args.batching, args.generate, args.length, args.temperature)


if __name__ == "__main__":
    main()
