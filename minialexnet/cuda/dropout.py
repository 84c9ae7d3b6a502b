"""Dropout on the GPU (mirrors ``minialexnet/layers/dropout.py``): both modes, same scaling.

    mode="paper"     training: out = x * mask          test: out = x * (1 - p)
    mode="inverted"  training: out = x * mask / (1-p)  test: out = x
    backward: dx = dout * the forward's mask (and scale)

Where the random numbers come from: a counter-based generator. Element i of the ``call``-th
forward of a layer keeps its unit when hash(i, key) < (1 - p) * 2**32, with the key mixed from
(seed, call) on the host and hash = MurmurHash3's 32-bit finaliser applied twice. No generator
state lives on the device, every thread draws independently, and the same (seed, call) gives
the same mask on any GPU (and in the simulator). The mask is not the NumPy layer's — that one
comes from NumPy's generator — so the tests compare the two layers given the *same* mask, and
check this mask's statistics on their own. The multiplications run in 64 bits and are masked
back to 32, so no intermediate overflows (which the simulator would warn about).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, float32, uint8, uint64

from ..layers import Dropout
from .common import CudaLayer, check_device, check_same_shape, f32, launch, register

MASK32 = np.uint64(0xFFFFFFFF)


@cuda.jit(device=True, inline=True)
def fmix32(h):
    """MurmurHash3's finaliser: a bijection of 32-bit values whose output bits all depend on
    every input bit. ``h`` < 2**32, held in 64 bits."""
    h ^= h >> uint64(16)
    h = (h * uint64(0x85EBCA6B)) & MASK32
    h ^= h >> uint64(13)
    h = (h * uint64(0xC2B2AE35)) & MASK32
    h ^= h >> uint64(16)
    return h


@register("void(float32[::1], float32[::1], uint8[::1], uint64, uint64, float32)")
@cuda.jit
def dropout_forward_kernel(x, out, mask, key, threshold, scale):
    i = cuda.grid(1)
    if i < x.size:
        h = fmix32(fmix32((uint64(i) + key) & MASK32) ^ key)
        if h < threshold:
            mask[i] = uint8(1)
            out[i] = x[i] * scale
        else:
            mask[i] = uint8(0)
            out[i] = float32(0)


@register("void(float32[::1], uint8[::1], float32[::1], float32)")
@cuda.jit
def dropout_backward_kernel(dout, mask, dx, scale):
    i = cuda.grid(1)
    if i < dout.size:
        dx[i] = dout[i] * scale if mask[i] else float32(0)


def mask_key(seed: int, call: int) -> int:
    """The 32-bit key of one forward call: a different stream for every (seed, call)."""
    return (seed * 0x9E3779B1 + call * 0x7FEB352D + 0x632BE5AB) & 0xFFFFFFFF


def dropout_forward(x: Any, out: Any, mask: Any, keep: float, scale: float, key: int) -> Any:
    """out = x * mask * scale, mask[i] = 1 with probability ``keep`` (1.0 keeps all: the
    test-time path). ``mask`` is uint8 of x's shape, filled here. Returns ``out``."""
    fn = "dropout_forward"
    check_device(fn, "x", x)
    check_device(fn, "out", out)
    check_device(fn, "mask", mask, dtype=np.uint8)
    check_same_shape(fn, ("x", "out", "mask"), (x, out, mask))
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"{fn}: keep (1 - p) must be in (0, 1], got {keep}")
    threshold = np.uint64(round(keep * 2**32))
    grid, threads = launch(x.size)
    dropout_forward_kernel[grid, threads](
        x.ravel(), out.ravel(), mask.ravel(), np.uint64(key & 0xFFFFFFFF), threshold, f32(scale)
    )
    return out


def dropout_backward(dout: Any, mask: Any, dx: Any, scale: float) -> Any:
    """dx = dout * mask * scale with the forward's mask and scale. Returns ``dx``."""
    fn = "dropout_backward"
    check_device(fn, "dout", dout)
    check_device(fn, "mask", mask, dtype=np.uint8)
    check_device(fn, "dx", dx)
    check_same_shape(fn, ("dout", "mask", "dx"), (dout, mask, dx))
    grid, threads = launch(dout.size)
    dropout_backward_kernel[grid, threads](dout.ravel(), mask.ravel(), dx.ravel(), f32(scale))
    return dx


class DropoutCuda(CudaLayer):
    """``seed`` picks this layer's stream of masks; every training forward draws the next."""

    def __init__(self, layer: Dropout, in_shape: tuple[int, ...], seed: int = 0) -> None:
        super().__init__(layer.name, in_shape, in_shape)
        self.p, self.mode, self.seed = layer.p, layer.mode, seed
        self.calls = 0
        self.mask: Any = None
        self.scale = 1.0

    def allocate(self, batch: int) -> None:
        self.mask = cuda.device_array(self.out.shape, np.uint8)

    def forward(self, x: Any, training: bool = True) -> Any:
        self.check_input(x)
        keep = 1.0 - self.p
        if training:
            self.scale = 1.0 / keep if self.mode == "inverted" else 1.0
            self.calls += 1
            return dropout_forward(x, self.out, self.mask, keep, self.scale, self.key())
        self.scale = keep if self.mode == "paper" else 1.0
        return dropout_forward(x, self.out, self.mask, 1.0, self.scale, 0)

    def key(self) -> int:
        return mask_key(self.seed, self.calls)

    def backward(self, dout: Any) -> Any:
        self.check_dout(dout)
        return (
            dropout_backward(dout, self.mask, self.dx, self.scale)
            if self.needs_input_grad
            else None
        )
