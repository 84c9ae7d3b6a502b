"""The MPI communicator of a distributed run: buffer collectives, each waited on with a deadline.

A thin layer over mpi4py's ``COMM_WORLD`` (``world()`` returns it as a ``Comm``), for two reasons:

* **mpi4py is optional.** It is imported here, by ``world()``, only when a run asks for MPI
  (``--distributed``, ``--model-parallel``), never when minialexnet is imported; without it
  the run stops with one line naming the flag that asked and the install command
  (``MPIUnavailableError``).
* **No rank may hang.** Every collective is the non-blocking buffer form (``Iallreduce``,
  ``Ibcast``, ``Iallgatherv`` on NumPy arrays: no pickling, the bytes move as they are) and is
  waited on by ``wait``, which polls ``Testall`` until a deadline (``--mpi-timeout``). A rank
  that died or hung leaves the others' requests unanswered; the first to reach the deadline
  raises ``CollectiveTimeoutError`` naming the collective, and the run's entry point reports it
  with its rank ("train: rank 1: no answer from the other ranks for 300 s during the
  all-reduce of gradient bucket fc7..fc8: ...", ``report_failure``) and ends every rank
  (``abort``: ``MPI_Abort``). A blocking ``Allreduce`` would wait forever instead.

Threads: mpi4py initialises MPI when ``mpi4py.MPI`` is first imported, at the thread level in
``mpi4py.rc.thread_level`` (default "multiple"). Only the main thread calls MPI here (Numba's,
BLAS's and tqdm's threads never do), so ``world()`` asks for "funneled" (MPI_THREAD_FUNNELED,
which an MPI may implement without the locks "multiple" needs on every call).
Finalisation: mpi4py calls ``MPI_Finalize`` at interpreter exit (``mpi4py.rc.finalize``). A run
that ends normally reaches it on every rank; one that fails on some rank must not (it would wait
for ranks that are still computing), so the failing rank calls ``abort`` instead.

Progress: MPICH advances a non-blocking collective only inside MPI calls (unless its
asynchronous progress thread is turned on, ``MPIR_CVAR_ASYNC_PROGRESS=1``); ``poke`` is one
such call (a ``Testall`` that does not wait), for code that wants its all-reduces to move while
it computes (``data_parallel`` pokes after each layer's backward).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..layers.base import is_finite_number

INSTALL_HINT = 'pip install -e ".[mpi]"'
# --mpi-timeout's default: longer than anything a rank does between two collectives (a step
# of the full net on a slow core, rank 0's checkpoint write, Numba's first compile: ~30-50 s)
DEFAULT_TIMEOUT_S = 300.0
# The longest sleep between two polls of a pending collective: a wait ends at most this much
# after its collective, small beside a step (the mini net's: ~60 ms on 2 cores).
POLL_MAX_S = 2e-4
# MPI_Abort makes mpiexec kill every rank at once, and what the aborting rank printed last can
# be lost in the pipe to the launcher: a moment's pause lets the launcher forward the message.
ABORT_GRACE_S = 0.3


class DistributedError(RuntimeError):
    """A distributed run cannot go on (the entry point prints it in one line; ``abort``)."""


class MPIUnavailableError(DistributedError):
    """A run asked for MPI (``--distributed``, ``--model-parallel``) and mpi4py is missing."""


class CollectiveTimeoutError(DistributedError):
    """A collective got no answer from the other ranks before its deadline."""


def world(flag: str = "--distributed", timeout_s: float = DEFAULT_TIMEOUT_S) -> Comm:
    """The communicator of every rank of this run (``MPI.COMM_WORLD``), importing mpi4py (and so
    initialising MPI) on the first call. ``flag`` names the option that asked for MPI, for the
    message when mpi4py is missing; ``timeout_s`` is the deadline of every collective's wait.
    Under a plain ``python`` (no ``mpiexec``) this is a world of one rank."""
    try:
        import mpi4py

        mpi4py.rc.thread_level = "funneled"  # read when mpi4py.MPI is imported (first call)
        from mpi4py import MPI
    except ImportError:
        raise MPIUnavailableError(f"{flag} needs MPI: {INSTALL_HINT}") from None
    comm = Comm(MPI.COMM_WORLD, timeout_s)
    check_launcher(comm.size)
    if comm.size > 1:
        abort_on_uncaught_exceptions(comm)
    return comm


# Where launchers write how many processes they started and which one this is: MPICH's Hydra
# (and Intel MPI) PMI_SIZE / PMI_RANK, Open MPI's mpirun OMPI_COMM_WORLD_SIZE / _RANK, MVAPICH's
# MV2_COMM_WORLD_SIZE / _RANK.
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
LAUNCHER_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


def check_launcher(size: int) -> None:
    """Refuse a world smaller than the launcher started: an ``mpiexec`` of another MPI than the
    one mpi4py was built on (a system Open MPI first on PATH, mpi4py on the MPICH wheel; a venv
    not activated) starts N independent one-rank runs, each "rank 0", all writing one --out."""
    for variable in LAUNCHER_SIZE_VARIABLES:
        launched = os.environ.get(variable, "")
        if launched.isdigit() and int(launched) > size:
            raise DistributedError(
                f"mpiexec started {launched} processes ({variable}), but MPI sees a world of "
                f"{size}: the mpiexec is not the MPI mpi4py uses (activate the virtual "
                f"environment, or run the one beside its python: "
                f'"$(dirname "$(python -c \'import sys;print(sys.executable)\')")/mpiexec")'
            )


def launcher_rank() -> int:
    """This process's rank as its launcher numbered it (0 without a launcher): who reports an
    error found before MPI's world exists (an option, a missing mpi4py), which every process
    of the run finds alike."""
    for variable in LAUNCHER_RANK_VARIABLES:
        rank = os.environ.get(variable, "")
        if rank.isdigit():
            return int(rank)
    return 0


def abort_on_uncaught_exceptions(comm: Comm) -> None:
    """An exception that nothing catches on one rank (a bug) would leave the other ranks
    waiting in their next collective until its deadline: print it as Python does, then end
    every rank (``MPI_Abort``, status 1), as ``python -m mpi4py`` does."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, traceback: Any) -> None:
        previous(kind, error, traceback)
        sys.stderr.flush()
        time.sleep(ABORT_GRACE_S)
        comm.mpi.Abort(1)

    sys.excepthook = hook


class Comm:
    """An MPI communicator with deadline-bound collectives on NumPy buffers.

    ``rank`` (0 .. size-1), ``size`` and ``is_root`` (rank 0: the one that writes files and
    shows progress). ``timeout_s`` is how long ``wait`` (and every collective here) waits for
    the other ranks. ``mpi`` is mpi4py's communicator, for what this class does not wrap.
    """

    def __init__(self, mpi_comm: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        check_timeout(timeout_s)
        from mpi4py import MPI

        self.MPI = MPI
        self.mpi = mpi_comm
        self.rank: int = mpi_comm.Get_rank()
        self.size: int = mpi_comm.Get_size()
        self.timeout_s = float(timeout_s)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    # -- starting collectives (non-blocking: each returns a request for ``wait``) ----------
    def iallreduce(self, buffer: np.ndarray) -> Any:
        """Start summing ``buffer`` (C-contiguous) over all ranks, in place."""
        return self.mpi.Iallreduce(self.MPI.IN_PLACE, contiguous(buffer, "iallreduce"))

    def ibcast(self, buffer: np.ndarray, root: int = 0) -> Any:
        """Start copying rank ``root``'s ``buffer`` (C-contiguous) into every rank's, in place."""
        return self.mpi.Ibcast(contiguous(buffer, "ibcast"), root=root)

    def iallgatherv(self, send: np.ndarray, recv: np.ndarray, counts: Sequence[int]) -> Any:
        """Start gathering every rank's ``send`` into ``recv`` on every rank, rank r's rows at
        ``sum(counts[:r])``; ``counts[r]`` is rank r's number of rows (send's first axis)."""
        row = int(np.prod(recv.shape[1:], dtype=np.int64))
        if len(counts) != self.size or sum(counts) != recv.shape[0]:
            raise ValueError(
                f"iallgatherv: counts must be {self.size} row counts summing to recv's "
                f"{recv.shape[0]} rows, got {list(counts)}"
            )
        sizes = [int(c) * row for c in counts]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
        return self.mpi.Iallgatherv(
            contiguous(send, "iallgatherv"), [contiguous(recv, "iallgatherv"), (sizes, offsets)]
        )

    def ireduce_scatter_block(self, send: np.ndarray, recv: np.ndarray) -> Any:
        """Start the SUM over ranks of ``send``'s block r into rank r's ``recv``: ``send`` holds
        ``size`` equal blocks of ``recv.size`` elements one after another (block r first on
        axis 0, e.g. (size, *recv.shape)). Each rank receives only its own block of the sum."""
        self._check_blocks("ireduce_scatter_block", "send", send, recv)
        return self.mpi.Ireduce_scatter_block(
            contiguous(send, "ireduce_scatter_block"),
            contiguous(recv, "ireduce_scatter_block"),
            op=self.MPI.SUM,
        )

    def igather(self, send: np.ndarray, recv: np.ndarray | None, root: int = 0) -> Any:
        """Start gathering every rank's ``send`` (the same size on every rank) into ``recv`` on
        rank ``root`` only, in rank order: rank r's block at element r * send.size. ``recv``
        is None on the other ranks (they receive nothing)."""
        if self.rank == root:
            self._check_blocks("igather", "recv", recv, send)
            recv = contiguous(recv, "igather")
        return self.mpi.Igather(contiguous(send, "igather"), recv, root=root)

    def iscatter(self, send: np.ndarray | None, recv: np.ndarray, root: int = 0) -> Any:
        """The inverse of ``igather``: rank ``root``'s ``send`` cut into ``size`` equal blocks,
        block r into rank r's ``recv``; ``send`` is None on the other ranks."""
        if self.rank == root:
            self._check_blocks("iscatter", "send", send, recv)
            send = contiguous(send, "iscatter")
        return self.mpi.Iscatter(send, contiguous(recv, "iscatter"), root=root)

    def _check_blocks(self, method: str, name: str, whole: Any, block: np.ndarray) -> None:
        """``whole`` is an array of ``block``'s dtype with ``size`` times its elements: MPI
        would otherwise read or write past one of the two buffers."""
        if not isinstance(whole, np.ndarray) or whole.dtype != block.dtype:
            given = whole.dtype if isinstance(whole, np.ndarray) else type(whole).__name__
            raise ValueError(f"{method}: {name} must be a {block.dtype} array, got {given}")
        if whole.size != self.size * block.size:
            raise ValueError(
                f"{method}: {name} must hold {self.size} blocks of {block.size} elements "
                f"({self.size * block.size}), got {whole.size} (shape {whole.shape})"
            )

    # -- waiting, with the deadline --------------------------------------------------------
    def wait(self, requests: Sequence[Any], what: str, timeout_s: float | None = None) -> None:
        """Wait until every request is complete, polling ``Testall`` with a short sleep.

        Raises ``CollectiveTimeoutError`` after ``timeout_s`` seconds (default ``self.timeout_s``)
        naming ``what`` ("the all-reduce of gradient bucket fc7..fc8"); the caller then
        ``abort``s (``report_failure``, which names the rank). An MPI error while waiting (a
        peer whose death the MPI noticed) becomes the same error with the MPI's own message.
        """
        limit = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        pause = 1e-5
        try:
            while not self.MPI.Request.Testall(list(requests)):
                if time.monotonic() > deadline:
                    raise CollectiveTimeoutError(
                        f"no answer from the other ranks for {limit:g} s during {what}: a rank "
                        f"died or hung (--mpi-timeout sets how long to wait)"
                    )
                time.sleep(pause)
                pause = min(2 * pause, POLL_MAX_S)
        except self.MPI.Exception as error:
            raise CollectiveTimeoutError(
                f"MPI failed during {what} ({error}): a rank died"
            ) from None

    def poke(self, requests: Sequence[Any]) -> bool:
        """Let pending requests progress without waiting; True when all are complete."""
        return bool(self.MPI.Request.Testall(list(requests))) if requests else True

    # -- complete collectives (start + wait) -----------------------------------------------
    def allreduce_buffer(self, buffer: np.ndarray, what: str) -> np.ndarray:
        """Sum ``buffer`` over all ranks, in place, within the deadline; returns ``buffer``."""
        self.wait([self.iallreduce(buffer)], what)
        return buffer

    def bcast_buffer(self, buffer: np.ndarray, what: str, root: int = 0) -> np.ndarray:
        """Rank ``root``'s ``buffer`` into every rank's, in place, within the deadline."""
        self.wait([self.ibcast(buffer, root)], what)
        return buffer

    def any(self, flag: bool, what: str) -> bool:
        """True on every rank when ``flag`` is True on any rank (within the deadline)."""
        return bool(self.allreduce_buffer(np.array([int(flag)], dtype=np.int64), what)[0])

    def allgatherv(
        self, send: np.ndarray, recv: np.ndarray, counts: Sequence[int], what: str
    ) -> np.ndarray:
        """``iallgatherv`` within the deadline; returns ``recv``."""
        self.wait([self.iallgatherv(send, recv, counts)], what)
        return recv

    # -- ending ------------------------------------------------------------------------------
    def abort(self, message: str, code: int = 1) -> None:
        """Print ``message`` (stderr) and end every rank of the run with exit status ``code``
        (``MPI_Abort``; ``mpiexec`` then stops the others). Does not return."""
        print(message, file=sys.stderr, flush=True)
        sys.stdout.flush()
        time.sleep(ABORT_GRACE_S)
        self.mpi.Abort(code)


def world_if_asked(options: dict[str, Any]) -> tuple[Comm | None, bool]:
    """Take the CLI's ``distributed``, ``model_parallel`` and ``mpi_timeout`` out of
    ``options``: (the world, as ``world``, if either flag was given, else None — and mpi4py
    is not imported —; True for ``--model-parallel``)."""
    flags = [f for f in ("distributed", "model_parallel") if options.pop(f, False)]
    timeout_s = options.pop("mpi_timeout", None)
    if len(flags) == 2:
        raise ValueError("--distributed and --model-parallel: choose one (data or model parallel)")
    if timeout_s is not None and not flags:
        raise ValueError(
            f"--mpi-timeout: only with --distributed or --model-parallel, got {timeout_s:g} "
            f"without them"
        )
    timeout_s = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
    check_timeout(timeout_s)  # before MPI starts
    if not flags:
        return None, False
    return world("--" + flags[0].replace("_", "-"), timeout_s), flags == ["model_parallel"]


def report_failure(comm: Comm | None, command: str, error: BaseException) -> None:
    """Print ``error`` as ``command``'s one-line message. On one rank of several, name the
    rank and end every rank (``abort``; status 1 for a timeout, else 2): the others would
    wait for this one until their own deadline. Returns only in a run of one process. Without
    ``comm`` (an error before MPI's world, alike on every process ``mpiexec`` started) only the
    launcher's rank 0 prints it, once."""
    if comm is None or comm.size == 1:
        if comm is not None or launcher_rank() == 0:
            print(f"{command}: {error}", file=sys.stderr)
        return
    code = 1 if isinstance(error, CollectiveTimeoutError) else 2
    comm.abort(f"{command}: rank {comm.rank}: {error}", code)


def check_timeout(timeout_s: object) -> None:
    """Refuse a deadline that is not a finite number of seconds > 0 (``--mpi-timeout``)."""
    if not (is_finite_number(timeout_s) and timeout_s > 0):
        raise ValueError(f"--mpi-timeout: expected a number of seconds > 0, got {timeout_s!r}")


def contiguous(buffer: np.ndarray, what: str) -> np.ndarray:
    """``buffer`` itself if MPI can send it in place (a C-contiguous ndarray), else an error:
    a copy would be filled and then dropped, leaving the caller's array unchanged."""
    if not isinstance(buffer, np.ndarray) or not buffer.flags.c_contiguous:
        kind = type(buffer).__name__ if not isinstance(buffer, np.ndarray) else "non-contiguous"
        raise ValueError(f"{what}: the buffer must be a C-contiguous numpy array, got {kind}")
    return buffer
