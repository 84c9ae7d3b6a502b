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

``naive_forward``/``naive_backward`` write those three lines as loops.
``im2col_forward``/``im2col_backward`` gather every receptive field into the rows of one matrix,
so each group's convolution becomes one matrix multiply: the same sums, in an order BLAS runs
fast. Both are the reference; ``minialexnet/fast/conv.py`` is the tuned engine, tested equal.
Expected gradient-check relative error in float64: below 1e-7.
"""

from __future__ import annotations

import numpy as np

from .base import (
    Layer,
    Shape,
    check_float_dtype,
    check_positive_int,
    check_rng,
)

Pair = int | tuple[int, int]


def pair(layer: str, argument: str, value: Pair, *, minimum: int) -> tuple[int, int]:
    """Accept ``k`` or ``(kh, kw)`` (a tuple or list); return ``(kh, kw)`` or raise naming the
    argument."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"{layer}: {argument} must be an int or a pair of ints >= {minimum}, got {value!r}"
            )
        return (
            check_positive_int(layer, argument, value[0], minimum=minimum),
            check_positive_int(layer, argument, value[1], minimum=minimum),
        )
    v = check_positive_int(layer, argument, value, minimum=minimum)
    return v, v


def sliding_positions(size: int, kernel: int, stride: int, padding: int) -> int:
    """Where a window fits along one axis: ``(size + 2*padding - kernel) // stride + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def output_size(layer: str, size: int, kernel: int, stride: int, padding: int, axis: str) -> int:
    """``sliding_positions``, or a ValueError naming ``layer`` if the kernel doesn't fit."""
    if kernel > size + 2 * padding:
        raise ValueError(
            f"{layer}: kernel {axis} {kernel} is larger than the padded input {axis} "
            f"{size} + 2*{padding} = {size + 2 * padding}"
        )
    return sliding_positions(size, kernel, stride, padding)


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
    # EXERCISE conv: the convolution as loops over every output element.
    # hint: x (N, C, H, W), W (F, C/G, KH, KW), b (F,) -> out (N, F, OH, OW),
    # hint: OH = (H + 2*PH - KH) // SH + 1. Pad x, then for each (n, f, i, j) take the sum of
    # hint: W[f] * (the receptive field of filter f's group) plus b[f].
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
    # END EXERCISE


def naive_backward(
    dout: np.ndarray,
    x: np.ndarray,
    W: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (dx, dW, db): each output element sends its gradient back along its dot product."""
    # EXERCISE conv: the backward as loops: each output sends its gradient back.
    # hint: returns dx (N, C, H, W), dW like W, db (F,). For each (n, f, i, j) with g = dout[n, f,
    # hint: i, j]: dW[f] += g * field; dxpad[field's position] += g * W[f]; db[f] += g. Unpad dxpad
    # hint: at the end.
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
    # END EXERCISE


# ----------------------------------------------------------------------------------------
# im2col: the same convolution as one matrix multiply per group.
#
# Every receptive field (C*KH*KW numbers) becomes one row of a matrix ``cols``, one row per
# output pixel of every image. Filter f flattened the same way is one row of ``Wmat``, so
# ``cols @ Wmat.T`` holds every dot product the loops above compute one at a time.
# Columns are in (c, u, v) order, the order of ``W[f].reshape(-1)``; with groups, the
# columns of group g are the block of its channels, ``g*Cg*KH*KW .. (g+1)*Cg*KH*KW - 1``.
# ----------------------------------------------------------------------------------------
def im2col(xpad: np.ndarray, KH: int, KW: int, stride: tuple[int, int]) -> np.ndarray:
    """Gather every receptive field of a padded input into the rows of a matrix.

    Input
        xpad  (N, C, Hp, Wp)  the padded images
    Returns
        cols  (N*OH*OW, C*KH*KW)  row (n, i, j) holds ``xpad[n, :, i*SH : i*SH+KH, j*SW :
              j*SW+KW]`` flattened in (c, u, v) order; OH = (Hp - KH) // SH + 1, likewise OW.
    """
    # EXERCISE im2col: gather every receptive field into the rows of cols.
    # hint: xpad (N, C, Hp, Wp) -> cols (N*OH*OW, C*KH*KW), row (n, i, j), columns (c, u, v).
    # hint: Loop over the kernel offsets (u, v): xpad[:, :, u : u + SH*OH : SH, v : v + SW*OW : SW]
    # hint: is the pixel at offset (u, v) of every field, (N, C, OH, OW). Stack them as
    # hint: (N, C, KH, KW, OH, OW), then move (OH, OW) next to N and reshape.
    N, C, Hp, Wp = xpad.shape
    SH, SW = stride
    OH, OW = (Hp - KH) // SH + 1, (Wp - KW) // SW + 1
    fields = np.empty((N, C, KH, KW, OH, OW), dtype=xpad.dtype)
    for u in range(KH):
        for v in range(KW):
            fields[:, :, u, v] = xpad[:, :, u : u + SH * OH : SH, v : v + SW * OW : SW]
    return fields.transpose(0, 4, 5, 1, 2, 3).reshape(N * OH * OW, C * KH * KW)
    # END EXERCISE


def col2im(
    dcols: np.ndarray, xpad_shape: tuple[int, ...], KH: int, KW: int, stride: tuple[int, int]
) -> np.ndarray:
    """The adjoint of ``im2col``: add every entry of dcols back onto the pixel it came from.

    Input
        dcols       (N*OH*OW, C*KH*KW)  a gradient in im2col's layout
        xpad_shape  (N, C, Hp, Wp)      the padded input's shape
    Returns
        dxpad       (N, C, Hp, Wp)      where fields overlap (stride < kernel) a pixel
                                        collects the sum of every entry that copied it
    """
    # EXERCISE im2col: the adjoint of im2col: add each entry of dcols back onto its pixel.
    # hint: dcols (N*OH*OW, C*KH*KW) -> dxpad (N, C, Hp, Wp). Undo the reshape and transpose of
    # hint: im2col to get (N, C, KH, KW, OH, OW), then for each offset (u, v) ADD block (u, v)
    # hint: onto dxpad[:, :, u : u + SH*OH : SH, v : v + SW*OW : SW] (+=: overlaps add up).
    N, C, Hp, Wp = xpad_shape
    SH, SW = stride
    OH, OW = (Hp - KH) // SH + 1, (Wp - KW) // SW + 1
    fields = dcols.reshape(N, OH, OW, C, KH, KW).transpose(0, 3, 4, 5, 1, 2)
    dxpad = np.zeros(xpad_shape, dtype=dcols.dtype)
    for u in range(KH):
        for v in range(KW):
            dxpad[:, :, u : u + SH * OH : SH, v : v + SW * OW : SW] += fields[:, :, u, v]
    return dxpad
    # END EXERCISE


def im2col_forward(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The convolution as one matrix multiply per group.

    Input: x (N, C, H, W), W (F, C/G, KH, KW), b (F,).
    Returns (out, cols): out (N, F, OH, OW), and cols (N*OH*OW, C*KH*KW) for the backward.
    For group g: ``out_g = cols_g @ Wmat_g.T`` with cols_g its block of columns and Wmat_g its
    filters as rows, (N*OH*OW, Cg*KH*KW) x (Cg*KH*KW, F/G).
    """
    # EXERCISE im2col: the convolution as one matrix multiply per group.
    # hint: Pad x, cols = im2col(xpad, KH, KW, stride). Group g owns filters g*F/G .. and the
    # hint: column block g*K .. (g+1)*K - 1 with K = C/G*KH*KW; its filters as rows:
    # hint: W[f_g].reshape(F/G, K). out rows (n, i, j) -> reshape (N, OH, OW, F), move F to
    # hint: axis 1, add b[f] to channel f. Return (out, cols).
    N, _, _, _ = x.shape
    F, Cg, KH, KW = W.shape
    K, Fg = Cg * KH * KW, F // groups
    xpad = pad_input(x, *padding)
    cols = im2col(xpad, KH, KW, stride)
    OH = (xpad.shape[2] - KH) // stride[0] + 1
    OW = (xpad.shape[3] - KW) // stride[1] + 1
    rows = np.empty((N * OH * OW, F), dtype=x.dtype)
    for g in range(groups):
        f, k = slice(g * Fg, (g + 1) * Fg), slice(g * K, (g + 1) * K)
        rows[:, f] = cols[:, k] @ W[f].reshape(Fg, K).T
    out = rows.reshape(N, OH, OW, F).transpose(0, 3, 1, 2) + b.reshape(1, F, 1, 1)
    return out, cols
    # END EXERCISE


def im2col_backward(
    dout: np.ndarray,
    cols: np.ndarray,
    x_shape: tuple[int, ...],
    W: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (dx, dW, db) from dout (N, F, OH, OW) and the forward's cols.

    Per group, with dout_g the group's filters' columns of dout as rows (N*OH*OW, F/G):
    ``dWmat_g = dout_g.T @ cols_g`` and ``dcols_g = dout_g @ Wmat_g``; col2im folds dcols
    back onto the padded input, and the padding is cut off.
    """
    # EXERCISE im2col: dW, db and dx from dout and the forward's cols.
    # hint: db = dout summed over (n, i, j). dout as rows: dout.transpose(0, 2, 3, 1).reshape(-1,
    # hint: F). Per group: dW[f_g] = (dout_g.T @ cols_g).reshape(F/G, C/G, KH, KW); dcols_g =
    # hint: dout_g @ W[f_g].reshape(F/G, K). dxpad = col2im(dcols, padded shape, ...); cut the
    # hint: padding off: dx = dxpad[:, :, PH : PH + H, PW : PW + W].
    N, C, H, Wd = x_shape
    F, Cg, KH, KW = W.shape
    K, Fg = Cg * KH * KW, F // groups
    (PH, PW) = padding
    drows = dout.transpose(0, 2, 3, 1).reshape(-1, F)
    db = drows.sum(axis=0)
    dW = np.empty_like(W)
    dcols = np.empty_like(cols)
    for g in range(groups):
        f, k = slice(g * Fg, (g + 1) * Fg), slice(g * K, (g + 1) * K)
        dW[f] = (drows[:, f].T @ cols[:, k]).reshape(Fg, Cg, KH, KW)
        dcols[:, k] = drows[:, f] @ W[f].reshape(Fg, K)
    dxpad = col2im(dcols, (N, C, H + 2 * PH, Wd + 2 * PW), KH, KW, stride)
    dx = dxpad[:, :, PH : PH + H, PW : PW + Wd]
    return dx, dW, db
    # END EXERCISE


class Conv2d(Layer):
    """Convolution layer. ``impl="im2col"`` (default: one matrix multiply per group) or
    ``"naive"`` (the loops, slow, for reading).

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
        rng = check_rng(name, rng)
        dtype = check_float_dtype(name, dtype)
        fan_in = (C // G) * KH * KW
        self.params = {
            "W": (rng.standard_normal((F, C // G, KH, KW)) * np.sqrt(2.0 / fan_in)).astype(dtype),
            "b": np.zeros(F, dtype=dtype),
        }
        self.astype(dtype)

    def param_shapes(self) -> dict[str, Shape]:
        F, (KH, KW) = self.out_channels, self.kernel_size
        return {"W": (F, self.in_channels // self.groups, KH, KW), "b": (F,)}

    def output_shape(self, in_shape: Shape) -> Shape:
        self.check_rank(in_shape)
        if in_shape[0] != self.in_channels:
            raise ValueError(
                f"{self.name}: x has {in_shape[0]} channels, the weights expect "
                f"in_channels={self.in_channels} (x is NCHW, got per-image shape {in_shape})"
            )
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
        self._cache = (x.shape, cols)
        return out

    def _backward(self, dout: np.ndarray) -> np.ndarray | None:
        W = self.params["W"]
        if self.impl == "naive":
            dx, dW, db = naive_backward(
                dout, self._cache, W, self.stride, self.padding, self.groups
            )
        else:
            x_shape, cols = self._cache
            dx, dW, db = im2col_backward(
                dout, cols, x_shape, W, self.stride, self.padding, self.groups
            )
        self.grads = {"W": dW, "b": db}
        return dx if self.needs_input_grad else None

    def __repr__(self) -> str:
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, groups={self.groups})"
        )
