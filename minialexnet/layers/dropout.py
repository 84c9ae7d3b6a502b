"""Dropout (AlexNet §4.2), in the paper's form and in the inverted form that frameworks use.

Shapes: x (N, D) or (N, C, H, W) -> out of the same shape. p is the probability to DROP a unit.

    mode="paper"     training: out = x * mask          test: out = x * (1 - p)
    mode="inverted"  training: out = x * mask / (1-p)  test: out = x
with mask[i] ~ Bernoulli(1 - p). Both give every unit the same expected value in training as
at test time; "inverted" puts the scaling in training so that inference is untouched.

Backward (training): dL/dx = dL/dout * mask (times 1/(1-p) when inverted), using the very mask
the forward drew. At test time the layer is a constant scale and so is its gradient.
The mask comes from the layer's own generator, seeded at construction: the same seed gives
the same sequence of masks. ``reseed`` restarts it (the gradient check uses this so that the
function it differentiates draws one fixed mask).
Expected gradient-check relative error in float64: below 1e-7 (the layer is linear in x).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .activations import ElementwiseLayer
from .base import check_positive_int, check_real

DropoutMode = Literal["paper", "inverted"]


class Dropout(ElementwiseLayer):
    """Zero each unit with probability ``p`` in training; ``mode`` places the 1-p scaling."""

    def __init__(self, p: float = 0.5, mode: DropoutMode = "paper", seed: int = 0) -> None:
        super().__init__()
        self.p = check_real(self.name, "p", p, low=0, high=1)  # p = 1 would drop everything
        if mode not in ("paper", "inverted"):
            raise ValueError(f"{self.name}: mode must be 'paper' or 'inverted', got {mode!r}")
        self.mode = mode
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the mask generator: the next masks repeat those drawn after the same seed."""
        self.rng = np.random.default_rng(check_positive_int(self.name, "seed", seed, minimum=0))

    def _forward(self, x: np.ndarray) -> np.ndarray:
        # EXERCISE dropout: the forward in both modes, training and test.
        # hint: training: mask = self.rng.random(x.shape) < 1 - p (so the seed reproduces it),
        # hint: times 1/(1-p) when inverted; test: x * (1-p) (paper) or x (inverted). Keep dtype.
        t = x.dtype.type
        keep = 1.0 - self.p
        if not self.training:
            scale = t(keep) if self.mode == "paper" else t(1)
            self._cache = scale
            return x * scale
        mask = (self.rng.random(x.shape) < keep).astype(x.dtype)
        if self.mode == "inverted":
            mask *= t(1 / keep)
        self._cache = mask
        return x * mask
        # END EXERCISE

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        # EXERCISE dropout: the backward.
        # hint: the forward multiplied x by a mask (or a constant): multiply dout by the same.
        return dout * self._cache  # the forward's mask (training) or constant scale (test)
        # END EXERCISE

    def __repr__(self) -> str:
        return f"Dropout(p={self.p}, mode={self.mode!r})"
