"""Scratch memory that the engine's layers reuse from one call to the next.

A fresh large array costs page faults each time it is first written (glibc hands arrays over
32 MB straight to mmap, and gives them back to the kernel when they are freed); a reused one
stays mapped and, when small enough, in the cache. ``Scratch`` keeps one flat buffer per name
and dtype, grown to the largest size asked for.

Two kinds of owner:
* the network's shared scratch (``share_scratch``): the im2col matrix or Winograd's
  transformed tiles (one buffer, "chunk": a layer uses one or the other), the transformed
  filters, the dW partial sums. Layers run one at a time, so the network needs the largest
  layer's scratch rather than the sum. Nothing carries over between calls: whoever takes an
  array writes every element it later reads.
* a layer's own buffers: what its forward keeps for its backward (max pooling's argmax) and
  the parameter gradients, refilled by each call.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SCRATCH_ATTRIBUTE = "_fast_scratch"  # where a network keeps the scratch its layers share


class Scratch:
    """Named buffers, each grown to the largest size requested and then reused."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, np.dtype], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A C-contiguous array of ``shape`` over the buffer ``name``. Its contents are whatever
        the last user left: write before you read. Two names never overlap."""
        key, size = (name, np.dtype(dtype)), math.prod(shape)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.size < size:
            self._buffers.pop(key, None)  # let the old one go before the larger one is made
            buffer = np.empty(size, dtype=dtype)
            self._buffers[key] = buffer
        return buffer[:size].reshape(shape)

    def pair(
        self, name: str, first: tuple[int, ...], second: tuple[int, ...], dtype: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Two non-overlapping arrays over one buffer ``name`` (e.g. Winograd's V and M, which
        share the buffer that im2col's cols use: a layer needs one or the other)."""
        size = math.prod(first)
        flat = self.get(name, (size + math.prod(second),), dtype)
        return flat[:size].reshape(first), flat[size:].reshape(second)

    def poison(self) -> None:
        """Fill every buffer with NaN (tests: a value read before it is written shows up)."""
        for buffer in self._buffers.values():
            buffer.fill(np.nan if buffer.dtype.kind == "f" else 255)

    def nbytes(self) -> int:
        return sum(b.nbytes for b in self._buffers.values())


class KeepsNothingUnderNoGrad:
    """Mixin for a reference layer the engine takes as it is: under ``no_grad`` its forward
    drops what it kept (the engine's rule: an inference forward keeps nothing)."""

    def _forward(self, x: np.ndarray) -> np.ndarray:
        out = super()._forward(x)  # type: ignore[misc]
        if not self.grad_enabled:  # type: ignore[attr-defined]
            self._cache = None
        return out


class ScratchUser:
    """Mixin for engine layers that take scratch: a private one until a network shares its."""

    _scratch: Scratch | None = None

    @property
    def scratch(self) -> Scratch:
        if self._scratch is None:
            self._scratch = Scratch()
        return self._scratch

    def share_scratch(self, model: object) -> None:
        """Use the scratch kept on ``model`` (created on first use): ``Sequential`` calls this
        for each of its layers, so they all draw on one set of buffers."""
        shared = getattr(model, SCRATCH_ATTRIBUTE, None)
        if shared is None:
            shared = Scratch()
            setattr(model, SCRATCH_ATTRIBUTE, shared)
        self._scratch = shared


def chunk_plan(N: int, bytes_per_image: int, limit: int) -> list[tuple[int, int]]:
    """Images 0..N-1 in ``(start, stop)`` runs of at most ``limit`` bytes of scratch each (or
    one image), as even as possible: 8 images at 3 per chunk run as 3, 3, 2."""
    per_chunk = max(1, limit // max(1, bytes_per_image))
    step = -(-N // -(-N // per_chunk))
    return [(n0, min(N, n0 + step)) for n0 in range(0, N, step)]
