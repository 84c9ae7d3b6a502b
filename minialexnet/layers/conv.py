"""2-D convolution with stride, padding and groups: a naive loop version and an im2col version.

Shapes (per the layer contract in ``base.py``)
    x      (N, C, H, W)            input images
    W      (F, C // G, KH, KW)     F filters; each sees only its group's C // G channels
    b      (F,)
    out    (N, F, OH, OW)          OH = (H + 2*PH - KH) // SH + 1,  OW = (W + 2*PW - KW) // SW + 1

Groups (the paper's two-GPU split): channels are cut into G equal groups; filters
``g*F/G .. (g+1)*F/G - 1`` see only input channels ``g*C/G .. (g+1)*C/G - 1``. With G=2 this
is exactly AlexNet's conv2/conv4/conv5, where each GPU's filters saw only that GPU's maps.

The math, for one output element:
    out[n, f, i, j] = b[f] + sum_{c, u, v} W[f, c, u, v] * xpad[n, g*C/G + c, i*SH + u, j*SW + v]
and so, with g = dL/dout:
    dL/db[f]          = sum_{n,i,j} g[n, f, i, j]
    dL/dW[f, c, u, v] = sum_{n,i,j} g[n, f, i, j] * xpad[n, g*C/G + c, i*SH + u, j*SW + v]
    dL/dxpad[n, ., i*SH + u, j*SW + v] += sum_f g[n, f, i, j] * W[f, ., u, v]

``naive_forward``/``naive_backward`` write those three lines as loops (the teaching reference).
``im2col_forward``/``im2col_backward`` gather every receptive field into one matrix once, so each
group's convolution becomes one matrix multiply (what the model uses).
Expected gradient-check relative error in float64: below 1e-8.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .base import Layer, Shape, check_positive_int

Pair = int | tuple[int, int]


def pair(layer: str, argument: str, value: Pair, *, minimum: int) -> tuple[int, int]:
    """Accept ``k`` or ``(kh, kw)``; return ``(kh, kw)`` or raise naming the argument."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(f"{layer}: {argument} must be an int or a pair, got {value!r}")
        return (
            check_positive_int(layer, argument, value[0], minimum=minimum),
            check_positive_int(layer, argument, value[1], minimum=minimum),
        )
    v = check_positive_int(layer, argument, value, minimum=minimum)
    return v, v


def output_size(layer: str, size: int, kernel: int, stride: int, padding: int, axis: str) -> int:
    """``(size + 2*padding - kernel) // stride + 1``, or a ValueError if the kernel doesn't fit."""
    if kernel > size + 2 * padding:
        raise ValueError(
            f"{layer}: kernel {axis} {kernel} is larger than the padded input {axis} "
            f"{size} + 2*{padding} = {size + 2 * padding}"
        )
    return (size + 2 * padding - kernel) // stride + 1


def pad_input(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """Zero-pad the two spatial axes of an NCHW array (no copy when there is no padding)."""
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


# ----------------------------------------------------------------------------------------
# The teaching reference: loops that say exactly what a convolution is.
# ----------------------------------------------------------------------------------------
def naive_forward(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int,
) -> np.ndarray:
    """Loop over every output element and take a dot product with its receptive field."""
    N, _, _, _ = x.shape
    F, Cg, KH, KW = W.shape
    (SH, SW), (PH, PW) = stride, padding
    xpad = pad_input(x, PH, PW)
    OH = (xpad.shape[2] - KH) // SH + 1
    OW = (xpad.shape[3] - KW) // SW + 1
    filters_per_group = F // groups
    out = np.empty((N, F, OH, OW), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            c0 = (f // filters_per_group) * Cg  # first input channel of this filter's group
            for i in range(OH):
                for j in range(OW):
                    field = xpad[n, c0 : c0 + Cg, i * SH : i * SH + KH, j * SW : j * SW + KW]
                    out[n, f, i, j] = np.sum(field * W[f]) + b[f]
    return out


def naive_backward(
    dout: np.ndarray,
    x: np.ndarray,
    W: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (dx, dW, db): each output element sends its gradient back along its dot product."""
    N, F, OH, OW = dout.shape
    _, Cg, KH, KW = W.shape
    (SH, SW), (PH, PW) = stride, padding
    xpad = pad_input(x, PH, PW)
    dxpad = np.zeros_like(xpad)
    dW = np.zeros_like(W)
    db = np.zeros(F, dtype=dout.dtype)
    filters_per_group = F // groups
    for n in range(N):
        for f in range(F):
            c0 = (f // filters_per_group) * Cg
            for i in range(OH):
                for j in range(OW):
                    rows = slice(i * SH, i * SH + KH)
                    cols = slice(j * SW, j * SW + KW)
                    g = dout[n, f, i, j]
                    dW[f] += g * xpad[n, c0 : c0 + Cg, rows, cols]
                    dxpad[n, c0 : c0 + Cg, rows, cols] += g * W[f]
                    db[f] += g
    dx = dxpad[:, :, PH : PH + x.shape[2], PW : PW + x.shape[3]]
    return dx, dW, db


# ----------------------------------------------------------------------------------------
# The fast version: im2col turns the convolution into matrix multiplies.
# ----------------------------------------------------------------------------------------
def im2col(xpad: np.ndarray, KH: int, KW: int, SH: int, SW: int, OH: int, OW: int) -> np.ndarray:
    """Gather every receptive field: (N, C, Hp, Wp) -> cols of shape (C*KH*KW, N*OH*OW).

    Row ``(c, u, v)`` of ``cols`` holds, for every output position ``(n, i, j)``, the input pixel
    ``xpad[n, c, i*SH + u, j*SW + v]``. ``as_strided`` builds that 6-D view
    (C, KH, KW, N, OH, OW) without copying; one copy makes it contiguous. Channels come first
    so that each group's rows are one contiguous block.
    """
    N, C, _, _ = xpad.shape
    sN, sC, sH, sW = xpad.strides
    fields = as_strided(
        xpad,
        shape=(C, KH, KW, N, OH, OW),
        strides=(sC, sH, sW, sN, sH * SH, sW * SW),
        writeable=False,
    )
    return np.ascontiguousarray(fields).reshape(C * KH * KW, N * OH * OW)


def col2im(
    dcols: np.ndarray, xpad_shape: Shape, KH: int, KW: int, SH: int, SW: int, OH: int, OW: int
) -> np.ndarray:
    """The adjoint of ``im2col``: add each column entry back onto the pixel it was copied from.

    Overlapping receptive fields (stride < kernel) put several entries on one pixel, so this
    sums. One strided add per kernel offset (u, v): KH*KW adds of an (N, C, OH, OW) block.
    """
    N, C, _, _ = xpad_shape
    dxpad = np.zeros(xpad_shape, dtype=dcols.dtype)
    d6 = dcols.reshape(C, KH, KW, N, OH, OW)
    for u in range(KH):
        for v in range(KW):
            target = dxpad[:, :, u : u + SH * (OH - 1) + 1 : SH, v : v + SW * (OW - 1) + 1 : SW]
            target += d6[:, u, v].transpose(1, 0, 2, 3)
    return dxpad


def im2col_forward(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (out, cols); ``cols`` is what ``im2col_backward`` needs for dW."""
    N = x.shape[0]
    F, Cg, KH, KW = W.shape
    (SH, SW), (PH, PW) = stride, padding
    xpad = pad_input(x, PH, PW)
    OH = (xpad.shape[2] - KH) // SH + 1
    OW = (xpad.shape[3] - KW) // SW + 1
    cols = im2col(xpad, KH, KW, SH, SW, OH, OW)  # (C*KH*KW, N*OH*OW)
    Fg, rows_per_group = F // groups, Cg * KH * KW
    out2d = np.empty((F, N * OH * OW), dtype=x.dtype)
    for g in range(groups):  # one matrix multiply per group
        np.matmul(
            W[g * Fg : (g + 1) * Fg].reshape(Fg, rows_per_group),
            cols[g * rows_per_group : (g + 1) * rows_per_group],
            out=out2d[g * Fg : (g + 1) * Fg],
        )
    out = np.empty((N, F, OH, OW), dtype=x.dtype)
    np.add(out2d.reshape(F, N, OH, OW).transpose(1, 0, 2, 3), b[:, None, None], out=out)
    return out, cols


def im2col_backward(
    dout: np.ndarray,
    cols: np.ndarray,
    x_shape: Shape,
    W: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int,
    need_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Return (dx or None, dW, db) from dout and the forward's ``cols``."""
    N, F, OH, OW = dout.shape
    _, Cg, KH, KW = W.shape
    (SH, SW), (PH, PW) = stride, padding
    Fg, rows_per_group = F // groups, Cg * KH * KW
    dout2d = np.ascontiguousarray(dout.transpose(1, 0, 2, 3)).reshape(F, N * OH * OW)
    db = dout2d.sum(axis=1)
    dW = np.empty_like(W)
    dcols = np.empty_like(cols) if need_dx else None
    for g in range(groups):
        f_rows, c_rows = (
            slice(g * Fg, (g + 1) * Fg),
            slice(g * rows_per_group, (g + 1) * rows_per_group),
        )
        np.matmul(dout2d[f_rows], cols[c_rows].T, out=dW[f_rows].reshape(Fg, rows_per_group))
        if dcols is not None:
            np.matmul(W[f_rows].reshape(Fg, rows_per_group).T, dout2d[f_rows], out=dcols[c_rows])
    if dcols is None:
        return None, dW, db
    xpad_shape = (N, x_shape[1], x_shape[2] + 2 * PH, x_shape[3] + 2 * PW)
    dxpad = col2im(dcols, xpad_shape, KH, KW, SH, SW, OH, OW)
    return dxpad[:, :, PH : PH + x_shape[2], PW : PW + x_shape[3]], dW, db


class Conv2d(Layer):
    """Convolution layer. ``impl="im2col"`` (default, fast) or ``"naive"`` (loops, for reading).

    Weights start He-normal (std sqrt(2 / fan_in)), biases zero; ``minialexnet.model`` can
    re-initialise them the paper's way.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Pair,
        stride: Pair = 1,
        padding: Pair = 0,
        groups: int = 1,
        *,
        impl: str = "im2col",
        rng: np.random.Generator | None = None,
        dtype: type | np.dtype = np.float32,
    ) -> None:
        super().__init__()
        name = self.name
        C = check_positive_int(name, "in_channels", in_channels)
        F = check_positive_int(name, "out_channels", out_channels)
        G = check_positive_int(name, "groups", groups)
        if C % G or F % G:
            raise ValueError(f"{name}: groups={G} must divide in_channels={C} and out_channels={F}")
        if impl not in ("im2col", "naive"):
            raise ValueError(f"{name}: impl must be 'im2col' or 'naive', got {impl!r}")
        self.in_channels, self.out_channels, self.groups, self.impl = C, F, G, impl
        self.kernel_size = pair(name, "kernel_size", kernel_size, minimum=1)
        self.stride = pair(name, "stride", stride, minimum=1)
        self.padding = pair(name, "padding", padding, minimum=0)
        KH, KW = self.kernel_size
        rng = rng if rng is not None else np.random.default_rng(0)
        fan_in = (C // G) * KH * KW
        self.params = {
            "W": (rng.standard_normal((F, C // G, KH, KW)) * np.sqrt(2.0 / fan_in)).astype(dtype),
            "b": np.zeros(F, dtype=dtype),
        }
        self.astype(dtype)  # validates dtype

    def check_input_shape(self, in_shape: Shape) -> None:
        super().check_input_shape(in_shape)
        if in_shape[0] != self.in_channels:
            raise ValueError(
                f"{self.name}: x has {in_shape[0]} channels, the weights expect "
                f"in_channels={self.in_channels} (x is NCHW, got per-image shape {in_shape})"
            )
        self.output_shape(in_shape)

    def output_shape(self, in_shape: Shape) -> Shape:
        Layer.check_input_shape(self, in_shape)
        (KH, KW), (SH, SW), (PH, PW) = self.kernel_size, self.stride, self.padding
        OH = output_size(self.name, in_shape[1], KH, SH, PH, "height")
        OW = output_size(self.name, in_shape[2], KW, SW, PW, "width")
        return (self.out_channels, OH, OW)

    def macs(self, in_shape: Shape) -> int:
        F, OH, OW = self.output_shape(in_shape)
        KH, KW = self.kernel_size
        return F * OH * OW * (self.in_channels // self.groups) * KH * KW

    def _forward(self, x: np.ndarray) -> np.ndarray:
        W, b = self.params["W"], self.params["b"]
        if self.impl == "naive":
            self._cache = x
            return naive_forward(x, W, b, self.stride, self.padding, self.groups)
        out, cols = im2col_forward(x, W, b, self.stride, self.padding, self.groups)
        self._cache = (cols, x.shape)
        return out

    def _backward(self, dout: np.ndarray) -> np.ndarray | None:
        W = self.params["W"]
        if self.impl == "naive":
            dx, dW, db = naive_backward(
                dout, self._cache, W, self.stride, self.padding, self.groups
            )
        else:
            cols, x_shape = self._cache
            dx, dW, db = im2col_backward(
                dout,
                cols,
                x_shape,
                W,
                self.stride,
                self.padding,
                self.groups,
                need_dx=self.needs_input_grad,
            )
        self.grads = {"W": dW, "b": db}
        return dx if self.needs_input_grad else None

    def __repr__(self) -> str:
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, groups={self.groups})"
        )
