"""Lesson 01's figures: where the parameters are and where the compute is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from ..accounting import Summary
    from ..model import Sequential


CONV_COLOR, FC_COLOR = "tab:blue", "tab:orange"
# A stacked segment narrower than this (% of the axis) cannot hold its label inside
MIN_INSIDE_LABEL = 7.0


def macs_per_weight(summary: Summary, model: Sequential) -> dict[str, float]:
    """Forward MACs per weight (biases excluded) of each weighted layer: the one definition
    lesson 01's table and figure share. A conv weight is used once per output position, so
    this is exactly OH x OW; an FC weight once per image, so exactly 1. (Dividing by the
    parameters instead, biases included, would give a little less, and not a whole number.)"""
    return {
        r.name: r.macs / model.layers[r.name].params["W"].size for r in summary.rows if r.params > 0
    }


def plot_params_vs_macs(summary: Summary, per_weight: Mapping[str, float]) -> Figure:
    """Three panels over the weighted layers (conv and FC) of one model's ``Summary``:
    share of the parameters, share of the forward MACs, and MACs per weight (log scale;
    ``per_weight`` from ``macs_per_weight``).

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
            "MACs per weight, biases excluded (log scale)\n= OH x OW for conv, 1 for FC",
            [per_weight[r.name] for r in rows],
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
            inside = [f"{v:.1f}%" if v >= MIN_INSIDE_LABEL else "" for v in shares]
            ax.bar_label(bars, labels=inside, label_type="center", fontsize=8, color="white")
            for yi, share, start in zip(
                y, shares, np.broadcast_to(left, shares.shape), strict=True
            ):
                if share >= MIN_INSIDE_LABEL:
                    continue
                # a sliver: its label goes beside it, over the neighbouring segment, on a
                # white box in the sliver's colour (the conv sliver is on the left edge, the
                # FC sliver on the right)
                at_left = start == 0
                ax.annotate(
                    f"{name} {share:.1f}%",
                    xy=(start + share if at_left else start, yi),
                    xytext=(4 if at_left else -4, 0),
                    textcoords="offset points",
                    ha="left" if at_left else "right",
                    va="center",
                    fontsize=8,
                    color=color,
                    fontweight="bold",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": color, "lw": 0.8},
                )
        ax.set_xlim(0, 100)
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0f}%")
        ax.set_title(f"share of {title}", fontsize=10)
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].invert_yaxis()
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.suptitle("Where each variant keeps its parameters and spends its compute", fontsize=11)
    fig.tight_layout()
    return fig
