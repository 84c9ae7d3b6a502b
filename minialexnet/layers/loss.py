"""Softmax cross-entropy: the loss at the top of AlexNet.

Shapes: logits (N, K) float, labels (N,) integers in [0, K).

    p[n] = softmax(logits[n]),   L = -(1/N) * sum_n log p[n, y_n]
    dL/dlogits = (p - onehot(y)) / N

Numerically stable: subtracting each row's maximum before exp changes nothing mathematically
(softmax is shift-invariant) but keeps exp from overflowing, and log p is computed as
z - log(sum exp z) rather than log(exp(z) / ...), so a tiny probability never becomes log(0).
Expected gradient-check relative error in float64: below 1e-7.
"""

from __future__ import annotations

import numpy as np

from .base import check_array


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log p = z - log(sum(exp(z))), with z = logits - row max: stable for any logits."""
    # EXERCISE loss: a numerically stable log-softmax.
    # hint: (N, K) -> (N, K); subtract each row's max first so that exp cannot overflow.
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    # END EXERCISE


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for any finite logits."""
    return np.exp(log_softmax(logits))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Return (mean loss, dL/dlogits) for a batch; dL/dlogits has the logits' shape and dtype."""
    check_array("softmax_cross_entropy", "logits", logits, ndim=2, axes="NK")
    labels = np.asarray(labels)
    N, K = logits.shape
    if N == 0 or K == 0:
        # The one place the empty-batch rule (layers/base.py) differs: a mean over no samples
        # is undefined, and returning 0 or NaN would let an empty batch pass unnoticed.
        raise ValueError(
            f"softmax_cross_entropy: logits must hold at least 1 sample and 1 class (the mean "
            f"loss of no samples is undefined), got shape {logits.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"softmax_cross_entropy: labels must be integers, got dtype {labels.dtype}")
    if labels.shape != (N,):
        raise ValueError(
            f"softmax_cross_entropy: labels must have shape ({N},) to match logits {logits.shape}, "
            f"got {labels.shape}"
        )
    if labels.min() < 0 or labels.max() >= K:
        raise ValueError(
            f"softmax_cross_entropy: labels must be in [0, {K}), got values "
            f"{labels.min()}..{labels.max()}"
        )
    # EXERCISE loss: the mean cross-entropy and its gradient with respect to the logits.
    # hint: loss = -mean(log p[n, y_n]); dL/dlogits = (p - onehot(y)) / N, shape (N, K).
    log_p = log_softmax(logits)
    rows = np.arange(N)
    loss = float(-log_p[rows, labels].mean())
    dlogits = np.exp(log_p)
    dlogits[rows, labels] -= 1
    dlogits /= N
    return loss, dlogits
    # END EXERCISE
