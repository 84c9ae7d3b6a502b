"""Lesson 06's figure: the RGB PCA colour augmentation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    pass


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
