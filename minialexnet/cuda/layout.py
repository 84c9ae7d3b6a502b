"""How a batch is laid out on the device: feature-major, and the two kernels that permute.

The NumPy layers hold a batch as (N, C, H, W) and (N, D). On the GPU every activation is kept
**feature-major** instead: convolution maps as (C, N, H, W), fully connected activations as
(D, N). The reason is the GEMM. With im2col a convolution is one matrix product,

    out (F, N*OH*OW)  =  W (F, C*KH*KW)  @  cols (C*KH*KW, N*OH*OW),

and its result, read as (F, N, OH, OW), is already the next layer's input: no transpose per
layer, forward or backward (dL/dout is the GEMM operand as it stands, too). A linear layer is
the same product with 1x1 "receptive fields": out (D_out, N) = W (D_out, D_in) @ x (D_in, N).
cuda-convnet, the code AlexNet was trained with, kept its images as (C, H, W, N) for a
similar reason. ReLU, dropout and the SGD update do not care about layout; max-pool works on
(C*N) planes of H x W, LRN sums over C at a stride of N*H*W.

Only two permutations remain, both here: the input batch NCHW -> CNHW (``to_feature_major``)
and Flatten's (C, N, H*W) <-> (C*H*W, N) (``flatten_maps``/``unflatten_maps``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

from .common import check_device, launch, register


@register("void(float32[::1], float32[::1], int64, int64, int64)")
@cuda.jit
def swap_axes01(src, dst, A, B, Q):
    """dst (B, A, Q) [b, a, q] = src (A, B, Q) [a, b, q]; one thread per element of dst."""
    e = cuda.grid(1)
    if e < dst.size:
        b, rest = e // (A * Q), e % (A * Q)
        a, q = rest // Q, rest % Q
        dst[e] = src[(a * B + b) * Q + q]


@register("void(float32[::1], float32[::1], int64, int64, int64)")
@cuda.jit
def swap_axes12(src, dst, A, B, Q):
    """dst (A, Q, B) [a, q, b] = src (A, B, Q) [a, b, q]; one thread per element of dst."""
    e = cuda.grid(1)
    if e < dst.size:
        a, rest = e // (Q * B), e % (Q * B)
        q, b = rest // B, rest % B
        dst[e] = src[(a * B + b) * Q + q]


def to_feature_major(x: Any, out: Any) -> Any:
    """NCHW device batch ``x`` (N, C, H, W) -> ``out`` (C, N, H, W). Returns ``out``."""
    N, C, H, W = check_device("to_feature_major", "x", x).shape
    check_device("to_feature_major", "out", out, (C, N, H, W))
    grid, threads = launch(out.size)
    swap_axes01[grid, threads](x.ravel(), out.ravel(), N, C, H * W)
    return out


def flatten_maps(x: Any, out: Any) -> Any:
    """Flatten's forward: maps (C, N, H, W) -> ``out`` (C*H*W, N), feature index c*H*W + q.

    The same feature order as the NumPy Flatten of an (N, C, H, W) batch.
    """
    C, N, H, W = check_device("flatten_maps", "x", x).shape
    check_device("flatten_maps", "out", out, (C * H * W, N))
    grid, threads = launch(out.size)
    swap_axes12[grid, threads](x.ravel(), out.ravel(), C, N, H * W)
    return out


def unflatten_maps(dout: Any, dx: Any) -> Any:
    """Flatten's backward: (C*H*W, N) -> ``dx`` (C, N, H, W). Returns ``dx``."""
    C, N, H, W = check_device("unflatten_maps", "dx", dx).shape
    check_device("unflatten_maps", "dout", dout, (C * H * W, N))
    grid, threads = launch(dx.size)
    swap_axes12[grid, threads](dout.ravel(), dx.ravel(), C, H * W, N)
    return dx


def to_host_layout(x: np.ndarray) -> np.ndarray:
    """A feature-major host copy -> the NumPy layers' layout: (C, N, H, W) -> (N, C, H, W),
    (D, N) -> (N, D). For tests and for returning logits."""
    return np.ascontiguousarray(np.swapaxes(x, 0, 1))
