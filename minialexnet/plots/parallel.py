"""Lesson 11's figures: the bytes the paper's two-GPU split exchanges, data against model
parallelism as the batch grows, and the α–β projection of throughput on N ranks.

Every number drawn is computed by the caller (``minialexnet.distributed.projection``, from the
network's own shapes) or measured; these functions only lay them out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

MB = 1e6
SCHEME_COLORS = {"data": "C0", "model": "C1", "hybrid": "C2"}


def plot_exchange_bytes(
    points: Mapping[str, tuple[float, float]],
    totals: Mapping[str, float],
    batch: int,
) -> Figure:
    """Left: MB one rank sends per step at each exchange point of the paper's split,
    ``points[label] = (forward bytes, backward bytes)``, stacked. Right: MB one rank sends per
    step in all under each scheme on the same 2 ranks, ``totals[scheme]``."""
    fig, (ax_points, ax_totals) = plt.subplots(
        1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]}
    )
    labels = list(points)
    forward = np.array([f for f, _ in points.values()]) / MB
    backward = np.array([b for _, b in points.values()]) / MB
    ax_points.bar(labels, forward, color="C1", label="forward: activations")
    ax_points.bar(
        labels,
        backward,
        bottom=forward,
        color="C1",
        alpha=0.45,
        hatch="//",
        label="backward: their gradients",
    )
    for i, total in enumerate(forward + backward):
        ax_points.annotate(
            f"{total:.2f} MB",
            (i, total),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax_points.set(
        ylabel="MB sent per rank per step",
        title=f"the paper's split on 2 ranks, batch {batch}: what each rank sends",
    )
    ax_points.tick_params(axis="x", labelsize=8)
    ax_points.legend(fontsize=8)
    names = list(totals)
    values = np.array(list(totals.values())) / MB
    bars = ax_totals.bar(names, values, color=[SCHEME_COLORS.get(n, "gray") for n in names])
    ax_totals.bar_label(bars, labels=[f"{v:,.1f} MB" for v in values], fontsize=8)
    ax_totals.set(ylabel="MB sent per rank per step", title="all of it, per scheme (2 ranks)")
    ax_totals.set_ylim(0, values.max() * 1.15)
    for ax in (ax_points, ax_totals):
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def plot_bytes_vs_batch(
    batches: Sequence[int],
    totals: Mapping[str, np.ndarray],
    groups: Mapping[str, Mapping[str, np.ndarray]],
    ranks: int,
    mark_batch: int,
) -> Figure:
    """Bytes one rank sends per step against the batch (log-log). Left: ``totals[scheme]``.
    Right: per part of the net (``groups[part] = {"gradients": ..., "activations": ...}``,
    the activations proportional to the batch), with the batch from which sending activations
    costs more than all-reducing gradients marked. A dotted line at ``mark_batch``."""
    fig, (ax_totals, ax_groups) = plt.subplots(1, 2, figsize=(11, 4.2))
    batches = np.asarray(batches)
    for scheme, sent in totals.items():
        ax_totals.plot(batches, sent / MB, "-", color=SCHEME_COLORS.get(scheme), label=scheme)
    ax_totals.set_title(f"each scheme on {ranks} ranks", fontsize=10)
    for i, (part, series) in enumerate(groups.items()):
        grads, acts = series["gradients"] / MB, series["activations"] / MB
        ax_groups.plot(batches, grads, "--", color=f"C{i + 3}", label=f"{part}: gradients")
        ax_groups.plot(batches, acts, "-", color=f"C{i + 3}", label=f"{part}: activations")
        cross = grads[0] / (acts[0] / batches[0])  # where the line through the origin meets it
        ax_groups.plot(cross, grads[0], "ko", ms=5)
        ax_groups.annotate(
            f"activations cost more\nfrom batch {cross:,.0f}",
            (cross, grads[0]),
            xytext=(8, -24),
            textcoords="offset points",
            fontsize=8,
        )
    ax_groups.set_title("per part of the net: move gradients or activations?", fontsize=10)
    for ax in (ax_totals, ax_groups):
        ax.axvline(mark_batch, color="gray", ls=":", lw=1, label=f"batch {mark_batch}")
        ax.set(xscale="log", yscale="log", xlabel="global batch (images per step)")
        ax.set_ylabel("MB sent per rank per step")
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:g}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_projection(
    ranks: Sequence[int],
    panels: Mapping[tuple[str, str], Mapping[str, Mapping[bool, np.ndarray]]],
    batch: int,
) -> Figure:
    """Images/s against N ranks, one panel per (compute, network) pair (rows, columns):
    ``panels[(compute, network)][scheme][overlapped]`` for each N in ``ranks``. Solid lines
    all-reduce the gradients in buckets, each started once the backward of its layers is done;
    dashed ones (drawn only where that differs) all-reduce them in one piece after the
    backward; dotted grey is N × the one-rank throughput (perfect scaling)."""
    rows = list(dict.fromkeys(c for c, _ in panels))
    cols = list(dict.fromkeys(n for _, n in panels))
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(5.2 * len(cols), 3.8 * len(rows)), squeeze=False
    )
    ranks = np.asarray(ranks)
    for (compute, network), schemes in panels.items():
        ax = axes[rows.index(compute), cols.index(network)]
        one = next(iter(schemes.values()))[False][0]
        ax.plot(ranks, one * ranks, ":", color="gray", label="perfect scaling")
        for scheme, lines in schemes.items():
            color = SCHEME_COLORS.get(scheme)
            differs = not np.allclose(lines[True], lines[False])
            label = f"{scheme}, buckets overlapped" if differs else scheme
            ax.plot(ranks, lines[True], "-", color=color, label=label)
            if differs:
                ax.plot(ranks, lines[False], "--", color=color, label=f"{scheme}, after backward")
        ax.set(xscale="log", yscale="log", xlabel="ranks N", ylabel="images/s")
        ax.set_xticks(ranks, [str(n) for n in ranks])
        ax.minorticks_off()
        ax.set_title(f"{network}; compute at {compute}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"α–β projection, global batch {batch}: training throughput on N ranks")
    fig.tight_layout()
    return fig
