"""The engine's ReLU: one parallel Numba pass over the array's memory, whatever its layout.

Same math as ``minialexnet.layers.activations.ReLU``: out = max(x, 0), dL/dx = dout where
out > 0. The array is walked in memory order (``layout.flat``), so a channels-last map stays
channels-last, and the output is a fresh array of x's layout. Tanh and Sigmoid are the
reference's own math (AlexNet uses neither by default), keeping nothing under ``no_grad``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..layers import ReLU as ReferenceReLU
from ..layers import Sigmoid as ReferenceSigmoid
from ..layers import Tanh as ReferenceTanh
from .layout import flat, same_layout
from .scratch import KeepsNothingUnderNoGrad

__all__ = ["ReLU", "Sigmoid", "Tanh"]

BLOCK = 1 << 14  # elements per parallel iteration: long vector loops, few iterations


@njit(parallel=True, cache=True)
def relu_forward(x, zero, out):  # pragma: no cover (compiled)
    n = x.shape[0]
    for block in prange((n + BLOCK - 1) // BLOCK):
        for i in range(block * BLOCK, min(n, (block + 1) * BLOCK)):
            out[i] = max(x[i], zero)  # zero of x's dtype: no float64 detour


@njit(parallel=True, cache=True)
def relu_backward(dout, out, zero, dx):  # pragma: no cover (compiled)
    n = out.shape[0]
    for block in prange((n + BLOCK - 1) // BLOCK):
        for i in range(block * BLOCK, min(n, (block + 1) * BLOCK)):
            dx[i] = dout[i] if out[i] > zero else zero


class ReLU(ReferenceReLU):
    """``minialexnet.layers.ReLU`` computed by the engine. Keeps only its output (the mask
    is out > 0), which the next layer holds anyway."""

    def _forward(self, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)  # fresh, in x's memory layout
        x_flat, out_flat = flat(x), flat(out)
        if x_flat is None or out_flat is None:  # an odd view a caller made: NumPy's way
            np.maximum(x, 0, out=out)
        else:
            relu_forward(x_flat, x.dtype.type(0), out_flat)
        self._cache = out if self.grad_enabled else None
        return out

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        out = self._cache
        dx = np.empty_like(out)  # fresh: returned
        if not same_layout(dout, out) or flat(dout) is None or flat(out) is None:
            np.multiply(dout, out > 0, out=dx)
        else:
            relu_backward(flat(dout), flat(out), out.dtype.type(0), flat(dx))
        return dx


class Tanh(KeepsNothingUnderNoGrad, ReferenceTanh):
    """``minialexnet.layers.Tanh`` as it is (not tuned)."""


class Sigmoid(KeepsNothingUnderNoGrad, ReferenceSigmoid):
    """``minialexnet.layers.Sigmoid`` as it is (not tuned)."""
