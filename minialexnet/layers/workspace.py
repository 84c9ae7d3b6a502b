"""Scratch memory the fast paths reuse from one call to the next.

Why: a fresh large array costs page faults the first time it is written (on these VMs a fresh
140 MB array took 24-283 ms to fill, a reused one 18 ms; see ALEXNET_FACTS "Performance
anchors"), and a buffer that is reused stays in the CPU cache and in the page tables.

A ``Workspace`` keeps one flat buffer per name and dtype, grown to the largest size asked for,
and hands out arrays of any shape that fit in it. Two kinds are used:
* ``layer.workspace``, scratch for the inside of one forward or one backward call. A
  ``Sequential`` gives all its layers one: they run one at a time, so the network needs the
  largest layer's scratch rather than the sum. Nothing carries over between calls: whoever
  takes an array writes every element it later reads (another layer may have used the memory).
* ``layer.kept``, a layer's own memory for what its forward keeps for its backward (LRN's
  r and q, max pooling's argmax): refilled by each forward, as the cache it replaces would be.

The rule that keeps this safe for callers: **an array from a workspace is never returned.**
Outputs, dL/dx and parameter gradients are always fresh arrays, so a caller may hold them
across later calls (``gradcheck`` holds dL/dx while it calls forward again; an optimizer reads
``grads`` after other layers' backward passes have run).
"""

from __future__ import annotations

import math

import numpy as np


class Workspace:
    """Named scratch buffers, each grown to the largest size requested and then reused."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, np.dtype], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A C-contiguous array of ``shape`` and ``dtype`` over the buffer ``name``.

        Its contents are undefined (whatever the last user left): write before you read.
        Two names never overlap, so one caller may hold several arrays at once.
        """
        key, size = (name, np.dtype(dtype)), math.prod(shape)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.size < size:
            buffer = np.empty(size, dtype=dtype)
            self._buffers[key] = buffer
        return buffer[:size].reshape(shape)

    def like(self, name: str, x: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
        """An array of x's shape and memory layout (a channels-last x gives a channels-last
        array), over the buffer ``name``; ``dtype`` defaults to x's. Contents as in ``get``."""
        # The axes from outermost to innermost in memory; ask for that shape, view it back.
        order = sorted(range(x.ndim), key=lambda axis: -x.strides[axis])
        buffer = self.get(name, tuple(x.shape[axis] for axis in order), dtype or x.dtype)
        return buffer.transpose(np.argsort(order))
