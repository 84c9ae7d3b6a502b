"""Fully connected layer and the Flatten that feeds it.

Linear shapes
    x    (N, D_in)
    W    (D_out, D_in)       (rows are output units, like a conv filter bank with 1x1 maps)
    b    (D_out,)
    out  (N, D_out)          out = x @ W.T + b
Backward, with g = dL/dout (N, D_out):
    dL/dx = g @ W            (N, D_in)
    dL/dW = g.T @ x          (D_out, D_in)
    dL/db = g.sum(axis=0)    (D_out,)
Expected gradient-check relative error in float64: below 1e-7.

Flatten: (N, C, H, W) -> (N, C*H*W) in C order, so fc6's input index is c*H*W + h*W + w;
backward reshapes the gradient back.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, Shape, check_float_dtype, check_positive_int, check_rng


class Linear(Layer):
    """``out = x @ W.T + b``. Weights start He-normal (std sqrt(2 / D_in)), biases zero."""

    input_ndim = 2
    input_axes = "ND"

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        rng: np.random.Generator | None = None,
        dtype: type | np.dtype = np.float32,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int(self.name, "in_features", in_features)
        self.out_features = check_positive_int(self.name, "out_features", out_features)
        rng = check_rng(self.name, rng)
        dtype = check_float_dtype(self.name, dtype)
        std = np.sqrt(2.0 / self.in_features)
        self.params = {
            "W": rng.standard_normal((self.out_features, self.in_features)) * std,
            "b": np.zeros(self.out_features),
        }
        self.astype(dtype)

    def param_shapes(self) -> dict[str, Shape]:
        return {"W": (self.out_features, self.in_features), "b": (self.out_features,)}

    def output_shape(self, in_shape: Shape) -> Shape:
        self.check_rank(in_shape)
        if in_shape[0] != self.in_features:
            raise ValueError(
                f"{self.name}: x has {in_shape[0]} features, the weights expect "
                f"in_features={self.in_features}"
            )
        return (self.out_features,)

    def macs(self, in_shape: Shape) -> int:
        self.output_shape(in_shape)
        return self.in_features * self.out_features

    def _forward(self, x: np.ndarray) -> np.ndarray:
        # EXERCISE linear: out = x @ W.T + b, keeping x for the backward.
        # hint: x (N, D_in), W (D_out, D_in), b (D_out,) -> out (N, D_out).
        self._cache = x
        return x @ self.params["W"].T + self.params["b"]
        # END EXERCISE

    def _backward(self, dout: np.ndarray) -> np.ndarray | None:
        # EXERCISE linear: fill grads W and b; return dL/dx (None if not needed).
        # hint: dout (N, D_out): dW = dout.T @ x (D_out, D_in), db = dout summed over N, dx = dout @
        # hint: W.
        x = self._cache
        self.grads = {"W": dout.T @ x, "b": dout.sum(axis=0)}
        return dout @ self.params["W"] if self.needs_input_grad else None
        # END EXERCISE

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features})"


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W)."""

    def output_shape(self, in_shape: Shape) -> Shape:
        self.check_rank(in_shape)
        return (int(np.prod(in_shape)),)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        # EXERCISE linear: (N, C, H, W) -> (N, C*H*W), keeping the shape.
        # hint: a reshape in C order; remember x.shape for the backward.
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)
        # END EXERCISE

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        # EXERCISE linear: the gradient back to (N, C, H, W).
        # hint: reshape dout to the forward input's shape.
        return dout.reshape(self._cache)
        # END EXERCISE
