"""Every figure the lessons and the CLI draw, and where they are saved.

Figures are written as PNG with matplotlib's Agg backend (no screen needed) to the folder named
by the environment variable ``MINIALEXNET_FIGURES``, or ``figures/`` beside the running script's
working directory when it is unset. Lessons also read ``MINIALEXNET_QUICK=1``, which the test
suite sets to run each lesson on tiny sizes (``quick_mode``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use("Agg"): the backend must be chosen first
from matplotlib.figure import Figure

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
    the path."""
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
    path = (figures_dir() if folder is None else Path(folder)) / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
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
    """Loss and top-1 error per epoch, training (running mean over the epoch's batches, with
    dropout and augmentation on) against validation; dotted lines where the learning rate fell."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", ms=3, label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "o-", ms=3, label="validation")
    ax_err.plot(epochs, [100 * h["train_error"] for h in history], "o-", ms=3, label="train")
    ax_err.plot(epochs, [100 * h["val_error"] for h in history], "o-", ms=3, label="validation")
    if "val_top5_error" in history[0]:
        top5 = [100 * h["val_top5_error"] for h in history]
        ax_err.plot(epochs, top5, "--", color="C1", alpha=0.6, label="validation top-5")
    for before, after in zip(history, history[1:], strict=False):
        if after["lr"] < before["lr"]:
            for ax in (ax_loss, ax_err):
                ax.axvline(before["epoch"] + 0.5, color="gray", ls=":", lw=1)
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss (log scale)", title="loss")
    ax_err.set(xlabel="epoch", ylabel="top-1 error (%)", title="error")
    for ax in (ax_loss, ax_err):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
