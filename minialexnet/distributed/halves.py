"""Between a model-parallel net's halves and the one-process net's whole arrays: what
``ModelParallelNet.gather_full`` and ``scatter_full`` do for its checkpoints.

Every array of the split is cut on its first axis (output channels or units): rank r holds
rows [r·h, (r+1)·h) of the whole array's R·h. In C order those rows are one contiguous block
of the whole array, the r-th of R equal blocks, so MPI's gather to rank 0 (``Comm.igather``)
stacks the halves in rank order into the whole array, and its scatter (``Comm.iscatter``) cuts
the whole array back into them, with no reordering. Each half crosses the network once, to or
from rank 0, the one rank that writes and reads checkpoints; an all-gather or a broadcast would
also send rank 1 the whole net, which it would throw away (for the paper net, parameters and
velocities: ~490 MB per save).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .comm import DistributedError


def gather_halves(
    comm: Any, mine: Mapping[str, np.ndarray], arrays: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray] | None:
    """``arrays`` keyed and shaped like this rank's ``mine`` (its parameters) -> on rank 0 the
    whole arrays (every rank's half stacked on the first axis in rank order), None on the
    others. Every rank calls it; one deadline (``comm.wait``) covers every array."""
    local = check_like("gather_full", mine, arrays, comm.size, whole=False)
    sends = [np.ascontiguousarray(half) for half in local.values()]  # alive until the wait
    wholes = {
        name: np.empty(whole_shape(half, comm.size), half.dtype) if comm.is_root else None
        for name, half in zip(local, sends, strict=True)
    }
    requests = [
        comm.igather(half, whole) for half, whole in zip(sends, wholes.values(), strict=True)
    ]
    comm.wait(requests, "the gather of the net's halves to rank 0")
    return wholes if comm.is_root else None  # type: ignore[return-value]


def scatter_halves(
    comm: Any, mine: Mapping[str, np.ndarray], whole: Mapping[str, np.ndarray] | None
) -> dict[str, np.ndarray]:
    """The inverse of ``gather_halves``: rank 0's ``whole`` arrays (None on the others) ->
    this rank's halves, fresh arrays keyed and shaped like ``mine``. Rank 0 checks the arrays
    first, and every rank stops if they do not fit (rank 0 with the reason)."""
    problem = ""
    if comm.is_root:
        try:
            check_like("scatter_full", mine, whole, comm.size, whole=True)
        except (TypeError, ValueError) as error:
            problem = str(error)
    if comm.any(bool(problem), "the check of the arrays to scatter"):
        if problem:
            raise ValueError(problem)
        raise DistributedError("scatter_full: rank 0 refused the arrays it was given")
    halves = {name: np.empty(half.shape, half.dtype) for name, half in mine.items()}
    sends = [  # params() order on every rank; alive until the wait
        np.ascontiguousarray(whole[name]) if comm.is_root else None  # type: ignore[index]
        for name in mine
    ]
    requests = [
        comm.iscatter(send, half) for send, half in zip(sends, halves.values(), strict=True)
    ]
    comm.wait(requests, "the scatter of the net's halves from rank 0")
    return halves


def whole_shape(half: np.ndarray, ranks: int) -> tuple[int, ...]:
    """The one-process array's shape: ``ranks`` halves stacked on the first axis."""
    return (ranks * half.shape[0], *half.shape[1:])


def check_like(
    method: str, mine: Mapping[str, np.ndarray], arrays: Any, ranks: int, *, whole: bool
) -> Mapping[str, np.ndarray]:
    """``arrays`` has ``mine``'s names, each an array of its dtype shaped like this rank's half
    (``whole`` False) or like the whole (True); else an error naming ``method`` and the array.
    Returns them in ``mine``'s order, the same on every rank (the collectives' order)."""
    if not isinstance(arrays, Mapping) or set(arrays) != set(mine):
        given = sorted(arrays) if isinstance(arrays, Mapping) else type(arrays).__name__
        raise ValueError(f"{method}: expected arrays named {sorted(mine)}, got {given}")
    for name, half in mine.items():
        shape = whole_shape(half, ranks) if whole else half.shape
        array = arrays[name]
        if not isinstance(array, np.ndarray) or array.dtype != half.dtype:
            kind = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
            raise TypeError(f"{method}: {name} must be a {half.dtype} array, got {kind}")
        if array.shape != shape:
            raise ValueError(f"{method}: {name} must have shape {shape}, got {array.shape}")
    return {name: arrays[name] for name in mine}
