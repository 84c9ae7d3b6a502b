"""Every figure the lessons and the CLI draw, and where they are saved.

Figures are written as PNG with matplotlib's Agg backend (no screen needed) to the folder named
by the environment variable ``MINIALEXNET_FIGURES``, or ``figures/`` beside the running script's
working directory when it is unset. Lessons also read ``MINIALEXNET_QUICK=1``, which the test
suite sets to run each lesson on tiny sizes (``quick_mode``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use("Agg"): the backend must be chosen first
from matplotlib.figure import Figure

from .checkpoint import atomic_write

if TYPE_CHECKING:  # only for type hints: drawing a figure never needs the model code
    from .accounting import Summary


def quick_mode() -> bool:
    """True when ``MINIALEXNET_QUICK=1``: lessons shrink their work to a smoke test."""
    return os.environ.get("MINIALEXNET_QUICK") == "1"


def figures_dir() -> Path:
    """The folder PNGs go to (created if missing)."""
    folder = Path(os.environ.get("MINIALEXNET_FIGURES", "figures"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_figure(fig: Figure, name: str, folder: str | Path | None = None) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` (default ``figures_dir()``), close it, return
    the path. Written atomically, like every output: a run killed while drawing its curves
    leaves the previous PNG, never half of one."""
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
    path = (figures_dir() if folder is None else Path(folder)) / f"{name}.png"
    atomic_write(path, lambda file: fig.savefig(file, format="png", dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------
# Lesson 01: where the parameters are and where the compute is
# ----------------------------------------------------------------------------------------
CONV_COLOR, FC_COLOR = "tab:blue", "tab:orange"


def plot_params_vs_macs(summary: Summary) -> Figure:
    """Three panels over the weighted layers (conv and FC) of one model's ``Summary``:
    share of the parameters, share of the forward MACs, and MACs per parameter (log scale).

    The third panel explains the first two: a conv weight is used once per output position,
    an FC weight once per image.
    """
    rows = [r for r in summary.rows if r.params > 0]
    y = np.arange(len(rows))
    colors = [CONV_COLOR if r.kind == "Conv2d" else FC_COLOR for r in rows]
    # (title, values, value-label format, log scale?)
    panels = [
        (
            "share of parameters",
            [100 * r.params / summary.total_params for r in rows],
            "{:.1f}%",
            False,
        ),
        (
            "share of forward MACs",
            [100 * r.macs / summary.total_macs for r in rows],
            "{:.1f}%",
            False,
        ),
        (
            "MACs per parameter (log scale; conv: ~OH x OW)",
            [r.macs / r.params for r in rows],
            "{:,.0f}",
            True,
        ),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.42 * len(rows) + 1.8), sharey=True)
    for ax, (title, values, fmt, log) in zip(axes, panels, strict=True):
        bars = ax.barh(y, values, color=colors)
        ax.bar_label(bars, labels=[fmt.format(v) for v in values], padding=3, fontsize=8)
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_xscale("log")
            ax.set_xlim(0.5, max(values) * 8)  # room for the value labels
        else:
            ax.set_xlim(0, max(values) * 1.25)
            ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0f}%")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [r.name for r in rows])
    axes[0].invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in (CONV_COLOR, FC_COLOR)]
    axes[0].legend(handles, ["conv", "fully connected"], loc="lower right", fontsize=8)
    fig.suptitle(
        f"{summary.model_name}: conv layers hold {summary.conv_param_share:.1%} of the "
        f"parameters but do {summary.conv_mac_share:.1%} of the MACs",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def plot_variant_shares(summaries: Sequence[Summary]) -> Figure:
    """Conv vs fully connected split of parameters and of forward MACs, one bar per model.

    Only conv and FC layers have weights (and MACs), so the FC share is the rest.
    """
    y = np.arange(len(summaries))
    labels = [
        f"{s.model_name}\n{s.total_params / 1e6:.2f}M params, {s.total_macs / 1e6:,.0f}M MACs"
        for s in summaries
    ]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.75 * len(summaries) + 1.6), sharey=True)
    panels = (
        ("parameters", np.array([100 * s.conv_param_share for s in summaries])),
        ("forward MACs", np.array([100 * s.conv_mac_share for s in summaries])),
    )
    for ax, (title, conv) in zip(axes, panels, strict=True):
        for shares, left, color, name in (
            (conv, 0, CONV_COLOR, "conv"),
            (100 - conv, conv, FC_COLOR, "FC"),
        ):
            bars = ax.barh(y, shares, left=left, color=color, label=name)
            text = [f"{v:.1f}%" if v >= 7 else "" for v in shares]  # no label in a sliver
            ax.bar_label(bars, labels=text, label_type="center", fontsize=8, color="white")
        ax.set_xlim(0, 100)
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0f}%")
        ax.set_title(f"share of {title}", fontsize=10)
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].invert_yaxis()
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.suptitle("Where each variant keeps its parameters and spends its compute", fontsize=11)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------
# Lesson 02: the finite-difference step
# ----------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------
# Training (python -m minialexnet train, lessons 03-08)
# ----------------------------------------------------------------------------------------
def plot_training_curves(history: Sequence[dict[str, float]]) -> Figure:
    """One run's curves (``plot_runs``), plus validation top-5 error and dotted lines where
    the learning rate was divided."""
    fig = plot_runs({"this run": history}, "Training curves")
    ax_err, ax_loss = fig.axes
    epochs = [h["epoch"] for h in history]
    top5 = [100 * h["val_top5_error"] for h in history]
    ax_err.plot(epochs, top5, ":", color="C0", label="validation top-5")
    drops = [b["epoch"] + 0.5 for b, a in pairwise(history) if a["lr"] < b["lr"]]
    for i, epoch in enumerate(drops):
        for ax in (ax_err, ax_loss):  # one legend entry for all the lines
            ax.axvline(epoch, color="gray", ls=":", lw=1, label=None if i else "lr ÷ 10")
    ax_err.legend(fontsize=7)
    ax_loss.legend(fontsize=7)
    return fig


def _as_displayable(image: np.ndarray) -> np.ndarray:
    """(3, H, W) uint8 or float in [0, 1] -> (H, W, 3) for imshow (floats clipped to [0, 1]);
    (H, W) is returned as it is: imshow maps it through a colormap over its own range."""
    if image.ndim == 2:
        return image
    image = image.transpose(1, 2, 0)
    return image if image.dtype == np.uint8 else np.clip(image, 0, 1)


def image_grid(
    images: Sequence[np.ndarray | None] | np.ndarray,
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 8,
    title: str | None = None,
    cmap: str = "gray",
    size: float = 1.6,
) -> Figure:
    """A grid of images: each (3, H, W) RGB, uint8 or float in [0, 1] (floats outside are
    clipped: normalise first if that is wrong), or (H, W) one-channel, drawn with ``cmap``
    stretched to that tile's own min..max; a None leaves its cell empty."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, (size + 0.25) * nrows + 0.4), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n and images[i] is not None:  # None leaves the cell empty
            ax.imshow(_as_displayable(np.asarray(images[i])), cmap=cmap, interpolation="nearest")
        if i < n and titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def filter_mosaic(weights: np.ndarray, title: str | None = None, ncols: int = 8) -> Figure:
    """First-layer filters (F, 3, KH, KW) as small RGB images, each stretched on its own to
    [0, 1] (so a filter's colours and layout show, not its size) — the paper's Figure 3."""
    low = weights.min(axis=(1, 2, 3), keepdims=True)
    high = weights.max(axis=(1, 2, 3), keepdims=True)
    return image_grid((weights - low) / (high - low + 1e-12), ncols=ncols, title=title, size=0.9)


def plot_runs(
    histories: dict[str, Sequence[dict[str, float]]],
    title: str,
    *,
    test: dict[str, float] | None = None,
) -> Figure:
    """Per-epoch error and loss of several runs side by side: one colour per run, solid for
    validation, dashed for training (measured during the epoch, dropout and augmentation on)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (label, history) in enumerate(histories.items()):
        epochs = [h["epoch"] for h in history]
        name = label if test is None else f"{label} (test error {test[label]:.1%})"
        for ax, metric, scale in ((axes[0], "error", 100), (axes[1], "loss", 1)):
            for split, style, shown in (("val", "-", name), ("train", "--", label)):
                values = [scale * h[f"{split}_{metric}"] for h in history]
                split_name = "validation" if split == "val" else "training"
                ax.plot(epochs, values, style, color=f"C{i}", label=f"{shown}: {split_name}")
    axes[0].set(xlabel="epoch", ylabel="top-1 error (%)", title="error")
    axes[1].set(xlabel="epoch", ylabel="cross-entropy loss (log scale)", title="loss", yscale="log")
    axes[1].yaxis.set_major_formatter(lambda v, _: f"{v:g}")
    axes[1].yaxis.set_minor_formatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else "")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
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
