"""Max pooling on the GPU (mirrors ``minialexnet/layers/pool.py``), same tie rule.

Maps are feature-major (C, N, H, W), which to a pooling window is just C*N planes of H x W.

    forward   one thread per output: scan the K x K window, keep the first maximum in
              row-major order (strictly greater replaces), store its offset u*K + v (uint8)
    backward  one thread per *input* pixel: gather dout from every window that covers the
              pixel and chose it. A scatter (each output adding into its winner) would need
              atomic adds where windows overlap (K > S: AlexNet's 3/2 pooling); the gather
              writes each dx element once, in a fixed order, so it is also deterministic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32

from ..layers import MaxPool2d
from ..layers.conv import sliding_positions
from .common import CudaLayer, check_device, launch, register


@register("void(float32[::1], float32[::1], uint8[::1], int64, int64, int64, int64, int64, int64)")
@cuda.jit
def maxpool_forward_kernel(x, out, argmax, H, W, OH, OW, K, S):
    e = cuda.grid(1)
    if e < out.size:
        plane, q = e // (OH * OW), e % (OH * OW)
        i, j = q // OW, q % OW
        corner = (plane * H + i * S) * W + j * S
        best = x[corner]
        arg = 0
        for u in range(K):
            for v in range(K):
                value = x[corner + u * W + v]
                if value > best:
                    best = value
                    arg = u * K + v
        out[e] = best
        argmax[e] = arg


@register("void(float32[::1], uint8[::1], float32[::1], int64, int64, int64, int64, int64, int64)")
@cuda.jit
def maxpool_backward_kernel(dout, argmax, dx, H, W, OH, OW, K, S):
    e = cuda.grid(1)
    if e < dx.size:
        plane, p = e // (H * W), e % (H * W)
        h, w = p // W, p % W
        # Windows i cover rows i*S .. i*S + K - 1: those with h - K < i*S <= h.
        i_lo = 0 if h < K else (h - K) // S + 1
        j_lo = 0 if w < K else (w - K) // S + 1
        total = float32(0)
        for i in range(i_lo, min(h // S, OH - 1) + 1):
            for j in range(j_lo, min(w // S, OW - 1) + 1):
                o = (plane * OH + i) * OW + j
                if argmax[o] == (h - i * S) * K + (w - j * S):
                    total += dout[o]
        dx[e] = total


def maxpool_forward(x: Any, out: Any, argmax: Any, kernel_size: int, stride: int) -> Any:
    """x (C, N, H, W) -> out (C, N, OH, OW) and argmax (uint8, same shape). Returns ``out``."""
    fn = "maxpool_forward"
    C, N, H, W = check_device(fn, "x", x).shape
    K, S = kernel_size, stride
    if not 1 <= K <= min(16, H, W) or S < 1:
        raise ValueError(
            f"{fn}: need 1 <= kernel_size <= min(16, H, W) and stride >= 1, got kernel_size={K}, "
            f"stride={S} for maps of {H}x{W}"
        )
    OH, OW = sliding_positions(H, K, S, 0), sliding_positions(W, K, S, 0)
    check_device(fn, "out", out, (C, N, OH, OW))
    check_device(fn, "argmax", argmax, (C, N, OH, OW), np.uint8)
    grid, threads = launch(out.size)
    maxpool_forward_kernel[grid, threads](
        x.ravel(), out.ravel(), argmax.ravel(), H, W, OH, OW, K, S
    )
    return out


def maxpool_backward(dout: Any, argmax: Any, dx: Any, kernel_size: int, stride: int) -> Any:
    """dout (C, N, OH, OW) and the forward's argmax -> dx (C, N, H, W). Returns ``dx``."""
    fn = "maxpool_backward"
    C, N, H, W = check_device(fn, "dx", dx).shape
    K, S = kernel_size, stride
    OH, OW = sliding_positions(H, K, S, 0), sliding_positions(W, K, S, 0)
    check_device(fn, "dout", dout, (C, N, OH, OW))
    check_device(fn, "argmax", argmax, (C, N, OH, OW), np.uint8)
    grid, threads = launch(dx.size)
    maxpool_backward_kernel[grid, threads](
        dout.ravel(), argmax.ravel(), dx.ravel(), H, W, OH, OW, K, S
    )
    return dx


class MaxPool2dCuda(CudaLayer):
    def __init__(self, layer: MaxPool2d, in_shape: tuple[int, ...]) -> None:
        super().__init__(layer.name, in_shape, layer.output_shape(in_shape))
        self.kernel_size, self.stride = layer.kernel_size, layer.stride
        self.argmax: Any = None

    def allocate(self, batch: int) -> None:
        C, OH, OW = self.out_shape
        self.argmax = cuda.device_array((C, batch, OH, OW), np.uint8)

    def forward(self, x: Any, training: bool = True) -> Any:
        self.check_input(x)
        return maxpool_forward(x, self.out, self.argmax, self.kernel_size, self.stride)

    def backward(self, dout: Any) -> Any:
        self.check_dout(dout)
        if not self.needs_input_grad:
            return None
        return maxpool_backward(dout, self.argmax, self.dx, self.kernel_size, self.stride)
