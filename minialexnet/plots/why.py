"""Figures of lesson 00 (why AlexNet won): error against training-set size, and the days a
training run takes on each machine."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def plot_learning_curve(
    sizes: Sequence[int], errors: np.ndarray, seeds: Sequence[int], steps: int
) -> Figure:
    """Test error (%) against the number of training images: every seed's run as a point, the
    mean as a line, the min-max over seeds as a band. ``errors`` is (len(sizes), len(seeds)),
    as fractions; every run took about ``steps`` SGD steps."""
    errors = 100 * np.asarray(errors)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.fill_between(
        sizes,
        errors.min(axis=1),
        errors.max(axis=1),
        alpha=0.25,
        color="C0",
        label=f"min-max over {len(seeds)} seeds",
    )
    ax.plot(sizes, errors.mean(axis=1), "o-", color="C0", label="mean")
    for j, seed in enumerate(seeds):
        ax.plot(sizes, errors[:, j], "x", color=f"C{j + 1}", label=f"seed {seed}")
    ax.set_xscale("log")
    ax.set_xticks(list(sizes), [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set(
        xlabel="training images (log scale)",
        ylabel="test top-1 error (%)",
        title=f"mini AlexNet on digits, {steps} SGD steps per run: test error vs training images",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_training_days(
    names: Sequence[str], days: Sequence[float], paper_days: tuple[float, float]
) -> Figure:
    """Horizontal bars of the days one AlexNet training takes on each machine (log scale),
    each labelled with its time, and the paper's reported 5-6 days as a shaded band."""
    fig, ax = plt.subplots(figsize=(8, 0.7 * len(names) + 1.6))
    y = np.arange(len(names))[::-1]
    ax.barh(y, days, color=[f"C{i}" for i in range(len(names))])
    ax.axvspan(*paper_days, color="gray", alpha=0.25, label="the paper's 5-6 days (two GTX 580)")
    for yi, d in zip(y, days, strict=True):
        ax.text(d * 1.15, yi, format_duration(d), va="center", fontsize=9)
    ax.set_yticks(y, names)
    ax.set_xscale("log")
    ax.set_xlim(min(days) / 3, max(days) * 20)
    ax.set(
        xlabel="days for 90 epochs of 1.2 M images (log scale)",
        title="One AlexNet training at each machine's FLOP rate",
    )
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def format_duration(days: float) -> str:
    """A duration in the unit a reader grasps: minutes, hours, days or years."""
    if days < 1 / 24:
        return f"{days * 24 * 60:.0f} minutes"
    if days < 1:
        return f"{days * 24:.1f} hours"
    if days < 365:
        return f"{days:.1f} days"
    return f"{days / 365.25:.1f} years"
