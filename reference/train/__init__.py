"""Training pieces in NumPy alone: layers, losses, optimizers, clipping, token batching.

Each layer and loss is a forward/backward pair of pure functions; optimizers
mirror torch.optim's update rules exactly; parameters are dicts keyed like torch.
"""

from .data import batchify, bptt_chunks, detach, random_windows
from .layers import (
    EmbeddingCache,
    LinearCache,
    embedding_backward,
    embedding_forward,
    init_embedding,
    init_linear,
    linear_backward,
    linear_forward,
)
from .losses import (
    cross_entropy_backward,
    cross_entropy_forward,
    log_softmax,
    log_softmax_backward,
    mse_loss_backward,
    mse_loss_forward,
)
from .optim import SGD, Adam, AdamState, adam_update, clip_grad_norm_, clip_grad_value_, sgd_update

__all__ = [
    "SGD",
    "Adam",
    "AdamState",
    "EmbeddingCache",
    "LinearCache",
    "adam_update",
    "batchify",
    "bptt_chunks",
    "clip_grad_norm_",
    "clip_grad_value_",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "detach",
    "embedding_backward",
    "embedding_forward",
    "init_embedding",
    "init_linear",
    "linear_backward",
    "linear_forward",
    "log_softmax",
    "log_softmax_backward",
    "mse_loss_backward",
    "mse_loss_forward",
    "random_windows",
    "sgd_update",
]
