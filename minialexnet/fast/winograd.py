"""Winograd convolution F(m x m, r x r): stride-1 convolutions with fewer multiplications.

The idea (Winograd's minimal filtering, as Lavin & Gray applied it to CNNs): an m x m tile of
outputs of an r x r filter needs, done directly, m*m*r*r multiplications per channel pair;
computed in a transformed space it needs only a = (m + r - 1)**2. With
    V = B^T d B   (each a x a input tile d, per channel),   U = G g G^T   (each filter),
    Y = A^T [ sum_c U[c] * V[c] ] A        (* element-wise, per transformed position xi),
the sum over channels at each of the a*a positions xi is one matrix multiply
(tiles x C) @ (C x F), which BLAS does. For AlexNet's conv2 (5x5, F(3x3, 5x5): 27 = 9 tiles
of 3) that is 49 products per 9 outputs instead of 225; for conv3-5 (3x3, F(2x2, 3x3)) 16 per
4 instead of 36 (tiles padded to 14 x 14 outputs of 13 x 13).

The backward follows from the same algebra (everything is linear): with dM = A dY A^T per
output tile,  dU[xi] = V[xi]^T @ dM[xi]  (then dW = G^T dU G), and  dV[xi] = dM[xi] @ U[xi]^T,
whose inverse transform B dV B^T is added back onto the (overlapping) input tiles; that last
step is a gather, each input pixel summing the tiles that cover it.

The transform matrices come from Toom-Cook interpolation at the points in ``POINTS`` (and
infinity): A and G from the points directly, B^T solved from the condition that the scheme
computes exactly the correlation (``transforms``). The results equal direct convolution in
exact arithmetic; in floating point the transforms add a rounding error that grows with the
tile size, which is why the tile sizes are small and the tests state the float32 tolerance.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
from numba import njit, prange

from .scratch import Scratch, chunk_plan

# Interpolation points: 0, +-1, then +-1/2, +-2: the small ones keep the transforms' entries
# near 1, hence their rounding small.
POINTS = (0, 1, -1, Fraction(1, 2), Fraction(-1, 2), 2, -2)


@functools.cache
def transforms(m: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T (m, a), G (a, r), B^T (a, a)) in float64 for F(m, r), a = m + r - 1.

    A^T's column and G's row for a finite point p are (1, p, p**2, ...), G's divided by
    prod (p - q) over the other finite points q; the point at infinity takes (0, ..., 0, 1).
    B^T is then the unique matrix with sum_k A^T[i, k] G[k, j] B^T[k, l] = [l == i + j],
    i.e. y_i = sum_j g_j d_(i+j): solved exactly, in fractions, column by column.
    """
    a = m + r - 1
    points = [Fraction(p) for p in POINTS[: a - 1]]
    AT = [[p**i for p in points] + [Fraction(int(i == m - 1))] for i in range(m)]
    G = []
    for k, p in enumerate(points):
        scale = Fraction(1)
        for q_index, q in enumerate(points):
            if q_index != k:
                scale *= p - q
        G.append([p**j / scale for j in range(r)])
    G.append([Fraction(int(j == r - 1)) for j in range(r)])
    # Equations over (i, j): sum_k AT[i][k] G[k][j] x_k = [l == i + j], one x per column l.
    rows = [[AT[i][k] * G[k][j] for k in range(a)] for i in range(m) for j in range(r)]
    BT = [[Fraction(0)] * a for _ in range(a)]
    for col in range(a):
        rhs = [Fraction(int(col == i + j)) for i in range(m) for j in range(r)]
        for k, value in enumerate(_solve(rows, rhs, a)):
            BT[k][col] = value
    as_array = lambda M: np.array([[float(v) for v in row] for row in M])  # noqa: E731
    return as_array(AT), as_array(G), as_array(BT)


def _solve(rows: list[list[Fraction]], rhs: list[Fraction], n: int) -> list[Fraction]:
    """The exact solution of a consistent (over-determined) linear system, by elimination."""
    M = [[*row, b] for row, b in zip(rows, rhs, strict=True)]
    pivot_rows = []
    for col in range(n):
        pivot = next(i for i in range(len(M)) if i not in pivot_rows and M[i][col] != 0)
        pivot_rows.append(pivot)
        M[pivot] = [v / M[pivot][col] for v in M[pivot]]
        for i in range(len(M)):
            if i != pivot and M[i][col] != 0:
                M[i] = [v - M[i][col] * w for v, w in zip(M[i], M[pivot], strict=True)]
    if any(M[i][n] != 0 for i in range(len(M)) if i not in pivot_rows):
        raise ValueError("Winograd transform: inconsistent system (bad points)")
    return [M[pivot_rows[col]][n] for col in range(n)]


@njit(parallel=True, cache=True)
def input_transform(x, n0, n, m, P, TH, TW, BT, V):  # pragma: no cover (compiled)
    """V[a*A + b, t, c] = (B^T d B)[a, b] for each tile t = (image, ty, tx) of x (N, H, W, C)
    channels-last; tile t reads rows ty*m - P .. + A - 1 (zero outside the image)."""
    _, H, W, C = x.shape
    A = BT.shape[0]
    for row in prange(n * TH):
        mi, ty = row // TH, row % TH
        d = np.empty((A, A, C), x.dtype)
        tmp = np.empty((A, A, C), x.dtype)
        for tx in range(TW):
            t = row * TW + tx
            for i in range(A):
                ih = ty * m + i - P
                for j in range(A):
                    iw = tx * m + j - P
                    if 0 <= ih < H and 0 <= iw < W:
                        for c in range(C):
                            d[i, j, c] = x[n0 + mi, ih, iw, c]
                    else:
                        for c in range(C):
                            d[i, j, c] = 0
            for a in range(A):  # tmp = B^T d (rows)
                for j in range(A):
                    for c in range(C):
                        tmp[a, j, c] = 0
                    for i in range(A):
                        coef = BT[a, i]
                        if coef != 0:
                            for c in range(C):
                                tmp[a, j, c] += coef * d[i, j, c]
            for a in range(A):  # V = tmp B (columns)
                for b in range(A):
                    out = V[a * A + b, t]
                    for c in range(C):
                        out[c] = 0
                    for j in range(A):
                        coef = BT[b, j]
                        if coef != 0:
                            for c in range(C):
                                out[c] += coef * tmp[a, j, c]


@njit(parallel=True, cache=True)
def output_transform(M, AT, bias, n0, n, TH, TW, out):  # pragma: no cover (compiled)
    """out[n0 + image, ty*m + p, tx*m + q, :] = bias + (A^T M_t A)[p, q] for each tile t,
    skipping the positions past the output's edge; out is channels-last (N, OH, OW, F)."""
    _, OH, OW, F = out.shape
    m, A = AT.shape
    for row in prange(n * TH):
        mi, ty = row // TH, row % TH
        tmp = np.empty((m, A, F), out.dtype)
        for tx in range(TW):
            t = row * TW + tx
            for p in range(m):  # tmp = A^T M (rows)
                for b in range(A):
                    for f in range(F):
                        tmp[p, b, f] = 0
                    for a in range(A):
                        coef = AT[p, a]
                        if coef != 0:
                            src = M[a * A + b, t]
                            for f in range(F):
                                tmp[p, b, f] += coef * src[f]
            for p in range(m):
                oh = ty * m + p
                for q in range(m):
                    ow = tx * m + q
                    if oh < OH and ow < OW:
                        dst = out[n0 + mi, oh, ow]
                        for f in range(F):
                            dst[f] = bias[f]
                        for b in range(A):
                            coef = AT[q, b]
                            if coef != 0:
                                for f in range(F):
                                    dst[f] += coef * tmp[p, b, f]


@njit(parallel=True, cache=True)
def dout_transform(dout, n0, n, TH, TW, AT, dM):  # pragma: no cover (compiled)
    """dM[a*A + b, t, :] = (A dY_t A^T)[a, b] for each tile t of dout (N, OH, OW, F)
    channels-last; positions past the output's edge count as zero."""
    _, OH, OW, F = dout.shape
    m, A = AT.shape
    for row in prange(n * TH):
        mi, ty = row // TH, row % TH
        tmp = np.empty((A, m, F), dout.dtype)
        for tx in range(TW):
            t = row * TW + tx
            for a in range(A):  # tmp = A dY (rows), dY zero past the edge
                for q in range(m):
                    for f in range(F):
                        tmp[a, q, f] = 0
                    ow = tx * m + q
                    for p in range(m):
                        oh = ty * m + p
                        coef = AT[p, a]
                        if coef != 0 and oh < OH and ow < OW:
                            src = dout[n0 + mi, oh, ow]
                            for f in range(F):
                                tmp[a, q, f] += coef * src[f]
            for a in range(A):
                for b in range(A):
                    dst = dM[a * A + b, t]
                    for f in range(F):
                        dst[f] = 0
                    for q in range(m):
                        coef = AT[q, b]
                        if coef != 0:
                            for f in range(F):
                                dst[f] += coef * tmp[a, q, f]


@njit(parallel=True, cache=True)
def input_grad(dV, BT, n, m, P, TH, TW, dx):  # pragma: no cover (compiled)
    """dx[image, ih, iw, :] = sum over the tiles covering (ih, iw) of (B dV_t B^T) at that
    pixel's place in the tile: a gather over (image, row), so no two iterations add into one
    element. dx (n, H, W, C) channels-last, every element written."""
    _, H, W, C = dx.shape
    A = BT.shape[0]
    for row in prange(n * H):
        mi, ih = row // H, row % H
        for iw in range(W):
            for c in range(C):
                dx[mi, ih, iw, c] = 0
        tmp = np.empty((A, C), dx.dtype)
        for ty in range(TH):
            i = ih - ty * m + P  # this row's place in tile row ty
            if i < 0 or i >= A:
                continue
            for tx in range(TW):
                t = (mi * TH + ty) * TW + tx
                # tmp[b] = sum_a B^T[a, i] dV[a, b]: row i of B dV, then B^T over the columns
                for b in range(A):
                    for c in range(C):
                        tmp[b, c] = 0
                    for a in range(A):
                        coef = BT[a, i]
                        if coef != 0:
                            src = dV[a * A + b, t]
                            for c in range(C):
                                tmp[b, c] += coef * src[c]
                for j in range(A):
                    iw = tx * m + j - P
                    if 0 <= iw < W:
                        for b in range(A):
                            coef = BT[b, j]
                            if coef != 0:
                                for c in range(C):
                                    dx[mi, ih, iw, c] += coef * tmp[b, c]


# ----------------------------------------------------------------------------------------
# The convolution, chunk by chunk (the transforms run in Numba, the products in BLAS)
# ----------------------------------------------------------------------------------------
CHUNK_BYTES = 8 * 2**20  # of V and M per chunk: products big enough for BLAS, memory small


def _matrices(m: int, r: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    AT, G, BT = transforms(m, r)
    return AT.astype(dtype), G.astype(dtype), BT.astype(dtype)


def tile_counts(OH: int, OW: int, m: int) -> tuple[int, int]:
    """Tiles of m x m outputs covering OH x OW (the last ones stick out past the edge)."""
    return -(-OH // m), -(-OW // m)


def filter_transform(W: np.ndarray, m: int, scratch: Scratch) -> np.ndarray:
    """U[a*A + b, c, f] = (G W[f, c] G^T)[a, b]: (A*A, C, F), one (C x F) matrix per xi, in
    scratch (recomputed by the backward rather than kept: it is one small matrix product).

    All filters at once: kron(G, G)[(a, b), (u, v)] = G[a, u] G[b, v] times W arranged as
    (u, v) x (c, f)."""
    F, C, r, _ = W.shape
    _, G, _ = _matrices(m, r, W.dtype)
    Wt = scratch.get("chunk", (r, r, C, F), W.dtype)  # free until the tiles need it
    np.copyto(Wt, W.transpose(2, 3, 1, 0))
    U = scratch.get("wino_U", (G.shape[0] ** 2, C, F), W.dtype)
    np.matmul(np.kron(G, G), Wt.reshape(r * r, C * F), out=U.reshape(-1, C * F))
    return U


def filter_grad(dU: np.ndarray, m: int, r: int, scratch: Scratch, dW: np.ndarray) -> None:
    """The adjoint of ``filter_transform``: dW (F, C, r, r) from dU (A*A, C, F), into dW."""
    A2, C, F = dU.shape
    _, G, _ = _matrices(m, r, dU.dtype)
    dWt = scratch.get("chunk", (r * r, C * F), dU.dtype)  # (u, v) x (c, f); tiles are done
    np.matmul(np.kron(G, G).T, dU.reshape(A2, C * F), out=dWt)
    np.copyto(dW, dWt.reshape(r, r, C, F).transpose(3, 2, 0, 1))


def batched_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out[xi] = a[xi] @ b[xi], one BLAS call per xi (NumPy's stacked matmul measured slower
    here than the loop: each 2-D product is large enough for OpenBLAS's two threads)."""
    for xi in range(a.shape[0]):
        np.matmul(a[xi], b[xi], out=out[xi])


def forward(
    xl: np.ndarray, U: np.ndarray, bias: np.ndarray, r: int, m: int, P: int, scratch: Scratch
) -> np.ndarray:
    """out (N, OH, OW, F) channels-last (fresh) from xl (N, H, W, C) channels-last."""
    N, H, W, C = xl.shape
    F = U.shape[2]
    AT, _, BT = _matrices(m, r, xl.dtype)
    A2 = BT.shape[0] ** 2
    OH, OW = H + 2 * P - r + 1, W + 2 * P - r + 1
    TH, TW = tile_counts(OH, OW, m)
    out = np.empty((N, OH, OW, F), dtype=xl.dtype)
    for n0, n1 in chunk_plan(N, A2 * TH * TW * (C + F) * xl.itemsize, CHUNK_BYTES):
        T = (n1 - n0) * TH * TW
        V, M = scratch.pair("chunk", (A2, T, C), (A2, T, F), xl.dtype)
        input_transform(xl, n0, n1 - n0, m, P, TH, TW, BT, V)
        batched_matmul(V, U, M)
        output_transform(M, AT, bias, n0, n1 - n0, TH, TW, out)
    return out


def backward(
    xl: np.ndarray,
    dout_cl: np.ndarray,
    U: np.ndarray,
    r: int,
    m: int,
    P: int,
    need_dx: bool,
    scratch: Scratch,
    dW: np.ndarray,
) -> np.ndarray | None:
    """dx channels-last (fresh; None unless ``need_dx``) from the forward's input and dout;
    dW (F, C, r, r) written into ``dW``."""
    N, _, _, C = xl.shape
    F = U.shape[2]
    AT, _, BT = _matrices(m, r, xl.dtype)
    A = BT.shape[0]
    _, OH, OW, _ = dout_cl.shape
    TH, TW = tile_counts(OH, OW, m)
    dU = scratch.get("wino_dU", (A * A, C, F), xl.dtype)
    dx = np.empty_like(xl) if need_dx else None
    for index, (n0, n1) in enumerate(
        chunk_plan(N, A * A * TH * TW * (C + F) * xl.itemsize, CHUNK_BYTES)
    ):
        n = n1 - n0
        T = n * TH * TW
        V, dM = scratch.pair("chunk", (A * A, T, C), (A * A, T, F), xl.dtype)
        input_transform(xl, n0, n, m, P, TH, TW, BT, V)
        dout_transform(dout_cl, n0, n, TH, TW, AT, dM)
        if index == 0:
            batched_matmul(V.transpose(0, 2, 1), dM, dU)
        else:  # matmul cannot accumulate: later chunks add a part (taken only if needed)
            part = scratch.get("wino_dU_part", (A * A, C, F), xl.dtype)
            batched_matmul(V.transpose(0, 2, 1), dM, part)
            dU += part
        if dx is not None:  # dV written over V, which dU is done with
            batched_matmul(dM, U.transpose(0, 2, 1), V)
            input_grad(V, BT, n, m, P, TH, TW, dx[n0:n1])
    filter_grad(dU, m, r, scratch, dW)
    return dx
