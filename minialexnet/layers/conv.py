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
Expected gradient-check relative error in float64: below 1e-7.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .base import Layer, Shape, check_positive_int
from .workspace import Workspace

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
# The fast version: im2col turns the convolution into matrix multiplies.
#
# Memory layout. The arrays are NCHW-shaped as everywhere else, but the fast path stores its
# outputs *channels-last* in memory (an (N, H, W, C) buffer seen through a transposed view).
# NumPy handles any strides, so callers see no difference; what changes is that one receptive
# field row (KW pixels x C channels) is one contiguous run of memory, so im2col copies long
# runs instead of gathering single pixels, and the matmul output needs no transpose.
#
# Chunks. The batch is processed a few images at a time, so the cols matrix of one chunk
# (``CHUNK_BYTES`` at most, unless one image needs more) stays in the CPU cache between being
# written by im2col and read by the matmul, and lives in a reused workspace. The backward
# recomputes each chunk's cols from the cached input instead of keeping the whole batch's
# (224 MB for conv2 at batch 32): memory stays at the activations' size.
# ----------------------------------------------------------------------------------------
CHUNK_BYTES = 16 * 2**20  # ~2 images of conv2's cols: large matmuls, within a 32 MB L3 cache


@dataclass(frozen=True)
class Geometry:
    """A convolution's kernel size, stride, padding and groups, as the fast path uses them."""

    KH: int
    KW: int
    SH: int
    SW: int
    PH: int
    PW: int
    G: int

    def out_size(self, H: int, W: int) -> tuple[int, int]:
        """(OH, OW) for an unpadded H x W input (the layer has checked that the kernel fits)."""
        return (
            sliding_positions(H, self.KH, self.SH, self.PH),
            sliding_positions(W, self.KW, self.SW, self.PW),
        )


def channels_last(x: np.ndarray) -> np.ndarray:
    """The (N, H, W, C) view of an NCHW array: free when x is stored channels-last."""
    return x.transpose(0, 2, 3, 1)


def chunks(N: int, bytes_per_image: int) -> list[tuple[int, int]]:
    """Split images 0..N-1 into ``(start, stop)`` runs of about ``CHUNK_BYTES`` of cols each."""
    step = max(1, CHUNK_BYTES // max(1, bytes_per_image))
    return [(n0, min(N, n0 + step)) for n0 in range(0, N, step)]


def im2col(xpad: np.ndarray, geo: Geometry, cols: np.ndarray) -> None:
    """Gather every receptive field: xpad (n, Hp, Wp, C) -> cols (n*OH*OW, KH*KW*C).

    Row ``(m, i, j)`` of cols holds the field of output pixel (i, j) of image m, its columns
    in (g, u, v, c) order, c counted within group g: ``cols[(m, i, j), (g, u, v, c)] =
    xpad[m, i*SH + u, j*SW + v, g*C/G + c]``, so that each group's columns form one block.
    ``as_strided`` builds that 7-D view without copying; one copy fills ``cols``. With
    channels last, each (v, c) run is contiguous in xpad, so the copy moves long runs.
    """
    # EXERCISE im2col: gather every receptive field into the rows of cols.
    # hint: xpad (n, Hp, Wp, C) channels last -> cols (n*OH*OW, G*KH*KW*C/G), columns in (g, u, v,
    # hint: c) order: cols[(m, i, j), (g, u, v, c)] = xpad[m, i*SH + u, j*SW + v, g*C/G + c].
    # hint: numpy.lib.stride_tricks.as_strided builds that 7-D view with no copy; copy it into cols.
    n, Hp, Wp, C = xpad.shape
    OH, OW = (Hp - geo.KH) // geo.SH + 1, (Wp - geo.KW) // geo.SW + 1
    sN, sH, sW, sC = xpad.strides
    Cg = C // geo.G
    fields = as_strided(
        xpad,
        shape=(n, OH, OW, geo.G, geo.KH, geo.KW, Cg),
        strides=(sN, sH * geo.SH, sW * geo.SW, sC * Cg, sH, sW, sC),
        writeable=False,
    )
    np.copyto(cols.reshape(fields.shape), fields)
    # END EXERCISE


def col2im(dcols: np.ndarray, geo: Geometry, dxpad: np.ndarray) -> None:
    """The adjoint of ``im2col``: add each entry of dcols back onto the pixel it came from.

    dcols (n*OH*OW, KH*KW*C) is added into dxpad (n, Hp, Wp, C), which the caller zeroes.
    Overlapping fields (stride < kernel) put several entries on one pixel, so this sums: one
    strided add per kernel offset (u, v), of an (n, OH, OW, C) block.
    """
    # EXERCISE im2col: the adjoint of im2col: add each entry of dcols back onto its pixel.
    # hint: dcols (n*OH*OW, G*KH*KW*C/G) -> added into dxpad (n, Hp, Wp, C) (zeroed by the caller).
    # hint: One strided add per kernel offset (u, v); overlapping fields make a pixel collect a sum.
    n, Hp, Wp, C = dxpad.shape
    OH, OW = (Hp - geo.KH) // geo.SH + 1, (Wp - geo.KW) // geo.SW + 1
    d7 = dcols.reshape(n, OH, OW, geo.G, geo.KH, geo.KW, C // geo.G)
    target = dxpad.reshape(n, Hp, Wp, geo.G, C // geo.G)
    for u in range(geo.KH):
        for v in range(geo.KW):
            rows = slice(u, u + geo.SH * (OH - 1) + 1, geo.SH)
            columns = slice(v, v + geo.SW * (OW - 1) + 1, geo.SW)
            target[:, rows, columns] += d7[:, :, :, :, u, v]
    # END EXERCISE


def gather(x: np.ndarray, geo: Geometry, xpad: np.ndarray, cols: np.ndarray) -> None:
    """Copy a chunk x (n, C, H, W) into xpad (n, H + 2PH, W + 2PW, C: channels last, zero
    border), then im2col it into cols: the copying before a chunk's matmuls."""
    _, _, H, W = x.shape
    xpad[:, : geo.PH] = xpad[:, geo.PH + H :] = 0  # the border too: scratch holds stale values
    xpad[:, :, : geo.PW] = xpad[:, :, geo.PW + W :] = 0
    xpad[:, geo.PH : geo.PH + H, geo.PW : geo.PW + W] = channels_last(x)
    im2col(xpad, geo, cols)


def scatter(dcols: np.ndarray, geo: Geometry, dxpad: np.ndarray, dx: np.ndarray) -> None:
    """col2im a chunk's dcols into dxpad, then copy the chunk's dx (n, H, W, C: channels
    last) out of the padding: the copying after a chunk's matmuls."""
    _, H, W, _ = dx.shape
    dxpad[...] = 0
    col2im(dcols, geo, dxpad)
    dx[...] = dxpad[:, geo.PH : geo.PH + H, geo.PW : geo.PW + W]


def weight_matrix(W: np.ndarray) -> np.ndarray:
    """(F, C/G, KH, KW) -> (F, KH*KW*C/G): each filter as a row in the cols' (u, v, c) order."""
    return np.ascontiguousarray(W.transpose(0, 2, 3, 1)).reshape(W.shape[0], -1)


def group_blocks(F: int, K: int, G: int) -> list[tuple[slice, slice]]:
    """Per group: (its filters' rows of Wmat and of dW, its columns of cols)."""
    return [(slice(g * F // G, (g + 1) * F // G), slice(g * K, (g + 1) * K)) for g in range(G)]


def im2col_forward(
    x: np.ndarray, W: np.ndarray, b: np.ndarray, geo: Geometry, workspace: Workspace
) -> tuple[np.ndarray, np.ndarray]:
    """Return (out, Wmat): the NCHW output (stored channels-last) and the weight matrix used,
    which ``im2col_backward`` needs along with x.

    Per chunk of images and per group g: ``out[rows, filters of g] = cols_g @ Wmat_g.T``, an
    (n*OH*OW, KH*KW*C/G) x (KH*KW*C/G, F/G) matrix multiply.
    """
    # EXERCISE im2col: the convolution as one matrix multiply per group, chunk by chunk.
    # hint: x (N, C, H, W) -> out (N, F, OH, OW) stored channels-last (an (N, OH, OW, F) array seen
    # hint: through .transpose(0, 3, 1, 2)), and Wmat = weight_matrix(W) (F, KH*KW*C/G) for
    # hint: backward. For each chunk of images (chunks(...)): gather(...) pads and im2cols it into
    # hint: workspace buffers; then per group (group_blocks): out[rows, filters_g] = cols[:, k_g] @
    # hint: Wmat[f_g].T; add the bias.
    N, C, H, Wd = x.shape
    F, K = W.shape[0], W[0].size  # K: weights per filter
    OH, OW = geo.out_size(H, Wd)
    P = OH * OW  # output positions per image
    Wmat = weight_matrix(W)
    out = np.empty((N, OH, OW, F), dtype=x.dtype)  # fresh: the caller keeps it
    plan = chunks(N, P * K * geo.G * x.itemsize)
    step = plan[0][1]
    pad_buf = workspace.get("xpad", (step, H + 2 * geo.PH, Wd + 2 * geo.PW, C), x.dtype)
    col_buf = workspace.get("cols", (step * P, K * geo.G), x.dtype)
    for n0, n1 in plan:
        n = n1 - n0
        cols, out2d = col_buf[: n * P], out[n0:n1].reshape(n * P, F)
        gather(x[n0:n1], geo, pad_buf[:n], cols)
        for f, k in group_blocks(F, K, geo.G):  # BLAS reads Wmat_g.T as it is (no copy)
            np.matmul(cols[:, k], Wmat[f].T, out=out2d[:, f])
        out2d += b  # bias added while the chunk is still in cache
    return out.transpose(0, 3, 1, 2), Wmat
    # END EXERCISE


def im2col_backward(
    dout: np.ndarray,
    x: np.ndarray,
    Wmat: np.ndarray,
    geo: Geometry,
    workspace: Workspace,
    need_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Return (dx or None, dW, db) from dout, the forward's input x and its weight matrix.

    Per chunk, cols is rebuilt from x; then per group ``dWmat_g.T += cols_g.T @ dout_g`` and,
    when dx is wanted, ``dcols_g = dout_g @ Wmat_g`` (written over cols, no longer needed),
    which ``col2im`` folds back onto the input pixels.
    """
    # EXERCISE im2col: dW, db and (if need_dx) dx from dout, chunk by chunk.
    # hint: db = dout summed over (n, i, j). Per chunk: rebuild cols with gather(...); per group
    # hint: dW_g += dout_rows[:, f_g].T @ cols[:, k_g] (or its transpose, cols[:, k_g].T @
    # hint: dout_rows[:, f_g]); if need_dx: dcols_g = dout_rows[:, f_g] @ Wmat[f_g] (it may
    # hint: overwrite cols), then scatter(...) folds it back (col2im) into dx (N, H, W, C).
    # hint: Return dx.transpose(0, 3, 1, 2), dW reshaped to (F, C/G, KH, KW), db.
    N, C, H, Wd = x.shape
    F, K = Wmat.shape
    Fg, Cg = F // geo.G, C // geo.G
    _, _, OH, OW = dout.shape
    P = OH * OW
    # dout as (rows, F): free when dout is stored channels-last (our forward's layout).
    g2d = np.ascontiguousarray(channels_last(dout)).reshape(N * P, F)
    db = g2d.sum(axis=0)
    dWmat_T = np.zeros((K, F), dtype=dout.dtype)  # dWmat transposed: see the matmul below
    dx = np.empty((N, H, Wd, C), dtype=dout.dtype) if need_dx else None
    plan = chunks(N, P * K * geo.G * x.itemsize)
    step = plan[0][1]
    pad_shape = (step, H + 2 * geo.PH, Wd + 2 * geo.PW, C)
    pad_buf = workspace.get("xpad", pad_shape, x.dtype)
    col_buf = workspace.get("cols", (step * P, K * geo.G), x.dtype)
    dW_part = workspace.get("dW", (K, Fg), x.dtype)
    dpad_buf = workspace.get("dxpad", pad_shape, x.dtype) if need_dx else None
    blocks = group_blocks(F, K, geo.G)
    for n0, n1 in plan:
        n = n1 - n0
        cols, rows = col_buf[: n * P], g2d[n0 * P : n1 * P]
        gather(x[n0:n1], geo, pad_buf[:n], cols)
        for f, k in blocks:
            # dWmat_g.T = cols_g.T @ dout_g, the product dout_g.T @ cols_g transposed: with the
            # long side first, OpenBLAS's two threads stay in step when other processes share
            # the cores (the other way round ran conv1's up to 20x slower there).
            np.matmul(cols[:, k].T, rows[:, f], out=dW_part)  # matmul cannot accumulate: add
            dWmat_T[:, f] += dW_part
        if dx is not None and dpad_buf is not None:
            for f, k in blocks:  # dcols written over cols, which every group's dW is done with
                np.matmul(rows[:, f], Wmat[f], out=cols[:, k])
            scatter(cols, geo, dpad_buf[:n], dx[n0:n1])
    dW = np.ascontiguousarray(dWmat_T.reshape(geo.KH, geo.KW, Cg, F).transpose(3, 2, 0, 1))
    return (None if dx is None else dx.transpose(0, 3, 1, 2)), dW, db
    # END EXERCISE


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
        self.geometry = Geometry(KH, KW, *self.stride, *self.padding, G)
        self.workspace = Workspace()  # the fast path's scratch; a Sequential shares one

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
        out, Wmat = im2col_forward(x, W, b, self.geometry, self.workspace)
        self._cache = (x, Wmat)
        return out

    def _backward(self, dout: np.ndarray) -> np.ndarray | None:
        W = self.params["W"]
        self.grads = {}  # release the last gradients before allocating the new ones
        if self.impl == "naive":
            dx, dW, db = naive_backward(
                dout, self._cache, W, self.stride, self.padding, self.groups
            )
        else:
            x, Wmat = self._cache
            dx, dW, db = im2col_backward(
                dout, x, Wmat, self.geometry, self.workspace, self.needs_input_grad
            )
        self.grads = {"W": dW, "b": db}
        return dx if self.needs_input_grad else None

    def __repr__(self) -> str:
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, groups={self.groups})"
        )
