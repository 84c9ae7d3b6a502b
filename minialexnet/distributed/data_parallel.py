"""Data-parallel training over MPI: every rank trains the whole network on its rows of each batch.

``mpiexec -n N python -m minialexnet train --distributed`` runs N copies of one run. Each rank

1. builds the same network from the same seed and draws the same global batch order and
   augmentation (the Trainer's generator is seeded alike on every rank; ``--batch-size`` is the
   GLOBAL batch, so the run is the one-process run). The cost: every rank augments (crops,
   flips, colours) the whole global batch and then keeps its rows, so augmentation does not
   get faster with more ranks; drawing the random parameters for all n and augmenting only
   one's rows would, at the price of a Preprocessor that augments a batch by rows;
2. runs the forward on its contiguous rows [r·n/N, (r+1)·n/N) of the batch (``shard_rows``; a
   batch that N does not divide gives uneven shards, each weighted by its count below). Dropout
   draws the mask of the whole batch and keeps its rows (``shard_dropout.ShardedDropout``,
   axis 0), so the same seed gives the same masks as one process;
3. gathers every rank's logits (``Iallgatherv``, n × classes numbers) and computes the loss of
   the whole batch on every rank. Its gradient, dL/dlogits = (softmax − onehot) / n, is taken
   at this rank's rows: that is the local gradient scaled by n_local / n, so the SUM over ranks
   of the local parameter gradients is the one-process gradient of the global mean loss;
4. runs ``Sequential.backward``, whose after-layer hook starts the sum of each gradient
   bucket (``Iallreduce``, SUM, in place on one flat buffer) as soon as the bucket's layers
   are done — fc8 first, conv1 last — so each all-reduce overlaps the backward of the layers
   before it (``make_buckets`` says how the buckets are cut; the last one, conv1's, is never
   hidden). Every layer's gradient arrays are
   VIEWS into the buckets: the fast engine writes dW in place into the arrays it is given
   (``fast/conv.py``'s ``_grad_buffers``, ``fast/linear.py``), so nothing is copied; the
   reference engine makes new arrays each backward, which are copied into the bucket (one
   memcpy of the gradient per step);
5. waits for every bucket (each with the deadline of ``comm.wait``) and runs the paper's SGD
   (momentum, weight decay) once, on the summed gradients.

Why the ranks stay identical without exchanging parameters: the summed gradient is the same
array on every rank (MPICH's all-reduce algorithms — recursive doubling, reduce-scatter plus
all-gather, ring — give every rank the same result: each element is either combined by one rank
and copied to the others, or combined as a + b on one rank and b + a on the other, which IEEE
addition makes equal), and the SGD rule, the learning-rate schedule (driven by the validation
error, all-reduced too) and every generator then evolve alike. AlexNet has no BatchNorm (its
LRN is per image), so the gradient sum is the only cross-rank state: nothing else needs
synchronising. The start is made identical by broadcasting rank 0's parameters and velocities
(``broadcast_state``), and checked at every epoch's end (``check_in_step``: a digest of the
parameters is compared across ranks; MPI does not promise the bitwise equality argued above,
so a difference is repaired, not fatal: rank 0's parameters and velocities are broadcast again
and rank 0 warns).

Not bit-exact against one process: the all-reduce adds the ranks' partial gradients, while one
process sums the same n per-image terms inside one weight-gradient GEMM in another order; float32
round-off (≈ 1e-7 relative per addition) differs, and momentum carries it on.

Larger global batches: the linear scaling rule with warm-up (Goyal et al. 2017, "Accurate,
Large Minibatch SGD", arXiv:1706.02677): when the global batch grows k-fold, multiply the
learning rate by k (``--lr``), and over the first few epochs ramp it from the small-batch rate
to k times it; this module does not change ``--lr`` (the same flags give the one-process run).
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..data import Dataset, Preprocessor
from ..inference import evaluate
from ..layers import Layer, softmax_cross_entropy
from ..layers.dropout import Dropout
from ..model import Sequential
from ..optim import SGD
from .comm import Comm
from .shard_dropout import ShardedDropout

if TYPE_CHECKING:
    from ..trainer import Trainer

# A bucket is closed once it holds BUCKET_BYTES or BUCKET_SHARE of the whole gradient, whichever
# is less (so it may hold more: a layer is never split). Each all-reduce hides only behind the
# backward of the layers still to run, and the last bucket behind none: small buckets towards
# conv1 leave little exposed, at one latency each (paper: fc8, fc7, fc6, conv4..conv5,
# conv2..conv3, conv1's 0.14 MB; mini, 1.9 MB: fc7..fc8, then one bucket per layer). The first
# bucket closes at FIRST_BUCKET_BYTES, so that an all-reduce starts right after fc8, as
# PyTorch's DistributedDataParallel does (a 1 MiB first bucket, 25 MiB after).
BUCKET_BYTES = 25 * 2**20
FIRST_BUCKET_BYTES = 2**20
BUCKET_SHARE = 1 / 64


def shard_rows(n: int, size: int, rank: int) -> slice:
    """Rank ``rank``'s contiguous rows of an ``n``-row batch split over ``size`` ranks: the
    first n % size ranks get one row more (so counts differ by at most one)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def shard_counts(n: int, size: int) -> list[int]:
    """How many rows of an ``n``-row batch each of ``size`` ranks holds (``shard_rows``)."""
    return [n // size + (rank < n % size) for rank in range(size)]


@dataclass
class Bucket:
    """One flat gradient buffer and the layers whose gradients are views into it."""

    layers: list[tuple[str, Layer]]  # in backward order
    flat: np.ndarray
    views: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # layer -> param

    @property
    def label(self) -> str:
        """Its layers in forward order, e.g. "fc7..fc8"."""
        first, last = self.layers[-1][0], self.layers[0][0]
        return first if first == last else f"{first}..{last}"

    def adopt(self, name: str, layer: Layer) -> None:
        """Make sure layer ``name``'s gradients are in this bucket: the fast engine wrote them
        into the views it was given; an engine that made new arrays has them copied in."""
        for pname, view in self.views[name].items():
            grad = layer.grads[pname]
            if grad is not view:
                view[...] = grad
                layer.grads[pname] = view


def make_buckets(model: Sequential, limit: int = BUCKET_BYTES) -> list[Bucket]:
    """Gradient buckets in backward order (fc8 first): the first closed once it holds
    ``FIRST_BUCKET_BYTES``, the others at ``limit`` or ``BUCKET_SHARE`` of the gradient, whichever
    is less (the constants say why); every layer's ``grads`` become views into its bucket's flat
    buffer."""
    dtype = model.dtype
    total = sum(p.nbytes for p in model.params().values())
    limit = min(limit, BUCKET_SHARE * total)
    groups: list[list[tuple[str, Layer]]] = [[]]
    held = 0
    for name, layer in reversed(model.layers.items()):
        if not layer.params:
            continue
        if held >= (min(FIRST_BUCKET_BYTES, limit) if len(groups) == 1 else limit):
            groups.append([])
            held = 0
        groups[-1].append((name, layer))
        held += sum(p.nbytes for p in layer.params.values())
    buckets = []
    for group in groups:
        flat = np.zeros(sum(layer.num_params() for _, layer in group), dtype=dtype)
        bucket, offset = Bucket(group, flat), 0
        for name, layer in group:
            bucket.views[name] = {}
            for pname, param in layer.params.items():
                view = flat[offset : offset + param.size].reshape(param.shape)
                bucket.views[name][pname] = view
                offset += param.size
            layer.grads = dict(bucket.views[name])
        buckets.append(bucket)
    return buckets


@dataclass
class StepTimes:
    """Seconds of the last step by phase (what the benchmark reports)."""

    forward: float = 0.0  # forward of this rank's rows, gather of the logits, the loss
    backward: float = 0.0  # the backward, starting each bucket's all-reduce as it is done
    wait: float = 0.0  # waiting for the all-reduces after the backward (communication not hidden)
    update: float = 0.0  # the SGD step


class DataParallel:
    """The data-parallel step of one rank (the module docstring says what it does and why).

    ``step(x, y)`` has the Trainer's step contract: the GLOBAL batch x (n, 3, H, W), labels (n,)
    in, (mean loss of the whole batch, logits (n, classes) of the whole batch) out, identical on
    every rank. ``evaluate`` (validation, test) and ``agree_to_stop`` complete the Trainer's
    hooks. ``bytes_per_step`` is the gradient each rank contributes to the all-reduce.
    """

    def __init__(
        self, model: Sequential, optimizer: SGD, comm: Comm, bucket_bytes: int = BUCKET_BYTES
    ) -> None:
        self.model, self.optimizer, self.comm = model, optimizer, comm
        self.buckets = make_buckets(model, bucket_bytes)
        self.closes = {bucket.layers[-1][0]: i for i, bucket in enumerate(self.buckets)}
        self.bucket_of = {name: b for b in self.buckets for name, _ in b.layers}
        self.dropouts = {
            name: ShardedDropout(layer, axis=0)
            for name, layer in model.layers.items()
            if isinstance(layer, Dropout)
        }
        self.bytes_per_step = sum(bucket.flat.nbytes for bucket in self.buckets)
        self.times = StepTimes()

    def rows(self, n: int) -> slice:
        return shard_rows(n, self.comm.size, self.comm.rank)

    def step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        t0 = time.perf_counter()
        n, rows = len(y), self.rows(len(y))
        self.model.train()
        local = self.forward(np.ascontiguousarray(x[rows]), rows.start, n)
        logits = np.empty((n, local.shape[1]), dtype=local.dtype)
        counts = shard_counts(n, self.comm.size)
        self.comm.allgatherv(local, logits, counts, "the gather of the logits")
        loss, dlogits = softmax_cross_entropy(logits, y)  # the whole batch's: mean over n
        t1 = time.perf_counter()
        pending = self.backward(np.ascontiguousarray(dlogits[rows]))
        t2 = time.perf_counter()
        for bucket, request in zip(self.buckets, pending, strict=True):
            self.comm.wait([request], f"the all-reduce of gradient bucket {bucket.label}")
        t3 = time.perf_counter()
        self.optimizer.step()
        self.times = StepTimes(t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t3)
        return loss, logits

    def forward(self, x: np.ndarray, start: int, n: int) -> np.ndarray:
        """``Sequential.forward`` of this rank's rows ``x`` (rows [start, start + len(x)) of an
        n-image batch), each dropout on the whole batch's mask (module docstring); returns this
        rank's logits, C-contiguous for MPI (the fast engine's are a transposed view)."""
        first = True
        for name, layer in self.model.layers.items():
            if name in self.dropouts:
                x = self.dropouts[name].forward(x, start, n)
            else:  # the first layer's public forward checks the batch once
                x = layer.forward(x) if first else layer.forward_unchecked(x)
            first = False
        return np.ascontiguousarray(x)

    def backward(self, dout: np.ndarray) -> list:
        """``Sequential.backward``, starting each bucket's all-reduce as soon as its last layer
        (in backward order) is done; returns the requests, one per bucket."""
        pending: list = []

        def after_layer(name: str, layer: Layer) -> None:
            if layer.params:
                self.bucket_of[name].adopt(name, layer)
            if name in self.closes:
                pending.append(self.comm.iallreduce(self.buckets[self.closes[name]].flat))
            elif pending:
                self.comm.poke(pending)  # MPICH moves the all-reduces on inside MPI calls only

        runs = {name: dropout.backward for name, dropout in self.dropouts.items()}
        self.model.backward(dout, after_layer=after_layer, run_by=runs)
        return pending

    # -- the Trainer's other hooks ----------------------------------------------------------
    def evaluate(
        self, model: Sequential, pre: Preprocessor, dataset: Dataset, **options: object
    ) -> dict[str, float]:
        """``inference.evaluate`` on this rank's rows of ``dataset``, the sums all-reduced: every
        rank gets the whole split's mean loss and errors (the schedule reads them alike).
        First checks that every rank still holds rank 0's parameters (``check_in_step``): an
        evaluation comes at an epoch's end, where rank 0 saves them for all."""
        self.check_in_step()
        n = len(dataset)
        rows = self.rows(n)
        mine = rows.stop - rows.start
        sums = np.zeros(3)
        if mine:
            part = evaluate(model, pre, dataset.subset(np.arange(rows.start, rows.stop)), **options)
            sums[:] = [part["loss"] * mine, part["top1_error"] * mine, part["top5_error"] * mine]
            sums[1:] = np.round(sums[1:])  # counts of misses, as evaluate divided them
        self.comm.allreduce_buffer(
            sums, f"the all-reduce of the {dataset.name or 'evaluation'} sums"
        )
        return {"loss": sums[0] / n, "top1_error": sums[1] / n, "top5_error": sums[2] / n}

    def agree_to_stop(self, asked: bool) -> bool:
        """True on every rank when any rank was asked to stop (Ctrl-C, SIGTERM): all ranks
        then stop after the same step, and rank 0 saves it."""
        return self.comm.any(asked, "the stop check")

    def broadcast_state(self) -> None:
        """Rank 0's parameters and velocities into every rank (a run's start: the ranks built or
        read the same ones; this makes it so by construction)."""
        velocities = self.optimizer.velocities
        for name, param in self.model.params().items():
            for array, what in ((param, "parameter"), (velocities[name], "velocity")):
                self.comm.bcast_buffer(array, f"the broadcast of {what} {name}")

    def check_in_step(self) -> None:
        """Compare a digest of every rank's parameters with rank 0's (gathered); where any
        differs, warn on rank 0 and broadcast rank 0's parameters and velocities again (the
        module docstring says why this is a repair, not an error)."""
        digest = hashlib.blake2b(digest_size=8)
        for param in self.model.params().values():
            digest.update(np.ascontiguousarray(param).data)
        mine = np.frombuffer(digest.digest(), dtype=np.uint64).copy()
        every = np.empty(self.comm.size, dtype=np.uint64)
        self.comm.allgatherv(mine, every, [1] * self.comm.size, "the parameter check")
        differ = [r for r in range(self.comm.size) if every[r] != every[0]]
        if differ:
            if self.comm.is_root:
                warnings.warn(
                    f"data parallel: the parameters of rank(s) {differ} differ from rank 0's; "
                    f"rank 0's parameters and velocities are broadcast to every rank again",
                    stacklevel=2,
                )
            self.broadcast_state()


def attach(trainer: Trainer, comm: Comm) -> DataParallel:
    """Make ``trainer`` (built, restored) one rank of a data-parallel run over ``comm``: every
    rank starts from rank 0's parameters and velocities, and the trainer's step, validation and
    stop decision become the data-parallel ones. (Rank 0 alone is given ``out`` and progress
    when the Trainer is made: ``train.train``.)"""
    parallel = DataParallel(trainer.model, trainer.optimizer, comm)
    parallel.broadcast_state()
    trainer.step, trainer.validate = parallel.step, parallel.evaluate
    trainer.agree_to_stop = parallel.agree_to_stop
    return parallel
