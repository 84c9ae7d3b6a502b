"""The paper's two-GPU model split, run as two MPI processes: ``mpiexec -n 2 python -m
minialexnet train --variant paper --model-parallel``.

The split [P §3.2, Fig. 2]. Rank g holds what the paper's GPU g held: group g's half of the
kernels of conv1-conv5 and half of the units of fc6, fc7 and fc8. It is cut out of the full
one-process net (``build_alexnet``, same seed), so both runs start from the same weights:

=======  =====================================================  ===========================
layer    rank g's part (the full net's rows [g·F/2, (g+1)·F/2))  reads
=======  =====================================================  ===========================
conv1    48 of the 96 kernels                                   the image (every rank has it)
conv2    group g of groups=2: 48 maps in, 128 out                its own half
conv3    192 of the 384 kernels, each over all 256 maps          **both halves: exchange**
conv4/5  group g of groups=2                                    its own half
fc6-fc8  2048 / 2048 / 500 of the units, each over all inputs    **both halves: exchange**
=======  =====================================================  ===========================

So the ranks exchange activations exactly where the paper's GPUs communicated, into conv3,
fc6, fc7 and fc8, and once more for the logits, so that every rank computes the same loss
(cuda-convnet2's two-GPU configuration keeps fc8 whole on GPU 0 instead; halving it keeps the
ranks symmetric). Every ReLU, LRN, pooling, flatten and dropout stays on its rank's half.

An exchange (``ActivationExchange``), for a layer that reads both halves:

* forward: an all-gather (``Iallgatherv`` on NumPy buffers, no pickling) puts both ranks'
  halves side by side on the channel (or feature) axis, in rank order: the full input;
* backward: that layer's dL/d(input) on rank g comes from rank g's half of its units only (fc7
  on rank g computes dX of ALL of fc6's output, through its own 2048 rows of W). The true
  gradient is the SUM over ranks, and rank g needs only its own half of it: a reduce-scatter
  (``Ireduce_scatter_block``, SUM) gives each rank the sum of its half — half the traffic of
  an all-reduce, which would also sum the half the rank throws away.
* the logits' gather has a free backward: the loss is computed identically on both ranks, so
  dL/dlogits is the same array on both, and rank g's fc8 units get its own columns of it.

Bytes sent (``bytes_sent``): per rank and per exchange, what this rank hands the other in the
last forward + backward: its own half of the activation in the all-gather, the other rank's
half of its partial gradient in the reduce-scatter; (ranks - 1) x one half each. At batch 128
in float32 that is ~31 MB a step for the paper net (into conv3 dominates: 2 x 11.1 MB), where
data-parallel training all-reduces the whole ~244 MB gradient (``docs/facts.md``).

LRN at the boundary. conv1's and conv2's LRN windows (n = 5 adjacent maps) would cross from
one GPU's maps into the other's; the paper's GPUs did not communicate there (only "in certain
layers": into conv3 and the FC layers), so each normalised its own 48 / 128 maps, as
cuda-convnet2's two-GPU model-parallel ImageNet net spells out (``layers/layers-imagenet-
2gpu-model.cfg``: one ``cmrnorm`` layer per GPU, ``channels=48`` and ``128``). The one-process
``paper`` variant does the same (``LocalResponseNorm(groups=2)``), so it equals this split.
(Caffe's bvlc_alexnet normalises across all 96 maps: not splittable without an exchange.)

Dropout, exactly as one process: rank g's dropout layer (fc6's, fc7's) draws the mask of ALL
4096 units from the same seeded generator as the one-process net and keeps its own 2048
columns; both ranks draw the same numbers, so the split trains with the one-process masks.

Other variants: the same rules split any net whose grouped convs have an even number of
groups and whose LRN (if any) normalises within halves: ``paper``; ``torchvision`` (no LRN:
exchanges into conv2-conv5 as well); any variant built with ``lrn=False``. ``ungrouped``,
``mini`` and ``mini64`` with their LRN over all maps are refused, naming the layer: splitting
them would need an exchange the paper never had (and a different net than the variant).

Not bit-exact against one process (``tests/test_model_parallel.py`` states the tolerances;
measured ~1e-15 relative in float64, ~1e-6 in float32 with the same conv algorithms): the
reduce-scatter adds two partial gradients of conv3's / the FC layers' inputs that one process
sums inside one matrix multiply, and a rank's conv2, conv4 and conv5 are ungrouped
convolutions, which the fast engine computes by Winograd from two images up where the
one-process grouped conv uses im2col. Winograd's float32 round-off is larger (~5e-6 for
conv2's 5x5) and can tip a ReLU or max-pool decision the other way: another rounding of the
same function, not a different one. (The same choice makes a rank's half-net step faster than
half of the grouped one-process step.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..layers import (
    Conv2d,
    Dropout,
    Flatten,
    Layer,
    Linear,
    LocalResponseNorm,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)
from ..layers.base import Shape, check_array
from ..model import LayerStack, Sequential, build_alexnet, engine_layers
from ..optim import initialize
from .halves import gather_halves, scatter_halves
from .split_steps import ActivationExchange, DropoutHalf, LayerStep

RANKS = 2  # the paper's two GPUs
# Layers that act on each channel (or unit) by itself: they run on a rank's half unchanged.
PER_CHANNEL = (ReLU, Tanh, Sigmoid, MaxPool2d, Flatten)


class ModelParallelNet(LayerStack):
    """This rank's half of an AlexNet split over two MPI ranks as the paper's two GPUs split it
    (module docstring). Every rank calls every method with the same arguments (the same
    batch, the same logits' gradient): the exchanges are collectives.

    ``comm`` is ``minialexnet.distributed.comm.Comm`` (``world("--model-parallel")``) of exactly
    two ranks. The net is ``build_alexnet(variant, num_classes=..., seed=..., dropout=...,
    dtype=..., engine=..., **build_options)`` (``activation``, ``lrn``, ``pool``), re-drawn by
    ``optim.initialize(net, init, seed)`` when ``init`` is given, then cut in two.

    ``layers`` (this rank's layers by the full net's names: the dropout generators live here),
    ``input_shape``, ``name``, ``dtype``; ``params()``/``grads()`` hold this rank's halves
    under the full net's names ("fc6.W": rows [2048·rank, 2048·(rank+1)) of the full fc6.W).
    ``bytes_sent`` and ``exchange_seconds``: per exchange, the last forward + backward.
    """

    def __init__(
        self,
        comm: Any,
        *,
        variant: str = "paper",
        num_classes: int | None = None,
        seed: int = 0,
        dropout: float = 0.5,
        engine: str | None = None,
        dtype: type | np.dtype = np.float32,
        init: str | None = None,
        **build_options: Any,
    ) -> None:
        if comm.size != RANKS:
            raise ValueError(
                f"model parallel: the paper's split runs on exactly {RANKS} ranks (mpiexec -n "
                f"{RANKS}), got {comm.size}"
            )
        self.comm, self.rank = comm, comm.rank
        full = build_alexnet(
            variant,
            num_classes=num_classes,
            dtype=dtype,
            seed=seed,
            dropout=dropout,
            engine=engine,
            **build_options,
        )
        if init is not None:
            initialize(full, init, seed)
        self.name = f"{full.name} (model-parallel rank {self.rank} of {RANKS})"
        self.input_shape = full.input_shape
        self.layers: dict[str, Layer] = {}
        self._logits_shape: Shape | None = None  # the last forward's output
        self.steps: list[LayerStep | DropoutHalf | ActivationExchange] = []
        self._split(full, engine_layers(engine))
        self.exchanges = [step for step in self.steps if isinstance(step, ActivationExchange)]
        for layer in self.layers.values():  # one scratch for this rank's layers (Sequential's)
            share = getattr(layer, "share_scratch", None)
            if share is not None:
                share(self)

    @classmethod
    def from_config(
        cls, comm: Any, config: Mapping[str, Any], num_classes: int, *, engine: str | None = None
    ) -> ModelParallelNet:
        """The split of the net a run's config describes (``model.model_from_config`` and
        ``train``'s ``initialize(..., config["init"], config["seed"])``)."""
        return cls(
            comm,
            variant=config["variant"],
            num_classes=num_classes,
            seed=config["seed"],
            dropout=config["dropout"],
            engine=engine if engine is not None else config.get("engine"),
            init=config.get("init"),
            activation=config["activation"],
            lrn=config["lrn"],
            pool=tuple(config["pool"]),
        )

    # -- cutting the full net in two -----------------------------------------------------
    def _split(self, full: Sequential, L: Any) -> None:
        """Fill ``layers`` and ``steps`` from the full net, layer by layer. ``split`` says
        whether the activation arriving at a layer is halved across the ranks (from conv1's
        output on) or whole on every rank (the image)."""
        split, shape = False, full.input_shape  # shape: per image, of this rank's part
        for name, layer in full.layers.items():
            if isinstance(layer, (Conv2d, Linear)):
                reads_both = split and (isinstance(layer, Linear) or layer.groups == 1)
                if reads_both:  # conv3, fc6-fc8: gather the halves first
                    self.steps.append(ActivationExchange(self.comm, name, shape))
                local = self._half_of(name, layer, L, split and not reads_both)
                split = True
            elif isinstance(layer, LocalResponseNorm) and split:
                local = self._lrn_half(name, layer, L, shape)
            elif isinstance(layer, (*PER_CHANNEL, Dropout)) or not split:
                local = layer  # no parameters: the full net's own layer object
            else:
                raise ValueError(f"model parallel: no rule to split layer {name} ({layer!r})")
            local.name = name
            self.layers[name] = local
            halved = split and isinstance(local, Dropout)
            self.steps.append(DropoutHalf(local, self.rank, RANKS) if halved else LayerStep(local))
            shape = full.shapes[name]
            shape = (shape[0] // RANKS, *shape[1:]) if split else shape
        self.steps.append(ActivationExchange(self.comm, "logits", shape))
        next(iter(self.layers.values())).needs_input_grad = False  # conv1: nothing upstream

    def _half_of(self, name: str, layer: Conv2d | Linear, L: Any, own_groups: bool) -> Layer:
        """This rank's rows of a conv or linear layer: its half of the output channels (units),
        reading all inputs, or with ``own_groups`` (a grouped conv on halved maps) its half of
        the groups, reading only its own half of the maps."""
        rows = self._rows(name, "output units" if isinstance(layer, Linear) else "kernels", layer)
        dtype = layer.params["W"].dtype
        if isinstance(layer, Linear):
            local: Layer = L.Linear(layer.in_features, layer.out_features // RANKS, dtype=dtype)
        else:
            groups, channels = layer.groups, layer.in_channels
            if own_groups and groups % RANKS:
                raise ValueError(
                    f"model parallel: {name} has groups={groups}, which {RANKS} ranks cannot "
                    f"share (each rank must hold whole groups of its own half of the maps)"
                )
            if own_groups:
                groups, channels = groups // RANKS, channels // RANKS
            elif groups != 1:
                raise ValueError(
                    f"model parallel: {name} (groups={groups}) reads the whole image; only an "
                    f"ungrouped first layer can be split"
                )
            local = L.Conv2d(
                channels,
                layer.out_channels // RANKS,
                layer.kernel_size,
                layer.stride,
                layer.padding,
                groups,
                dtype=dtype,
            )
        local.params = {k: np.ascontiguousarray(p[rows]) for k, p in layer.params.items()}
        return local

    def _rows(self, name: str, what: str, layer: Layer) -> slice:
        """This rank's block of a parameter's first axis (the output channels or units)."""
        total = layer.params["b"].shape[0]
        if total % RANKS:
            raise ValueError(
                f"model parallel: {name} has {total} {what}, which {RANKS} ranks cannot halve"
            )
        half = total // RANKS
        return slice(self.rank * half, (self.rank + 1) * half)

    def _lrn_half(self, name: str, layer: LocalResponseNorm, L: Any, shape: Shape) -> Layer:
        """The LRN of this rank's half of the maps: possible when the full net's LRN already
        normalises each half apart (``groups`` a multiple of the ranks)."""
        if layer.groups % RANKS:
            raise ValueError(
                f"model parallel: {name} normalises across all {shape[0] * RANKS} maps "
                f"(LocalResponseNorm groups={layer.groups}), so its window crosses from one "
                f"rank's half into the other's; the paper's GPUs normalised within their own "
                f"half: use --variant paper (groups=2) or a net without LRN"
            )
        return L.LocalResponseNorm(
            layer.size, layer.alpha, layer.beta, layer.k, layer.convention, layer.groups // RANKS
        )

    # -- forward and backward ------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """The full batch (N, *input_shape), the same on every rank -> the full logits
        (N, classes), the same on every rank."""
        check_array(self.name, "x", x, ndim=4, axes="NCHW", expected_dtype=self.dtype)
        if x.shape[1:] != self.input_shape:
            raise ValueError(
                f"{self.name}: x must have per-image shape {self.input_shape}, got {x.shape[1:]}"
            )
        for step in self.steps:
            x = step.forward(x)
        self._logits_shape = x.shape
        return x

    def backward(self, dlogits: np.ndarray) -> None:
        """dL/dlogits (N, classes), the same on every rank: fills this rank's ``grads``."""
        if self._logits_shape is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        for layer in self.layers.values():  # on every rank alike, before any collective
            layer.check_backward_allowed()
        check_array(self.name, "dlogits", dlogits, ndim=2, axes="NK", expected_dtype=self.dtype)
        if dlogits.shape != self._logits_shape:
            raise ValueError(
                f"{self.name}: dlogits must have the last forward's logits shape "
                f"{self._logits_shape}, got {dlogits.shape}"
            )
        dout: np.ndarray | None = dlogits
        for step in reversed(self.steps):
            dout = step.backward(dout)

    @property
    def bytes_sent(self) -> dict[str, int]:
        """Per exchange (named by the layer it feeds, or "logits"): the bytes this rank sent in
        the last forward + backward."""
        return {e.into: e.forward_bytes + e.backward_bytes for e in self.exchanges}

    @property
    def exchange_seconds(self) -> dict[str, float]:
        """Per exchange: seconds in its collectives (waiting for the other rank included)."""
        return {e.into: e.seconds for e in self.exchanges}

    @property
    def dtype(self) -> np.dtype:
        """The one dtype of every layer's parameters (each layer checked, as ``Sequential``)."""
        found = {layer.check_params() for layer in self.layers.values()} - {None}
        if len(found) != 1:
            raise TypeError(
                f"{self.name}: every layer's parameters must have one dtype, got "
                f"{sorted(map(str, found))}"
            )
        return found.pop()

    def gather_full(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """Arrays keyed and shaped like ``params()`` (parameters, gradients, velocities) ->
        on rank 0 the one-process net's full arrays (both halves stacked on the first axis in
        rank order; ``halves.gather_halves``), None on the other rank. Every rank must call it."""
        return gather_halves(self.comm, self.params(), arrays)

    def scatter_full(self, full: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """The inverse of ``gather_full``: rank 0's full arrays (the one-process net's names and
        shapes; None on the other rank) -> this rank's halves, fresh arrays keyed like
        ``params()``. Rank 0 checks them first and every rank stops if they do not fit."""
        return scatter_halves(self.comm, self.params(), full)
