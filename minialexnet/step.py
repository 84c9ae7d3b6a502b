"""One SGD training step on the CPU: forward, softmax cross-entropy, backward, update.

Its own module, so that what needs only the step (the training loop in ``train.py``, the GPU
benchmark's float64 reference in ``cuda/bench.py``, lesson 09's CPU timing) imports it without
the loop, its data pipeline and its progress bars.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .layers import softmax_cross_entropy
from .model import Sequential
from .optim import SGD

# (x (N, 3, H, W), labels (N,)) -> (mean loss, logits (N, classes) from before the update): the
# shape of a step, whichever machine runs it (``train_step`` or ``CudaTrainer.step``).
StepFn = Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]


def train_step(
    model: Sequential, optimizer: SGD, x: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    """Forward x (N, 3, H, W) in training mode, loss against labels y (N,), backward, and one
    update by the paper's SGD rule (``optimizer``: momentum and weight decay in the velocity).

    Returns (mean loss over the batch, logits (N, classes) from before the update).
    """
    model.train()
    logits = model.forward(x)
    loss, dlogits = softmax_cross_entropy(logits, y)
    model.backward(dlogits)
    optimizer.step()
    return loss, logits
