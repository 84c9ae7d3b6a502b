"""The engine's dropout: the reference's own, keeping nothing under ``no_grad``.

It must draw the very same masks from the same generator (``self.rng.random(x.shape) <
1 - p``) so that both engines train the same network; at fc6/fc7's (N, 4096) it is cheap.
"""

from __future__ import annotations

from ..layers import Dropout as ReferenceDropout
from .scratch import KeepsNothingUnderNoGrad


class Dropout(KeepsNothingUnderNoGrad, ReferenceDropout):
    """``minialexnet.layers.Dropout`` as it is (not tuned)."""
