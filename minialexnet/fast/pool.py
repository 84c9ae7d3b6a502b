"""The engine's max pooling: one Numba pass over channels-last maps, forward and backward.

Same math and tie rule as ``minialexnet.layers.pool`` (the first maximum in row-major window
order wins: the comparison is strict and offsets are visited u-major). The forward keeps the
winning offset per output (one byte, in this layer's own buffer). The backward is a gather:
each input pixel sums the gradients of the windows it won, in window order (row-major, as the
reference's loop over windows adds them); the parallel loop over (image, input row) never
has two iterations write one element, and dx needs no separate zeroing pass.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..layers import MaxPool2d as ReferenceMaxPool2d
from .layout import channels_last, nchw


@njit(parallel=True, cache=True)
def maxpool_forward(x, K, S, out, argmax, keep):  # pragma: no cover (compiled)
    """out[n, i, j, c] = max over the K x K window at (i*S, j*S); argmax (when ``keep``) the
    offset u*K + v of the first maximum. All arrays channels-last."""
    N, _, _, C = x.shape
    _, OH, OW, _ = out.shape
    for r in prange(N * OH):
        n, i = r // OH, r % OH
        for j in range(OW):
            for c in range(C):
                out[n, i, j, c] = x[n, i * S, j * S, c]
            if keep:
                for c in range(C):
                    argmax[n, i, j, c] = 0
            for u in range(K):
                for v in range(K):
                    if u == 0 and v == 0:
                        continue
                    ih, iw, k = i * S + u, j * S + v, u * K + v
                    if keep:
                        for c in range(C):
                            value = x[n, ih, iw, c]
                            if value > out[n, i, j, c]:  # strict: earlier offsets keep ties
                                out[n, i, j, c] = value
                                argmax[n, i, j, c] = k
                    else:
                        for c in range(C):
                            out[n, i, j, c] = max(out[n, i, j, c], x[n, ih, iw, c])


@njit(parallel=True, cache=True)
def maxpool_backward(dout, argmax, K, S, dx):  # pragma: no cover (compiled)
    """dx[n, ih, iw, c] = sum of dout over the windows whose winner is (ih, iw)."""
    N, H, W, C = dx.shape
    _, OH, OW, _ = dout.shape
    for r in prange(N * H):
        n, ih = r // H, r % H
        for iw in range(W):
            for c in range(C):
                dx[n, ih, iw, c] = 0
        # The windows holding row ih: i*S <= ih < i*S + K, i.e. ceil((ih-K+1)/S) <= i <= ih/S.
        for i in range(max(0, (ih - K + S) // S), min(OH - 1, ih // S) + 1):
            u = ih - i * S
            for iw in range(W):
                for j in range(max(0, (iw - K + S) // S), min(OW - 1, iw // S) + 1):
                    k = u * K + iw - j * S
                    for c in range(C):
                        if argmax[n, i, j, c] == k:
                            dx[n, ih, iw, c] += dout[n, i, j, c]


class MaxPool2d(ReferenceMaxPool2d):
    """``minialexnet.layers.MaxPool2d`` computed by the engine (channels-last, Numba)."""

    def _forward(self, x: np.ndarray) -> np.ndarray:
        K, S = self.kernel_size, self.stride
        xl = channels_last(x)
        C, OH, OW = self.output_shape(x.shape[1:])
        out = np.empty((x.shape[0], OH, OW, C), dtype=x.dtype)  # fresh: the caller keeps it
        if self.grad_enabled:
            argmax = self._argmax_buffer(out.shape)
            maxpool_forward(xl, K, S, out, argmax, True)
            self._cache = (argmax, xl.shape)
        else:  # inference: no argmax, nothing kept
            maxpool_forward(xl, K, S, out, np.empty((1, 1, 1, 1), np.uint8), False)
            self._cache = None
        return nchw(out)

    def _argmax_buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        """This layer's own uint8 buffer (reused by each forward; only its backward reads it)."""
        size = int(np.prod(shape))
        buffer = getattr(self, "_argmax", None)
        if buffer is None or buffer.size < size:
            buffer = self._argmax = np.empty(size, dtype=np.uint8)
        return buffer[:size].reshape(shape)

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        argmax, x_shape = self._cache
        dx = np.empty(x_shape, dtype=dout.dtype)  # fresh: returned
        maxpool_backward(channels_last(dout), argmax, self.kernel_size, self.stride, dx)
        return nchw(dx)
