"""Lesson 03's figures: ReLU and the saturating activations."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    pass


def plot_error_vs_iteration(
    curves: dict[str, np.ndarray], target: float, reached: dict[str, int | None], title: str
) -> Figure:
    """Training error (fraction) per iteration for several runs, the ``target`` error as a
    dashed line and, where a run got there, the iteration it did (the paper's Figure 1)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (label, curve) in enumerate(curves.items()):
        ax.plot(np.arange(1, len(curve) + 1), 100 * curve, color=f"C{i}", label=label)
        if reached.get(label) is not None:
            ax.axvline(reached[label], color=f"C{i}", ls=":", lw=1)
            ax.annotate(
                f"{reached[label]}",
                (reached[label], 100 * target),
                textcoords="offset points",
                xytext=(4, 6),
                color=f"C{i}",
                fontsize=9,
            )
    ax.axhline(100 * target, color="gray", ls="--", lw=1, label=f"{target:.0%} training error")
    ax.set(xlabel="iteration (mini-batch)", ylabel="training error (%)", title=title, ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
