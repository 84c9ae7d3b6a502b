"""The engine's local response normalization: per pixel, a pass along the contiguous channels.

Same math as ``minialexnet.layers.lrn`` (its docstring derives the backward): with
s = k + a * window_sum(x**2) and r = s**-beta, out = x * r and
dL/dx = g * r + x * window_sum(g * x * q), q = -2 a beta r / s.

Channels-last makes a pixel's C channels one contiguous run, so the window sums are shifted
adds within a small per-row array, summed in the reference's order (centre, then shift 1 below
and above, then 2, ...). The layer keeps nothing but x (already held by the layer before it):
the backward recomputes s and r, which costs less than writing and re-reading two arrays of
x's size. At the paper's beta = 0.75, s**-0.75 is 1 / sqrt(s * sqrt(s)): two square roots,
which vectorize, where a general power is a scalar library call per element.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..layers import LocalResponseNorm as ReferenceLocalResponseNorm
from .layout import channels_last, nchw


@njit(inline="always")
def _window_sum(src, half, dst):  # pragma: no cover (compiled)
    """dst[c] = src[c] + src[c-1] + src[c+1] + src[c-2] + ... within 0..C-1 (that order)."""
    C = src.shape[0]
    for c in range(C):
        dst[c] = src[c]
    for shift in range(1, half + 1):
        for c in range(shift, C):
            dst[c] += src[c - shift]
        for c in range(C - shift):
            dst[c] += src[c + shift]


@njit(inline="always")
def _s_and_r(x, n, h, w, half, k, a, beta, one, sq, s, r):  # pragma: no cover (compiled)
    """s = k + a * window_sum(x**2) and r = s**-beta for pixel (n, h, w), into s and r."""
    C = sq.shape[0]
    for c in range(C):
        sq[c] = x[n, h, w, c] * x[n, h, w, c]
    _window_sum(sq, half, s)
    for c in range(C):
        s[c] = s[c] * a + k
    if beta == 0.75:
        for c in range(C):
            r[c] = one / np.sqrt(s[c] * np.sqrt(s[c]))
    else:
        for c in range(C):
            r[c] = s[c] ** -beta


@njit(parallel=True, cache=True)
def lrn_forward(x, half, k, a, beta, one, scale, out):  # pragma: no cover (compiled)
    """out = x * s**-beta, channels-last (N, H, W, C). The scalars are of x's dtype (so float32
    math stays float32, twice the vector width): one = 1, scale = -2 a beta."""
    N, H, W, C = x.shape
    for row in prange(N * H):
        n, h = row // H, row % H
        sq, s, r = np.empty(C, x.dtype), np.empty(C, x.dtype), np.empty(C, x.dtype)
        for w in range(W):
            _s_and_r(x, n, h, w, half, k, a, beta, one, sq, s, r)
            for c in range(C):
                out[n, h, w, c] = x[n, h, w, c] * r[c]


@njit(parallel=True, cache=True)
def lrn_backward(dout, x, half, k, a, beta, one, scale, dx):  # pragma: no cover (compiled)
    """dx = dout * r + x * window_sum(dout * x * q), q = -2 a beta r / s (see the module)."""
    N, H, W, C = x.shape
    for row in prange(N * H):
        n, h = row // H, row % H
        sq, s, r = np.empty(C, x.dtype), np.empty(C, x.dtype), np.empty(C, x.dtype)
        t, window = np.empty(C, x.dtype), np.empty(C, x.dtype)
        for w in range(W):
            _s_and_r(x, n, h, w, half, k, a, beta, one, sq, s, r)
            for c in range(C):
                q = r[c] / s[c] * scale
                t[c] = dout[n, h, w, c] * x[n, h, w, c] * q
            _window_sum(t, half, window)
            for c in range(C):
                dx[n, h, w, c] = dout[n, h, w, c] * r[c] + window[c] * x[n, h, w, c]


class LocalResponseNorm(ReferenceLocalResponseNorm):
    """``minialexnet.layers.LocalResponseNorm`` computed by the engine (channels-last)."""

    def _constants(self, dtype: np.dtype) -> tuple[object, ...]:
        """half, k, a, beta, 1 and -2 a beta, in x's dtype (see ``lrn_forward``)."""
        t, a = np.dtype(dtype).type, self.effective_alpha
        return self.size // 2, t(self.k), t(a), t(self.beta), t(1), t(-2 * a * self.beta)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        xl = channels_last(x)
        out = np.empty_like(xl)  # fresh: the caller keeps it
        lrn_forward(xl, *self._constants(x.dtype), out)
        self._cache = xl if self.grad_enabled else None
        return nchw(out)

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        xl = self._cache
        dx = np.empty_like(xl)  # fresh: returned
        lrn_backward(channels_last(dout), xl, *self._constants(xl.dtype), dx)
        return nchw(dx)
