"""Fully connected layer and Flatten on the GPU (mirror ``minialexnet/layers/linear.py``).

Feature-major (``layout.py``): x is (D_in, N), so every product is a plain GEMM,

    forward   out (D_out, N) = W (D_out, D_in) @ x (D_in, N) + b      GEMM NN, then add_row_bias
    backward  dW  = dout @ x.T                                        GEMM NT
              db  = dout summed over the batch (its rows)              row_sums
              dx  = W.T @ dout                                         GEMM TN

and the convolution (``conv.py``) is this same layer applied to im2col's columns, so the two
small kernels here serve both: add a bias to every row, sum every row.
"""

from __future__ import annotations

from typing import Any

from numba import cuda, float32

from ..layers import Flatten, Linear
from .common import CudaLayer, WeightedCuda, check_device, launch, register
from .gemm import gemm
from .layout import flatten_maps, unflatten_maps

ROW_THREADS = 256  # the most threads one row's reduction uses (a power of two)


@register("void(float32[::1], float32[::1], int64)")
@cuda.jit
def add_row_bias_kernel(y, b, row_length):
    e = cuda.grid(1)
    if e < y.size:
        y[e] += b[e // row_length]


@register("void(float32[::1], float32[::1], int64)")
@cuda.jit
def row_sums_kernel(y, out, row_length):
    """One block per row; blockDim.x (a power of two <= ROW_THREADS) threads stride along it,
    then halve a shared array until one sum is left: a fixed order, so a deterministic sum."""
    partial = cuda.shared.array(ROW_THREADS, float32)
    t = cuda.threadIdx.x
    row = cuda.blockIdx.x
    total = float32(0)
    for e in range(t, row_length, cuda.blockDim.x):
        total += y[row * row_length + e]
    partial[t] = total
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if t < half:
            partial[t] += partial[t + half]
        cuda.syncthreads()  # every thread reaches it: the loop bound is the same for all
        half //= 2
    if t == 0:
        out[row] = partial[0]


def add_row_bias(y: Any, b: Any) -> Any:
    """y[r, ...] += b[r] in place, y of shape (R, ...) and b (R,). Returns ``y``."""
    check_device("add_row_bias", "y", y)
    check_device("add_row_bias", "b", b, (y.shape[0],))
    grid, threads = launch(y.size)
    add_row_bias_kernel[grid, threads](y.ravel(), b, y.size // y.shape[0])
    return y


def row_sums(y: Any, out: Any) -> Any:
    """out[r] = sum of row r of y (R, ...), out (R,). Returns ``out``."""
    check_device("row_sums", "y", y)
    check_device("row_sums", "out", out, (y.shape[0],))
    row_length = y.size // y.shape[0]
    threads = 32
    while threads < min(row_length, ROW_THREADS):
        threads *= 2
    row_sums_kernel[y.shape[0], threads](y.ravel(), out, row_length)
    return out


class LinearCuda(WeightedCuda):
    """The GPU twin of ``layers.Linear``."""

    def __init__(self, layer: Linear, *args: Any, **kwargs: Any) -> None:
        super().__init__(layer, *args, **kwargs)
        self.x: Any = None

    def forward(self, x: Any, training: bool = True) -> Any:
        self.check_input(x)
        self.x = x
        gemm(self.params["W"], x, self.out, version=self.gemm_version)
        return add_row_bias(self.out, self.params["b"])

    def backward(self, dout: Any) -> Any:
        self.check_dout(dout)
        gemm(dout, self.x, self.grads["W"], trans_b=True, version=self.gemm_version)
        row_sums(dout, self.grads["b"])
        if not self.needs_input_grad:
            return None
        gemm(self.params["W"], dout, self.dx, trans_a=True, version=self.gemm_version)
        return self.dx


class FlattenCuda(CudaLayer):
    def __init__(self, layer: Flatten, in_shape: tuple[int, ...]) -> None:
        super().__init__(layer.name, in_shape, layer.output_shape(in_shape))

    def forward(self, x: Any, training: bool = True) -> Any:
        self.check_input(x)
        return flatten_maps(x, self.out)

    def backward(self, dout: Any) -> Any:
        self.check_dout(dout)
        return unflatten_maps(dout, self.dx) if self.needs_input_grad else None
