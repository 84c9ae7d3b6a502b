"""Convolution with stride, padding and groups on the GPU (mirrors ``layers/conv.py``).

im2col + GEMM: ``im2col`` copies every receptive field into a column of ``cols``
(C*KH*KW, N*OH*OW); then each group's convolution is one GEMM with that group's filters,
all groups in one batched launch (``gemm``'s batch axis is the group):

    forward   out (G, F/G, N*OH*OW) = W (G, F/G, Kg) @ cols (G, Kg, N*OH*OW) + b    NN
    backward  dW (G, F/G, Kg)       = dout (G, F/G, P) @ cols.T                      NT
              db                    = row sums of dout (F, P)
              dcols (G, Kg, P)      = W.T @ dout                                     TN
              dx                    = col2im(dcols)
    with Kg = (C/G)*KH*KW, P = N*OH*OW, maps feature-major (C, N, H, W) (``layout.py``).

``col2im`` runs one thread per input pixel and *gathers* the column entries that were copied
from it (overlapping windows give several), instead of scattering with atomic adds: each dx
element is written once, in a fixed order. Index arithmetic in these two kernels is unsigned
32-bit: they do six divisions per element, and 32-bit division is several times cheaper than
64-bit on a GPU. The first layer of a network skips col2im (``needs_input_grad``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32, uint32

from ..layers import Conv2d
from ..layers.conv import sliding_positions
from .common import WeightedCuda, check_device, launch, register
from .gemm import gemm
from .linear import add_row_bias, row_sums

_INT = "int64, " * 10 + "int64"


@register(f"void(float32[::1], float32[::1], {_INT})")
@cuda.jit
def im2col_kernel(x, cols, N, H, W, KH, KW, SH, SW, PH, PW, OH, OW):
    """cols[(c, u, v), (n, i, j)] = x[c, n, i*SH + u - PH, j*SW + v - PW] (0 in the padding).
    One thread per element of cols, so neighbouring threads write neighbouring addresses."""
    e = uint32(cuda.grid(1))
    if e < uint32(cols.size):
        P = uint32(N) * uint32(OH) * uint32(OW)
        row, p = e // P, e % P
        cu, v = row // uint32(KW), row % uint32(KW)
        c, u = cu // uint32(KH), cu % uint32(KH)
        n, ij = p // (uint32(OH) * uint32(OW)), p % (uint32(OH) * uint32(OW))
        i, j = ij // uint32(OW), ij % uint32(OW)
        hp = i * uint32(SH) + u  # row in the padded input
        wp = j * uint32(SW) + v
        value = float32(0)
        if uint32(PH) <= hp < uint32(PH + H) and uint32(PW) <= wp < uint32(PW + W):
            h, w = hp - uint32(PH), wp - uint32(PW)
            value = x[((c * uint32(N) + n) * uint32(H) + h) * uint32(W) + w]
        cols[e] = value


@register(f"void(float32[::1], float32[::1], {_INT})")
@cuda.jit
def col2im_kernel(dcols, dx, N, H, W, KH, KW, SH, SW, PH, PW, OH, OW):
    """dx[c, n, h, w] = sum of the dcols entries im2col copied from x[c, n, h, w].

    Padded row hp = h + PH was copied by kernel row u and output row i where i*SH + u = hp:
    u runs over hp % SH, hp % SH + SH, ... up to min(KH - 1, hp), and i = (hp - u) / SH must
    be < OH. Likewise for columns.
    """
    e = uint32(cuda.grid(1))
    if e < uint32(dx.size):
        HW = uint32(H) * uint32(W)
        cn, hw = e // HW, e % HW
        c, n = cn // uint32(N), cn % uint32(N)
        hp, wp = hw // uint32(W) + uint32(PH), hw % uint32(W) + uint32(PW)
        P = uint32(N) * uint32(OH) * uint32(OW)
        total = float32(0)
        u = hp % uint32(SH)
        while u < uint32(KH) and u <= hp:
            i = (hp - u) // uint32(SH)
            if i < uint32(OH):
                v = wp % uint32(SW)
                while v < uint32(KW) and v <= wp:
                    j = (wp - v) // uint32(SW)
                    if j < uint32(OW):
                        row = (c * uint32(KH) + u) * uint32(KW) + v
                        total += dcols[row * P + (n * uint32(OH) + i) * uint32(OW) + j]
                    v += uint32(SW)
            u += uint32(SH)
        dx[e] = total


def _geometry(fn: str, x_shape: tuple, kernel_size: tuple, stride: tuple, padding: tuple) -> tuple:
    C, N, H, W = x_shape
    (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
    if min(KH, KW, SH, SW) < 1 or min(PH, PW) < 0 or KH > H + 2 * PH or KW > W + 2 * PW:
        raise ValueError(
            f"{fn}: kernel {KH}x{KW}, stride {SH}x{SW}, padding {PH}x{PW} do not fit maps of "
            f"{H}x{W} (kernel and stride >= 1, padding >= 0, kernel <= padded size)"
        )
    OH, OW = sliding_positions(H, KH, SH, PH), sliding_positions(W, KW, SW, PW)
    return (C, N, H, W, KH, KW, SH, SW, PH, PW, OH, OW)


def im2col(x: Any, cols: Any, kernel_size: tuple, stride: tuple, padding: tuple) -> Any:
    """x (C, N, H, W) -> cols (C*KH*KW, N*OH*OW) on the device. Returns ``cols``."""
    check_device("im2col", "x", x)
    C, N, H, W, KH, KW, SH, SW, PH, PW, OH, OW = _geometry(
        "im2col", x.shape, kernel_size, stride, padding
    )
    check_device("im2col", "cols", cols, (C * KH * KW, N * OH * OW))
    grid, threads = launch(cols.size)
    im2col_kernel[grid, threads](x.ravel(), cols.ravel(), N, H, W, KH, KW, SH, SW, PH, PW, OH, OW)
    return cols


def col2im(dcols: Any, dx: Any, kernel_size: tuple, stride: tuple, padding: tuple) -> Any:
    """The adjoint of ``im2col``: dcols (C*KH*KW, N*OH*OW) -> dx (C, N, H, W). Returns ``dx``."""
    check_device("col2im", "dx", dx)
    C, N, H, W, KH, KW, SH, SW, PH, PW, OH, OW = _geometry(
        "col2im", dx.shape, kernel_size, stride, padding
    )
    check_device("col2im", "dcols", dcols, (C * KH * KW, N * OH * OW))
    grid, threads = launch(dx.size)
    col2im_kernel[grid, threads](dcols.ravel(), dx.ravel(), N, H, W, KH, KW, SH, SW, PH, PW, OH, OW)
    return dx


class Conv2dCuda(WeightedCuda):
    """The GPU twin of ``layers.Conv2d``."""

    def __init__(self, layer: Conv2d, *args: Any, **kwargs: Any) -> None:
        super().__init__(layer, *args, **kwargs)
        self.groups = layer.groups
        self.kernel_size, self.stride, self.padding = layer.kernel_size, layer.stride, layer.padding
        self.cols: Any = None
        self.dcols: Any = None

    def allocate(self, batch: int) -> None:
        C, (KH, KW), (_, OH, OW) = self.in_shape[0], self.kernel_size, self.out_shape
        shape = (C * KH * KW, batch * OH * OW)
        self.cols = cuda.device_array(shape, np.float32)
        self.dcols = cuda.device_array(shape, np.float32) if self.needs_input_grad else None

    def grouped(self, array: Any) -> Any:
        """View a (rows, columns) operand as (groups, rows / groups, columns) for ``gemm``."""
        return array.reshape(
            self.groups, array.shape[0] // self.groups, array.size // array.shape[0]
        )

    def forward(self, x: Any, training: bool = True) -> Any:
        self.check_input(x)
        im2col(x, self.cols, self.kernel_size, self.stride, self.padding)
        W, out = self.params["W"], self.out
        gemm(self.grouped(W), self.grouped(self.cols), self.grouped(out), version=self.gemm_version)
        return add_row_bias(out, self.params["b"])

    def backward(self, dout: Any) -> Any:
        self.check_dout(dout)
        W, dW, douts = self.params["W"], self.grads["W"], self.grouped(dout)
        gemm(
            douts,
            self.grouped(self.cols),
            self.grouped(dW),
            trans_b=True,
            version=self.gemm_version,
        )
        row_sums(dout, self.grads["b"])
        if not self.needs_input_grad:
            return None
        gemm(
            self.grouped(W),
            douts,
            self.grouped(self.dcols),
            trans_a=True,
            version=self.gemm_version,
        )
        return col2im(self.dcols, self.dx, self.kernel_size, self.stride, self.padding)
