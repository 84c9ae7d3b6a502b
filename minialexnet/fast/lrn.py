"""The engine's local response normalization: per pixel, a pass along the contiguous channels.

Same math as ``minialexnet.layers.lrn`` (its docstring derives the backward): with
s = k + a * window_sum(x**2) and r = s**-beta, out = x * r and
dL/dx = g * r + x * window_sum(g * x * q), q = -2 a beta r / s.

Channels-last makes a pixel's C channels one contiguous run, so the window sums are shifted
adds within a small per-row array, summed in the reference's order (centre, then shift 1 below
and above, then 2, ...), each block of C / groups channels on its own (``groups``: the
reference's docstring says why). The layer keeps nothing but x (already held by the layer
before it): the backward recomputes s and r, which costs less than writing and re-reading two
arrays of x's size. At the paper's beta = 0.75, s**-0.75 is 1 / sqrt(s * sqrt(s)): two square roots,
which vectorize, where a general power is a scalar library call per element.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..layers import LocalResponseNorm as ReferenceLocalResponseNorm
from .layout import channels_last, nchw


@njit(inline="always")
def _window_sum(src, half, block, dst):  # pragma: no cover (compiled)
    """dst[c] = src[c] + src[c-1] + src[c+1] + src[c-2] + ... (that order), each window within
    c's block of ``block`` channels (c0..c0+block-1, c0 = c - c % block)."""
    C = src.shape[0]
    for c in range(C):
        dst[c] = src[c]
    for c0 in range(0, C, block):
        for shift in range(1, half + 1):
            for c in range(c0 + shift, c0 + block):
                dst[c] += src[c - shift]
            for c in range(c0, c0 + block - shift):
                dst[c] += src[c + shift]


@njit(inline="always")
def _s_and_r(x, n, h, w, half, block, k, a, beta, one, sq, s, r):  # pragma: no cover
    """s = k + a * window_sum(x**2) and r = s**-beta for pixel (n, h, w), into s and r."""
    C = sq.shape[0]
    for c in range(C):
        sq[c] = x[n, h, w, c] * x[n, h, w, c]
    _window_sum(sq, half, block, s)
    for c in range(C):
        s[c] = s[c] * a + k
    if beta == 0.75:
        for c in range(C):
            r[c] = one / np.sqrt(s[c] * np.sqrt(s[c]))
    else:
        for c in range(C):
            r[c] = s[c] ** -beta


@njit(parallel=True, cache=True)
def lrn_forward(x, half, block, k, a, beta, one, scale, out):  # pragma: no cover (compiled)
    """out = x * s**-beta, channels-last (N, H, W, C), windows within blocks of ``block``
    channels. The scalars are of x's dtype (so float32 math stays float32, twice the vector
    width): one = 1, scale = -2 a beta."""
    N, H, W, C = x.shape
    for row in prange(N * H):
        n, h = row // H, row % H
        sq, s, r = np.empty(C, x.dtype), np.empty(C, x.dtype), np.empty(C, x.dtype)
        for w in range(W):
            _s_and_r(x, n, h, w, half, block, k, a, beta, one, sq, s, r)
            for c in range(C):
                out[n, h, w, c] = x[n, h, w, c] * r[c]


@njit(parallel=True, cache=True)
def lrn_backward(dout, x, half, block, k, a, beta, one, scale, dx):  # pragma: no cover
    """dx = dout * r + x * window_sum(dout * x * q), q = -2 a beta r / s (see the module)."""
    N, H, W, C = x.shape
    for row in prange(N * H):
        n, h = row // H, row % H
        sq, s, r = np.empty(C, x.dtype), np.empty(C, x.dtype), np.empty(C, x.dtype)
        t, window = np.empty(C, x.dtype), np.empty(C, x.dtype)
        for w in range(W):
            _s_and_r(x, n, h, w, half, block, k, a, beta, one, sq, s, r)
            for c in range(C):
                q = r[c] / s[c] * scale
                t[c] = dout[n, h, w, c] * x[n, h, w, c] * q
            _window_sum(t, half, block, window)
            for c in range(C):
                dx[n, h, w, c] = dout[n, h, w, c] * r[c] + window[c] * x[n, h, w, c]


class LocalResponseNorm(ReferenceLocalResponseNorm):
    """``minialexnet.layers.LocalResponseNorm`` computed by the engine (channels-last)."""

    def _constants(self, dtype: np.dtype, channels: int) -> tuple[object, ...]:
        """half, the block's channels, k, a, beta, 1 and -2 a beta; the floats in x's dtype
        (see ``lrn_forward``)."""
        t, a = np.dtype(dtype).type, self.effective_alpha
        if channels % self.groups:  # (output_shape's check, for the unchecked path: a partial
            # block would make the kernels read past the last channel inside njit)
            raise ValueError(
                f"{self.name}: groups={self.groups} must divide the channels, got {channels}"
            )
        block = channels // self.groups
        return self.size // 2, block, t(self.k), t(a), t(self.beta), t(1), t(-2 * a * self.beta)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        xl = channels_last(x)
        out = np.empty_like(xl)  # fresh: the caller keeps it
        lrn_forward(xl, *self._constants(x.dtype, x.shape[1]), out)
        self._cache = xl if self.grad_enabled else None
        return nchw(out)

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        xl = self._cache
        dx = np.empty_like(xl)  # fresh: returned
        lrn_backward(channels_last(dout), xl, *self._constants(xl.dtype, xl.shape[3]), dx)
        return nchw(dx)
