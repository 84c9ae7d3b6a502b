"""What a training step would take on N ranks: one rank's compute plus the α–β time of what
it sends (``projection``), less the part of the gradient all-reduce the backward hides.

Assumptions, stated where they are used: compute divides evenly over the ranks; ranks do not
slow each other's compute (as on separate machines: ranks sharing one machine's memory do,
which lesson 11 measures); the backward of a layer costs twice its forward (dL/dx and dL/dW),
so the backward is ``BACKWARD_SHARE`` of the per-image compute, shared among the layers by
their MACs; gradient buckets are all-reduced one after another, each as soon as the backward
of its layers is done (as ``data_parallel.DataParallel`` starts them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..layers.base import check_positive_int, check_real
from ..model import Sequential
from .projection import (
    FLOAT32_BYTES,
    Network,
    allreduce_time,
    exchanges,
    gradient_bytes,
    owned_param_share,
    reduced_layers,
)

BACKWARD_SHARE = 2 / 3  # backward ≈ 2 × forward MACs (dL/dx and dL/dW): 2/3 of a step's compute


@dataclass(frozen=True)
class Compute:
    """One rank's compute time for a step of b images: ``per_step_s`` + b·``per_image_s``.

    ``per_step_s`` is the part that does not grow with the batch: reading every weight in the
    FC layers' matrix products and the SGD update of every parameter, so it is charged by the
    share of parameters a rank holds (``owned_param_share``). Measure both with ``fit``."""

    per_image_s: float
    per_step_s: float = 0.0

    def __post_init__(self) -> None:
        check_real("Compute", "per_image_s", self.per_image_s, low=0, low_open=True)
        check_real("Compute", "per_step_s", self.per_step_s, low=0)

    @classmethod
    def fit(cls, batches: list[int], seconds: list[float]) -> Compute:
        """The straight line through measured step times (least squares), at two or more
        different batch sizes on one process. A negative intercept (noise, when the per-step
        part is small) is taken as 0."""
        if len(batches) != len(seconds) or len(set(batches)) < 2:
            raise ValueError(
                "Compute.fit: expected step times at two or more different batch sizes, got "
                f"batches {list(batches)} and {len(seconds)} times"
            )
        slope, intercept = np.polyfit(np.asarray(batches, float), np.asarray(seconds, float), 1)
        if not slope > 0:
            raise ValueError(
                f"Compute.fit: step time must grow with the batch, got {list(seconds)} s for "
                f"batches {list(batches)}"
            )
        return cls(float(slope), max(0.0, float(intercept)))


@dataclass(frozen=True)
class StepCost:
    """One step on N ranks, in seconds: ``compute`` + ``communication`` − ``hidden`` (the part
    of the gradient all-reduce that runs during the backward)."""

    compute: float
    communication: float
    hidden: float

    @property
    def total(self) -> float:
        return self.compute + self.communication - self.hidden


@dataclass(frozen=True)
class BucketTime:
    """One gradient bucket's all-reduce in the backward, in seconds from the backward's start:
    ``ready_s`` when the backward of its layers is done, ``start_s`` when the link is free for
    it (the buckets go one after another), ``end_s`` when it is summed."""

    layers: tuple[str, ...]  # in backward order
    ready_s: float
    start_s: float
    end_s: float


def bucket_schedule(
    model: Sequential,
    scheme: str,
    ranks: int,
    batch: int,
    compute: Compute,
    net: Network,
    buckets: Sequence[Sequence[str]],
) -> tuple[list[BucketTime], float]:
    """When each gradient bucket's all-reduce runs during one step's backward, and how long
    that backward lasts (both in seconds from its start).

    ``buckets`` lists layer names in backward order (fc8's bucket first), as
    ``data_parallel.make_buckets`` groups them; the layers ``scheme`` does not all-reduce are
    dropped from them (the hybrid keeps the conv layers: it buckets them as data parallel
    would). A bucket can start only once the backward of all its layers is done, so it hides
    only behind the backward of the layers that run after it (those before it in the net):
    the bucket holding the first layer with parameters starts when the backward ends and
    is never hidden. Each layer's backward takes ``BACKWARD_SHARE`` of the per-image compute
    of this rank's batch/N images, shared among the layers by their MACs (assumed: the
    backward of a layer costs twice its forward, dL/dx and dL/dW)."""
    n = check_positive_int("step_time", "ranks", ranks)
    batch = check_positive_int("step_time", "batch", batch)
    reduced = set(reduced_layers(model, scheme))
    groups = [[name for name in group if name in reduced] for group in buckets]
    groups = [group for group in groups if group]
    expected = [name for name in reversed(model.layers) if name in reduced]
    given = [name for group in groups for name in group]
    if given != expected:
        raise ValueError(
            f"step_time: buckets must hold each layer whose gradient {scheme!r} all-reduces once, "
            f"in backward order: expected {expected}, got {given}"
        )
    macs, shape = {}, model.input_shape
    for name, layer in model.layers.items():
        macs[name] = layer.macs(shape)
        shape = model.shapes[name]
    backward_s = BACKWARD_SHARE * compute.per_image_s * batch / n
    total_macs = sum(macs.values())
    last_of = {group[-1]: group for group in groups}  # its layer whose backward runs last
    done, free, timings = 0, 0.0, []
    for name in reversed(model.layers):
        done += macs[name]
        clock = backward_s * (done / total_macs)  # exactly backward_s once all are done
        if name in last_of:
            group = last_of[name]
            nbytes = FLOAT32_BYTES * sum(model.layers[g].num_params() for g in group)
            start = max(clock, free)
            free = start + allreduce_time(nbytes, n, net)
            timings.append(BucketTime(tuple(group), clock, start, free))
    return timings, backward_s


def step_cost(
    model: Sequential,
    scheme: str,
    ranks: int,
    batch: int,
    compute: Compute,
    net: Network,
    *,
    buckets: Sequence[Sequence[str]] | None = None,
) -> StepCost:
    """One step of the global ``batch`` under ``scheme`` on ``ranks``.

    Compute: ``compute.per_image_s`` × batch/N on every rank (each has 1/N of the work) plus
    ``compute.per_step_s`` × ``owned_param_share``. Communication: the all-reduce of
    ``gradient_bytes`` plus every ``Exchange``'s time. Without ``buckets`` the gradients are
    all-reduced in one piece after the backward; with them (layer names in backward order,
    see ``bucket_schedule``) each bucket is all-reduced on its own, starting once its layers'
    backward is done, and what ends before the backward does is ``hidden``. Activation
    exchanges are never hidden: the next layer waits for them."""
    n = check_positive_int("step_time", "ranks", ranks)
    batch = check_positive_int("step_time", "batch", batch)
    per_step = compute.per_step_s * owned_param_share(model, scheme, n)
    work = compute.per_image_s * batch / n + per_step
    moved = sum(e.time(batch, net) for e in exchanges(model, scheme, n))
    reduced_bytes = gradient_bytes(model, scheme)
    if buckets is None or not reduced_bytes:  # one all-reduce after the backward, or none
        allreduce = allreduce_time(reduced_bytes, n, net) if reduced_bytes else 0.0
        return StepCost(work, allreduce + moved, 0.0)
    timings, backward_s = bucket_schedule(model, scheme, n, batch, compute, net, buckets)
    allreduce = sum(t.end_s - t.start_s for t in timings)
    hidden = sum(max(0.0, min(t.end_s, backward_s) - t.start_s) for t in timings)
    return StepCost(work, allreduce + moved, hidden)


def images_per_s(
    model: Sequential,
    scheme: str,
    ranks_list: list[int],
    batch: int,
    compute: Compute,
    net: Network,
    *,
    buckets: Sequence[Sequence[str]] | None = None,
) -> np.ndarray:
    """Training throughput (images/s) of ``step_cost`` for each N in ``ranks_list``."""
    return np.array(
        [
            batch / step_cost(model, scheme, n, batch, compute, net, buckets=buckets).total
            for n in ranks_list
        ]
    )


def efficiency_limit(ranks_list: list[int], throughput: np.ndarray, floor: float = 0.5) -> int:
    """The first N in ``ranks_list`` whose parallel efficiency (throughput / (N × the 1-rank
    throughput)) falls below ``floor``; 0 when none does. ``ranks_list`` must start at 1."""
    if not ranks_list or ranks_list[0] != 1 or len(ranks_list) != len(throughput):
        raise ValueError(
            "efficiency_limit: ranks_list must start at 1 and match throughput, got "
            f"{list(ranks_list)} and {len(throughput)} values"
        )
    check_real("efficiency_limit", "floor", floor, low=0, high=1, low_open=True)
    for n, value in zip(ranks_list, throughput, strict=True):
        if value / (n * throughput[0]) < floor:
            return n
    return 0
