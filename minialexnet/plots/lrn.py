"""Lesson 05's figures: local response normalization and overlapping pooling."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure


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


def plot_lrn_vector(
    a: np.ndarray, outs: dict[str, np.ndarray], floors: dict[str, float], strong: int
) -> Figure:
    """One pixel's channel vector ``a`` before and after LRN (left: the first of ``outs``,
    bars), and out/in per channel for every convention in ``outs`` (right), with each
    convention's no-neighbour gain k^-β (``floors``) dashed; ``strong`` is the strong channel."""
    channels = np.arange(len(a))
    fig, (ax_val, ax_gain) = plt.subplots(1, 2, figsize=(12, 4.2))
    first = next(iter(outs))
    ax_val.bar(channels - 0.2, a, 0.4, color="0.6", label="input a (after ReLU)")
    ax_val.bar(channels + 0.2, outs[first], 0.4, color="C0", label=f"after LRN, {first}")
    ax_val.set(
        xlabel="channel",
        ylabel="activation (paper's pixel units, 0..255)",
        title=f"one pixel: a strong channel ({strong}) among weak ones",
        xticks=channels,
    )
    for i, (label, out) in enumerate(outs.items()):
        ax_gain.plot(channels, out / a, "o-", color=f"C{i}", label=label)
        ax_gain.axhline(floors[label], color=f"C{i}", ls="--", lw=0.8)
    ax_gain.axvspan(
        strong - 2.5, strong + 2.5, color="C3", alpha=0.08, label="window of the strong channel"
    )
    ax_gain.set(
        xlabel="channel",
        ylabel="gain = output / input",
        title="gain per channel (dashed: k^-β, the gain with no energy in the window)",
        xticks=channels,
        ylim=(0, 1.05),
    )
    for ax in (ax_val, ax_gain):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_lrn_maps(
    a: np.ndarray, b: np.ndarray, channels: Sequence[int], floor: float, title: str
) -> Figure:
    """Feature maps ``a`` (C, H, W) before and ``b`` after LRN for ``channels``: rows 1 and 2
    on one colour scale, row 3 the difference a − b, row 4 the suppression beyond the constant
    gain ``floor`` = k^-β, 1 − (b/a)/floor in %, where a > 0 (white where a = 0): the part of
    the damping that comes from the energy in the channel window."""
    with np.errstate(divide="ignore", invalid="ignore"):
        extra = np.where(a > 0, 100 * (1 - b / (a * floor)), np.nan)
    shown = list(channels)
    shared = Normalize(0, float(a[shown].max()))  # rows 1 and 2: one scale, to compare
    rows = [
        ("before LRN: a", a, "viridis", shared, "activation"),
        ("after LRN: b", b, "viridis", shared, "activation"),
        ("removed: a − b", a - b, "magma", Normalize(0, float((a - b)[shown].max())), "activation"),
        (
            "suppressed beyond k^-β\n(white: a = 0)",
            extra,
            "magma",
            Normalize(0, float(np.nanmax(extra[shown]))),
            "% of k^-β·a",
        ),
    ]
    fig, axes = plt.subplots(4, len(shown), figsize=(1.9 * len(shown) + 1.6, 8.4))
    for r, (label, maps, cmap, norm, units) in enumerate(rows):
        for j, c in enumerate(shown):
            ax = axes[r, j]
            image = ax.imshow(maps[c], cmap=cmap, norm=norm, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"channel {c}", fontsize=9)
        axes[r, 0].set_ylabel(label, fontsize=8)
        fig.colorbar(image, ax=list(axes[r]), shrink=0.9, pad=0.02).set_label(units, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def _band(ax, epochs, runs: np.ndarray, color: str, label: str) -> None:
    """Mean over seeds (rows of ``runs``) as a line, min-max as a shaded band."""
    ax.plot(epochs, runs.mean(axis=0), color=color, label=f"{label}: mean")
    ax.fill_between(
        epochs,
        runs.min(axis=0),
        runs.max(axis=0),
        color=color,
        alpha=0.2,
        label=f"{label}: min-max over seeds",
    )


def plot_pooling_seeds(
    histories: dict[str, list[list[dict[str, float]]]], finals: dict[str, dict[str, list[float]]]
) -> Figure:
    """Overlapping vs non-overlapping pooling over several seeds: validation error and loss per
    epoch (mean, min-max band), and each seed's final test error, validation error and
    train-test gap (points, mean as a bar) — ``finals[label][metric]`` in fractions."""
    fig, (ax_err, ax_loss, ax_end) = plt.subplots(1, 3, figsize=(15, 4.3))
    metrics = next(iter(finals.values())).keys()
    for i, (label, runs) in enumerate(histories.items()):
        color = f"C{i}"
        epochs = [h["epoch"] for h in runs[0]]
        err = np.array([[100 * h["val_error"] for h in run] for run in runs])
        loss = np.array([[h["val_loss"] for h in run] for run in runs])
        _band(ax_err, epochs, err, color, label)
        _band(ax_loss, epochs, loss, color, label)
        for m, metric in enumerate(metrics):
            values = 100 * np.asarray(finals[label][metric])
            x = m + (i - 0.5) * 0.3
            ax_end.plot(
                np.full(len(values), x),
                values,
                "o",
                color=color,
                alpha=0.8,
                label=f"{label}: each seed" if m == 0 else None,
            )
            ax_end.hlines(
                values.mean(),
                x - 0.12,
                x + 0.12,
                color=color,
                lw=2,
                label=f"{label}: mean" if m == 0 else None,
            )
    ax_err.set(xlabel="epoch", ylabel="validation top-1 error (%)", title="validation error")
    ax_loss.set(
        xlabel="epoch",
        ylabel="validation cross-entropy (log scale)",
        title="validation loss",
        yscale="log",
    )
    ax_loss.yaxis.set_major_formatter(lambda v, _: f"{v:g}")  # 0.1, 0.2, not 10^-1, 2x10^-1
    ax_loss.yaxis.set_minor_formatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else "")
    ax_end.set(
        xticks=range(len(metrics)),
        xticklabels=list(metrics),
        ylabel="%",
        title="after the last epoch, per seed",
    )
    for ax in (ax_err, ax_loss, ax_end):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    n = len(next(iter(histories.values())))
    fig.suptitle(
        f"Overlapping (3×3, stride 2) vs non-overlapping (2×2, stride 2) max-pooling, "
        f"{n} seeds each",
        fontsize=11,
    )
    fig.tight_layout()
    return fig
