"""The engine's convolution: Winograd where it applies, else im2col in Numba with BLAS matmuls.

Same math as ``minialexnet.layers.conv`` (read that first). What differs is where the numbers
live and in which order they are touched:
* Stride-1, ungrouped, square 3x3 and 5x5 convolutions (AlexNet's conv2-5) run as Winograd
  F(m x m, r x r) (``winograd.py``): fewer multiplications for the same result, within a
  stated float32 tolerance. Everything else (conv1's 11x11 stride 4, groups, one image) runs
  im2col.
* im2col writes cols in (c, u, v) column order, W's own axis order, so W reshaped is the
  weight matrix and dW is written straight into the gradient buffer: no transposed copies.
  The matmul writes output rows (N*OH*OW, F), which *is* the channels-last output.
* The batch runs a few images at a time (``CHUNK_BYTES`` of cols), so the cols written by
  im2col are still in cache when the matmul reads them; they live in shared scratch, and the
  backward rebuilds each chunk's cols from x rather than keeping the whole batch's.
* col2im is written as a gather: each input pixel sums the dcols entries that came from it,
  so the parallel loop over (image, input row) never has two iterations adding into one
  element, and dx needs no zeroing pass and no padded copy.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..layers import Conv2d as ReferenceConv2d
from . import winograd
from .layout import channels_last, nchw
from .scratch import ScratchUser, chunk_plan

# Cols per chunk: one image of conv1's (4.4 MB in float32), matmuls still large enough for
# BLAS, cols within the 32 MB L3 (16 MB ran no faster and took 8 MB more: docs/performance.md).
CHUNK_BYTES = 8 * 2**20

# Kernel size -> the output tile m of the Winograd F(m x m, r x r) that stride-1, ungrouped,
# square convolutions use (see winograd.py; chosen by measurement, docs/performance.md).
WINOGRAD_TILES = {3: 2, 5: 3}
# Below this batch im2col is as fast and needs less scratch (Winograd's U and dU matrices).
WINOGRAD_MIN_BATCH = 2
# Below this many input channels per group the transforms cost more than the smaller matrix
# products save (the mini net's conv1, 3 channels: docs/performance.md).
WINOGRAD_MIN_CHANNELS = 16


@njit(parallel=True, cache=True)
def im2col(x, channels_last, n0, n, KH, KW, SH, SW, PH, PW, cols):  # pragma: no cover
    """cols[(m, i, j), (c, u, v)] = x[n0 + m, c, i*SH + u - PH, j*SW + v - PW], 0 outside the
    image; x is C-contiguous NCHW, or (``channels_last``) C-contiguous (N, H, W, C). Columns
    in (c, u, v) order, the order of W's (C/G, KH, KW) axes, so W itself (reshaped) is the
    weight matrix and each group's columns are one block. The loops follow x's memory:
    channels innermost for channels-last, kernel columns innermost for NCHW (one compiled
    version serves both layouts)."""
    if channels_last:
        _, H, W, C = x.shape
    else:
        _, C, H, W = x.shape
    OH = (H + 2 * PH - KH) // SH + 1
    OW = (W + 2 * PW - KW) // SW + 1
    KK = KH * KW
    for r in prange(n * OH):  # one output row of one image per iteration: rows never overlap
        m, i = r // OH, r % OH
        for j in range(OW):
            row = r * OW + j
            if channels_last:
                for u in range(KH):
                    ih = i * SH + u - PH
                    for v in range(KW):
                        iw = j * SW + v - PW
                        inside = 0 <= ih < H and 0 <= iw < W
                        for c in range(C):
                            value = x[n0 + m, ih, iw, c] if inside else 0
                            cols[row, c * KK + u * KW + v] = value
            else:
                for c in range(C):
                    for u in range(KH):
                        ih = i * SH + u - PH
                        for v in range(KW):
                            iw = j * SW + v - PW
                            inside = 0 <= ih < H and 0 <= iw < W
                            value = x[n0 + m, c, ih, iw] if inside else 0
                            cols[row, c * KK + u * KW + v] = value


def im2col_source(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """(array, channels_last) for ``im2col``: the channels-last storage behind an engine
    layer's output (free), else x as a C-contiguous NCHW array (free for the network input)."""
    x_cl = x.transpose(0, 2, 3, 1)
    if x_cl.flags.c_contiguous:
        return x_cl, True
    return np.ascontiguousarray(x), False


@njit(parallel=True, cache=True)
def col2im(dcols, n, KH, KW, SH, SW, PH, PW, dx):  # pragma: no cover (compiled)
    """The adjoint of ``im2col``: dx (n, H, W, C) channels-last, every element written,
    dx[m, ih, iw, c] = sum of dcols[(m, i, j), (c, u, v)] over the (i, j, u, v) with
    i*SH + u - PH = ih and j*SW + v - PW = iw (a gather: no two iterations share a pixel).
    Terms are added in (u, v) order, as the reference's strided adds do."""
    _, H, W, C = dx.shape
    OH = (H + 2 * PH - KH) // SH + 1
    OW = (W + 2 * PW - KW) // SW + 1
    KK = KH * KW
    for r in prange(n * H):
        m, ih = r // H, r % H
        for iw in range(W):
            for c in range(C):
                dx[m, ih, iw, c] = 0
        for u in range(KH):
            t = ih + PH - u
            if t < 0 or t % SH != 0 or t // SH >= OH:
                continue
            i = t // SH
            for v in range(KW):
                for iw in range(W):
                    s = iw + PW - v
                    if s < 0 or s % SW != 0 or s // SW >= OW:
                        continue
                    row = (m * OH + i) * OW + s // SW
                    for c in range(C):
                        dx[m, ih, iw, c] += dcols[row, c * KK + u * KW + v]


class Conv2d(ScratchUser, ReferenceConv2d):
    """``minialexnet.layers.Conv2d`` (same constructor, parameters and checks), computed by
    the engine: Winograd or chunked im2col, channels-last output, shared scratch, gradients
    in this layer's buffers."""

    def _geometry(self) -> tuple[int, ...]:
        return (*self.kernel_size, *self.stride, *self.padding, self.groups)

    use_winograd = True  # False: always im2col (tests compare the two)

    def winograd_tile(self, batch: int = WINOGRAD_MIN_BATCH) -> int | None:
        """The Winograd tile m this layer uses for a batch of ``batch``, or None for im2col."""
        (KH, KW), (PH, PW) = self.kernel_size, self.padding
        if not self.use_winograd or self.stride != (1, 1) or self.groups != 1:
            return None
        if batch < WINOGRAD_MIN_BATCH or self.in_channels // self.groups < WINOGRAD_MIN_CHANNELS:
            return None
        return WINOGRAD_TILES.get(KH) if KH == KW and PH == PW else None

    def _forward(self, x: np.ndarray) -> np.ndarray:
        m = self.winograd_tile(x.shape[0])
        if m is not None:
            xl = channels_last(x)  # free for an engine layer's output
            W, (r, _), (P, _) = self.params["W"], self.kernel_size, self.padding
            U = winograd.filter_transform(W, m, self.scratch)
            out = winograd.forward(xl, U, self.params["b"], r, m, P, self.scratch)
            kept: tuple = ("winograd", xl, m)  # U is recomputed (cheap) rather than kept
        else:
            out = self._im2col_forward(x)
            kept = ("im2col", x)  # as given: im2col reads any layout
        # Inference keeps nothing: x only matters to a backward.
        self._cache = kept if self.grad_enabled else None
        return nchw(out)

    def _im2col_forward(self, x: np.ndarray) -> np.ndarray:
        KH, KW, SH, SW, PH, PW, G = self._geometry()
        W, b = self.params["W"], self.params["b"]
        N = x.shape[0]
        F, OH, OW = self.output_shape(x.shape[1:])
        P, K = OH * OW, W[0].size
        Wr = W.reshape(F, K)  # (F, (c, u, v)): the cols' column order, no copy
        out = np.empty((N, OH, OW, F), dtype=x.dtype)  # fresh: the caller keeps it
        plan = chunk_plan(N, P * K * G * x.itemsize, CHUNK_BYTES)
        col_buf = self.scratch.get("chunk", (plan[0][1] * P, K * G), x.dtype)
        Fg = F // G
        source, cl = im2col_source(x)
        for n0, n1 in plan:
            n = n1 - n0
            cols, out2d = col_buf[: n * P], out[n0:n1].reshape(n * P, F)
            im2col(source, cl, n0, n, KH, KW, SH, SW, PH, PW, cols)
            for g in range(G):  # BLAS reads Wr_g.T as it is (no copy)
                f, k = slice(g * Fg, (g + 1) * Fg), slice(g * K, (g + 1) * K)
                np.matmul(cols[:, k], Wr[f].T, out=out2d[:, f])
            out2d += b  # while the chunk is still in cache
        return out

    def _grad_buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """grads["W"], grads["b"]: this layer's buffers, allocated once, overwritten by each
        backward (the contract's "gradients overwrite"; an optimizer reads them in between)."""
        W = self.params["W"]
        dW, db = self.grads.get("W"), self.grads.get("b")
        if dW is None or dW.shape != W.shape or dW.dtype != W.dtype or db is None:
            dW, db = np.empty_like(W), np.empty_like(self.params["b"])
        return dW, db

    def _backward(self, dout: np.ndarray) -> np.ndarray | None:
        kind, xl, *rest = self._cache
        F = self.out_channels
        dout_cl = channels_last(dout)  # free: our forward's output layout
        dW, db = self._grad_buffers()
        np.sum(dout_cl.reshape(-1, F), axis=0, out=db)
        if kind == "winograd":
            (m,) = rest
            r, P = self.kernel_size[0], self.padding[0]
            U = winograd.filter_transform(self.params["W"], m, self.scratch)
            dx = winograd.backward(xl, dout_cl, U, r, m, P, self.needs_input_grad, self.scratch, dW)
        else:
            dx = self._im2col_backward(xl, dout_cl.reshape(-1, F), dW)
        self.grads = {"W": dW, "b": db}
        return None if dx is None else nchw(dx)

    def _im2col_backward(self, x: np.ndarray, g2d: np.ndarray, dW: np.ndarray) -> np.ndarray | None:
        """Fill dW; return dx channels-last (None when the layer needs no dx)."""
        KH, KW, SH, SW, PH, PW, G = self._geometry()
        N, C, H, Wd = x.shape
        F, K = self.out_channels, dW[0].size
        Fg = F // G
        Wr, dWr = self.params["W"].reshape(F, K), dW.reshape(F, K)  # views, no copies
        P = g2d.shape[0] // N
        plan = chunk_plan(N, P * K * G * x.itemsize, CHUNK_BYTES)
        cols_buf = self.scratch.get("chunk", (plan[0][1] * P, K * G), x.dtype)
        dx = np.empty((N, H, Wd, C), dtype=x.dtype) if self.needs_input_grad else None
        blocks = [(slice(g * Fg, (g + 1) * Fg), slice(g * K, (g + 1) * K)) for g in range(G)]
        source, cl = im2col_source(x)
        for index, (n0, n1) in enumerate(plan):
            n = n1 - n0
            cols, rows = cols_buf[: n * P], g2d[n0 * P : n1 * P]
            im2col(source, cl, n0, n, KH, KW, SH, SW, PH, PW, cols)
            for f, k in blocks:
                # dW_g = dout_g.T @ cols_g, straight into the gradient (its (F, (c, u, v))
                # layout is W's); matmul cannot accumulate, so later chunks add a part.
                if index == 0:
                    np.matmul(rows[:, f].T, cols[:, k], out=dWr[f])
                else:
                    part = self.scratch.get("dW_part", (Fg, K), x.dtype)  # only if needed
                    np.matmul(rows[:, f].T, cols[:, k], out=part)
                    dWr[f] += part
            if dx is not None:
                for f, k in blocks:  # dcols written over cols, which dW is done with
                    np.matmul(rows[:, f], Wr[f], out=cols[:, k])
                col2im(cols, n, KH, KW, SH, SW, PH, PW, dx[n0:n1])
        return dx
