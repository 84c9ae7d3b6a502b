"""Dropout on this process's part of a tensor that several processes hold between them.

Data parallel holds rows of the batch (axis 0: ``data_parallel``), the paper's split holds
columns of the units (axis 1: ``model_parallel``). Either way the mask must be the one a single
process would draw for the whole tensor, or N processes would train another network than one:
so the layer runs on the whole tensor (this part in place, zeros elsewhere) and this process
keeps its part. That uses the layer's own mask code as it is, whatever it is, and leaves the
reference layer knowing nothing of processes. The cost: dropout's elementwise work on the whole
tensor, not the part; at fc6/fc7's (n, 4096) it is small beside the layers around it.
"""

from __future__ import annotations

import numpy as np

from ..layers import Layer


class ShardedDropout:
    """``layer`` (a Dropout) on a part of a larger tensor along ``axis``: ``forward(part,
    start, total)`` says where the part lies (indices [start, start + part.shape[axis]) of
    ``total``); ``backward(dpart)`` uses the same place."""

    def __init__(self, layer: Layer, axis: int) -> None:
        self.layer, self.axis = layer, axis
        self._place: tuple[int, int] | None = None  # (start, total) of the last forward

    def forward(self, part: np.ndarray, start: int, total: int) -> np.ndarray:
        if not 0 <= start <= total - part.shape[self.axis]:
            raise ValueError(
                f"{self.layer.name}: a part of {part.shape[self.axis]} along axis {self.axis} "
                f"must lie inside [0, {total}), got start {start}"
            )
        self._place = (start, total)
        return self.layer.forward_unchecked(self._whole(part))[self._mine(part)]

    def backward(self, dpart: np.ndarray) -> np.ndarray:
        if self._place is None:
            raise RuntimeError(f"{self.layer.name}: sharded backward called before forward")
        return self.layer.backward_unchecked(self._whole(dpart))[self._mine(dpart)]

    def _mine(self, part: np.ndarray) -> tuple[slice, ...]:
        """The index of this part inside the whole tensor."""
        start = self._place[0]
        return (slice(None),) * self.axis + (slice(start, start + part.shape[self.axis]),)

    def _whole(self, part: np.ndarray) -> np.ndarray:
        """The whole tensor with ``part`` in its place and zeros elsewhere."""
        shape = list(part.shape)
        shape[self.axis] = self._place[1]
        whole = np.zeros(shape, dtype=part.dtype)
        whole[self._mine(part)] = part
        return whole
