"""Softmax cross-entropy on the GPU (mirrors ``minialexnet/layers/loss.py``).

Logits are feature-major, (K, N): one thread per sample n walks its K logits three times —
the maximum (subtracted so that exp cannot overflow), the sum of exponentials, then the
gradient — and writes

    dlogits[k, n] = (softmax(z)[k] - [k == y_n]) / N,     losses[n] = -log softmax(z)[y_n] / N

Neighbouring threads read neighbouring samples of the same class row: coalesced. The mean
loss is then ``row_sums`` of ``losses`` seen as one row of N: still on the device, so a step
brings back one float. N threads is little parallelism, but the work is tiny (K*N = 128,000
elements for AlexNet at batch 128).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, float32

from .common import check_device, f32, launch, register
from .linear import row_sums


@register("void(float32[::1], int32[::1], float32[::1], float32[::1], int64, int64, float32)")
@cuda.jit
def softmax_xent_kernel(logits, labels, dlogits, losses, K, N, inv_n):
    n = cuda.grid(1)
    if n < N:
        top = logits[n]
        for k in range(1, K):
            top = max(top, logits[k * N + n])
        total = float32(0)
        for k in range(K):
            total += math.exp(logits[k * N + n] - top)
        log_total = math.log(total)
        y = labels[n]
        for k in range(K):
            p = math.exp(logits[k * N + n] - top - log_total)
            if k == y:
                p -= float32(1)
            dlogits[k * N + n] = p * inv_n
        losses[n] = (log_total - (logits[y * N + n] - top)) * inv_n


def softmax_cross_entropy(logits: Any, labels: Any, dlogits: Any, losses: Any, loss: Any) -> Any:
    """Mean cross-entropy of (K, N) logits against int32 labels (N,), all on the device.

    Writes dL/dlogits into ``dlogits`` (K, N), per-sample terms into ``losses`` (N,) and their
    sum, the mean loss, into ``loss`` (1,). Labels must lie in [0, K): the caller checks them
    on the host, where they come from (a kernel can't raise). Returns ``loss``.
    """
    fn = "softmax_cross_entropy"
    K, N = check_device(fn, "logits", logits).shape
    check_device(fn, "labels", labels, (N,), np.int32)
    check_device(fn, "dlogits", dlogits, (K, N))
    check_device(fn, "losses", losses, (N,))
    check_device(fn, "loss", loss, (1,))
    grid, threads = launch(N)
    softmax_xent_kernel[grid, threads](
        logits.ravel(), labels, dlogits.ravel(), losses, K, N, f32(1.0 / N)
    )
    return row_sums(losses.reshape(1, N), loss)
