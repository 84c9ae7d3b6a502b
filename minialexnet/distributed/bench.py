"""How fast data-parallel training runs and where its time goes (a benchmark, not a test):

    mpiexec -n N python -m minialexnet.distributed.bench [--variant mini ungrouped]
        [--batch 64 32] [--steps 5] [--warmup 2] [--threads T] [--sizes 0.000008 62 250]
        [--json PATH]

A module that ``mpiexec`` launches, not a flag of ``python -m minialexnet bench``: MPI ranks are
started together by ``mpiexec`` from outside, while ``bench`` runs each measurement in a child
process of its own, one after the other; the two do not mix.

Measured with the ranks it was launched on, printed by rank 0:

* per ``--variant`` (at its ``--batch``, the GLOBAL batch: N ranks get batch/N images each):
  the time of a data-parallel training step (``DataParallel.step``: forward of this rank's
  rows, the logits' gather, the backward with each gradient bucket's ``Iallreduce`` started as
  its layers finish, SGD) on synthetic images, after ``--warmup`` untimed steps: min / median /
  max over ``--steps`` steps and steps/s at the median. Where the time went (medians of
  ``StepTimes``): forward, backward (the all-reduces run inside it, where MPI gets to progress
  them), wait (the communication the backward did not hide), update. Bytes per step: the whole
  gradient, each rank's contribution to the all-reduce; a ring all-reduce sends (and receives)
  2(N-1)/N of it per rank. Rank 0's clock: a step ends with every rank's gradient, so all ranks
  end it together.
* the raw ``Allreduce`` (SUM of float32 buffers of ``--sizes`` MB, 10^6 bytes): min / median
  time and the bus bandwidth 2(N-1)/N · S / t, what each rank's link carried per second in a
  ring; the tiny size gives the latency (α of ``distributed.projection``'s model).

Threads: ``--threads T`` runs BLAS (threadpoolctl) and Numba on T threads in each rank. On a
machine with C cores, compare 1 rank × 1 thread, N ranks × 1 thread each (N ≤ C) and 1 rank × N
threads: the same cores used by processes or by threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..checkpoint import atomic_write_text
from ..model import build_alexnet, input_size
from ..optim import SGD
from ..timing import Spread, limit_threads
from .comm import Comm, DistributedError, report_failure, world
from .data_parallel import DataParallel
from .projection import allreduce_sent


@dataclass
class StepFigures:
    variant: str
    batch: int
    ranks: int
    threads: int | None
    step_s: Spread
    forward_s: float
    backward_s: float
    wait_s: float
    update_s: float
    gradient_bytes: int
    ring_bytes_per_rank: float


@dataclass
class AllreduceFigures:
    ranks: int
    bytes: int
    time_s: Spread
    bus_bandwidth_gb_s: float  # 2(N-1)/N · bytes / median time, in 10^9 bytes/s


def synthetic_batch(
    variant: str, batch: int, num_classes: int, seed: int = 0, dtype: Any = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` standard-normal images of ``variant``'s input size and labels below
    ``num_classes``, from one ``seed``: the same on every rank, so each rank can take its rows
    (or its half) of one global batch without sending any.

    Returns: images (batch, 3, S, S) of ``dtype`` (drawn in float64, then cast, so float32 and
    float64 batches hold the same values to rounding) and int64 labels (batch,)."""
    rng = np.random.default_rng(seed)
    side = input_size(variant)
    images = rng.standard_normal((batch, 3, side, side)).astype(dtype)
    return images, rng.integers(0, num_classes, batch)


def time_steps(
    comm: Comm, variant: str, batch: int, steps: int, warmup: int, threads: int | None
) -> StepFigures:
    """Data-parallel steps of ``variant`` at global batch ``batch`` (module docstring)."""
    model = build_alexnet(variant)
    parallel = DataParallel(model, SGD(model), comm)
    x, y = synthetic_batch(variant, batch, model.layers["fc8"].params["b"].size)
    times, phases = [], []
    for i in range(warmup + steps):
        start = time.perf_counter()
        parallel.step(x, y)
        if i >= warmup:
            times.append(time.perf_counter() - start)
            phases.append(parallel.times)
    median = lambda name: statistics.median(getattr(p, name) for p in phases)  # noqa: E731
    return StepFigures(
        variant,
        batch,
        comm.size,
        threads,
        Spread.of(times),
        median("forward"),
        median("backward"),
        median("wait"),
        median("update"),
        parallel.bytes_per_step,
        allreduce_sent(parallel.bytes_per_step, comm.size),
    )


def time_allreduce(comm: Comm, megabytes: float, repeats: int = 5) -> AllreduceFigures:
    """The all-reduce (SUM, in place) of a float32 buffer of ``megabytes`` × 10^6 bytes, timed
    as MPI's own: started and then waited on by ``Request.Wait``, not ``Comm.wait``, whose
    polling sleeps (up to ``comm.POLL_MAX_S``) would be counted in a small buffer's latency. The
    ranks line up first with a barrier that ``Comm.wait``'s deadline guards, so a rank that died
    or hung ends the benchmark (``CollectiveTimeoutError``) instead of hanging it."""
    buffer = np.ones(max(1, round(megabytes * 1e6 / 4)), dtype=np.float32)
    times = []
    for i in range(repeats + 1):  # the first touches the buffer's pages: untimed
        comm.wait([comm.mpi.Ibarrier()], "the barrier before a timed all-reduce")
        start = time.perf_counter()
        comm.iallreduce(buffer).Wait()  # the barrier showed every rank alive and here
        if i:
            times.append(time.perf_counter() - start)
    spread = Spread.of(times)
    bandwidth = allreduce_sent(buffer.nbytes, comm.size) / spread.median / 1e9
    return AllreduceFigures(comm.size, buffer.nbytes, spread, bandwidth)


def step_table(rows: list[StepFigures]) -> str:
    head = (
        f"{'variant':10} {'batch':>5} {'ranks':>5} {'thr':>3}  {'step s min/med/max':>20} "
        f"{'steps/s':>7}  {'fwd':>6} {'bwd':>6} {'wait':>6} {'upd':>6}  {'grad MB':>8} "
        f"{'ring MB/rank':>12}"
    )
    lines = [head]
    for r in rows:
        s = r.step_s
        lines.append(
            f"{r.variant:10} {r.batch:5d} {r.ranks:5d} {r.threads or '-':>3}  "
            f"{s.min:6.3f}/{s.median:6.3f}/{s.max:6.3f} {1 / s.median:7.2f}  "
            f"{r.forward_s:6.3f} {r.backward_s:6.3f} {r.wait_s:6.3f} {r.update_s:6.3f}  "
            f"{r.gradient_bytes / 1e6:8.1f} {r.ring_bytes_per_rank / 1e6:12.1f}"
        )
    return "\n".join(lines)


def allreduce_table(rows: list[AllreduceFigures]) -> str:
    lines = [f"{'ranks':>5} {'MB':>10}  {'time ms min/med/max':>24}  {'bus GB/s':>8}"]
    for r in rows:
        t = r.time_s.scaled(1e3)
        lines.append(
            f"{r.ranks:5d} {r.bytes / 1e6:10.6f}  {t.min:7.3f}/{t.median:7.3f}/{t.max:8.3f}  "
            f"{r.bus_bandwidth_gb_s:8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m minialexnet.distributed.bench")
    p.add_argument("--variant", nargs="+", default=["mini", "ungrouped"])
    p.add_argument("--batch", nargs="+", type=int, default=[64, 32], help="global, per variant")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, help="BLAS and Numba threads per rank")
    p.add_argument("--sizes", nargs="+", type=float, default=[8e-6, 62, 250], help="MB")
    p.add_argument("--json", metavar="PATH", help="also write the figures here (rank 0)")
    args = p.parse_args(argv)
    if len(args.batch) != len(args.variant):
        p.error(f"--batch: one per --variant ({len(args.variant)}), got {len(args.batch)}")
    for name in ("steps", "warmup", "threads"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            p.error(f"--{name}: expected an integer >= {0 if name == 'warmup' else 1}, got {value}")
    comm = world("python -m minialexnet.distributed.bench")
    if args.threads is not None:
        limit_threads(args.threads, numba=True)
    try:
        steps = [
            time_steps(comm, v, b, args.steps, args.warmup, args.threads)
            for v, b in zip(args.variant, args.batch, strict=True)
        ]
        reduces = [time_allreduce(comm, mb) for mb in args.sizes]
    except (ValueError, DistributedError) as error:  # a bad variant, a rank gone
        report_failure(comm, p.prog, error)
        return 2
    if comm.is_root:
        print(step_table(steps) + "\n\n" + allreduce_table(reduces))
        if args.json:
            figures: dict[str, Any] = {
                "steps": [asdict(s) for s in steps],
                "allreduce": [asdict(r) for r in reduces],
            }
            atomic_write_text(args.json, json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
