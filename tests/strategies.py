"""Hypothesis strategies shared by the layer tests: random layer configurations and inputs.

Every spatial configuration is non-square on purpose: the input height differs from its width
and (for conv) the kernel height from its width, so a swapped H/W axis in a forward or backward
changes a shape or a value instead of hiding behind a symmetry. Each strategy also draws a
``seed`` so the NumPy data is reproducible from the example hypothesis reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from minialexnet.layers import Conv2d, LocalResponseNorm

seeds = st.integers(0, 2**32 - 1)
float_dtypes = st.sampled_from([np.float32, np.float64])


def random_array(shape: tuple[int, ...], seed: int, dtype: type = np.float64) -> np.ndarray:
    """Standard-normal values of ``shape`` and ``dtype`` from ``seed``."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def distinct_from(value: int, low: int, high: int) -> st.SearchStrategy[int]:
    """An int in [low, high] other than ``value`` (the range must hold at least two ints)."""
    return st.integers(low, high - 1).map(lambda v: v + 1 if v >= value else v)


@dataclass(frozen=True)
class ConvConfig:
    """One convolution: the layer's arguments and an input shape it accepts."""

    N: int
    C: int
    F: int
    H: int
    W: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int
    seed: int

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)

    @property
    def out_hw(self) -> tuple[int, int]:
        """The output size from the formula, written out again here rather than asked of the
        layer: OH = (H + 2*PH - KH) // SH + 1, and the same for the width."""
        (KH, KW), (SH, SW), (PH, PW) = self.kernel, self.stride, self.padding
        return (self.H + 2 * PH - KH) // SH + 1, (self.W + 2 * PW - KW) // SW + 1

    def layer(self, dtype: type = np.float64, impl: str = "im2col") -> Conv2d:
        """The layer with random weights and a random (non-zero) bias from ``seed``."""
        rng = np.random.default_rng(self.seed)
        conv = Conv2d(
            self.C,
            self.F,
            self.kernel,
            self.stride,
            self.padding,
            self.groups,
            impl=impl,
            rng=rng,
            dtype=dtype,
        )
        conv.params["b"][...] = rng.standard_normal(self.F)
        return conv

    def x(self, dtype: type = np.float64) -> np.ndarray:
        return random_array(self.x_shape, self.seed + 1, dtype)


@st.composite
def conv_configs(draw: st.DrawFn, max_groups: int = 3, max_size: int = 9) -> ConvConfig:
    """Small convolutions over every option: groups, per-axis kernel, stride and padding.

    KH != KW and H != W always; the input is at least as large as the kernel after padding.
    """
    groups = draw(st.integers(1, max_groups))
    C = groups * draw(st.integers(1, 3))
    F = groups * draw(st.integers(1, 3))
    KH = draw(st.integers(1, 4))
    KW = draw(distinct_from(KH, 1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    PH, PW = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    min_h, min_w = max(1, KH - 2 * PH), max(1, KW - 2 * PW)
    H = draw(st.integers(min_h, max_size))
    W = draw(distinct_from(H, min_w, max_size + 1) if min_w <= H else st.integers(min_w, max_size))
    N = draw(st.integers(1, 2))
    return ConvConfig(N, C, F, H, W, (KH, KW), stride, (PH, PW), groups, draw(seeds))


@st.composite
def pool_configs(draw: st.DrawFn) -> tuple[tuple[int, int, int, int], int, int]:
    """(x shape, kernel, stride) for max pooling: overlapping (stride < kernel) or not, H != W."""
    K = draw(st.integers(1, 4))
    S = draw(st.integers(1, 3))
    H = draw(st.integers(K, K + 6))
    W = draw(distinct_from(H, K, K + 7))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W), K, S


@st.composite
def lrn_configs(draw: st.DrawFn) -> tuple[LocalResponseNorm, tuple[int, int, int, int]]:
    """An LRN layer (either convention, window 1..7, possibly wider than the channels) and an
    NCHW input shape. alpha ranges far above the paper's 1e-4 so the cross-channel term of
    the backward carries real weight in a gradient check."""
    layer = LocalResponseNorm(
        size=draw(st.sampled_from([1, 3, 5, 7])),
        alpha=draw(st.floats(1e-4, 2.0)),
        beta=draw(st.floats(0.25, 1.5)),
        k=draw(st.floats(0.5, 3.0)),
        convention=draw(st.sampled_from(["paper", "caffe"])),
    )
    H = draw(st.integers(1, 4))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 9)), H, draw(distinct_from(H, 1, 5)))
    return layer, shape


def batch_shapes() -> st.SearchStrategy[tuple[int, ...]]:
    """(N, D) fully connected activations or (N, C, H, W) maps with H != W."""
    flat = st.tuples(st.integers(1, 3), st.integers(1, 12))
    maps = st.integers(1, 4).flatmap(
        lambda h: st.tuples(
            st.integers(1, 2), st.integers(1, 3), st.just(h), distinct_from(h, 1, 5)
        )
    )
    return st.one_of(flat, maps)
