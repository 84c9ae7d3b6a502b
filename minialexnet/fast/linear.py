"""The engine's fully connected layer: BLAS for the products, gradients in kept buffers.

Same math as ``minialexnet.layers.linear``. At AlexNet's sizes the layer is memory-bound at
small batches (fc6's W is 151 MB: each pass over it costs the same whatever N is), so what
matters is touching W and dW as few times as possible:
* dW lives in a buffer of this layer, written in place by each backward: a fresh 151 MB
  array per step would be page-faulted in afresh every time.
* for a few images dW = dout.T @ x is a sum of N outer products, a shape BLAS handles poorly
  (K = N: at one image 6x slower than a plain loop); a Numba loop writes each row of dW once,
  with the N rows of x in cache.
Flatten is the reference's (a reshape; its copy of pool5's channels-last output is small).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..layers import Flatten as ReferenceFlatten
from ..layers import Linear as ReferenceLinear
from .scratch import KeepsNothingUnderNoGrad

__all__ = ["Flatten", "Linear"]

SMALL_BATCH = 4  # up to this many images dW is written by ``outer_sum``, above by BLAS


@njit(parallel=True, cache=True)
def outer_sum(g, x, dW):  # pragma: no cover (compiled)
    """dW[i, :] = sum_n g[n, i] * x[n, :], in n order; rows are independent (prange).
    (A fused variant that also summed dx in the same pass over W was tried: Numba did not
    vectorize its blocked loops, and it ran slower than this plus a BLAS call for dx.)"""
    N, D_out = g.shape
    D_in = x.shape[1]
    for i in prange(D_out):
        for d in range(D_in):
            dW[i, d] = g[0, i] * x[0, d]
        for n in range(1, N):
            for d in range(D_in):
                dW[i, d] += g[n, i] * x[n, d]


class Linear(ReferenceLinear):
    """``minialexnet.layers.Linear`` computed by the engine."""

    def _forward(self, x: np.ndarray) -> np.ndarray:
        W, b = self.params["W"], self.params["b"]
        # x @ W.T computed as (W @ x.T).T: the same numbers; OpenBLAS runs this orientation
        # (the big matrix first) faster at small batches. The result is a fresh array's view.
        out = np.matmul(W, x.T).T
        out += b
        self._cache = x if self.grad_enabled else None
        return out

    def _backward(self, dout: np.ndarray) -> np.ndarray | None:
        x = self._cache
        W = self.params["W"]
        dW, db = self.grads.get("W"), self.grads.get("b")
        if dW is None or dW.shape != W.shape or dW.dtype != W.dtype or db is None:
            dW, db = np.empty_like(W), np.empty_like(self.params["b"])
        np.sum(dout, axis=0, out=db)
        self.grads = {"W": dW, "b": db}
        if x.shape[0] <= SMALL_BATCH:
            outer_sum(np.ascontiguousarray(dout), np.ascontiguousarray(x), dW)
        else:
            np.matmul(dout.T, x, out=dW)
        return dout @ W if self.needs_input_grad else None


class Flatten(KeepsNothingUnderNoGrad, ReferenceFlatten):
    """``minialexnet.layers.Flatten`` as it is: a reshape (C order, so a copy of pool5's
    channels-last output: small)."""
