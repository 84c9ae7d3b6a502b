"""A whole training step on the GPU: a batch in, the loss out, nothing in between on the host.

``CudaTrainer(model, optimizer)`` copies a float32 ``Sequential`` and its ``SGD`` velocities to
the device and builds the GPU twin of every layer (same names, same math, kernels in the
modules beside this one). Then each ``step(x, y)``:

    x (N, 3, H, W) float32, y (N,) ints  --copy in-->  device
    NCHW -> feature-major (C, N, H, W)                   layout.to_feature_major
    every layer's forward, in order                      conv, relu, lrn, pool, ..., fc8
    softmax cross-entropy: dlogits and the mean loss     loss.softmax_cross_entropy
    every layer's backward, in reverse                   gradients into one flat buffer
    one SGD launch over all parameters                   optim.sgd_update
    loss (1 float) and logits (N x classes)  --copy out-->  host

Parameters, gradients and velocities each live in one flat device buffer, every layer using
views into them, so the update is a single launch. ``sync_to_host()`` copies parameters and
velocities back into the model and the optimizer (for evaluation on the CPU, checkpoints).
Until then the device holds the truth: host-side changes to the model after construction are
not seen (build a new trainer after loading a checkpoint).

Dropout masks come from a counter-based generator (``dropout.py``), not from the NumPy
layers' generators: a GPU step and a CPU step from the same state agree exactly only when
given the same masks, which is how the tests compare them (``dropout_masks``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

from ..layers import (
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    LocalResponseNorm,
    MaxPool2d,
    ReLU,
)
from ..layers.base import check_array
from ..model import Sequential
from ..optim import SGD
from .activations import ReLUCuda
from .common import CudaLayer
from .conv import Conv2dCuda
from .dropout import DropoutCuda
from .gemm import BEST
from .layout import to_feature_major, to_host_layout
from .linear import FlattenCuda, LinearCuda
from .loss import softmax_cross_entropy
from .lrn import LocalResponseNormCuda
from .optim import sgd_update
from .pool import MaxPool2dCuda

SUPPORTED = (Conv2d, Linear, ReLU, LocalResponseNorm, MaxPool2d, Dropout, Flatten)


class FlatBuffer:
    """One device buffer holding several named arrays back to back, with a view for each."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]) -> None:
        self.shapes = shapes
        self.offsets: dict[str, int] = {}
        total = 0
        for name, shape in shapes.items():
            self.offsets[name] = total
            total += int(np.prod(shape))
        self.flat = cuda.device_array(total, np.float32)

    def view(self, name: str) -> Any:
        start = self.offsets[name]
        return self.flat[start : start + int(np.prod(self.shapes[name]))].reshape(self.shapes[name])

    def upload(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy host arrays (one per name) into the buffer in one transfer."""
        parts = [np.ravel(arrays[name]).astype(np.float32) for name in self.shapes]
        self.flat.copy_to_device(np.concatenate(parts) if parts else np.zeros(0, np.float32))

    def download_into(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy the buffer back, in one transfer, into the host arrays in place."""
        host = self.flat.copy_to_host()
        for name, shape in self.shapes.items():
            start = self.offsets[name]
            arrays[name][...] = host[start : start + int(np.prod(shape))].reshape(shape)


class CudaTrainer:
    """Trains ``model`` with ``optimizer`` on the GPU. ``gemm_version`` picks the GEMM
    (``gemm.VERSIONS``; the fastest by default); ``seed`` picks the dropout masks."""

    def __init__(
        self, model: Sequential, optimizer: SGD, *, seed: int = 0, gemm_version: int = BEST
    ) -> None:
        if model.dtype != np.float32:
            raise TypeError(
                f"CudaTrainer: the GPU path computes in float32; the model is {model.dtype} "
                f"(call model.astype(np.float32) first)"
            )
        params = model.params()
        if set(optimizer.velocities) != set(params):
            raise ValueError(
                "CudaTrainer: the optimizer's velocities must be keyed like model.params(); "
                "was the optimizer built for another model?"
            )
        for name, layer in model.layers.items():
            if not isinstance(layer, SUPPORTED):
                raise TypeError(
                    f"CudaTrainer: layer {name!r} ({type(layer).__name__}) has no GPU kernel; "
                    f"supported: {', '.join(t.__name__ for t in SUPPORTED)}"
                )
        self.model, self.optimizer = model, optimizer
        shapes = {name: p.shape for name, p in params.items()}
        self.weights, self.grads, self.velocities = (FlatBuffer(shapes) for _ in range(3))
        self.weights.upload(params)
        self.velocities.upload(optimizer.velocities)
        self.layers: list[CudaLayer] = []
        shape = model.input_shape
        for index, (name, layer) in enumerate(model.layers.items()):
            self.layers.append(self._twin(name, layer, shape, seed * 1000 + index, gemm_version))
            shape = model.shapes[name]
        self.layers[0].needs_input_grad = False
        self.batch = 0

    def _twin(
        self, name: str, layer: Any, in_shape: tuple, seed: int, gemm_version: int
    ) -> CudaLayer:
        if isinstance(layer, (Conv2d, Linear)):
            twin = Conv2dCuda if isinstance(layer, Conv2d) else LinearCuda
            views = {p: self.weights.view(f"{name}.{p}") for p in layer.params}
            grads = {p: self.grads.view(f"{name}.{p}") for p in layer.params}
            return twin(layer, in_shape, views, grads, gemm_version)
        if isinstance(layer, Dropout):
            return DropoutCuda(layer, in_shape, seed)
        simple = {
            ReLU: ReLUCuda,
            LocalResponseNorm: LocalResponseNormCuda,
            MaxPool2d: MaxPool2dCuda,
            Flatten: FlattenCuda,
        }
        # isinstance, not type(layer): the fast engine's layers subclass the reference ones
        # (same constructor, same parameters), so a network of either engine has GPU twins
        twin = next(twin for kind, twin in simple.items() if isinstance(layer, kind))
        return twin(layer, in_shape)

    def resize(self, batch: int) -> None:
        """Allocate every buffer of a step for ``batch`` images (``step`` does it when needed;
        the buffers are kept while the batch size stays the same)."""
        if batch == self.batch:
            return
        for layer in self.layers:
            layer.resize(batch)
        classes = self.model.shapes[next(reversed(self.model.shapes))][0]
        self.x_nchw = cuda.device_array((batch, *self.model.input_shape), np.float32)
        self.x = cuda.device_array(
            (self.model.input_shape[0], batch, *self.model.input_shape[1:]), np.float32
        )
        self.labels = cuda.device_array(batch, np.int32)
        self.dlogits = cuda.device_array((classes, batch), np.float32)
        self.losses = cuda.device_array(batch, np.float32)
        self.loss = cuda.device_array(1, np.float32)
        self.batch = batch

    def _check_batch(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        check_array("CudaTrainer.step", "x", x, ndim=4, axes="NCHW", expected_dtype=np.float32)
        if x.shape[1:] != self.model.input_shape:
            raise ValueError(
                f"CudaTrainer.step: x must have per-image shape {self.model.input_shape}, "
                f"got {x.shape[1:]}"
            )
        classes = self.model.shapes[next(reversed(self.model.shapes))][0]
        y = np.asarray(y)
        if not np.issubdtype(y.dtype, np.integer) or y.shape != (x.shape[0],):
            raise ValueError(
                f"CudaTrainer.step: y must be {x.shape[0]} integer labels, got dtype {y.dtype} "
                f"shape {y.shape}"
            )
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ValueError(
                f"CudaTrainer.step: labels must be in [0, {classes}), got {y.min()}..{y.max()}"
            )
        return y.astype(np.int32)

    def forward(self, x: Any, training: bool = True) -> Any:
        """Run the layers on a feature-major device batch; return the device logits (K, N)."""
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """One SGD step on the batch (x float32 (N, C, H, W), y labels (N,)).

        Returns (mean loss, logits (N, classes) as computed before the update), like
        ``minialexnet.step.train_step``. The same as ``load(x, y)`` then ``step_loaded()``.
        """
        self.load(x, y)
        return self.step_loaded()

    def load(self, x: np.ndarray, y: np.ndarray) -> None:
        """Check a batch and copy it to the device (the only host-to-device copy of a step)."""
        labels = self._check_batch(x, y)
        self.resize(x.shape[0])
        self.x_nchw.copy_to_device(np.ascontiguousarray(x))
        self.labels.copy_to_device(labels)

    def step_loaded(self) -> tuple[float, np.ndarray]:
        """One SGD step on the batch last ``load``-ed: everything on the device, then the loss
        and the logits come back (the benchmark times this apart from the copy in)."""
        if self.batch == 0:
            raise RuntimeError("CudaTrainer.step_loaded: no batch was loaded")
        logits = self.forward(to_feature_major(self.x_nchw, self.x), training=True)
        softmax_cross_entropy(logits, self.labels, self.dlogits, self.losses, self.loss)
        dout = self.dlogits
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        opt = self.optimizer
        sgd_update(
            self.weights.flat,
            self.velocities.flat,
            self.grads.flat,
            opt.lr,
            opt.momentum,
            opt.weight_decay,
        )
        return float(self.loss.copy_to_host()[0]), to_host_layout(logits.copy_to_host())

    def sync_to_host(self) -> None:
        """Copy parameters and velocities back into the model and the optimizer, in place."""
        self.weights.download_into(self.model.params())
        self.velocities.download_into(self.optimizer.velocities)

    def dropout_masks(self) -> dict[str, np.ndarray]:
        """The masks of the last training step, by layer name, in the NumPy layout (N, D)."""
        return {
            layer.name: to_host_layout(layer.mask.copy_to_host())
            for layer in self.layers
            if isinstance(layer, DropoutCuda) and layer.mask is not None
        }
