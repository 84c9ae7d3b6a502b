"""Scratch arrays a layer keeps from one call to the next, so the fast paths allocate less.

Why: a fresh large array costs page faults the first time it is written (on these VMs a fresh
140 MB array took 24-283 ms to fill, a reused one 18 ms; see ALEXNET_FACTS "Performance
anchors"), and a buffer small enough to stay in the CPU cache is faster to fill and read back.

The rule that keeps this safe: a workspace array is **never returned** to the caller and never
stored in ``grads``. Outputs, dL/dx and parameter gradients are always fresh arrays, so a caller
may hold them across later calls (``gradcheck`` holds dL/dx while it calls forward again; an
optimizer reads ``grads`` after the next layer's backward has run). Only the intermediate
arrays a layer uses inside one forward or one backward live here.
"""

from __future__ import annotations

import numpy as np


class Workspace:
    """Named scratch arrays, reallocated only when the requested shape or dtype changes."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A C-contiguous array of ``shape`` and ``dtype``; zero-filled when newly allocated.

        The contents are whatever the last user left, except on allocation (zeros): callers
        that rely on zeros (the padding border of ``pad_channels_last``) never write there.
        """
        array = self._arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = np.zeros(shape, dtype=dtype)
            self._arrays[name] = array
        return array
