"""Lesson 10's figures (the real AlexNet: the paper's Figures 3 and 4, and what one conv5 unit
responds to), and the measurements behind them.

Measurements: ``layer_outputs`` (the activations of named layers, batched), ``colour_fraction``
and ``frequency_concentration`` (two numbers per first-layer kernel that tell a learned kernel
from noise without looking), ``receptive_field`` (which input pixels one unit of a layer
sees) and ``occlusion_sensitivity`` (a grey square slid over the image, after Zeiler and
Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014, §4.2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from tqdm import tqdm

from ..data import batch_slices
from ..model import Sequential
from . import _as_displayable, filter_mosaic

SAME_PHOTO, OTHER_PHOTO = "C2", "C3"  # frame colours of a neighbour (green: the same photo)


# ----------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------
def layer_outputs(
    model: Sequential,
    x: np.ndarray,
    names: Sequence[str],
    *,
    batch_size: int = 64,
    desc: str | None = None,
) -> dict[str, np.ndarray]:
    """The outputs of the layers ``names`` for the input batch ``x`` (N, *input_shape), each
    (N, *that layer's per-image shape), in eval mode and without keeping anything for a
    backward. The forward stops after the last layer asked for (conv5's activations cost
    conv1-5, not fc6-8). ``batch_size`` images at a time; ``desc`` shows a progress bar."""
    unknown = [name for name in names if name not in model.layers]
    if unknown or not names:
        raise ValueError(
            f"layer_outputs: names must be layers of {model.name} ({', '.join(model.layers)}), "
            f"got {list(names)}"
        )
    layers = list(model.layers.items())
    last = max(list(model.layers).index(name) for name in names)
    was_training = layers[0][1].training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    try:
        with model.no_grad():
            batches = batch_slices(np.arange(len(x)), batch_size)
            for index in tqdm(list(batches), desc=desc, leave=False, disable=desc is None):
                out = x[index]
                for name, layer in layers[: last + 1]:
                    out = layer.forward(out)
                    if name in parts:
                        parts[name].append(out)
    finally:
        if was_training:
            model.train()
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}


def colour_fraction(kernels: np.ndarray) -> np.ndarray:
    """(F, C, KH, KW) -> (F,): the share of each kernel's energy (sum of squares) in the part
    that differs between its colour channels, ‖W − mean_c W‖² / ‖W‖².

    0 for a kernel equal on R, G and B (it sees brightness only: colour-agnostic), 1 for one
    whose channels sum to zero (it sees colour only: a red-green or blue-yellow kernel).
    Independent noise gives (C − 1)/C = 2/3 on average."""
    kernels = kernels.astype(np.float64)
    grey = kernels.mean(axis=1, keepdims=True)
    total = (kernels**2).sum(axis=(1, 2, 3))
    fraction = ((kernels - grey) ** 2).sum(axis=(1, 2, 3)) / np.maximum(total, 1e-300)
    return np.minimum(fraction, 1.0)  # ‖W − grey‖² = ‖W‖² − C‖grey‖² <= ‖W‖², but for rounding


def frequency_concentration(kernels: np.ndarray, top: int = 4) -> np.ndarray:
    """(F, C, KH, KW) -> (F,): the share of each kernel's spatial power spectrum (summed over
    its channels, each channel's mean removed) in its ``top`` strongest frequencies.

    An oriented edge or grating puts its power into a few frequencies (a pure sinusoid into
    2: one and its mirror image), so learned edge detectors score high; noise spreads its
    power over all KH·KW frequencies and scores low."""
    kernels = kernels.astype(np.float64)
    centred = kernels - kernels.mean(axis=(2, 3), keepdims=True)
    power = (np.abs(np.fft.fft2(centred)) ** 2).sum(axis=1)
    power = power.reshape(len(kernels), -1)
    strongest = -np.sort(-power, axis=1)[:, :top]
    return strongest.sum(axis=1) / np.maximum(power.sum(axis=1), 1e-300)


def receptive_field(model: Sequential, layer: str) -> tuple[int, int, int]:
    """(size, stride, start): unit (i, j) of ``layer``'s output sees the input rows
    ``start + i·stride`` to ``start + i·stride + size − 1`` and the columns likewise from j
    (square kernels only); rows below 0 or past the image are padding. Computed from the
    kernel sizes, strides and paddings of the layers up to ``layer``; the others (ReLU, LRN,
    dropout) act pixel by pixel.
    """
    if layer not in model.layers or len(model.shapes[layer]) != 3:
        spatial = [name for name, shape in model.shapes.items() if len(shape) == 3]
        raise ValueError(
            f"receptive_field: layer must be one of {model.name}'s layers with (C, H, W) "
            f"outputs ({', '.join(spatial)}), got {layer!r}"
        )
    size, stride, start = 1, 1, 0
    for name, part in model.layers.items():
        if hasattr(part, "kernel_size"):
            shape = [np.broadcast_to(getattr(part, a, 0), 2) for a in ("kernel_size", "stride")]
            pad = np.broadcast_to(getattr(part, "padding", 0), 2)
            if any(v[0] != v[1] for v in (*shape, pad)):
                raise ValueError(f"receptive_field: {name} is not square (rows and columns differ)")
            (kernel, _), (step, _) = shape
            # each step back adds (kernel - 1) of the previous layer's spacing to the field
            size, start = size + (kernel - 1) * stride, start - pad[0] * stride
            stride *= step
        if name == layer:
            return int(size), int(stride), int(start)
    raise AssertionError("unreachable: layer is in model.layers")


def occlusion_corners(size: int, patch: int, stride: int) -> np.ndarray:
    """The top (= left) coordinates of a ``patch``-wide square slid ``stride`` apart over a
    ``size``-wide image, the last one flush with the far edge when the stride allows."""
    if not 1 <= patch <= size or stride < 1:
        raise ValueError(
            f"occlusion: need 1 <= patch <= {size} (the image) and stride >= 1, got patch "
            f"{patch}, stride {stride}"
        )
    return np.arange(0, size - patch + 1, stride)


def occlusion_sensitivity(
    model: Sequential,
    image: np.ndarray,
    readouts: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    *,
    patch: int,
    stride: int,
    fill: float = 0.0,
    batch_size: int = 32,
) -> dict[str, np.ndarray]:
    """How much covering each part of ``image`` lowers some values: slide a ``patch``×``patch``
    square of the value ``fill`` over the network input ``image`` (3, H, W), ``stride`` apart.

    ``readouts`` maps a layer name to a function of that layer's outputs for a batch of
    images (n, ...) -> (n,) values. Returns, per layer, an (R, R) map of value(image) −
    value(occluded image), positive where the square lowers the value: entry (r, c) for the
    square's top-left corner at ``occlusion_corners(...)[r]``, ``[c]``.

    Every batch holds the image itself beside ``batch_size`` − 1 occluded copies, and each
    drop is taken from the image's value in the same batch: the fast engine picks its
    convolution algorithm by batch size, and two algorithms differ in the last bits, which
    would otherwise show as sensitivity. The copies are made a batch at a time (all at once
    would be hundreds of MB)."""
    if batch_size < 2:
        raise ValueError(f"occlusion: batch_size must be at least 2, got {batch_size}")
    corners = occlusion_corners(image.shape[-1], patch, stride)
    grid = np.stack(np.meshgrid(corners, corners, indexing="ij"), axis=-1).reshape(-1, 2)
    drops: dict[str, list[np.ndarray]] = {name: [] for name in readouts}
    batches = list(batch_slices(np.arange(len(grid)), batch_size - 1))
    for index in tqdm(batches, desc="occlusion", leave=False):
        batch = np.repeat(image[None], len(index) + 1, axis=0)  # batch[0]: the image as it is
        for occluded, (top, left) in zip(batch[1:], grid[index], strict=True):
            occluded[:, top : top + patch, left : left + patch] = fill
        outputs = layer_outputs(model, batch, list(readouts), batch_size=len(batch))
        for name, readout in readouts.items():
            value = readout(outputs[name])
            drops[name].append(value[0] - value[1:])
    side = len(corners)
    return {name: np.concatenate(parts).reshape(side, side) for name, parts in drops.items()}


# ----------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------
def plot_kernels(kernels: np.ndarray, order: np.ndarray, colour: np.ndarray, title: str) -> Figure:
    """The kernels (F, 3, KH, KW) as the paper's Figure 3, in the given ``order``, each tile
    stretched to its own range (``filter_mosaic``) and captioned with the kernel's number and
    its ``colour_fraction`` (``colour``, one per kernel)."""
    fig = filter_mosaic(kernels[order], title=title, label_rows=False)
    for ax, k in zip(fig.axes, order, strict=False):  # a last row may have empty cells
        ax.set_title(f"#{k}: {colour[k]:.2f}", fontsize=7, pad=2)
    return fig


def plot_kernel_measures(
    measures: Mapping[str, Mapping[str, np.ndarray]], reference: str, title: str
) -> Figure:
    """One panel per measure (measure -> source -> one value per kernel): a histogram of each
    source's values; ``reference`` names the source drawn as an outline (the noise baseline)."""
    fig, axes = plt.subplots(1, len(measures), figsize=(5.5 * len(measures), 3.8), squeeze=False)
    for ax, (measure, sources) in zip(axes[0], measures.items(), strict=True):
        bins = np.linspace(0, 1, 41)
        for i, (source, values) in enumerate(sources.items()):
            median = np.median(values)
            style = {"histtype": "step", "lw": 2} if source == reference else {"alpha": 0.6}
            label = f"{source} ({len(values)} kernels; median {median:.2f})"
            ax.hist(values, bins=bins, color=f"C{i}", label=label, **style)
            ax.axvline(median, color=f"C{i}", ls=":", lw=1)
        ax.set(xlabel=measure, ylabel="kernels", xlim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_top5(
    images: Sequence[np.ndarray],
    names: Sequence[str],
    ranked: Sequence[Sequence[tuple[str, float]]],
    expected: Sequence[Sequence[str]],
    title: str,
    *,
    ncols: int = 4,
) -> Figure:
    """The paper's Figure 4 (left): each photo (3, S, S), and under it a bar chart of its five
    most probable classes (``ranked``: (class, probability) pairs, best first), labelled on the
    bars as in the paper; a class among that photo's ``expected`` ones is red, as the paper
    marks the true label."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        2 * nrows,
        ncols,
        figsize=(2.8 * ncols, 3.5 * nrows + 0.5),
        gridspec_kw={"height_ratios": [2.3, 1.2] * nrows},
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        ax.axis("off")
    for i, (image, name, top) in enumerate(zip(images, names, ranked, strict=True)):
        photo, bars = axes[2 * (i // ncols), i % ncols], axes[2 * (i // ncols) + 1, i % ncols]
        photo.imshow(_as_displayable(image))
        photo.set_title(name, fontsize=9)
        classes, probs = zip(*top, strict=True)
        colours = ["C3" if c in expected[i] else "C0" for c in classes]
        texts = ["C3" if c in expected[i] else "black" for c in classes]
        y = np.arange(len(classes))[::-1]
        bars.axis("on")
        bars.barh(y, probs, color=colours, alpha=0.45, height=0.8)
        for yi, c, p, colour in zip(y, classes, probs, texts, strict=True):
            bars.text(0.01, yi, f"{c} {p:.1%}", va="center", fontsize=7.5, color=colour)
        bars.set(xlim=(0, 1), yticks=[])
        bars.tick_params(axis="x", labelsize=7)
        bars.set_xlabel("probability", fontsize=7)
    fig.suptitle(title, fontsize=11)
    return fig


def plot_neighbours(
    images: np.ndarray,
    labels: Sequence[str],
    photo_of: np.ndarray,
    queries: Sequence[int],
    panels: Mapping[str, tuple[np.ndarray, np.ndarray]],
    title: str,
) -> Figure:
    """The paper's Figure 4 (right), once per distance: each row a query image and its nearest
    neighbours, closest first. ``images`` (N, 3, S, S), ``labels`` and ``photo_of`` (which
    photo each image was made from) describe every image; ``panels`` maps a panel title to
    (neighbour indices (len(queries), k), their distances); a neighbour made from the query's
    own photo is framed green, one from another photo red."""
    k = next(iter(panels.values()))[0].shape[1]
    tile, caption, header = 1.0, 0.36, 0.7  # inches: an image, its two-line caption, the titles
    height = len(queries) * (tile + caption) + header
    fig = plt.figure(figsize=(len(panels) * (k + 1) * (tile + 0.12) + 0.3, height))
    for sub, (panel, (nearest, distances)) in zip(
        fig.subfigures(1, len(panels), wspace=0.02), panels.items(), strict=True
    ):
        axes = sub.subplots(len(queries), k + 1, squeeze=False)
        sub.subplots_adjust(
            left=0.02, right=0.98, bottom=0.01, top=1 - header / height, wspace=0.1, hspace=0.45
        )
        for row, q in enumerate(queries):
            shown = [(q, f"query:\n{labels[q]}", "k")]
            for j, d in zip(nearest[row], distances[row], strict=True):
                same = photo_of[j] == photo_of[q]
                shown.append((j, f"{labels[j]}\nd = {d:.3g}", SAME_PHOTO if same else OTHER_PHOTO))
            for ax, (index, caption, frame) in zip(axes[row], shown, strict=True):
                ax.imshow(_as_displayable(images[index]))
                ax.set_title(caption, fontsize=6.5, pad=2)
                ax.set(xticks=[], yticks=[])
                for spine in ax.spines.values():
                    spine.set(color=frame, linewidth=2.5)
        sub.suptitle(panel, fontsize=10, y=1 - 0.32 / height)
    fig.suptitle(title, fontsize=11, y=1 - 0.05 / height)
    return fig


def plot_occlusion(
    image: np.ndarray,
    unit: tuple[int, int, int],
    channel_map: np.ndarray,
    field: tuple[int, int, int],
    maps: Mapping[str, np.ndarray],
    corners: np.ndarray,
    patch: int,
    title: str,
) -> Figure:
    """What one unit (channel, row, column) of a conv layer responds to, in 2 + len(maps)
    panels: the input ``image`` (3, S, S) with the unit's receptive field (``field``, as
    ``receptive_field`` gives it) boxed; its channel's whole map over the image; then each of
    ``maps`` (title -> (R, R) drop in a value, from ``occlusion_sensitivity``), drawn at the
    centres of the occluding squares, red where covering the pixels lowers the value."""
    channel, row, col = unit
    size, step, start = field
    side = image.shape[-1]
    fig, axes = plt.subplots(1, 2 + len(maps), figsize=(3.6 * (2 + len(maps)), 4.0))
    shown = _as_displayable(image)
    top, left = start + row * step, start + col * step
    inside = np.zeros(shown.shape[:2], bool)
    inside[max(top, 0) : top + size, max(left, 0) : left + size] = True
    axes[0].imshow(np.where(inside[..., None], shown, shown // 3))  # what the unit cannot see: dim
    axes[0].add_patch(
        Rectangle((left - 0.5, top - 0.5), size, size, fill=False, ec="C1", lw=2, clip_on=True)
    )
    axes[0].set_title(f"the unit's {size}×{size} receptive field", fontsize=9)
    axes[1].imshow(shown)
    cells = channel_map.shape[-1]
    heat = axes[1].imshow(channel_map, cmap="magma", alpha=0.6, extent=(0, side, side, 0))
    axes[1].plot((col + 0.5) * side / cells, (row + 0.5) * side / cells, "c+", ms=12, mew=2)
    axes[1].set_title(f"channel {channel}'s {cells}×{cells} map (+: the unit)", fontsize=9)
    fig.colorbar(heat, ax=axes[1], shrink=0.7)
    half = (corners[1] - corners[0]) / 2 if len(corners) > 1 else patch / 2
    extent = (
        corners[0] + patch / 2 - half,
        corners[-1] + patch / 2 + half,
        corners[-1] + patch / 2 + half,
        corners[0] + patch / 2 - half,
    )
    for ax, (name, drop) in zip(axes[2:], maps.items(), strict=True):
        ax.imshow(shown)
        limit = max(float(np.abs(drop).max()), 1e-12)
        im = ax.imshow(drop, cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.7, extent=extent)
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.7)
    for ax in axes:
        ax.set(xlim=(-0.5, side - 0.5), ylim=(side - 0.5, -0.5), xticks=[], yticks=[])
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
