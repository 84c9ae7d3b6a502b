"""Local response normalization across channels (AlexNet §3.3).

Shapes: x (N, C, H, W) -> out (N, C, H, W).

    out[c] = x[c] / s[c]**beta,   s[c] = k + a * sum_{j in window(c)} x[j]**2,
    window(c) = max(0, c - n//2) .. min(C - 1, c + n//2)      (truncated at the edge channels)

(every term at the same n, h, w). The paper's constants: n=5, k=2, alpha=1e-4, beta=0.75.

The alpha convention — an explicit switch, because the implementations disagree:
    ``convention="paper"``:  a = alpha          (the formula as printed in the paper)
    ``convention="caffe"``:  a = alpha / n      (Caffe and PyTorch's ``nn.LocalResponseNorm``;
                                                 both also default to k=1)
The same alpha=1e-4 is therefore 5x weaker under "caffe" than under "paper".

Backward, derived. Write r[c] = s[c]**-beta, so out[c] = x[c] * r[c]. The window relation is
symmetric (j in window(i) <=> i in window(j), since both mean |i - j| <= n//2), so
    d out[i] / d x[j] = [i == j] * r[i]
                        - 2 * a * beta * x[i] * x[j] * s[i]**(-beta - 1) * [|i - j| <= n//2]
and with g = dL/dout,
    dL/dx[j] = g[j] * r[j]  -  2 * a * beta * x[j] * sum_{i in window(j)} g[i] * out[i] / s[i].
The second term is the same windowed channel sum as the forward's, applied to g * out / s.
Since out / s = x * r / s, the forward keeps r and q = -2 * a * beta * r / s (and x), so that
    dL/dx = g * r  +  x * window_sum(g * x * q).

Speed: every step is one whole-array NumPy operation written into memory that already exists
(the output, the kept r and q, or scratch), so there are no temporaries to allocate and fault
in (which is why the functions fill arrays they are given); and every array keeps x's memory
layout, so a channels-last input is summed along contiguous memory. (s**-0.75 computed as
1/(sqrt(s)*sqrt(sqrt(s))) was tried: NumPy's float32 power is vectorized, and the square roots
saved ~10% of that one step, not worth a special case.)
Expected gradient-check relative error in float64: below 1e-7.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .base import Layer, check_positive_int
from .workspace import Workspace

Convention = Literal["paper", "caffe"]


def channel_window_sum(a: np.ndarray, n: int, out: np.ndarray | None = None) -> np.ndarray:
    """out[:, c] = sum_{j = c - n//2 .. c + n//2, 0 <= j < C} a[:, j] for each channel c of an
    NCHW array; ``out`` (a's shape) is written and returned, or a new array if not given.

    n shifted adds of whole channel blocks: no loop over pixels, and the edge channels simply
    have fewer terms (the truncated window), exactly as the formula says.
    """
    # EXERCISE lrn: the windowed sum across channels, truncated at the edges.
    # hint: a (N, C, H, W) -> out (same shape): out[:, c] = sum of a[:, j] for |j - c| <= n // 2,
    # hint: 0 <= j < C. Start from a copy of a and add the channel blocks shifted by 1 .. n // 2.
    half = n // 2
    C = a.shape[1]
    out = np.empty_like(a) if out is None else out  # empty_like keeps a's memory layout
    np.copyto(out, a)
    for shift in range(1, min(half, C - 1) + 1):
        out[:, shift:] += a[:, :-shift]  # the neighbour `shift` channels below
        out[:, :-shift] += a[:, shift:]  # the neighbour `shift` channels above
    return out
    # END EXERCISE


def lrn_forward(
    x: np.ndarray,
    n: int,
    k: float,
    a: float,
    beta: float,
    out: np.ndarray,
    r: np.ndarray,
    q: np.ndarray,
    s: np.ndarray,
) -> None:
    """Fill out = x * r, r = s**-beta and q = -2 a beta r / s (kept for backward), with ``s``
    scratch for the window sums; all x's shape. ``a`` is the effective alpha."""
    # EXERCISE lrn: out = x * s**-beta with s = k + a * window_sum(x**2).
    # hint: all arrays (N, C, H, W). Fill out, r = s**-beta and q = -2 * a * beta * r / s (the
    # hint: backward uses r and q); s is scratch. a is the effective alpha (already / n for caffe).
    t = x.dtype.type
    squares = np.multiply(x, x, out=q)  # q is free until the last step: borrow its memory
    channel_window_sum(squares, n, out=s)
    s *= t(a)
    s += t(k)
    np.power(s, t(-beta), out=r)
    np.multiply(x, r, out=out)
    np.divide(r, s, out=q)
    q *= t(-2 * a * beta)
    # END EXERCISE


def lrn_backward(
    dout: np.ndarray,
    x: np.ndarray,
    r: np.ndarray,
    q: np.ndarray,
    n: int,
    dx: np.ndarray,
    window: np.ndarray,
) -> None:
    """Fill dx = dout * r + x * window_sum(dout * x * q) (see the module docstring), with
    ``window`` scratch of x's shape."""
    # EXERCISE lrn: dx = dout * r + x * window_sum(dout * x * q).
    # hint: all arrays (N, C, H, W); r and q come from lrn_forward; window is scratch. The second
    # hint: term is the same channel window sum as the forward's: the module docstring derives it.
    g = np.multiply(dout, x, out=dx)  # dx is free until the last step: borrow its memory
    g *= q
    channel_window_sum(g, n, out=window)
    window *= x
    np.multiply(dout, r, out=dx)
    dx += window
    # END EXERCISE


class LocalResponseNorm(Layer):
    """LRN across channels with window ``size`` (odd), ``alpha``, ``beta``, ``k``, ``convention``.

    Defaults are the paper's: size=5, alpha=1e-4, beta=0.75, k=2, convention="paper".
    For PyTorch/Caffe behaviour pass ``convention="caffe"`` (and k=1 for their default).
    """

    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        convention: Convention = "paper",
    ) -> None:
        super().__init__()
        self.size = check_positive_int(self.name, "size", size)
        if self.size % 2 == 0:
            # An even window has no centre channel; the paper's formula is written for odd n.
            raise ValueError(f"{self.name}: size must be odd (a window centred on c), got {size}")
        if convention not in ("paper", "caffe"):
            raise ValueError(
                f"{self.name}: convention must be 'paper' (alpha as written) or 'caffe' "
                f"(alpha / size, as Caffe and PyTorch), got {convention!r}"
            )
        for argument, value in (("alpha", alpha), ("beta", beta), ("k", k)):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{self.name}: {argument} must be finite and >= 0, got {value}")
        if k == 0 and alpha == 0:
            raise ValueError(f"{self.name}: k and alpha cannot both be 0 (division by zero)")
        self.workspace = Workspace()  # scratch inside one call; a Sequential shares one
        self.kept = Workspace()  # r and q, kept from forward to backward
        self.alpha, self.beta, self.k, self.convention = (
            float(alpha),
            float(beta),
            float(k),
            convention,
        )

    @property
    def effective_alpha(self) -> float:
        """The ``a`` that multiplies the window sum: alpha, or alpha / size under "caffe"."""
        return self.alpha if self.convention == "paper" else self.alpha / self.size

    def _forward(self, x: np.ndarray) -> np.ndarray:
        n, k, a, beta = self.size, self.k, self.effective_alpha, self.beta
        out = np.empty_like(x)  # fresh (the caller keeps it), in x's memory layout
        # r and q live in memory this layer reuses at every forward (no fresh-page faults).
        r, q = self.kept.like("r", x), self.kept.like("q", x)
        s = self.workspace.like("lrn", x)
        lrn_forward(x, n, k, a, beta, out, r, q, s)
        self._cache = (x, r, q)
        return out

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        x, r, q = self._cache
        dx = np.empty_like(dout)  # fresh: returned
        window = self.workspace.like("lrn", dout)  # the same scratch as forward's s
        lrn_backward(dout, x, r, q, self.size, dx, window)
        return dx

    def __repr__(self) -> str:
        return (
            f"LocalResponseNorm(size={self.size}, alpha={self.alpha}, beta={self.beta}, "
            f"k={self.k}, convention={self.convention!r})"
        )
