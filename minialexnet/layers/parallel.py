"""Running a fast path on every core: the batch cut into parts, one thread per part.

Why threads help in Python here: NumPy releases the GIL inside its element-wise loops and
copies, so two threads, each running NumPy operations on its own part of a batch, run on two
cores at once. The matmuls are multi-threaded already (BLAS); this is for the work around them
that NumPy runs on one core (LRN and max pooling), whose math is independent per image.

Each part writes only its own images' rows of preallocated output arrays, so the parts never
touch the same memory. Small arrays run in the calling thread: a handoff costs tens of
microseconds, more than it saves below ``MIN_ELEMENTS``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

MIN_ELEMENTS = 1 << 18  # 262,144 values: about 1 ms of element-wise work

_executor: ThreadPoolExecutor | None = None


def num_threads() -> int:
    """OPENBLAS_NUM_THREADS or OMP_NUM_THREADS when set (one setting then governs the BLAS and
    these parts alike, which is what a fair benchmark needs), else the CPUs we may run on."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def over_batch(fn: Callable[[slice], object], N: int, elements: int) -> None:
    """Call ``fn(part)`` for consecutive slices ``part`` covering images 0..N-1, in parallel.

    ``elements`` is the size of the work (e.g. ``x.size``); below ``MIN_ELEMENTS`` a single
    call ``fn(slice(0, N))`` runs here. Returns when every part is done; an exception raised by
    a part is raised here.
    """
    global _executor
    parts = min(num_threads(), N) if elements >= MIN_ELEMENTS else 1
    if parts <= 1:
        fn(slice(0, N))
        return
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="minialexnet")
    bounds = [N * i // parts for i in range(parts + 1)]
    futures = [_executor.submit(fn, slice(bounds[i], bounds[i + 1])) for i in range(1, parts)]
    fn(slice(bounds[0], bounds[1]))  # the calling thread takes the first part itself
    for future in futures:
        future.result()


def _forget_executor_after_fork() -> None:
    # A forked child inherits the executor object but not its threads: start a new one there.
    global _executor
    _executor = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_executor_after_fork)
