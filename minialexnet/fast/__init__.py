"""The fast CPU engine: the same layers as ``minialexnet.layers``, computed for speed.

The reference (``minialexnet.layers``) is for reading, this engine is for speed, and the tests
(``tests/test_fast_*.py``) prove them equal: every class here subclasses the reference class
of the same name (constructor, checks, parameters, ``output_shape``, ``macs``, ``repr`` are
shared) and overrides only ``_forward`` and ``_backward``. ``build_alexnet(engine="fast")``
(the default where this package exists) builds a network from these classes.

Optimizations:

* **Channels-last.** Every 4-D array an engine layer returns is NCHW-shaped, as the contract
  says, but stored (N, H, W, C) in memory: a transposed view. A receptive-field row, a pixel's
  LRN window and a pooling window's channels are then contiguous runs, and a convolution's
  matmul writes its output rows directly. Layers accept any NCHW array: im2col reads any
  layout; the other kernels copy an array not stored channels-last (a caller's) once.
* **Fewer multiplications.** Stride-1 ungrouped 3x3 and 5x5 convolutions (conv2-5) run as
  Winograd F(2x2, 3x3) and F(3x3, 5x5) from two images up (``winograd.py``): the same
  function, computed with 2.2x and 4.6x fewer multiplications, equal to the reference within
  a float32 tolerance the tests state (``tests/test_fast_winograd.py``).
* **Chunks.** A convolution runs ``conv.CHUNK_BYTES`` of im2col matrix (``winograd.
  CHUNK_BYTES`` of transformed tiles) at a time, so it is still in cache when the matmul
  reads it; the backward rebuilds each chunk from x instead of keeping the whole batch's
  (memory stays at the activations' size).
* **Buffers reused, and what may be returned.** Scratch (cols or tiles, transformed filters, dW
  partial sums) is one ``Scratch`` shared by a network's layers (``share_scratch``: kept on the
  ``Sequential``); nothing in it outlives a call, and it is never returned. Outputs and dL/dx
  are always fresh arrays: a caller may hold them across any later call, of this layer or
  another (gradcheck holds an output across the next forward of the same layer). Parameter
  gradients live in per-layer buffers written in place: each backward of a layer overwrites its
  own ``grads`` (the contract's "gradients overwrite"), never another layer's; a caller who
  wants to keep them across the next backward of the same layer copies them (gradcheck does).
* **What a forward keeps.** Only what its backward needs, preferring arrays that exist anyway:
  Conv2d keeps x (W is its own weight matrix; Winograd's transformed filters are recomputed),
  ReLU its output, LRN only x (its backward recomputes the window sums), MaxPool2d one byte
  per output (the winning offset). A batch of 0 images never reaches a kernel: the base
  class answers it (empty results, zero gradients written into the same buffers). Under
  ``Sequential.no_grad()`` (``grad_enabled`` False) a forward keeps nothing (``_cache`` is
  None) and takes no argmax buffer; the base class then refuses a backward.
* **Numba kernels.** ``@njit(parallel=True, cache=True)`` with ``fastmath`` off (results must
  match the reference, so no reassociation). Every ``prange`` runs over independent slices,
  (image, row) or blocks of a flat array, so no two iterations ever write one element:
  overlapping windows (col2im, pooling's backward) are written as gathers, each output element
  summing its own inputs, never as scattered adds. Sums run in the reference's order where it
  is cheap (pooling and LRN windows), so float32 results often agree bit for bit.
  ``cache=True`` keeps the compiled code in ``__pycache__``: the first import compiles, later
  processes load it. Importing this package runs every kernel once on tiny arrays of both
  dtypes (``load_kernels``), so the code is compiled or loaded, and its memory taken, at
  import rather than inside a network's first step.
* **BLAS.** All matmuls are NumPy's (OpenBLAS), writing into existing arrays (``out=``)
  wherever the result is not returned; Numba kernels run between them, never at the same time.
  Numba's OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``, set at import unless
  already set: a process-wide setting) so that they do not spin against OpenBLAS's threads.

Measured numbers live in ``docs/performance.md``, not here.
"""

from __future__ import annotations

import os

# Process-wide, and stated here because it is: Numba's OpenMP threads must not spin-wait
# between kernels, or they fight OpenBLAS's own (spinning) threads for the two cores after
# every matmul (measured: a training step ~1.5x slower). libgomp reads this when Numba first
# starts its threads, i.e. in ``load_kernels`` below; a value already set is left alone.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from ..layers import Layer, softmax, softmax_cross_entropy
from .activations import ReLU, Sigmoid, Tanh
from .conv import WINOGRAD_MIN_CHANNELS, Conv2d
from .dropout import Dropout
from .linear import Flatten, Linear
from .lrn import LocalResponseNorm
from .pool import MaxPool2d
from .scratch import Scratch


def load_kernels() -> None:
    """Run every engine kernel once, in float32 and float64, on tiny arrays (see above)."""
    for dtype in (np.float32, np.float64):
        x = np.ones((2, 2, 6, 7), dtype=dtype)  # 2 images: the Winograd path too
        x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        for layer in (Conv2d(2, 2, 3, 2, dtype=dtype), Conv2d(2, 2, 3, 1, 1, dtype=dtype)):
            layer.backward(np.ones_like(layer.forward(x_cl)))  # im2col of a channels-last x
        wide = np.ones((2, WINOGRAD_MIN_CHANNELS, 6, 7), dtype=dtype)  # wide enough for Winograd
        for conv in (
            Conv2d(WINOGRAD_MIN_CHANNELS, 2, 3, 2, dtype=dtype),
            Conv2d(WINOGRAD_MIN_CHANNELS, 2, 3, 1, 1, dtype=dtype),
            Conv2d(WINOGRAD_MIN_CHANNELS, 2, 5, 1, 2, dtype=dtype),
        ):
            conv.backward(np.ones_like(conv.forward(wide)))
        for layer in (ReLU(), LocalResponseNorm(), MaxPool2d(2, 2)):
            layer.backward(np.ones_like(layer.forward(x)))
            layer.grad_enabled = False
            layer.forward(x)
        for n in (1, 9):  # both of Linear's weight-gradient paths
            linear = Linear(3, 2, dtype=dtype)
            linear.backward(np.ones_like(linear.forward(np.ones((n, 3), dtype=dtype))))


load_kernels()

__all__ = [
    "Conv2d",
    "Dropout",
    "Flatten",
    "Layer",
    "Linear",
    "LocalResponseNorm",
    "MaxPool2d",
    "ReLU",
    "Scratch",
    "Sigmoid",
    "Tanh",
    "load_kernels",
    "softmax",
    "softmax_cross_entropy",
]
