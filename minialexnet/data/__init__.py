"""Datasets, the paper's augmentation, and batching.

``datasets``  digits (bundled with scikit-learn), CIFAR-10 binary, image folders -> ``Dataset``
``images``    image files -> 8-bit RGB: the decode rules (16-bit, float, EXIF, alpha, bombs)
``drawn``     a drawn digit -> an image like the digits dataset's (what ``predict`` reads)
``augment``   random crops, flips, ten test views, PCA colour augmentation (pure array functions)
``pipeline``  ``Preprocessor``: uint8 images -> float32 batches (mean, augmentation); batch order
"""

from .augment import pca_color_shifts, rgb_pca, ten_views
from .datasets import (
    DATASETS,
    Dataset,
    load_cifar10,
    load_dataset,
    load_digits,
    load_image_folder,
    read_image,
    split_off,
    stored_size,
)
from .drawn import read_drawn_digit
from .images import decode_image
from .pipeline import Preprocessor, batch_slices, dataset_mean, num_batches

__all__ = [
    "DATASETS",
    "Dataset",
    "Preprocessor",
    "batch_slices",
    "dataset_mean",
    "decode_image",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "num_batches",
    "pca_color_shifts",
    "read_drawn_digit",
    "read_image",
    "rgb_pca",
    "split_off",
    "stored_size",
    "ten_views",
]
