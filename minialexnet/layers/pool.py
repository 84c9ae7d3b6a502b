"""Max pooling, overlapping (AlexNet's 3x3 windows at stride 2) or not (2x2 at stride 2).

Shapes
    x    (N, C, H, W)
    out  (N, C, OH, OW)   OH = (H - K) // S + 1,  OW = (W - K) // S + 1   (no padding, as AlexNet)

    out[n, c, i, j] = max_{u, v < K} x[n, c, i*S + u, j*S + v]

Backward: the max is a selector, so dL/dout[n, c, i, j] goes to the one input pixel that won
the window and nothing goes anywhere else. When windows overlap, one pixel can win several
windows and collects the sum of their gradients.

**Tie rule**: when several pixels of a window share the maximum, the first one in row-major
window order (smallest u, then smallest v) takes the whole gradient, as PyTorch's CPU kernel
does. The gradient is then a valid subgradient; the finite difference at an exact tie is not
defined, which is why gradient checks use random inputs.

Both passes loop over the output positions (i, j) and handle every image and channel at once:
the window ``x[:, :, i*S : i*S+K, j*S : j*S+K]`` flattened to K*K entries, ``argmax`` over
them (NumPy's argmax returns the first maximum: the tie rule), and in the backward the
gradient added at the winner's position. ``minialexnet/fast/pool.py`` is the tuned engine.
Expected gradient-check relative error in float64: below 1e-7.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, Shape, check_positive_int
from .conv import output_size


def maxpool_forward(x: np.ndarray, K: int, S: int) -> tuple[np.ndarray, np.ndarray]:
    """The maximum of every K x K window moved by S, and which entry won it.

    Input
        x       (N, C, H, W)
    Returns
        out     (N, C, OH, OW)  OH = (H - K) // S + 1, OW = (W - K) // S + 1
        argmax  (N, C, OH, OW)  integer: the winner's index u*K + v within its window
    """
    # EXERCISE pool: the window maxima and which entry won each window.
    # hint: x (N, C, H, W) -> out (N, C, OH, OW), OH = (H - K) // S + 1, and argmax (same shape,
    # hint: integers) = u*K + v of the winner. For each output position (i, j): take the window
    # hint: x[:, :, i*S : i*S+K, j*S : j*S+K], reshape it to (N, C, K*K), max and argmax over the
    # hint: last axis (argmax returns the first maximum: ties go to the earliest entry).
    N, C, H, W = x.shape
    OH = (H - K) // S + 1
    OW = (W - K) // S + 1
    out = np.empty((N, C, OH, OW), x.dtype)
    argmax = np.empty((N, C, OH, OW), np.intp)
    for i in range(OH):
        for j in range(OW):
            window = x[:, :, i * S : i * S + K, j * S : j * S + K].reshape(N, C, K * K)
            argmax[:, :, i, j] = window.argmax(axis=2)
            out[:, :, i, j] = window.max(axis=2)
    return out, argmax
    # END EXERCISE


def maxpool_backward(
    dout: np.ndarray, argmax: np.ndarray, x_shape: tuple[int, ...], K: int, S: int
) -> np.ndarray:
    """Send each window's gradient to the entry that won it.

    Input
        dout, argmax  (N, C, OH, OW)  the gradient of the output; the forward's winners
        x_shape       (N, C, H, W)
    Returns
        dx            (N, C, H, W)    zero except at winners; a pixel that won several
                                      overlapping windows collects the sum of their gradients
    """
    # EXERCISE pool: route each dout entry to the pixel that won its window.
    # hint: dout, argmax (N, C, OH, OW) -> dx (N, C, H, W), zeros to start. For each output
    # hint: position (i, j): the winner sits at row i*S + argmax // K, column j*S + argmax % K;
    # hint: add dout[:, :, i, j] there (index dx with arrays n (N, 1), c (1, C), row, column).
    N, C, _, _ = x_shape
    _, _, OH, OW = dout.shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    n, c = np.arange(N)[:, None], np.arange(C)[None, :]  # every (image, channel) pair
    for i in range(OH):
        for j in range(OW):
            u, v = np.divmod(argmax[:, :, i, j], K)
            # One winner per (n, c) here, so no element is named twice within this +=.
            dx[n, c, i * S + u, j * S + v] += dout[:, :, i, j]
    return dx
    # END EXERCISE


class MaxPool2d(Layer):
    """Max pooling with a square ``kernel_size`` window moved by ``stride``, no padding."""

    def __init__(self, kernel_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.kernel_size = check_positive_int(self.name, "kernel_size", kernel_size)
        self.stride = check_positive_int(self.name, "stride", stride)

    def output_shape(self, in_shape: Shape) -> Shape:
        self.check_rank(in_shape)
        K, S = self.kernel_size, self.stride
        OH = output_size(self.name, in_shape[1], K, S, 0, "height")
        OW = output_size(self.name, in_shape[2], K, S, 0, "width")
        return (in_shape[0], OH, OW)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        out, argmax = maxpool_forward(x, self.kernel_size, self.stride)
        self._cache = (argmax, x.shape)
        return out

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        argmax, x_shape = self._cache
        return maxpool_backward(dout, argmax, x_shape, self.kernel_size, self.stride)

    def __repr__(self) -> str:
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride})"
