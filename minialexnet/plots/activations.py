"""Lesson 03's figures: what ReLU costs, the gradients it passes, how sparse it is, Figure 1.

Every figure that compares trainings draws the spread over seeds: a band (min to max) around
the median line, or error bars from min to max around the median point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# One colour per activation in every figure of the lesson, so they read together.
COLOURS = {"relu": "C0", "tanh": "C1", "sigmoid": "C2"}


def _band(ax: Axes, x: np.ndarray, runs: np.ndarray, colour: str, label: str, **kw) -> None:
    """Median line of ``runs`` (seeds, points) with a min-max band around it; NaN (a run that
    had already stopped) is left out of each point."""
    ax.plot(x, np.nanmedian(runs, axis=0), color=colour, label=label, **kw)
    lo, hi = np.nanmin(runs, axis=0), np.nanmax(runs, axis=0)
    ax.fill_between(x, lo, hi, color=colour, alpha=0.2, lw=0)


def plot_cost(ms: Mapping[str, tuple[float, float]], what: str) -> Figure:
    """Forward and backward time (ms) of each activation, grouped bars; ``what`` names the
    array they ran on (shape, dtype)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    names = list(ms)
    x = np.arange(len(names))
    for offset, (i, part) in zip((-0.2, 0.2), enumerate(("forward", "backward")), strict=True):
        values = [ms[n][i] for n in names]
        bars = ax.bar(x + offset, values, 0.4, label=part, color=f"C{7 + i}")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(x, names)
    ax.set(ylabel="time (ms, min of repeats)", title=f"Cost of one activation layer\n{what}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_per_layer(
    panels: Mapping[str, Mapping[str, np.ndarray]],
    layers: Sequence[str],
    ylabel: str,
    title: str,
    *,
    log: bool = False,
    guides: Sequence[tuple[float, str]] = (),
) -> Figure:
    """One panel per entry of ``panels`` (panel title -> activation -> values (seeds, layers)),
    layers along x, median and min-max band per activation; ``guides`` are (y, label) dashed
    reference lines."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    x = np.arange(len(layers))
    for ax, (panel, runs) in zip(axes[0], panels.items(), strict=True):
        for activation, values in runs.items():
            _band(ax, x, np.asarray(values), COLOURS[activation], activation, marker="o", ms=4)
        for i, (y, label) in enumerate(guides):
            ax.axhline(y, color="gray", ls=("--", ":", "-.")[i % 3], lw=1, label=label)
        ax.set_xticks(x, layers, rotation=30)
        ax.set(xlabel="layer (input side → output side)", ylabel=ylabel, title=panel)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_figure1(
    sweeps: Mapping[str, Mapping[str, Mapping[float, Sequence[float]]]],
    curves: Mapping[str, Mapping[str, np.ndarray]],
    target: float,
    max_steps: int,
    title: str,
) -> Figure:
    """The paper's Figure 1 and the sweep behind it, one row per setting.

    ``sweeps``: setting -> activation -> lr -> iterations to ``target`` per seed (inf where a
    seed did not get there within ``max_steps``). ``curves``: setting -> activation (label)
    -> running training error (seeds, iterations) at that activation's best rate.
    """
    rows = len(sweeps)
    fig, axes = plt.subplots(rows, 2, figsize=(12, 4.2 * rows), squeeze=False)
    for (left, right), setting in zip(axes, sweeps, strict=True):
        for activation, by_lr in sweeps[setting].items():
            lrs = np.array(sorted(by_lr))
            runs = np.array([by_lr[lr] for lr in lrs], dtype=float).clip(max=max_steps)
            median = np.median(runs, axis=1)
            colour = COLOURS[activation]
            left.errorbar(
                lrs,
                median,
                yerr=(median - runs.min(axis=1), runs.max(axis=1) - median),
                color=colour,
                marker="o",
                capsize=3,
                label=activation,
            )
        left.axhline(max_steps, color="gray", ls=":", lw=1, label=f"not reached in {max_steps}")
        left.set(
            xscale="log",
            yscale="log",
            xlabel="learning rate",
            ylabel=f"iterations to {target:.0%} training error",
            title=f"{setting}: the sweep (median, min-max of seeds)",
        )
        left.grid(alpha=0.3, which="both")
        left.legend(fontsize=8)
        for label, runs in curves[setting].items():
            runs = 100 * np.asarray(runs)
            x = np.arange(1, runs.shape[1] + 1)
            _band(right, x, runs, COLOURS[label.split()[0]], label)
        right.axhline(100 * target, color="gray", ls="--", lw=1, label=f"{target:.0%}")
        right.set(
            xlabel="iteration (mini-batch of 32)",
            ylabel="training error (%), last 10 batches",
            title=f"{setting}: each at its best rate",
            ylim=(0, 100),
        )
        right.grid(alpha=0.3)
        right.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
