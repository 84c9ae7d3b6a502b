"""Element-wise non-linearities: ReLU (AlexNet's choice, §3.1) and tanh/sigmoid to compare with.

Each works on any shape and keeps it: x (...) -> out (...). Each local derivative sits next to
its forward, and each backward needs only the forward's output:
    ReLU     out = max(x, 0)           d out/dx = [out > 0]          (0 at x == 0, by choice)
    tanh     out = tanh(x)             d out/dx = 1 - out**2
    sigmoid  out = 1 / (1 + e**-x)     d out/dx = out * (1 - out)
ReLU does not saturate: its derivative is 1 wherever the unit is active, which is why the
paper's ReLU net reached 25% training error six times sooner than the tanh one.
Expected gradient-check relative error in float64: below 1e-7 (ReLU: exact away from 0).
"""

from __future__ import annotations

import numpy as np

from .base import Layer


class ElementwiseLayer(Layer):
    """A parameterless layer that keeps the shape: (N, D) FC activations or (N, C, H, W) maps."""

    input_ndim = (2, 4)
    input_axes = "ND or NCHW"


class ReLU(ElementwiseLayer):
    def _forward(self, x: np.ndarray) -> np.ndarray:
        # EXERCISE activations: ReLU forward, keeping what the backward needs.
        # hint: out = max(x, 0), same shape and dtype as x; cache the output.
        out = np.maximum(x, 0)
        self._cache = out
        return out
        # END EXERCISE

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        # EXERCISE activations: ReLU backward.
        # hint: the gradient passes where the forward's output was positive, elsewhere 0.
        return dout * (self._cache > 0)
        # END EXERCISE


class Tanh(ElementwiseLayer):
    def _forward(self, x: np.ndarray) -> np.ndarray:
        # EXERCISE activations: tanh forward.
        # hint: out = tanh(x); cache out, the backward needs only it.
        out = np.tanh(x)
        self._cache = out
        return out
        # END EXERCISE

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        # EXERCISE activations: tanh backward.
        # hint: d tanh(x)/dx = 1 - tanh(x)**2, written with the cached output.
        out = self._cache
        return dout * (1 - out * out)
        # END EXERCISE


class Sigmoid(ElementwiseLayer):
    def _forward(self, x: np.ndarray) -> np.ndarray:
        # EXERCISE activations: sigmoid forward that never overflows.
        # hint: 1 / (1 + exp(-x)) overflows for x << 0; sigmoid(x) = (1 + tanh(x / 2)) / 2 doesn't.
        half = x.dtype.type(0.5)
        out = half * (1 + np.tanh(half * x))
        self._cache = out
        return out
        # END EXERCISE

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        # EXERCISE activations: sigmoid backward.
        # hint: d sigmoid/dx = out * (1 - out), with out the cached forward output.
        out = self._cache
        return dout * out * (1 - out)
        # END EXERCISE
