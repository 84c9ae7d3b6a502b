"""Timing and memory helpers shared by the CPU bench (``bench.py``) and the GPU one.

Each helper exists because a naive measurement gets something wrong:
* ``timed_calls`` / ``median_ms``: the first call of anything pays for first touches of fresh
  memory, lazy initialisation and (Numba) compilation, so one warm-up call is never timed;
  the median, not the mean, because one call slowed by another process says nothing about
  the code.
* ``quiet_wait``: a BLAS or OpenMP worker thread busy-waits for a while after its last task
  (OpenBLAS's up to ~0.1 s); a timed call started while it still spins shares a core with it.
* ``Spread``: a median alone hides how noisy the machine was; min and max show it.
* peak RSS (``reset_peak_rss``, ``peak_rss_mb``, ...): the kernel's high-water mark of the
  resident set is the only peak that counts every allocator (NumPy's, PyTorch's, Numba's);
  reset after the model is built, it charges a run with what the run itself needs.
* ``blas_threads``: how many threads NumPy's BLAS runs, so that every framework compared gets
  the same number.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

QUIET_S = 0.2  # idle time before each timed call, so no worker thread is still spinning


def quiet_wait(seconds: float = QUIET_S) -> None:
    """Idle ``seconds`` before a timed call: lets the worker threads of the previous call
    (BLAS, OpenMP, Numba) stop busy-waiting, so they do not compete with the timed one."""
    if seconds > 0:
        time.sleep(seconds)


def timed_calls(
    fn: Callable[[], Any], repeats: int, warmup: int = 1, quiet_s: float = 0.0
) -> list[float]:
    """Wall times in seconds of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls
    (first touches, lazy initialisation, compilation), each call preceded by
    ``quiet_wait(quiet_s)``. ``fn`` must return only when its work is done."""
    if repeats < 1:
        raise ValueError(f"timed_calls: repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        quiet_wait(quiet_s)
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after one warm-up call, in ms."""
    return statistics.median(timed_calls(fn, repeats)) * 1e3


@dataclass(frozen=True)
class Spread:
    """Min, median and max of some measurements, in the unit they were given in."""

    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("Spread.of: no values")
        return cls(float(min(values)), float(statistics.median(values)), float(max(values)))

    def scaled(self, factor: float) -> Spread:
        """The same spread in another unit, e.g. ``scaled(1e3)`` for seconds to ms."""
        return Spread(self.min * factor, self.median * factor, self.max * factor)


# ----------------------------------------------------------------------------------------
# Memory: resident set size, current and peak
# ----------------------------------------------------------------------------------------
def proc_status_mb(field: str) -> float | None:
    """A memory line of /proc/self/status (Linux) in MB, or None where there is none: the
    kernel's own accounting, which sees every allocator in the process."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # the kernel reports kB
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Current resident set size in MB (elsewhere than Linux: the peak so far)."""
    return proc_status_mb("VmRSS") or peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size in MB. VmHWM first: ``ru_maxrss`` also counts the parent's
    memory when the child was started by vfork + exec, as ``subprocess`` does."""
    hwm = proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    scale = 2**20 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter to the current RSS (Linux >= 4.0), so that a later
    ``peak_rss_mb`` sees only what came after; False where it cannot (the peak then includes
    everything before)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def release_freed_heap() -> None:
    """Ask glibc to return freed heap memory to the system (``malloc_trim``), so that memory
    freed after building the model (temporaries, the PyTorch child's NumPy template) is not
    counted as in use. A no-op where there is no glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# ----------------------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------------------
def blas_threads() -> int:
    """The threads OpenBLAS uses: OPENBLAS_NUM_THREADS or OMP_NUM_THREADS when set, else the
    CPUs this process may run on. The bench gives every framework this many, so that a
    comparison is never one thread against several."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def one_thread(*, numba: bool) -> None:
    """Run BLAS on one thread for the rest of the process, and with ``numba`` also every other
    thread pool and, where the fast engine is installed, Numba (``limit_threads(1)``). For the
    lessons' small nets: their matrices are too small to share among cores, and on a busy 2-core
    machine the idle threads spin (a lesson's epoch measured 3 CPU-seconds on one thread, up to
    58 on two). Leave ``numba`` off where the fast engine's kernels still gain from a second core
    (lesson 05's trainings: 156 s alone with them on two threads, about 185 s on one)."""
    limit_threads(1, numba=numba)


def limit_threads(threads: int, *, numba: bool) -> None:
    """Run BLAS on ``threads`` threads for the rest of the process, and with ``numba`` also
    every other thread pool and, where the fast engine is installed, Numba (the MPI benchmarks'
    ``--threads``: the same cores used as ranks or as threads). A student copy has neither the
    fast engine nor Numba."""
    from threadpoolctl import threadpool_limits

    from .model import is_real_package

    threadpool_limits(threads, user_api=None if numba else "blas")  # applied now, for good
    if numba and is_real_package("minialexnet.fast"):
        import numba as numba_module

        numba_module.set_num_threads(threads)


def blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's description of each BLAS loaded in this process (library, version,
    kernels, threads); empty where threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [i for i in threadpool_info() if i.get("user_api") == "blas"]
