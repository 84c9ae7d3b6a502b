"""Lesson 07's figures: which input pixels reach one output, and training stacks of small
kernels against one large kernel, over seeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def plot_receptive_fields(maps: Mapping[str, np.ndarray]) -> Figure:
    """One panel per block: mean |dL/dx| of each input pixel for one output pixel, divided by
    the block's own maximum, on a shared 0-1 colour scale with a colour bar."""
    fig, axes = plt.subplots(1, len(maps), figsize=(3 * len(maps) + 1, 3.4), squeeze=False)
    for ax, (kind, m) in zip(axes[0], maps.items(), strict=True):
        image = ax.imshow(m / m.max(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{kind}: {np.count_nonzero(m)} pixels reach it", fontsize=9)
        ax.set(xticks=[], yticks=[])
    fig.colorbar(image, ax=axes[0].tolist(), label="mean |dL/dx| / its maximum", shrink=0.85)
    fig.suptitle(
        f"Which input pixels reach the centre output pixel ({m.shape[0]}×{m.shape[1]} input)"
    )
    return fig


def plot_kernel_training(
    val_errors: Mapping[str, np.ndarray], test_errors: Mapping[str, Sequence[float]], seeds
) -> Figure:
    """Left: validation error per epoch, the mean over seeds as a line and the min-max as a
    band, for each block (``val_errors[kind]`` is (seeds, epochs), fractions). Right: each
    seed's test error as a point and the mean as a bar, per block."""
    fig, (ax_val, ax_test) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (kind, runs) in enumerate(val_errors.items()):
        runs = 100 * np.asarray(runs)
        epochs = np.arange(1, runs.shape[1] + 1)
        ax_val.fill_between(epochs, runs.min(axis=0), runs.max(axis=0), color=f"C{i}", alpha=0.2)
        ax_val.plot(epochs, runs.mean(axis=0), "o-", color=f"C{i}", label=f"{kind}: mean, min-max")
        test = 100 * np.asarray(test_errors[kind])
        ax_test.bar(i, test.mean(), color=f"C{i}", alpha=0.5)
        ax_test.plot(np.full(len(test), i), test, "kx")
    ax_test.plot([], [], "kx", label=f"one seed ({', '.join(map(str, seeds))})")
    ax_val.set(xlabel="epoch", ylabel="validation top-1 error (%)", title="validation error")
    ax_val.xaxis.get_major_locator().set_params(integer=True)
    ax_test.set_xticks(range(len(val_errors)), list(val_errors))
    ax_test.set(ylabel="test top-1 error (%)", title="test error after training (bar: mean)")
    for ax in (ax_val, ax_test):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Small-kernel stacks vs one large kernel on digits, {len(seeds)} seeds each")
    fig.tight_layout()
    return fig
