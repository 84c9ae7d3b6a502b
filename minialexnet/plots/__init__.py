"""Where figures are saved, and the figures several lessons and the CLI share.

Each lesson's own figures are in a module of this package named for its topic
(``why``: lesson 00, ``accounting``: 01, ``gradcheck``: 02, ``activations``: 03, ``dropout``: 04,
``lrn``: 05, ``augment``: 06, ``kernels``: 07, ``real``: 10, ``parallel``: 11).

Figures are written as PNG with matplotlib's Agg backend (no screen needed) to the folder named
by the environment variable ``MINIALEXNET_FIGURES``, or ``figures/`` in the current working
directory when it is unset: the repository's tracked ``figures/`` when a lesson is run from the
repository root (``python lessons/01_parameter_count.py``); ``save_figure`` prints each path it
writes there. Lessons also read ``MINIALEXNET_QUICK=1``, which the test suite sets to run each
lesson on tiny sizes (``quick_mode``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use("Agg"): the backend must be chosen first
from matplotlib.figure import Figure

from ..checkpoint import atomic_write


def quick_mode() -> bool:
    """True when ``MINIALEXNET_QUICK=1``: lessons shrink their work to a smoke test."""
    return os.environ.get("MINIALEXNET_QUICK") == "1"


def figures_dir() -> Path:
    """The folder PNGs go to (created if missing)."""
    folder = Path(os.environ.get("MINIALEXNET_FIGURES", "figures"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_figure(
    fig: Figure,
    name: str,
    folder: str | Path | None = None,
    *,
    announce: bool | None = None,
    dpi: int = 120,
) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` (default ``figures_dir()``), close it, return
    the path. Written atomically, like every output: a run killed while drawing its curves
    leaves the previous PNG, never half of one.

    ``announce`` prints ``saved <path>``; by default only figures that go to ``figures_dir()``
    are announced — the lessons' figures, so a reader knows where to look — while a caller that
    names its own folder (the trainer rewriting ``curves.png`` every epoch) stays quiet. ``dpi``
    below 120 keeps a figure of many photographs under ~2 MB."""
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
    path = (figures_dir() if folder is None else Path(folder)) / f"{name}.png"
    atomic_write(path, lambda file: fig.savefig(file, format="png", dpi=dpi, bbox_inches="tight"))
    plt.close(fig)
    if announce is None:
        announce = folder is None
    if announce:
        print(f"saved {path}")
    return path


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
    row_labels: Sequence[str] | None = None,
) -> Figure:
    """A grid of images: each (3, H, W) RGB, uint8 or float in [0, 1] (floats outside are
    clipped: normalise first if that is wrong), or (H, W) one-channel, drawn with ``cmap``
    stretched to that tile's own min..max; a None leaves its cell empty. ``row_labels``, one
    per row, are written left of the rows (what each row is)."""
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
    if row_labels is not None:
        if len(row_labels) != nrows:
            raise ValueError(f"row_labels: expected {nrows} (one per row), got {len(row_labels)}")
        for ax, label in zip(axes[:, 0], row_labels, strict=True):
            # outside the (hidden) axes, so no image is covered; bbox_inches="tight" keeps it
            ax.annotate(
                label,
                xy=(-0.08, 0.5),
                xycoords="axes fraction",
                ha="right",
                va="center",
                fontsize=9,
                fontweight="bold",
            )
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def filter_mosaic(
    weights: np.ndarray, title: str | None = None, ncols: int = 8, *, label_rows: bool = True
) -> Figure:
    """First-layer filters (F, 3, KH, KW) as small RGB images, each stretched on its own to
    [0, 1] (so a filter's colours and layout show, not its size) — the paper's Figure 3.
    Each row is labelled with the filter numbers it holds (``label_rows``)."""
    low = weights.min(axis=(1, 2, 3), keepdims=True)
    high = weights.max(axis=(1, 2, 3), keepdims=True)
    count = len(weights)
    ncols = min(ncols, count)
    starts = range(0, count, ncols)
    labels = [f"filters {s}-{min(s + ncols, count) - 1}" for s in starts] if label_rows else None
    return image_grid(
        (weights - low) / (high - low + 1e-12),
        ncols=ncols,
        title=title,
        size=0.9,
        row_labels=labels,
    )


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
