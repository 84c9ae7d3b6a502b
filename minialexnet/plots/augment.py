"""Lesson 06's figures: where the random crops come from, and the RGB PCA colour augmentation."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from . import _as_displayable


def plot_random_crops(
    image: np.ndarray,
    offsets: np.ndarray,
    flips: np.ndarray,
    crops: np.ndarray,
    *,
    pairs_per_row: int = 4,
) -> Figure:
    """Each random crop twice, side by side: where it came from (its box drawn on the full
    (3, S, S) uint8 ``image``, the rest dimmed) and what the network is given (the crop,
    mirrored where ``flips`` says so). ``offsets`` are the (top, left) corners, ``crops`` the
    (N, 3, crop, crop) patches."""
    n, crop = len(crops), crops.shape[-1]
    nrows = -(-n // pairs_per_row)
    fig, axes = plt.subplots(
        nrows, 2 * pairs_per_row, figsize=(3.6 * pairs_per_row, 2.0 * nrows + 0.6), squeeze=False
    )
    full = _as_displayable(image).astype(np.float32) / 255
    for ax in axes.flat:
        ax.axis("off")
    for i, ((top, left), flip) in enumerate(zip(offsets, flips, strict=True)):
        where, given = axes[i // pairs_per_row, 2 * (i % pairs_per_row) :][:2]
        inside = np.zeros(full.shape[:2], bool)
        inside[top : top + crop, left : left + crop] = True
        # dim what the crop leaves out, so the box's content stands out
        where.imshow(np.where(inside[..., None], full, 0.35 * full))
        color = f"C{i % 10}"
        where.add_patch(
            Rectangle((left - 0.5, top - 0.5), crop, crop, fill=False, ec=color, lw=1.8)
        )
        where.plot(left, top, "o", color=color, ms=4)  # the random corner
        where.set_title(f"#{i + 1}: corner (top {top}, left {left})", fontsize=8)
        given.imshow(_as_displayable(crops[i]))
        given.set_title(f"#{i + 1} as trained{', mirrored' if flip else ''}", fontsize=8)
        for spine in given.spines.values():  # the crop framed in its box's colour
            spine.set(visible=True, color=color, linewidth=1.8)
        given.axis("on")
        given.set(xticks=[], yticks=[])
    size = image.shape[-1]
    fig.suptitle(
        f"{n} random {crop}×{crop} crops of the {size}×{size} image: each box on the full image "
        f"(left; dot: its random top-left corner, any of {size - crop + 1}² positions), "
        "then the crop the network sees (right)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_rgb_pca(eigvals: np.ndarray, eigvecs: np.ndarray, base: np.ndarray) -> Figure:
    """The RGB principal components: each eigenvector's R, G, B parts with its eigenvalue, and
    the colour ``base`` (RGB in [0, 1]) moved along it by t = -0.2 ... 0.2 — the direction of
    the change, at the same size for every component."""
    fig, axes = plt.subplots(2, 3, figsize=(10, 4.6), height_ratios=[3, 1])
    steps = np.linspace(-0.2, 0.2, 5)
    for i in range(3):
        ax = axes[0, i]
        ax.bar(["R", "G", "B"], eigvecs[:, i], color=["tab:red", "tab:green", "tab:blue"])
        ax.axhline(0, color="black", lw=0.8)
        ax.set_ylim(-1, 1)
        ax.set_title(f"p{i + 1}: λ{i + 1} = {eigvals[i]:.4f}", fontsize=9)
        swatch = np.clip(base + np.outer(steps, eigvecs[:, i]), 0, 1)
        axes[1, i].imshow(swatch[None], aspect="auto")
        axes[1, i].set_xticks(range(5), [f"{t:+.1f}" for t in steps], fontsize=8)
        axes[1, i].set_yticks([])
        axes[1, i].set_xlabel(f"mean colour + t·p{i + 1}", fontsize=8)
    fig.suptitle(
        "Principal components of the RGB values of every pixel (pixel values in [0, 1])",
        fontsize=10,
    )
    fig.tight_layout()
    return fig
