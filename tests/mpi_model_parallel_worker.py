"""One forward and backward of the paper's two-rank split, for tests/test_model_parallel.py,
launched by it under ``mpiexec -n 2``; rank 0 compares it with the one-process net.

    python tests/mpi_model_parallel_worker.py OUT.json [--dtype float32 float64] [--batch B]
        [--variant V] [--no-lrn] [--mpi-timeout S]

For each dtype: both ranks build ``ModelParallelNet(variant, seed=SEED)`` (dropout 0.5, in
training mode, so the masks are compared too; ``--no-lrn``: ``lrn=False``), run a forward on
the same batch, the loss and the backward; rank 0 builds ``build_alexnet(variant,
seed=SEED)`` and does the same. In float32 the split's convolutions run im2col, not Winograd. Rank 0
writes, per dtype, each array's largest difference relative to the one-process array's largest
magnitude (logits and every parameter gradient, gathered with ``gather_full``), whether the
gathered starting parameters equal the one-process ones exactly and survive ``scatter_full``
on both ranks, whether a ``scatter_full`` of arrays that do not fit stopped both ranks (and rank
0's message), both ranks' losses, and ``bytes_sent``. A failure on any rank is printed and ends
every rank.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from minialexnet.distributed.bench import synthetic_batch
from minialexnet.distributed.comm import DistributedError, report_failure, world
from minialexnet.distributed.model_parallel import ModelParallelNet
from minialexnet.layers import softmax_cross_entropy
from minialexnet.model import build_alexnet

SEED = 5  # of the weights
BATCH_SEED = 11


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want| (float64 arithmetic)."""
    scale = max(float(np.abs(want).max()), 1e-300)
    return float(np.abs(got.astype(np.float64) - want).max()) / scale


def refusal(split: ModelParallelNet, start: dict | None) -> str:
    """``scatter_full`` of rank 0's arrays with fc8.b one unit short: this rank's error message
    ("" if it went on)."""
    bad = {**start, "fc8.b": start["fc8.b"][:-1]} if split.comm.is_root else None
    try:
        split.scatter_full(bad)
    except (ValueError, DistributedError) as error:
        return str(error)
    return ""


def compare(comm, variant: str, n: int, dtype: np.dtype, lrn: bool | None) -> dict | None:
    split = ModelParallelNet(comm, variant=variant, seed=SEED, dtype=dtype, lrn=lrn).train()
    if dtype == np.float32:  # (the test's docstring says why)
        for layer in split.layers.values():
            if hasattr(layer, "use_winograd"):  # the fast engine's convolutions
                layer.use_winograd = False
    start = split.gather_full(split.params())
    classes = split.layers["fc8"].out_features * 2
    x, y = synthetic_batch(variant, n, classes, seed=BATCH_SEED, dtype=dtype)  # alike on every rank
    logits = split.forward(x)
    loss, dlogits = softmax_cross_entropy(logits, y)
    split.backward(dlogits)
    grads = split.gather_full(split.grads())
    losses = np.empty(2)
    comm.allgatherv(np.array([loss]), losses, [1, 1], "the gather of the losses")
    back = split.scatter_full(start)
    kept = all(np.array_equal(back[k], v) for k, v in split.params().items())
    refused = refusal(split, start)
    flags = np.empty(4)  # per rank: its halves came back intact, it stopped at the bad scatter
    comm.allgatherv(np.array([kept, bool(refused)], float), flags, [2, 2], "the gather of flags")
    if not comm.is_root:
        return None
    one = build_alexnet(variant, seed=SEED, dtype=dtype, lrn=lrn).train()
    one_logits = one.forward(x)
    one_loss, one_dlogits = softmax_cross_entropy(one_logits, y)
    one.backward(one_dlogits)
    return {
        "losses": losses.tolist(),
        "one_loss": one_loss,
        "same_start": all(np.array_equal(start[k], v) for k, v in one.params().items()),
        "scatter_kept_params": bool(flags[0::2].all()),
        "bad_scatter_stopped_both": bool(flags[1::2].all()),
        "bad_scatter_message": refused,
        "errors": {
            "logits": relative_error(logits, one_logits),
            **{k: relative_error(grads[k], g) for k, g in one.grads().items()},
        },
        "bytes_sent": split.bytes_sent,
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--dtype", nargs="+", default=["float32"])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--variant", default="paper")
    p.add_argument("--mpi-timeout", type=float, default=60.0)
    p.add_argument("--no-lrn", action="store_true")
    args = p.parse_args()
    comm = world("--model-parallel", args.mpi_timeout)
    try:
        results = {
            d: compare(comm, args.variant, args.batch, np.dtype(d), False if args.no_lrn else None)
            for d in args.dtype
        }
    except (ValueError, TypeError, DistributedError) as error:
        report_failure(comm, "mpi_model_parallel_worker", error)
        return 2
    if comm.is_root:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
