"""The three kinds of step one rank of ``ModelParallelNet`` runs, in order, forward and back:
its own layers (``LayerStep``), its dropout on half of the units (``DropoutHalf``) and the
exchanges of activations with the other rank (``ActivationExchange``). ``model_parallel``'s
docstring says why each does what it does.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..layers import Layer
from ..layers.base import Shape
from .shard_dropout import ShardedDropout


class ActivationExchange:
    """Where the ranks swap halves: before ``into`` (forward: all-gather; backward:
    reduce-scatter of the summed gradient), or the logits (``into="logits"``: the backward
    takes this rank's columns, no communication). ``block`` is one rank's per-image shape."""

    def __init__(self, comm: Any, into: str, block: Shape) -> None:
        self.comm, self.into, self.block = comm, into, tuple(block)
        self.sums_gradient = into != "logits"
        self.forward_bytes = self.backward_bytes = 0
        self.seconds = 0.0  # in this exchange's collectives, the last forward + backward

    def forward(self, half: np.ndarray) -> np.ndarray:
        """(N, *block) -> (N, ranks * block[0], *block[1:]): every rank's half in rank order."""
        comm, n = self.comm, half.shape[0]
        send = np.ascontiguousarray(half)
        recv = np.empty((comm.size * n, *self.block), dtype=half.dtype)
        start = time.perf_counter()
        comm.allgatherv(send, recv, [n] * comm.size, f"the all-gather into {self.into}")
        self.seconds = time.perf_counter() - start
        self.forward_bytes, self.backward_bytes = (comm.size - 1) * send.nbytes, 0
        parts = recv.reshape(comm.size, n, *self.block)
        return np.concatenate(list(parts), axis=1)

    def backward(self, dfull: np.ndarray) -> np.ndarray:
        """dL/d(full input) (N, ranks * block[0], ...) -> dL/d(this rank's half) (N, *block):
        the sum over ranks of their partial gradients (reduce-scatter), or for the logits this
        rank's columns of the one gradient every rank holds."""
        comm, n = self.comm, dfull.shape[0]
        per_rank = dfull.reshape(n, comm.size, *self.block)
        if not self.sums_gradient:
            return np.ascontiguousarray(per_rank[:, comm.rank])
        send = np.ascontiguousarray(np.moveaxis(per_rank, 1, 0))  # (ranks, N, *block)
        recv = np.empty((n, *self.block), dtype=dfull.dtype)
        start = time.perf_counter()
        request = comm.ireduce_scatter_block(send, recv)
        comm.wait([request], f"the reduce-scatter of the gradient into {self.into}")
        self.seconds += time.perf_counter() - start
        self.backward_bytes = (comm.size - 1) * recv.nbytes
        return recv


class DropoutHalf:
    """A dropout layer on this rank's half of the units that draws the mask of all of them
    (the one-process mask) and keeps its own columns (``shard_dropout``): the module
    docstring's exactness."""

    def __init__(self, layer: Layer, rank: int, ranks: int) -> None:
        self.layer, self.rank, self.ranks = layer, rank, ranks
        self.sharded = ShardedDropout(layer, axis=1)

    def forward(self, half: np.ndarray) -> np.ndarray:
        width = half.shape[1]
        return self.sharded.forward(half, self.rank * width, self.ranks * width)

    def backward(self, dhalf: np.ndarray) -> np.ndarray:
        return self.sharded.backward(dhalf)


class LayerStep:
    """One of this rank's layers, run as ``Sequential`` runs it (no input checks)."""

    def __init__(self, layer: Layer) -> None:
        self.layer = layer

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.layer.forward_unchecked(x)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        return self.layer.backward_unchecked(dout)
