"""What a training step would send on N ranks, on paper: bytes per step, and the α–β time
of the collectives that send them (``step_time`` adds compute and overlap to make a step).

Three ways to spread one global batch over N ranks (``SCHEMES``):

* ``"data"``: data parallel. Every rank holds the whole net and B/N images; after the backward
  the gradients are summed over the ranks: a ring all-reduce of every parameter's gradient.
* ``"model"``: model parallel, the paper's two-GPU split [P §3.2, Fig. 2] taken to N ranks.
  Every rank holds 1/N of each layer's kernels (units) and sees all B images; a layer whose
  kernels read maps held by other ranks needs them first (``exchanges``). In the ``paper`` net
  on 2 ranks that is conv3 and the FC layers, exactly where the paper's GPUs talked.
* ``"hybrid"``: Krizhevsky's "one weird trick" (arXiv:1404.5997): data parallel in the conv
  layers (only their gradients are all-reduced), model parallel in the FC layers (every rank's
  conv output, for its B/N images, is gathered by all; each rank then runs its 1/N of the FC
  units on the whole batch).

Bytes are computed from the network itself (``model.shapes`` and the layers' parameters),
float32 throughout (4 bytes per number).

The time model is Hockney's latency–bandwidth ("α–β") model, as used by Thakur, Rabenseifner
and Gropp, "Optimization of collective communication operations in MPICH" (IJHPCA 2005): a
message of m bytes costs α + m/β (α: latency in s, β: bandwidth in bytes/s; the paper writes β
for the time per byte, its inverse). On N ranks a ring all-gather of S bytes in all costs
(N−1)·α + (N−1)/N·S/β; a ring all-reduce is a reduce-scatter plus an all-gather, 2(N−1)·α +
2(N−1)/N·S/β (the time of the additions, their γ term, is left out). A reduce-scatter costs
what an all-gather does: the backward of a gathered activation is one.

The sources and the assumed networks' figures: docs/facts.md, "Communication cost".
Assumptions the projection rests on, stated where they are used: a link sends and receives at
β at the same time; nothing else shares the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from ..layers import Conv2d, Linear
from ..layers.base import check_positive_int, check_real
from ..model import Sequential

SCHEMES = ("data", "model", "hybrid")
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class Network:
    """An interconnect in the α–β model: ``latency_s`` (α, seconds per message) and
    ``bandwidth`` (β, bytes per second, each direction)."""

    name: str
    latency_s: float
    bandwidth: float

    def __post_init__(self) -> None:
        check_real(f"Network {self.name!r}", "latency_s", self.latency_s, low=0)
        check_real(f"Network {self.name!r}", "bandwidth", self.bandwidth, low=0, low_open=True)


# Assumed, not measured: round figures for the two kinds of cluster a course might have.
# 10 Gb/s Ethernet carries at most 1.25 GB/s; ~20 µs is a typical MPI latency over TCP.
# 100 Gb/s InfiniBand (EDR) carries 12.5 GB/s raw, ~12 GB/s in practice, with ~2 µs latency.
TEN_GBE = Network("10 GbE", latency_s=20e-6, bandwidth=1.25e9)
INFINIBAND_100G = Network("100 Gb/s InfiniBand", latency_s=2e-6, bandwidth=12e9)


def fit_allreduce_network(
    name: str, ranks: int, sizes: list[float], seconds: list[float]
) -> Network:
    """The α and β that fit measured all-reduce times (``seconds``, of buffers of ``sizes``
    bytes on ``ranks`` ≥ 2) best, by least squares on the ring formula: t = 2(N−1)·α +
    2(N−1)/N·S/β is a straight line in S. Relative errors are minimised (weights 1/t), so that
    the smallest message, not the noise of the largest, sets α; a negative intercept is α = 0."""
    n = check_positive_int("fit_allreduce_network", "ranks", ranks, minimum=2)
    if len(sizes) != len(seconds) or len(set(sizes)) < 2:
        raise ValueError(
            "fit_allreduce_network: expected times at two or more different sizes, got sizes "
            f"{list(sizes)} and {len(seconds)} times"
        )
    times = np.asarray(seconds, float)
    if not np.all(times > 0):
        raise ValueError(f"fit_allreduce_network: times must be > 0 s, got {list(seconds)}")
    slope, intercept = np.polyfit(np.asarray(sizes, float), times, 1, w=1 / times)
    if not slope > 0:
        raise ValueError(
            f"fit_allreduce_network: times must grow with the size, got {list(seconds)} s for "
            f"{list(sizes)} bytes"
        )
    latency = max(0.0, float(intercept)) / (2 * (n - 1))
    return Network(name, latency_s=latency, bandwidth=2 * (n - 1) / n / float(slope))


def _check_ranks(ranks: int) -> int:
    return check_positive_int("projection", "ranks", ranks)


def _check_bytes(nbytes: float) -> float:
    return check_real("projection", "nbytes", nbytes, low=0)


# ----------------------------------------------------------------------------------------
# Collectives in the α–β model
# ----------------------------------------------------------------------------------------
def message_time(nbytes: float, net: Network) -> float:
    """One point-to-point message of ``nbytes``: α + m/β seconds."""
    return net.latency_s + _check_bytes(nbytes) / net.bandwidth


def allreduce_sent(nbytes: float, ranks: int) -> float:
    """Bytes each rank sends in a ring all-reduce of an ``nbytes`` buffer: 2(N−1)/N·S."""
    n = _check_ranks(ranks)
    return 2 * (n - 1) / n * _check_bytes(nbytes)


def allreduce_time(nbytes: float, ranks: int, net: Network) -> float:
    """Ring all-reduce of ``nbytes`` on ``ranks``: 2(N−1)·α + 2(N−1)/N·S/β (0 on one rank)."""
    n = _check_ranks(ranks)
    return 2 * (n - 1) * net.latency_s + allreduce_sent(nbytes, n) / net.bandwidth


def allgather_sent(nbytes: float, ranks: int) -> float:
    """Bytes each rank sends in a ring all-gather whose result is ``nbytes`` in all (each rank
    contributes 1/N of it): (N−1)/N·S."""
    n = _check_ranks(ranks)
    return (n - 1) / n * _check_bytes(nbytes)


def allgather_time(nbytes: float, ranks: int, net: Network) -> float:
    """Ring all-gather of ``nbytes`` in all on ``ranks``: (N−1)·α + (N−1)/N·S/β. The same cost
    for a reduce-scatter of ``nbytes`` (the additions left out)."""
    n = _check_ranks(ranks)
    return (n - 1) * net.latency_s + allgather_sent(nbytes, n) / net.bandwidth


# ----------------------------------------------------------------------------------------
# What crosses between ranks, from the network's own shapes
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Exchange:
    """One point where ranks swap activations: before ``layer`` runs, each of its kernel groups
    gathers ``floats_per_image`` (that group's whole input, per image: the output of
    ``source``) from the ``ranks`` ranks that hold a part of it. With ``backward`` its gradient
    goes back the same way (a reduce-scatter of the same size); the logits need none (each
    rank's share of dL/dlogits follows from the gathered row)."""

    layer: str
    source: str
    floats_per_image: int
    ranks: int
    backward: bool = True

    def gathered_bytes(self, batch: int) -> int:
        """The gathered activation for ``batch`` images (S of the all-gather), float32."""
        images = check_positive_int(self.layer, "batch", batch)
        return self.floats_per_image * images * FLOAT32_BYTES

    def sent_per_rank(self, batch: int) -> float:
        """Bytes one rank sends here per step: forward, plus backward where there is one."""
        directions = 2 if self.backward else 1
        return directions * allgather_sent(self.gathered_bytes(batch), self.ranks)

    def time(self, batch: int, net: Network) -> float:
        """Seconds per step here in the α–β model, forward plus backward."""
        directions = 2 if self.backward else 1
        return directions * allgather_time(self.gathered_bytes(batch), self.ranks, net)


def _check_model(model: Sequential) -> None:
    if not isinstance(model, Sequential):
        raise TypeError(f"projection: model must be a Sequential, got {type(model).__name__}")
    if not any(isinstance(layer, Linear) for layer in model.layers.values()):
        raise ValueError(f"projection: {model.name} has no Linear layer to split or gather")


def check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"projection: scheme must be one of {SCHEMES}, got {scheme!r}")
    return scheme


def exchanges(model: Sequential, scheme: str, ranks: int) -> list[Exchange]:
    """Every activation exchange of one step of ``model`` under ``scheme`` on ``ranks``.

    Model parallel: each rank holds 1/N of every conv's kernels and every Linear's units, so it
    holds 1/N of every map; ReLU, pooling and Flatten stay local, and so does LRN, taken to
    normalise within each rank's own maps (a 5-map window reaching across would need 2 maps
    from each neighbour: not counted). The input image is on every rank. A conv with
    ``groups`` g, whose kernels each read C_in/g maps, needs nothing when each rank holds
    whole groups (g a multiple of N), else each group's maps are gathered among its N/g
    ranks; a Linear reads all its inputs: a gather among all N. Then the logits, for the loss.
    Hybrid: the conv layers are data parallel (each rank has its images' whole maps), so only
    the Linear layers and the logits exchange; at the first Linear the gather runs over the
    batch (every rank gets all B images' features), which moves the same bytes.
    Data parallel: none (the gradients move instead: ``gradient_bytes``)."""
    _check_model(model)
    check_scheme(scheme)
    n = _check_ranks(ranks)
    if n == 1 or scheme == "data":
        return []
    found = []
    names = list(model.layers)
    for previous, name in pairwise(names):  # the first layer reads the image
        layer = model.layers[name]
        floats = int(np.prod(model.shapes[previous]))
        if isinstance(layer, Linear):
            found.append(Exchange(name, previous, floats, n))
        elif isinstance(layer, Conv2d) and scheme == "model":
            groups = layer.groups
            if groups % n == 0:
                continue  # every rank holds whole groups: its kernels read only its own maps
            if n % groups:
                raise ValueError(
                    f"projection: {name} has groups={groups}, which cannot be split evenly "
                    f"over ranks={n} (one must divide the other)"
                )
            found.append(Exchange(name, previous, floats // groups, n // groups))
    last = names[-1]
    found.append(Exchange("loss", last, int(np.prod(model.shapes[last])), n, backward=False))
    return found


def _first_linear(model: Sequential) -> int:
    return next(i for i, layer in enumerate(model.layers.values()) if isinstance(layer, Linear))


def reduced_layers(model: Sequential, scheme: str) -> list[str]:
    """The layers with parameters whose gradients ``scheme`` all-reduces each step, in forward
    order: all of them (data parallel), those before the first Linear (hybrid: the conv
    layers), none (model parallel)."""
    _check_model(model)
    if check_scheme(scheme) == "model":
        return []
    names = list(model.layers)
    if scheme == "hybrid":
        names = names[: _first_linear(model)]
    return [name for name in names if model.layers[name].params]


def gradient_bytes(model: Sequential, scheme: str) -> int:
    """float32 bytes of the gradients all-reduced each step (of ``reduced_layers``)."""
    names = reduced_layers(model, scheme)  # checks the model first
    return FLOAT32_BYTES * sum(model.layers[name].num_params() for name in names)


def owned_param_share(model: Sequential, scheme: str, ranks: int) -> float:
    """The share of the net's parameters one rank updates: all of them (data parallel: every
    rank repeats the whole SGD update), 1/N (model parallel), the conv layers' plus 1/N of the
    FC layers' (hybrid)."""
    _check_model(model)
    n = _check_ranks(ranks)
    if check_scheme(scheme) == "data":
        return 1.0
    if scheme == "model":
        return 1 / n
    conv = gradient_bytes(model, "hybrid") / FLOAT32_BYTES
    return (conv + (model.num_params() - conv) / n) / model.num_params()


def bytes_sent_per_rank(model: Sequential, scheme: str, ranks: int, batch: int) -> float:
    """float32 bytes one rank sends per step of the global ``batch``: its share of the
    gradient all-reduce plus every activation exchange."""
    n = _check_ranks(ranks)
    grads = allreduce_sent(gradient_bytes(model, scheme), n)
    return grads + sum(e.sent_per_rank(batch) for e in exchanges(model, scheme, n))
