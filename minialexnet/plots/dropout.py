"""Lesson 04's figures: dropout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    pass


def plot_dropout_expectation(
    x: np.ndarray, means: dict[str, np.ndarray], tests: dict[str, np.ndarray]
) -> Figure:
    """For each dropout form: the input ``x`` of a few units, the mean of many training-mode
    outputs, and the test-mode output, as grouped bars (one panel per form)."""
    fig, axes = plt.subplots(1, len(means), figsize=(5.5 * len(means), 3.6), sharey=True)
    units = np.arange(len(x))
    for ax, form in zip(np.atleast_1d(axes), means, strict=True):
        ax.bar(units - 0.27, x, 0.27, label="input x", color="lightgray")
        ax.bar(units, means[form], 0.27, label="training: mean over masks", color="C0")
        ax.bar(units + 0.27, tests[form], 0.27, label="test-time output", color="C1")
        ax.set(xlabel="unit", title=form)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
