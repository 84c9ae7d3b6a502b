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

The forward never loops over windows: it walks the K*K offsets (u, v), each a strided view of
x the size of the output, keeping a running max and which offset holds it (``argmax``, one byte
per output). The backward walks the same offsets and adds the gradient where ``argmax``
matches. Both use only whole-array arithmetic (no boolean indexing, no ``where=`` masks: those
are 5-20x slower per element in NumPy), and every array keeps the memory layout of the one it
comes from, so a channels-last input (as the fast ``Conv2d`` returns) is walked contiguously.
The functions fill arrays the layer gives them: the output is fresh, argmax is memory the layer
reuses at every forward.
Expected gradient-check relative error in float64: below 1e-7.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, Shape, check_positive_int
from .conv import output_size
from .workspace import Workspace


def window_offset_view(x: np.ndarray, u: int, v: int, S: int, OH: int, OW: int) -> np.ndarray:
    """x[:, :, u + S*i, v + S*j] for all output positions (i, j): a view, no copy."""
    return x[:, :, u : u + S * (OH - 1) + 1 : S, v : v + S * (OW - 1) + 1 : S]


def maxpool_forward(x: np.ndarray, K: int, S: int, out: np.ndarray, argmax: np.ndarray) -> None:
    """Fill ``out`` (N, C, OH, OW) with the window maxima of x and ``argmax`` (uint8, same
    shape) with the offset u*K + v that won each window."""
    # EXERCISE pool: the window maxima and which offset won each window.
    # hint: x (N, C, H, W) -> out (N, C, OH, OW), OH = (H - K) // S + 1; argmax (uint8) = u*K + v of
    # hint: the winner. Walk the K*K offsets (window_offset_view), keeping a running max; on a tie
    # hint: the earlier offset keeps the win (compare with strictly greater).
    _, _, OH, OW = out.shape
    np.copyto(out, window_offset_view(x, 0, 0, S, OH, OW))
    argmax[...] = 0
    better = np.empty_like(out, dtype=bool)
    for k in range(1, K * K):
        candidate = window_offset_view(x, k // K, k % K, S, OH, OW)
        np.greater(candidate, out, out=better)  # strictly greater: earlier offsets win ties
        np.maximum(out, candidate, out=out)
        # "argmax = k where better": k exceeds every offset seen so far, so a max does it
        # (a masked assignment, argmax[better] = k, is ~10x slower).
        np.maximum(argmax, better.view(np.uint8) * np.uint8(k), out=argmax)
    # END EXERCISE


def maxpool_backward(dout: np.ndarray, argmax: np.ndarray, K: int, S: int, dx: np.ndarray) -> None:
    """Add each dout entry onto the pixel of ``dx`` (zeros on entry) that won its window;
    where windows overlap, a pixel that won several collects the sum."""
    # EXERCISE pool: route each dout entry to the pixel that won its window.
    # hint: dout, argmax (N, C, OH, OW) -> added into dx (N, C, H, W), zeros on entry. For each
    # hint: offset k: add dout where argmax == k onto window_offset_view(dx, k // K, k % K, ...).
    _, _, OH, OW = dout.shape
    won = np.empty_like(argmax, dtype=bool)
    routed = np.empty_like(dout)
    for k in range(K * K):
        np.equal(argmax, k, out=won)
        np.multiply(dout, won, out=routed)  # dout where offset k won, else 0
        window_offset_view(dx, k // K, k % K, S, OH, OW)[...] += routed
    # END EXERCISE


class MaxPool2d(Layer):
    """Max pooling with a square ``kernel_size`` window moved by ``stride``, no padding."""

    def __init__(self, kernel_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.kernel_size = check_positive_int(self.name, "kernel_size", kernel_size)
        self.stride = check_positive_int(self.name, "stride", stride)
        if self.kernel_size > 16:  # argmax stores the winning offset in one byte: K*K <= 256
            raise ValueError(f"{self.name}: kernel_size must be <= 16, got {kernel_size}")
        self.kept = Workspace()  # argmax, kept from forward to backward

    def output_shape(self, in_shape: Shape) -> Shape:
        self.check_rank(in_shape)
        K, S = self.kernel_size, self.stride
        OH = output_size(self.name, in_shape[1], K, S, 0, "height")
        OW = output_size(self.name, in_shape[2], K, S, 0, "width")
        return (in_shape[0], OH, OW)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        K, S = self.kernel_size, self.stride
        # empty_like with a shape keeps x's memory layout (channels-last stays channels-last).
        out = np.empty_like(x, shape=(x.shape[0], *self.output_shape(x.shape[1:])))
        argmax = self.kept.like("argmax", out, np.uint8)  # reused at every forward
        maxpool_forward(x, K, S, out, argmax)
        self._cache = (argmax, x.shape)
        return out

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        argmax, x_shape = self._cache
        K, S = self.kernel_size, self.stride
        dx = np.zeros_like(dout, shape=x_shape)  # in dout's memory layout
        maxpool_backward(dout, argmax, K, S, dx)
        return dx

    def __repr__(self) -> str:
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride})"
