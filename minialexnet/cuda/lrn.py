"""Local response normalization on the GPU (mirrors ``minialexnet/layers/lrn.py``).

With s[c] = k + a * sum_{j in window(c)} x[j]**2 (a = alpha, or alpha/n under "caffe"):

    forward   out[c] = x[c] * s[c]**-beta                      (s is kept for the backward)
    backward  dx[j]  = dout[j] * s[j]**-beta
                       - 2*a*beta * x[j] * sum_{i in window(j)} dout[i] * out[i] / s[i]

With ``groups`` > 1 the window stays inside its block of C / groups channels (the paper's two
GPUs each normalised their own half: ``layers/lrn.py``), so each kernel takes the block size.

One thread per element; its window runs over channels, which in the feature-major (C, N, H, W)
layout sit N*H*W apart, so neighbouring threads (neighbouring pixels) still read neighbouring
addresses. Each thread re-reads its n neighbours: n=5 loads per element, all from cache.
s**-beta is computed as exp(-beta * log s), in float32.
"""

from __future__ import annotations

import math
from typing import Any

from numba import cuda, float32

from ..layers import LocalResponseNorm
from .common import CudaLayer, check_device, check_same_shape, f32, launch, register


@register(
    "void(float32[::1], float32[::1], float32[::1], int64, int64, int64, float32, float32, float32)"
)
@cuda.jit
def lrn_forward_kernel(x, out, scale, block, plane, half, k, a, beta):
    e = cuda.grid(1)
    if e < x.size:
        c, r = e // plane, e % plane
        first = c - c % block  # the first channel of c's block: the window stays inside it
        total = float32(0)
        for j in range(max(c - half, first), min(c + half, first + block - 1) + 1):
            value = x[j * plane + r]
            total += value * value
        s = k + a * total
        scale[e] = s
        out[e] = x[e] * math.exp(-beta * math.log(s))


@register(
    "void(float32[::1], float32[::1], float32[::1], float32[::1], float32[::1], "
    "int64, int64, int64, float32, float32)"
)
@cuda.jit
def lrn_backward_kernel(dout, x, out, scale, dx, block, plane, half, beta, two_a_beta):
    e = cuda.grid(1)
    if e < x.size:
        c, r = e // plane, e % plane
        first = c - c % block
        total = float32(0)
        for i in range(max(c - half, first), min(c + half, first + block - 1) + 1):
            o = i * plane + r
            total += dout[o] * out[o] / scale[o]
        s_pow = math.exp(-beta * math.log(scale[e]))
        dx[e] = dout[e] * s_pow - two_a_beta * x[e] * total


def lrn_forward(
    x: Any, out: Any, scale: Any, size: int, k: float, a: float, beta: float, groups: int = 1
) -> Any:
    """x (C, N, H, W) -> out, and ``scale`` = s, all of x's shape. ``a`` is the effective alpha
    (``LocalResponseNorm.effective_alpha``); ``groups`` blocks of channels are normalised apart.
    Returns ``out``."""
    fn = "lrn_forward"
    for name, array in (("x", x), ("out", out), ("scale", scale)):
        check_device(fn, name, array)
    check_same_shape(fn, ("x", "out", "scale"), (x, out, scale))
    if x.ndim != 4 or size < 1 or size % 2 == 0:
        raise ValueError(
            f"{fn}: need x of shape (C, N, H, W) and an odd size, got {x.shape}, {size}"
        )
    block = channel_block(fn, x, groups)
    plane = x.size // x.shape[0]
    grid, threads = launch(x.size)
    lrn_forward_kernel[grid, threads](
        x.ravel(),
        out.ravel(),
        scale.ravel(),
        block,
        plane,
        size // 2,
        f32(k),
        f32(a),
        f32(beta),
    )
    return out


def lrn_backward(
    dout: Any,
    x: Any,
    out: Any,
    scale: Any,
    dx: Any,
    size: int,
    a: float,
    beta: float,
    groups: int = 1,
) -> Any:
    """dL/dx from dout and the forward's x, out and scale (all (C, N, H, W)), with the
    forward's ``groups``. Returns ``dx``."""
    fn = "lrn_backward"
    names = ("dout", "x", "out", "scale", "dx")
    arrays = (dout, x, out, scale, dx)
    for name, array in zip(names, arrays, strict=True):
        check_device(fn, name, array)
    check_same_shape(fn, names, arrays)
    block = channel_block(fn, x, groups)
    plane = x.size // x.shape[0]
    grid, threads = launch(x.size)
    lrn_backward_kernel[grid, threads](
        dout.ravel(),
        x.ravel(),
        out.ravel(),
        scale.ravel(),
        dx.ravel(),
        block,
        plane,
        size // 2,
        f32(beta),
        f32(2 * a * beta),
    )
    return dx


def channel_block(fn: str, x: Any, groups: int) -> int:
    """The channels per normalised block: C / groups (C = x.shape[0])."""
    channels = x.shape[0]
    if groups < 1 or channels % groups:
        raise ValueError(f"{fn}: groups must divide the {channels} channels, got {groups}")
    return channels // groups


class LocalResponseNormCuda(CudaLayer):
    def __init__(self, layer: LocalResponseNorm, in_shape: tuple[int, ...]) -> None:
        super().__init__(layer.name, in_shape, in_shape)
        self.size, self.k, self.beta, self.groups = layer.size, layer.k, layer.beta, layer.groups
        self.a = layer.effective_alpha
        self.x: Any = None
        self.scale: Any = None

    def allocate(self, batch: int) -> None:
        self.scale = cuda.device_array_like(self.out)

    def forward(self, x: Any, training: bool = True) -> Any:
        self.check_input(x)
        self.x = x  # the previous layer's output buffer: it stays put until the next forward
        return lrn_forward(
            x, self.out, self.scale, self.size, self.k, self.a, self.beta, self.groups
        )

    def backward(self, dout: Any) -> Any:
        self.check_dout(dout)
        if not self.needs_input_grad:
            return None
        return lrn_backward(
            dout, self.x, self.out, self.scale, self.dx, self.size, self.a, self.beta, self.groups
        )
