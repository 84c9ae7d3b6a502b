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
#
# Memory layout. The arrays are NCHW-shaped as everywhere else, but the fast path stores its
# outputs *channels-last* in memory (an (N, H, W, C) buffer seen through a transposed view).
# NumPy handles any strides, so callers see no difference; what changes is that one receptive
# field row (KW pixels x C channels) is one contiguous run of memory, so im2col copies long
# runs instead of gathering single pixels, and the matmul output needs no transpose.
#
# Chunks. The batch is processed a few images at a time, so the cols matrix of one chunk
# (``CHUNK_BYTES`` at most, unless one image needs more) stays in the CPU cache between being
# written by im2col and read by the matmul, and lives in a workspace reused by every call.
# The backward recomputes each chunk's cols from the cached input instead of keeping the whole
# batch's cols (up to 224 MB for conv2 at batch 32): memory stays at the activations' size.
# ----------------------------------------------------------------------------------------
CHUNK_BYTES = 8 * 2**20


def channels_last(x: np.ndarray) -> np.ndarray:
    """The (N, H, W, C) view of an NCHW array: free when x is stored channels-last."""
    return x.transpose(0, 2, 3, 1)


def chunks(N: int, bytes_per_image: int) -> list[tuple[int, int]]:
    """Split images 0..N-1 into ``(start, stop)`` runs of about ``CHUNK_BYTES`` of cols each."""
    step = max(1, CHUNK_BYTES // max(1, bytes_per_image))
    return [(n0, min(N, n0 + step)) for n0 in range(0, N, step)]


def pad_channels_last(x: np.ndarray, ph: int, pw: int, buffer: np.ndarray) -> np.ndarray:
    """Copy NCHW ``x`` into the interior of ``buffer`` (n, H + 2ph, W + 2pw, C) and return it.

    The border of ``buffer`` is never written, so it keeps the zeros it was allocated with.
    """
    n, _, H, W = x.shape
    xpad = buffer[:n]
    xpad[:, ph : ph + H, pw : pw + W, :] = channels_last(x)
    return xpad


def im2col(
    xpad: np.ndarray, KH: int, KW: int, SH: int, SW: int, OH: int, OW: int, out: np.ndarray
) -> np.ndarray:
    """Gather every receptive field: xpad (n, Hp, Wp, C) -> cols (n*OH*OW, KH*KW*C) in ``out``.

    Row ``(m, i, j)`` of cols holds the field of output pixel (i, j) of image m, in (u, v, c)
    order: ``cols[(m, i, j), (u, v, c)] = xpad[m, i*SH + u, j*SW + v, c]``. ``as_strided``
    builds that 6-D view (n, OH, OW, KH, KW, C) without copying; one copy fills ``out``.
    With channels last, each (v, c) run is contiguous in xpad, so the copy moves long runs.
    """
    n, _, _, C = xpad.shape
    sN, sH, sW, sC = xpad.strides
    fields = as_strided(
        xpad,
        shape=(n, OH, OW, KH, KW, C),
        strides=(sN, sH * SH, sW * SW, sH, sW, sC),
        writeable=False,
    )
    cols = out.reshape(n, OH, OW, KH, KW, C)
    np.copyto(cols, fields)
    return out


def col2im(
    dcols: np.ndarray, dxpad: np.ndarray, KH: int, KW: int, SH: int, SW: int, OH: int, OW: int
) -> None:
    """The adjoint of ``im2col``: add each cols entry back onto the pixel it was copied from.

    dcols (n*OH*OW, KH*KW*C) is added into dxpad (n, Hp, Wp, C), which the caller zeroes.
    Overlapping receptive fields (stride < kernel) put several entries on one pixel, so this
    sums: one strided add per kernel offset (u, v), each of an (n, OH, OW, C) block whose
    channel runs are contiguous on both sides.
    """
    n, _, _, C = dxpad.shape
    d6 = dcols.reshape(n, OH, OW, KH, KW, C)
    for u in range(KH):
        for v in range(KW):
            dxpad[:, u : u + SH * (OH - 1) + 1 : SH, v : v + SW * (OW - 1) + 1 : SW] += d6[
                :, :, :, u, v
            ]


def weight_matrix(W: np.ndarray) -> np.ndarray:
    """(F, C/G, KH, KW) -> (F, KH*KW*C/G): each filter as one row in the cols' (u, v, c) order."""
    F = W.shape[0]
    return np.ascontiguousarray(W.transpose(0, 2, 3, 1)).reshape(F, -1)


def im2col_forward(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (out, Wmat): the NCHW output (stored channels-last) and the weight matrix used,
    which ``im2col_backward`` needs along with x.

    For each chunk of images and each group: ``out[rows, group's filters] = cols @ Wmat_g.T``,
    an (n*OH*OW, KH*KW*C/G) x (KH*KW*C/G, F/G) matrix multiply.
    """
    ws = workspace if workspace is not None else Workspace()
    N, C, H, Wd = x.shape
    F, Cg, KH, KW = W.shape
    (SH, SW), (PH, PW) = stride, padding
    OH, OW = (H + 2 * PH - KH) // SH + 1, (Wd + 2 * PW - KW) // SW + 1
    Fg, K = F // groups, KH * KW * Cg
    Wmat = weight_matrix(W)
    out = np.empty((N, OH, OW, F), dtype=x.dtype)  # fresh: the caller keeps it
    plan = chunks(N, OH * OW * K * x.itemsize)
    step = plan[0][1]
    pad_buf = ws.get("xpad", (step, H + 2 * PH, Wd + 2 * PW, C), x.dtype)
    col_buf = ws.get("cols", (step * OH * OW, K), x.dtype)
    for n0, n1 in plan:
        xpad = pad_channels_last(x[n0:n1], PH, PW, pad_buf)
        out2d = out[n0:n1].reshape(-1, F)
        for g in range(groups):
            cols = im2col(
                xpad[..., g * Cg : (g + 1) * Cg], KH, KW, SH, SW, OH, OW, col_buf[: len(out2d)]
            )
            # cols @ Wmat_g.T: BLAS reads the transposed view as is (no copy).
            np.matmul(cols, Wmat[g * Fg : (g + 1) * Fg].T, out=out2d[:, g * Fg : (g + 1) * Fg])
        out2d += b  # bias added while the chunk is still in cache
    return out.transpose(0, 3, 1, 2), Wmat


def im2col_backward(
    dout: np.ndarray,
    x: np.ndarray,
    Wmat: np.ndarray,
    W_shape: Shape,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int,
    need_dx: bool = True,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Return (dx or None, dW, db) from dout, the forward's input x and its weight matrix.

    Per chunk, cols is rebuilt from x, then ``dWmat_g += dout_g.T @ cols`` and, when dx is
    wanted, ``dcols = dout_g @ Wmat_g`` (written over cols, which is no longer needed) is
    folded back onto the input pixels by ``col2im``.
    """
    ws = workspace if workspace is not None else Workspace()
    N, C, H, Wd = x.shape
    F, Cg, KH, KW = W_shape
    _, _, OH, OW = dout.shape
    (SH, SW), (PH, PW) = stride, padding
    Fg, K = F // groups, KH * KW * Cg
    # dout as (rows, F): free when dout is stored channels-last (our forward's layout).
    g2d = np.ascontiguousarray(channels_last(dout)).reshape(N * OH * OW, F)
    db = g2d.sum(axis=0)
    dWmat = np.zeros((F, K), dtype=dout.dtype)
    dx = np.empty((N, H, Wd, C), dtype=dout.dtype) if need_dx else None
    plan = chunks(N, OH * OW * K * x.itemsize)
    step = plan[0][1]
    pad_buf = ws.get("xpad", (step, H + 2 * PH, Wd + 2 * PW, C), x.dtype)
    col_buf = ws.get("cols", (step * OH * OW, K), x.dtype)
    dpad_buf = ws.get("dxpad", pad_buf.shape, x.dtype) if need_dx else None
    dW_part = ws.get("dW", (Fg, K), x.dtype)
    for n0, n1 in plan:
        xpad = pad_channels_last(x[n0:n1], PH, PW, pad_buf)
        rows = g2d[n0 * OH * OW : n1 * OH * OW]
        if dpad_buf is not None:
            dxpad = dpad_buf[: n1 - n0]
            dxpad[...] = 0
        for g in range(groups):
            f, c = slice(g * Fg, (g + 1) * Fg), slice(g * Cg, (g + 1) * Cg)
            cols = im2col(xpad[..., c], KH, KW, SH, SW, OH, OW, col_buf[: len(rows)])
            np.matmul(rows[:, f].T, cols, out=dW_part)  # matmul cannot accumulate: add after
            dWmat[f] += dW_part
            if dx is not None:
                dcols = np.matmul(rows[:, f], Wmat[f], out=cols)  # reuse cols' buffer
                col2im(dcols, dxpad[..., c], KH, KW, SH, SW, OH, OW)
        if dx is not None:
            dx[n0:n1] = dxpad[:, PH : PH + H, PW : PW + Wd]
    dW = np.ascontiguousarray(dWmat.reshape(F, KH, KW, Cg).transpose(0, 3, 1, 2))
    return (None if dx is None else dx.transpose(0, 3, 1, 2)), dW, db


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
        self.workspace = Workspace()  # the fast path's reused scratch (never returned)

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
        out, Wmat = im2col_forward(x, W, b, self.stride, self.padding, self.groups, self.workspace)
        self._cache = (x, Wmat)
        return out

    def _backward(self, dout: np.ndarray) -> np.ndarray | None:
        W = self.params["W"]
        if self.impl == "naive":
            dx, dW, db = naive_backward(
                dout, self._cache, W, self.stride, self.padding, self.groups
            )
        else:
            x, Wmat = self._cache
            dx, dW, db = im2col_backward(
                dout,
                x,
                Wmat,
                W.shape,
                self.stride,
                self.padding,
                self.groups,
                need_dx=self.needs_input_grad,
                workspace=self.workspace,
            )
        self.grads = {"W": dW, "b": db}
        return dx if self.needs_input_grad else None

    def __repr__(self) -> str:
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, groups={self.groups})"
        )
