"""Memory-layout helpers: the engine stores NCHW arrays channels-last, behind NCHW views."""

from __future__ import annotations

import numpy as np


def channels_last(x: np.ndarray) -> np.ndarray:
    """x (N, C, H, W) as a C-contiguous (N, H, W, C) array: a free view when x is stored
    channels-last (what every engine layer returns), one copy otherwise (the network input,
    or an array a test built)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def nchw(x_cl: np.ndarray) -> np.ndarray:
    """The NCHW view of a channels-last (N, H, W, C) array (no copy)."""
    return x_cl.transpose(0, 3, 1, 2)


def flat(a: np.ndarray) -> np.ndarray | None:
    """a's elements as a 1-D view in memory order, or None if a is not one dense block (then
    the caller takes NumPy's general path). Works for any axis order: NCHW or channels-last."""
    order = sorted(range(a.ndim), key=lambda axis: -a.strides[axis])
    view = a.transpose(order)
    return view.reshape(-1) if view.flags.c_contiguous else None


def same_layout(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a and b have one shape and one axis order in memory (flat views line up)."""
    return a.shape == b.shape and a.strides == b.strides
