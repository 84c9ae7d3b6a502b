"""Lesson 04's figures: dropout."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


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
        ax.set(xlabel="unit", ylabel="output", title=form)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _band(ax, x, runs: np.ndarray, label: str, color: str, style: str = "-") -> None:
    """The mean over runs (rows) as a line, their min..max as a shaded band around it."""
    ax.plot(x, runs.mean(axis=0), style, color=color, label=label)
    ax.fill_between(x, runs.min(axis=0), runs.max(axis=0), color=color, alpha=0.2, lw=0)


def plot_ensemble(
    ks: np.ndarray, curves: dict[str, dict[str, np.ndarray]], scaled_error: np.ndarray
) -> Figure:
    """Averaging K sampled sub-networks against the one scaled network, as K grows.

    ``curves[average]["diff" | "agree" | "error"]`` are (seeds, len(ks)) arrays for each way of
    averaging ("arithmetic", "geometric"): the mean |difference| of the softmax outputs from the
    scaled net's, the fraction of test images whose argmax agrees with it, and the test error;
    ``scaled_error`` (seeds,) is the scaled net's own test error. Bands: min..max over seeds."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = (
        ("diff", 1, "mean |p_K − p_scaled| per class", "distance from the scaled net"),
        ("agree", 100, "argmax agrees with the scaled net (%)", "agreement"),
        ("error", 100, "test error (%)", "test error"),
    )
    for ax, (key, scale, ylabel, title) in zip(axes, panels, strict=True):
        for i, (average, values) in enumerate(curves.items()):
            _band(ax, ks, scale * values[key], f"mean of K sub-nets ({average})", f"C{i}", "o-")
        ax.set(xscale="log", xlabel="K, sub-networks averaged", ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    low, high = 100 * scaled_error.min(), 100 * scaled_error.max()
    axes[2].axhspan(low, max(high, low + 0.05), color="C3", alpha=0.2, lw=0)
    axes[2].axhline(100 * scaled_error.mean(), color="C3", label="scaled net (× (1 − p))")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(
        "Dropout as an ensemble: K sampled sub-networks against the scaled network "
        "(digits test set; line: mean, band: min-max over seeds)",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def plot_overfitting(
    epochs: np.ndarray, runs: dict[str, dict[str, np.ndarray]], threshold: float, title: str
) -> Figure:
    """Per-epoch curves of the runs with and without dropout, mean and min..max over seeds.

    ``runs[label][key]`` is a (seeds, epochs) array for key in ``train_loss`` (measured during
    the epoch, dropout on), ``full_train_loss`` / ``full_train_error`` (the whole net, test
    mode, on the training images), ``test_loss`` / ``test_error``. ``threshold``: the training
    loss that defines convergence, drawn as a line."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.3))
    for i, (label, r) in enumerate(runs.items()):
        color = f"C{i}"
        _band(axes[0], epochs, 100 * r["test_error"], f"{label}: test", color)
        _band(
            axes[0], epochs, 100 * r["full_train_error"], f"{label}: training images", color, "--"
        )
        _band(axes[1], epochs, r["train_loss"], f"{label}: training (during the epoch)", color, ":")
        _band(axes[1], epochs, r["full_train_loss"], f"{label}: training images", color, "--")
        _band(axes[1], epochs, r["test_loss"], f"{label}: test", color)
    axes[1].axhline(threshold, color="gray", lw=1, label=f"convergence: loss {threshold:g}")
    axes[0].set(xlabel="epoch", ylabel="top-1 error (%)", title="error (whole net, test mode)")
    axes[0].set_ylim(
        0, min(100, 3 * 100 * max(r["test_error"][:, -1].max() for r in runs.values()))
    )
    axes[1].set(xlabel="epoch", ylabel="cross-entropy loss (log scale)", title="loss", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title} (line: mean, band: min-max over seeds)", fontsize=11)
    fig.tight_layout()
    return fig
