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

Speed: every step is one whole-array NumPy operation written into a preallocated array (no
temporaries beyond the ones named), and every array keeps x's memory layout, so a channels-last
input is summed along contiguous memory.
Expected gradient-check relative error in float64: below 1e-8.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .base import Layer, check_positive_int

Convention = Literal["paper", "caffe"]


def channel_window_sum(a: np.ndarray, n: int) -> np.ndarray:
    """sum_{j = c - n//2 .. c + n//2, 0 <= j < C} a[:, j] for every channel c of an NCHW array.

    n shifted adds of whole channel blocks: no loop over pixels, and the edge channels simply
    have fewer terms (the truncated window), exactly as the formula says.
    """
    half = n // 2
    C = a.shape[1]
    total = a.copy(order="K")  # order="K": keep a's memory layout (plain .copy() makes C order)
    for shift in range(1, min(half, C - 1) + 1):
        total[:, shift:] += a[:, :-shift]  # the neighbour `shift` channels below
        total[:, :-shift] += a[:, shift:]  # the neighbour `shift` channels above
    return total


def inverse_power(s: np.ndarray, beta: float) -> np.ndarray:
    """s ** -beta. For the paper's beta = 0.75: 1 / (sqrt(s) * sqrt(sqrt(s))), since two square
    roots, a multiply and a division (hardware instructions) cost a third of one general power."""
    if beta != 0.75:
        return s ** s.dtype.type(-beta)
    root = np.sqrt(s)
    r = np.sqrt(root)
    r *= root
    return np.divide(1, r, out=r)


def lrn_forward(
    x: np.ndarray, n: int, k: float, a: float, beta: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (out, r, q): out = x * r with r = s**-beta, and q = -2 a beta r / s for backward.

    ``a`` is the effective alpha (already divided by n under the "caffe" convention).
    """
    t = x.dtype.type
    s = channel_window_sum(x * x, n)
    s *= t(a)
    s += t(k)
    r = inverse_power(s, beta)
    out = x * r
    q = np.divide(r, s, out=s)  # s is not needed after this: reuse its memory
    q *= t(-2 * a * beta)
    return out, r, q


def lrn_backward(
    dout: np.ndarray, x: np.ndarray, r: np.ndarray, q: np.ndarray, n: int
) -> np.ndarray:
    """dL/dx = dout * r + x * window_sum(dout * x * q) (see the module docstring)."""
    g = dout * x
    g *= q
    window = channel_window_sum(g, n)
    window *= x
    dx = np.multiply(dout, r, out=g)  # g is not needed after the window sum: reuse it
    dx += window
    return dx


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
        out, r, q = lrn_forward(x, self.size, self.k, self.effective_alpha, self.beta)
        self._cache = (x, r, q)
        return out

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        x, r, q = self._cache
        return lrn_backward(dout, x, r, q, self.size)

    def __repr__(self) -> str:
        return (
            f"LocalResponseNorm(size={self.size}, alpha={self.alpha}, beta={self.beta}, "
            f"k={self.k}, convention={self.convention!r})"
        )
