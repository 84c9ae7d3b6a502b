"""Element-wise non-linearities: ReLU (AlexNet's choice, §3.1) and tanh/sigmoid to compare with.

Each works on any shape and keeps it: x (...) -> out (...). Each local derivative sits next to
its forward, and each backward needs only what its forward kept:
    ReLU     out = max(x, 0)           d out/dx = [out > 0]          (0 at x == 0, by choice)
    tanh     out = tanh(x)             d out/dx = 1 - out**2
    sigmoid  out = 1 / (1 + e**-x)     d out/dx = out * (1 - out) = e / (1 + e)**2, e = e**-|x|
Sigmoid is computed from e = exp(-|x|), which is in (0, 1] and so never overflows:
out = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0. Both branches keep the relative
precision of their tail: at x = -40 the output is 4.2e-18, where 0.5 * (1 + tanh(x / 2))
rounds to 0. The derivative e / (1 + e)**2 is precise in both tails too, where
out * (1 - out) is 0 as soon as out rounds to 1 (x > 37 in float64).
ReLU does not saturate: its derivative is 1 wherever the unit is active, the reason the
paper gives for its ReLU net reaching 25% training error six times sooner than the tanh one
(lesson 03 measures what that does and does not show at small scale).
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
        # EXERCISE activations: sigmoid forward that never overflows and keeps both tails precise.
        # hint: e = exp(-|x|) is in (0, 1]: out = 1 / (1 + e) where x >= 0, e / (1 + e) where
        # hint: x < 0 (np.where). Cache e: the backward needs only it.
        e = np.exp(-np.abs(x))
        out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        self._cache = e
        return out
        # END EXERCISE

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        # EXERCISE activations: sigmoid backward, precise in both tails.
        # hint: d sigmoid/dx = out * (1 - out) = e / (1 + e)**2 with the cached e = exp(-|x|)
        # hint: (out * (1 - out) is 0 once out rounds to 1).
        e = self._cache
        return dout * (e / ((1 + e) * (1 + e)))
        # END EXERCISE
