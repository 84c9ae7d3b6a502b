"""What the paper's two-rank split sends and how fast it steps (a benchmark, not a test):

    mpiexec -n 2 python -m minialexnet.distributed.model_parallel_bench [--variant paper]
        [--batch 8] [--traffic-batch 128] [--steps 3] [--warmup 1] [--threads T] [--json PATH]

Printed by rank 0:

* the traffic of one training step at ``--traffic-batch`` (float32), measured
  (``ModelParallelNet.bytes_sent`` after a forward and backward at that batch): per exchange
  point, one rank's half of the activation (per image and for the batch) and the bytes each
  rank sends forward (all-gather) and backward (reduce-scatter); the step's total beside what
  data-parallel training all-reduces, the whole gradient (a ring moves 2(N-1)/N of it per
  rank: all of it at N = 2);
* the time of a training step (``step.train_step``: forward, loss, backward, SGD update) at
  ``--batch`` on the 2 ranks, and of the one-process net on rank 0 alone (rank 1 waits) with
  ``--threads`` and with twice as many threads, i.e. the same cores used as processes or as
  threads; with the seconds the split spent in its exchanges (waiting for the other rank
  included). Each rank of the split updates only its half of the parameters.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np

from ..checkpoint import atomic_write_text
from ..model import build_alexnet
from ..optim import SGD
from ..step import train_step
from ..timing import limit_threads
from .bench import synthetic_batch
from .comm import Comm, DistributedError, report_failure, world
from .model_parallel import ModelParallelNet
from .projection import allreduce_sent


def median_step(net: Any, x: np.ndarray, y: np.ndarray, steps: int, warmup: int) -> float:
    """Median seconds of ``steps`` training steps of ``net`` (split or one-process: both step
    as ``step.train_step``, with SGD on the parameters the process holds), after ``warmup``."""
    optimizer = SGD(net)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        train_step(net, optimizer, x, y)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def traffic(split: ModelParallelNet, variant: str, batch: int) -> dict[str, Any]:
    """Per exchange point: one rank's half of the activation and the bytes this rank sent in
    one training step at ``batch`` (measured: its forward and backward)."""
    classes = 2 * split.layers["fc8"].out_features
    x, y = synthetic_batch(variant, batch, classes)
    train_step(split, SGD(split), x, y)
    return {
        e.into: {
            "half_per_image": list(e.block),
            "forward_bytes": e.forward_bytes,
            "backward_bytes": e.backward_bytes,
        }
        for e in split.exchanges
    }


def traffic_table(rows: dict[str, Any], batch: int, gradient_bytes: int, ranks: int) -> str:
    lines = [
        f"traffic per step at batch {batch}, float32, per rank:",
        f"{'into':8} {'half per image':>16} {'half, batch':>22} {'fwd MB':>8} {'bwd MB':>8}",
    ]
    total = 0
    for into, r in rows.items():
        shape = "x".join(map(str, r["half_per_image"]))
        lines.append(
            f"{into:8} {shape:>16} {f'{batch}x{shape}':>22} {r['forward_bytes'] / 1e6:8.2f} "
            f"{r['backward_bytes'] / 1e6:8.2f}"
        )
        total += r["forward_bytes"] + r["backward_bytes"]
    ring = allreduce_sent(gradient_bytes, ranks)
    lines.append(f"model parallel, per step: {total / 1e6:.1f} MB sent per rank")
    lines.append(
        f"data parallel, per step: the gradient, {gradient_bytes / 1e6:.1f} MB; a ring sends "
        f"{ring / 1e6:.1f} MB per rank on {ranks} ranks ({ring / total:.1f}x the split's)"
    )
    return "\n".join(lines)


def timings(comm: Comm, variant: str, batch: int, args: argparse.Namespace) -> dict[str, float]:
    """Median step seconds: the split on every rank, then the one-process net on rank 0."""
    split = ModelParallelNet(comm, variant=variant).train()
    x, y = synthetic_batch(variant, batch, 2 * split.layers["fc8"].out_features)
    figures = {"split": median_step(split, x, y, args.steps, args.warmup)}
    figures["split_exchange_s"] = sum(split.exchange_seconds.values())
    del split
    threads = args.threads or 1
    if comm.is_root:
        one = build_alexnet(variant).train()
        for t in (threads, 2 * threads):
            limit_threads(t, numba=True)
            figures[f"one_process_{t}_threads"] = median_step(one, x, y, args.steps, args.warmup)
        limit_threads(threads, numba=True)
    comm.bcast_buffer(np.zeros(1), "the end of rank 0's one-process timing")
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m minialexnet.distributed.model_parallel_bench")
    p.add_argument("--variant", default="paper")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--traffic-batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, help="BLAS and Numba threads per rank (default 1)")
    p.add_argument("--json", metavar="PATH", help="also write the figures here (rank 0)")
    args = p.parse_args(argv)
    for name in ("batch", "traffic_batch", "steps", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')}: expected an integer >= 1, got {value}")
    if args.warmup < 0:
        p.error(f"--warmup: expected an integer >= 0, got {args.warmup}")
    comm = world(p.prog)
    limit_threads(args.threads or 1, numba=True)
    try:
        split = ModelParallelNet(comm, variant=args.variant).train()
        rows = traffic(split, args.variant, args.traffic_batch)
        gradient_bytes = 2 * sum(p.nbytes for p in split.params().values())
        del split
        times = timings(comm, args.variant, args.batch, args)
    except (ValueError, DistributedError) as error:
        report_failure(comm, p.prog, error)
        return 2
    if comm.is_root:
        print(traffic_table(rows, args.traffic_batch, gradient_bytes, comm.size))
        t = args.threads or 1
        print(
            f"\ntraining step (forward, loss, backward, SGD) at batch {args.batch}, median of "
            f"{args.steps}:\n"
            f"  split on {comm.size} ranks x {t} thread(s): {times['split']:.3f} s "
            f"({times['split_exchange_s']:.3f} s in exchanges)\n"
            f"  one process x {t} thread(s): {times[f'one_process_{t}_threads']:.3f} s\n"
            f"  one process x {2 * t} threads: {times[f'one_process_{2 * t}_threads']:.3f} s"
        )
        if args.json:
            figures = {"traffic_batch": args.traffic_batch, "traffic": rows, "times": times}
            atomic_write_text(args.json, json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
