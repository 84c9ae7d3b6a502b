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
The second term is the same windowed channel sum as the forward's, applied to g * out / s:
    dL/dx = g * s**-beta  -  2 * a * beta * x * window_sum(g * out / s).
``minialexnet/fast/lrn.py`` is the tuned engine.
Expected gradient-check relative error in float64: below 1e-7.

``groups=G`` splits the C channels into G blocks of C/G and normalises each block on its own:
the window is truncated at the block's edges as at the tensor's, so no channel sees another
block's. That is the paper's two-GPU net (``groups=2``): each GPU normalised the maps it held
(48 of conv1's 96, 128 of conv2's 256), since its GPUs communicated only into conv3 and the
fully connected layers [P §3.2]; cuda-convnet2's two-GPU model-parallel ImageNet net states it
(``layers/layers-imagenet-2gpu-model.cfg``: one ``cmrnorm`` layer per GPU, ``channels=48``).
Caffe's ``bvlc_alexnet`` (one LRN over all 96 maps) crosses the boundary: ``groups=1``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .base import Layer, Shape, check_positive_int, check_real

Convention = Literal["paper", "caffe"]


def channel_window_sum(a: np.ndarray, n: int) -> np.ndarray:
    """The sum over each channel's window of n neighbours, truncated at the edge channels.

    Input: a (N, C, H, W). Returns out (N, C, H, W) with
    ``out[:, c] = sum of a[:, j] for max(0, c - n//2) <= j <= min(C - 1, c + n//2)``.
    """
    # EXERCISE lrn: the windowed sum across channels, truncated at the edges.
    # hint: a (N, C, H, W) -> out (same shape): out[:, c] = sum of a[:, j] for |j - c| <= n // 2,
    # hint: 0 <= j < C. One channel at a time: a slice of a's channels, summed over axis 1.
    half = n // 2
    C = a.shape[1]
    out = np.empty_like(a)
    for c in range(C):
        first, last = max(0, c - half), min(C - 1, c + half)
        out[:, c] = a[:, first : last + 1].sum(axis=1)
    return out
    # END EXERCISE


def lrn_forward(
    x: np.ndarray, n: int, k: float, a: float, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return (out, s): out = x / s**beta with s = k + a * window_sum(x**2), and s for the
    backward; all (N, C, H, W). ``a`` is the effective alpha (already / n for "caffe")."""
    # EXERCISE lrn: out = x * s**-beta with s = k + a * window_sum(x**2).
    # hint: x (N, C, H, W) -> (out, s), both x's shape; channel_window_sum does the window. a is
    # hint: the effective alpha (already divided by n under "caffe"). Return s too: the backward
    # hint: needs it.
    s = k + a * channel_window_sum(x * x, n)
    out = x * s**-beta
    return out, s
    # END EXERCISE


def lrn_backward(
    dout: np.ndarray, x: np.ndarray, out: np.ndarray, s: np.ndarray, n: int, a: float, beta: float
) -> np.ndarray:
    """Return dL/dx = dout * s**-beta - 2 a beta x window_sum(dout * out / s) (the module
    docstring derives it), from the forward's x, out and s; all (N, C, H, W)."""
    # EXERCISE lrn: dx, the direct term through x and the cross-channel term through s.
    # hint: all arrays (N, C, H, W); out and s come from lrn_forward. The module docstring
    # hint: derives it: the cross-channel term is a channel window sum, as in the forward.
    return dout * s**-beta - 2 * a * beta * x * channel_window_sum(dout * out / s, n)
    # END EXERCISE


class LocalResponseNorm(Layer):
    """LRN across channels with window ``size`` (odd), ``alpha``, ``beta``, ``k``, ``convention``
    and ``groups`` (blocks of channels normalised apart: the module docstring).

    Defaults are the paper's formula: size=5, alpha=1e-4, beta=0.75, k=2, convention="paper",
    groups=1 (``build_alexnet("paper")`` passes groups=2, as the paper's two GPUs did).
    For PyTorch/Caffe behaviour pass ``convention="caffe"`` (and k=1 for their default).
    """

    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        convention: Convention = "paper",
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.groups = check_positive_int(self.name, "groups", groups)
        self.size = check_positive_int(self.name, "size", size)
        if self.size % 2 == 0:
            # An even window has no centre channel; the paper's formula is written for odd n.
            raise ValueError(f"{self.name}: size must be odd (a window centred on c), got {size}")
        if convention not in ("paper", "caffe"):
            raise ValueError(
                f"{self.name}: convention must be 'paper' (alpha as written) or 'caffe' "
                f"(alpha / size, as Caffe and PyTorch), got {convention!r}"
            )
        self.convention = convention
        self.alpha = check_real(self.name, "alpha", alpha, low=0)
        self.beta = check_real(self.name, "beta", beta, low=0)
        if k == 0 and self.alpha == 0:
            raise ValueError(f"{self.name}: k and alpha cannot both be 0 (division by zero)")
        # k > 0 (not only k or alpha non-zero): s = k + a * sum(x**2) divides x, and an
        # all-zero window (a dead ReLU map: common) has s = k, so k = 0 gives 0 / 0 = NaN.
        self.k = check_real(self.name, "k", k, low=0, low_open=True)

    @property
    def effective_alpha(self) -> float:
        """The ``a`` that multiplies the window sum: alpha, or alpha / size under "caffe"."""
        return self.alpha if self.convention == "paper" else self.alpha / self.size

    def output_shape(self, in_shape: Shape) -> Shape:
        self.check_rank(in_shape)
        if in_shape[0] % self.groups:
            raise ValueError(
                f"{self.name}: groups={self.groups} must divide the channels, got per-image "
                f"shape {tuple(in_shape)}"
            )
        return in_shape

    def _forward(self, x: np.ndarray) -> np.ndarray:
        # Each block of channels is normalised as if it were the whole tensor (its own edges).
        parts = [
            lrn_forward(block, self.size, self.k, self.effective_alpha, self.beta)
            for block in self._blocks(x)
        ]
        out = self._join([part_out for part_out, _ in parts])
        s = self._join([part_s for _, part_s in parts])
        self._cache = (x, out, s)
        return out

    def _backward(self, dout: np.ndarray) -> np.ndarray:
        x, out, s = self._cache
        blocks = zip(*(self._blocks(a) for a in (dout, x, out, s)), strict=True)
        a, n, beta = self.effective_alpha, self.size, self.beta
        return self._join([lrn_backward(g, xb, ob, sb, n, a, beta) for g, xb, ob, sb in blocks])

    def _blocks(self, a: np.ndarray) -> list[np.ndarray]:
        """``a`` (N, C, H, W) as ``groups`` views of C / groups consecutive channels."""
        return np.split(a, self.groups, axis=1)

    def _join(self, blocks: list[np.ndarray]) -> np.ndarray:
        """The inverse of ``_blocks`` (no copy for one group)."""
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)

    def __repr__(self) -> str:
        return (
            f"LocalResponseNorm(size={self.size}, alpha={self.alpha}, beta={self.beta}, "
            f"k={self.k}, convention={self.convention!r}, groups={self.groups})"
        )
