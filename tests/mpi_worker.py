"""One small training run for tests/test_distributed.py, launched by it under ``mpiexec -n N``
(data parallel over N ranks) or plain ``python`` (one process, no MPI).

    python tests/mpi_worker.py OUT [--distributed | --model-parallel] [--epochs E]
        [--resume CKPT] [--variant V] [--limit N] [--batch B] [--lr LR] [--engine E]
        [--mpi-timeout S] [--fail-rank R --fail-at K --fail kill|sleep|raise]

The run: the ``--variant`` net (``mini``) on the first ``--limit`` digits of each split
(float32), batch ``--batch`` (25, odd: uneven shards of 13 and 12 rows on 2 ranks),
``--epochs`` epochs, checkpoint in OUT; ``--model-parallel`` splits the net over 2 ranks
instead. ``--fail`` makes rank R, at its K-th step, kill itself (SIGKILL), sleep past the
deadline, or raise an exception that nothing catches. On every rank but 0, writing a file
raises (``tempfile.mkstemp``, which every atomic write of minialexnet goes through, is
replaced): rank 0 alone may write.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time

from minialexnet.distributed import data_parallel
from minialexnet.distributed.comm import report_failure, world
from minialexnet.train import RUN_ERRORS, TrainConfig, load_splits, train

LIMIT = 100  # images per split: 4 steps an epoch
BATCH = 25


def config(
    out: str,
    epochs: int,
    engine: str | None = None,
    variant: str = "mini",
    batch: int = BATCH,
    lr: float = TrainConfig.lr,
) -> TrainConfig:
    return TrainConfig(
        variant=variant, batch_size=batch, epochs=epochs, out=out, engine=engine, lr=lr
    )


def fail_at_step(rank: int, at: int, how: str) -> None:
    """Make this rank's ``at``-th data-parallel step kill the process or hang."""
    original = data_parallel.DataParallel.step
    count = 0

    def step(self, x, y):
        nonlocal count
        count += 1
        if count == at:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if how == "raise":  # a bug: an exception nothing catches
                raise RuntimeError(f"injected failure on rank {rank}")
            time.sleep(120)  # "sleep": far past the test's --mpi-timeout
        return original(self, x, y)

    data_parallel.DataParallel.step = step


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--distributed", action="store_true")
    p.add_argument("--model-parallel", action="store_true")
    p.add_argument("--variant", default="mini")
    p.add_argument("--limit", type=int, default=LIMIT)
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--resume")
    p.add_argument("--engine", help="the layers (default: the default engine, as in a copy)")
    p.add_argument("--mpi-timeout", type=float, default=60.0)
    p.add_argument("--fail-rank", type=int)
    p.add_argument("--fail-at", type=int)
    p.add_argument("--fail", choices=("kill", "sleep", "raise"))
    args = p.parse_args()
    parallel = args.distributed or args.model_parallel
    comm = world("--distributed", args.mpi_timeout) if parallel else None
    if comm is not None and not comm.is_root:

        def refuse(*_, **__):
            raise AssertionError(f"rank {comm.rank} wrote a file; rank 0 alone may")

        tempfile.mkstemp = refuse
    if comm is not None and args.fail and comm.rank == args.fail_rank:
        fail_at_step(comm.rank, args.fail_at, args.fail)
    cfg = config(args.out, args.epochs, args.engine, args.variant, args.batch, args.lr)
    try:
        train(
            cfg,
            splits=load_splits(cfg, limit=args.limit),
            progress=False,
            resume=args.resume,
            resumed_from=args.resume,
            comm=comm,
            model_parallel=args.model_parallel,
        )
    except RUN_ERRORS as error:  # as run_train does
        report_failure(comm, "mpi_worker", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
