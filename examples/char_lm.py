"""Character-level language model on a small shipped text: truncated BPTT, gradient
clipping, perplexity.

The text (``examples/data/tiny_text.txt``) is cut into B parallel streams
(``batchify``); each step trains on the next chunk of T characters, starting
from the previous chunk's final state, detached (``detach``): the state carries
over, the gradient does not. At the end of the stream the state is reset.
Gradients are clipped to a global norm (``clip_grad_norm_``). The last 10% of
the text is held out; perplexity = exp(mean cross-entropy per character).

NumPy and torch start from the same weights; the script prints the largest
step-by-step loss difference, the perplexities, and saves a loss plot.

    python examples/char_lm.py --steps 200 --out examples_out
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
    numpy_loss_and_grads,
    one_torch_thread,
    parse_args,
    plot_losses,
    report,
    rnn_module,
    torch_loss,
    torch_model,
)
from reference import train as nt

TEXT = Path(__file__).resolve().parent / "data" / "tiny_text.txt"
BATCH, BPTT = 8, 25
RECIPE = Recipe(optimizer="adam", lr=5e-3, clip_norm=1.0)


def corpus() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(train tokens, held-out tokens, vocabulary)."""
    text = TEXT.read_text()
    vocab = sorted(set(text))
    tokens = np.array([vocab.index(ch) for ch in text])
    split = int(0.9 * len(tokens))
    return tokens[:split], tokens[split:], vocab


def spec(vocab_size: int, cell: str = "LSTM") -> Spec:
    return Spec(cell, input_size=vocab_size, hidden_size=48, out_features=vocab_size, embedding_dim=16)


def chunk_schedule(tokens: np.ndarray, batch: int = BATCH, bptt: int = BPTT):
    """step -> Batch: consecutive chunks, the state carried within a pass over the stream."""
    chunks = list(nt.bptt_chunks(nt.batchify(tokens, batch), bptt))

    def batches(step: int) -> Batch:
        k = step % len(chunks)
        x, y = chunks[k]
        return Batch(x, y, carry=k > 0)

    return batches


def numpy_perplexity(sp: Spec, params: dict, tokens: np.ndarray) -> float:
    rnn = rnn_module(sp)
    total, count, hidden = 0.0, 0, None
    for x, y in nt.bptt_chunks(nt.batchify(tokens, 1), BPTT):
        loss, _, hidden, _ = numpy_loss_and_grads(sp, rnn, params, Batch(x, y), nt.detach(hidden))
        total, count = total + loss * y.size, count + y.size
    return float(np.exp(total / count))


def torch_perplexity(sp: Spec, params: dict, tokens: np.ndarray) -> float:
    import torch

    model = torch_model(sp, params)
    total, count, hidden = 0.0, 0, None
    with torch.no_grad(), one_torch_thread():
        for x, y in nt.bptt_chunks(nt.batchify(tokens, 1), BPTT):
            logits, hidden = model(torch.as_tensor(x), hidden)
            total, count = total + torch_loss(sp, logits, y).item() * y.size, count + y.size
    return float(np.exp(total / count))


def run(steps: int = 200, seed: int = 0, out: Path | None = None, cell: str = "LSTM") -> dict:
    train, held_out, vocab = corpus()
    sp = spec(len(vocab), cell)
    result = compare(sp, init_params(sp, seed), chunk_schedule(train), steps, RECIPE)
    report(f"char-LM ({cell}, truncated BPTT {BPTT}, clip {RECIPE.clip_norm})", result, steps)
    result["ppl_numpy"] = numpy_perplexity(sp, result["params_numpy"], held_out)
    result["ppl_torch"] = torch_perplexity(sp, result["params_torch"], held_out)
    print(f"held-out perplexity: numpy {result['ppl_numpy']:.6f}, torch {result['ppl_torch']:.6f} "
          f"(uniform over {len(vocab)} characters: {len(vocab)})")
    if out is not None:
        plot_losses(Path(out) / "char_lm.png", f"char-level LM ({cell}), truncated BPTT, clip_grad_norm_",
                    {cell: (result["numpy"], result["torch"])}, ylabel="cross-entropy per character")
    return result


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0], steps=200)
    run(args.steps, args.seed, args.out)
