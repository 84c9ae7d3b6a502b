"""ReLU on the GPU (mirrors ``minialexnet/layers/activations.py``): one thread per element.

    forward   out = max(x, 0)
    backward  dx  = dout * [out > 0]          (0 at x == 0, as in the NumPy layer)

Works on any layout, since it never looks at an element's neighbours. Memory-bound: 8 bytes
moved per element forward, 12 backward, and no arithmetic to speak of.
"""

from __future__ import annotations

from typing import Any

from numba import cuda, float32

from ..layers import ReLU
from .common import CudaLayer, check_device, check_same_shape, launch, register


@register("void(float32[::1], float32[::1])")
@cuda.jit
def relu_forward_kernel(x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = max(x[i], float32(0))


@register("void(float32[::1], float32[::1], float32[::1])")
@cuda.jit
def relu_backward_kernel(dout, out, dx):
    i = cuda.grid(1)
    if i < dout.size:
        dx[i] = dout[i] if out[i] > float32(0) else float32(0)


def relu_forward(x: Any, out: Any) -> Any:
    """``out = max(x, 0)`` for float32 device arrays of one shape. Returns ``out``."""
    for name, array in (("x", x), ("out", out)):
        check_device("relu_forward", name, array)
    check_same_shape("relu_forward", ("x", "out"), (x, out))
    grid, threads = launch(x.size)
    relu_forward_kernel[grid, threads](x.ravel(), out.ravel())
    return out


def relu_backward(dout: Any, out: Any, dx: Any) -> Any:
    """``dx = dout * (out > 0)``, ``out`` being the forward's output. Returns ``dx``."""
    for name, array in (("dout", dout), ("out", out), ("dx", dx)):
        check_device("relu_backward", name, array)
    check_same_shape("relu_backward", ("dout", "out", "dx"), (dout, out, dx))
    grid, threads = launch(dout.size)
    relu_backward_kernel[grid, threads](dout.ravel(), out.ravel(), dx.ravel())
    return dx


class ReLUCuda(CudaLayer):
    def __init__(self, layer: ReLU, in_shape: tuple[int, ...]) -> None:
        super().__init__(layer.name, in_shape, in_shape)

    def forward(self, x: Any, training: bool = True) -> Any:
        self.check_input(x)
        return relu_forward(x, self.out)

    def backward(self, dout: Any) -> Any:
        self.check_dout(dout)
        return relu_backward(dout, self.out, self.dx) if self.needs_input_grad else None
