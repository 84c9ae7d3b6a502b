"""From stored uint8 images to the float32 batches a network eats, and the order it eats them in.

    x = crop(image / 255 + colour shift − mean) / std   (N, 3, crop, crop) float32, flipped or not

``mean`` is computed on the training split only [P §2: "subtracting the mean activity over the
training set from each pixel"]: per pixel (3, S, S), as the paper, or per channel (3, 1, 1).
It is subtracted before cropping, so each crop loses the mean of the very pixels it holds.
``std`` (3, 1, 1) is optional: a network trained elsewhere may expect its inputs divided by
per-channel standard deviations too (torchvision's ImageNet models: ``pretrained``); the
networks trained here use none.
The preprocessor's arrays (mean, PCA basis, std) go into checkpoints, so ``evaluate`` and
``predict`` prepare images exactly as training did.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .augment import (
    center_crop,
    crop_at,
    crop_offsets,
    flip_some,
    pca_color_shifts,
    rgb_pca,
    ten_views,
)
from .datasets import Dataset

MEAN_MODES = ("pixel", "channel")


def dataset_mean(images: np.ndarray, mode: str = "pixel") -> np.ndarray:
    """Mean of uint8 images (N, 3, S, S) in [0, 1] units: (3, S, S) per pixel, (3, 1, 1) per
    channel."""
    if mode not in MEAN_MODES:
        raise ValueError(f"dataset_mean: mode must be one of {MEAN_MODES}, got {mode!r}")
    mean = images.mean(axis=0, dtype=np.float64) / 255
    if mode == "channel":
        mean = mean.mean(axis=(1, 2), keepdims=True)
    return mean.astype(np.float32)


def std_problem(std: object) -> str | None:
    """What is wrong with a preprocessor's ``std`` (None: nothing, or no std), in words."""
    if std is None or (
        isinstance(std, np.ndarray)
        and std.shape == (3, 1, 1)
        and std.dtype.kind == "f"
        and np.all(np.isfinite(std) & (std > 0))
    ):
        return None
    shown = f"{std.dtype} {std.shape}" if isinstance(std, np.ndarray) else repr(std)
    return f"positive finite float (3, 1, 1), got {shown}"


@dataclass
class Preprocessor:
    """Turns uint8 image batches into float32 network input, with or without augmentation.

    size     S, the stored image size it expects (images are S×S)
    mean     (3, S, S) or (3, 1, 1) float32, in [0, 1] pixel units
    crop     the network's input size (<= S)
    random_crop, flip    training-time crops at random offsets / random mirroring
    pca_eigvals (3,), pca_eigvecs (3, 3), pca_sigma    colour augmentation when eigvals is set
    std      None, or (3, 1, 1) float32 > 0: each channel divided by it after the mean (and
             the colour shift, which is in the same [0, 1] units) is applied
    """

    size: int
    mean: np.ndarray
    crop: int
    random_crop: bool = True
    flip: bool = False
    pca_eigvals: np.ndarray | None = None
    pca_eigvecs: np.ndarray | None = None
    pca_sigma: float = 0.1
    std: np.ndarray | None = None

    def __post_init__(self) -> None:
        problem = std_problem(self.std)
        if problem:
            raise ValueError(f"Preprocessor: std must be None or {problem}")

    @classmethod
    def fit(
        cls,
        train: Dataset,
        crop: int,
        *,
        mean: str = "pixel",
        random_crop: bool = True,
        flip: bool = False,
        pca: bool = False,
        pca_sigma: float = 0.1,
    ) -> Preprocessor:
        """Compute the mean (and the RGB PCA if ``pca``) on the training split ``train``."""
        if crop > train.image_size:
            raise ValueError(
                f"Preprocessor: crop {crop} is larger than the stored images "
                f"({train.image_size}×{train.image_size})"
            )
        eigvals, eigvecs = rgb_pca(train.images) if pca else (None, None)
        return cls(
            train.image_size,
            dataset_mean(train.images, mean),
            crop,
            random_crop,
            flip,
            eigvals,
            eigvecs,
            pca_sigma,
        )

    def _to_float(self, images: np.ndarray) -> np.ndarray:
        if (
            images.dtype != np.uint8
            or images.ndim != 4
            or images.shape[1:] != (3, *[self.size] * 2)
        ):
            raise ValueError(
                f"Preprocessor: images must be uint8 (N, 3, {self.size}, {self.size}), got "
                f"{images.dtype} {images.shape}"
            )
        x = images.astype(np.float32) * np.float32(1 / 255) - self.mean
        return x if self.std is None else x / self.std

    def train_batch(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, 3, S, S) uint8 -> (N, 3, crop, crop) float32 with this pass's random draws.

        Draws, in this order: crop offsets (N, 2), flips (N,), colour α (N, 3) — each only when
        enabled, so a run is reproduced by the same seed and the same switches.
        """
        x = self._to_float(images)
        n = len(images)
        if self.random_crop:
            x = crop_at(x, crop_offsets(n, self.size, self.crop, rng), self.crop)
        else:
            x = np.ascontiguousarray(center_crop(x, self.crop))
        if self.flip:
            flip_some(x, rng.random(n) < 0.5)
        if self.pca_eigvals is not None:
            shifts = pca_color_shifts(n, self.pca_eigvals, self.pca_eigvecs, rng, self.pca_sigma)
            shifts = shifts.astype(np.float32)[:, :, None, None]
            x += shifts if self.std is None else shifts / self.std
        return x

    def test_batch(self, images: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) uint8 -> (N, 3, crop, crop) float32: the centre crop, no randomness."""
        return np.ascontiguousarray(center_crop(self._to_float(images), self.crop))

    def test_views(self, images: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) uint8 -> (V, N, 3, crop, crop) float32: the paper's ten views (V = 10),
        or, for a net trained without flips, the five unmirrored ones (V = 5): a mirrored digit
        is not a view the net was trained to read."""
        views = ten_views(self._to_float(images), self.crop)
        return np.ascontiguousarray(views if self.flip else views[:5])

    # -- checkpoints ----------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays a checkpoint stores (the switches go into its JSON config)."""
        out = {"mean": self.mean}
        if self.pca_eigvals is not None:
            out |= {"pca_eigvals": self.pca_eigvals, "pca_eigvecs": self.pca_eigvecs}
        if self.std is not None:
            out["std"] = self.std
        return out

    def settings(self) -> dict[str, object]:
        return {
            "size": self.size,
            "crop": self.crop,
            "random_crop": self.random_crop,
            "flip": self.flip,
            "pca_sigma": self.pca_sigma,
        }

    @classmethod
    def from_saved(cls, arrays: dict[str, np.ndarray], settings: dict) -> Preprocessor:
        """The preprocessor ``arrays()`` and ``settings()`` describe (a checkpoint without
        ``std``, as every one before it was kept, divides by nothing)."""
        std = arrays.get("std")
        return cls(
            int(settings["size"]),
            arrays["mean"].astype(np.float32),
            int(settings["crop"]),
            bool(settings["random_crop"]),
            bool(settings["flip"]),
            arrays.get("pca_eigvals"),
            arrays.get("pca_eigvecs"),
            float(settings["pca_sigma"]),
            None if std is None else std.astype(np.float32),
        )


def batch_slices(order: np.ndarray, batch_size: int, start: int = 0) -> Iterator[np.ndarray]:
    """Consecutive index batches of ``order`` (the last one may be smaller), from batch
    number ``start`` on — a resumed epoch continues with the batch it stopped before."""
    if batch_size < 1:
        raise ValueError(f"batch_slices: batch_size must be >= 1, got {batch_size}")
    for begin in range(start * batch_size, len(order), batch_size):
        yield order[begin : begin + batch_size]


def num_batches(n: int, batch_size: int) -> int:
    return -(-n // batch_size)
