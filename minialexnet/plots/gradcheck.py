"""Lesson 02's figure: the finite-difference step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    pass


def plot_gradcheck_eps(
    eps: np.ndarray,
    measured: dict[str, np.ndarray],
    predicted: dict[str, np.ndarray],
    chosen_eps: float,
) -> Figure:
    """Relative error of central differences against the step ``eps``, log-log.

    ``measured`` and ``predicted`` map a label (say "float64") to one error per ``eps``; each
    predicted curve is drawn dashed in its measured curve's colour. The V shape: rounding error
    (~ u / eps) on the left, truncation error (~ eps**2) on the right.
    """
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    for i, (label, errors) in enumerate(measured.items()):
        color = f"C{i}"
        ax.loglog(eps, errors, "o-", color=color, ms=3.5, label=f"{label}: measured")
        if label in predicted:
            ax.loglog(
                eps,
                predicted[label],
                "--",
                color=color,
                alpha=0.6,
                label=f"{label}: rounding bound + truncation",
            )
    ax.axvline(chosen_eps, color="gray", ls=":", lw=1)
    ax.text(
        chosen_eps,
        0.98,
        f" gradcheck's eps = {chosen_eps:g}",
        transform=ax.get_xaxis_transform(),
        va="top",
        fontsize=8,
        color="gray",
    )
    ax.set_xlabel("finite-difference step eps")
    ax.set_ylabel("median relative error of the numeric gradient")
    ax.set_title(
        "Central differences: rounding error (left) vs truncation error (right)", fontsize=10
    )
    ax.set_ylim(top=3)  # a relative error above 100% says nothing more; the bound goes far above
    ax.grid(which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig
