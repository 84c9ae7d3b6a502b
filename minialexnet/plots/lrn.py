"""Lesson 05's figures: local response normalization and pooling."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    pass


def plot_lrn_gain(
    energy: np.ndarray, gains: dict[str, np.ndarray], marks: dict[str, float] | None = None
) -> Figure:
    """LRN's gain out/in = (k + a·Σa²)^-β against the local energy Σa² over the channel window,
    one curve per convention; ``marks`` draws vertical lines at typical energies."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, gain in gains.items():
        ax.semilogx(energy, gain, label=label)
    for i, (label, value) in enumerate((marks or {}).items()):
        ax.axvline(value, color=f"C{i + len(gains)}", ls=":", lw=1.2, label=label)
    ax.set(
        xlabel="local energy: sum of a² over the 5-channel window (log scale)",
        ylabel="gain = LRN output / input",
        title="Local response normalization: how much a unit is scaled down",
        ylim=(0, 1.05),
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
