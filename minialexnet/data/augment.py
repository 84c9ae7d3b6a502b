"""The paper's data augmentation [P §4.1], as functions of arrays and a NumPy Generator.

Every random choice is drawn from the ``rng`` passed in, so one seed reproduces a whole run.

1. Random crops and horizontal flips. Training sees random ``crop``×``crop`` patches of the stored
   S×S images (224 of 256 in the paper) and their mirror images; testing sees the centre crop,
   or the paper's ten views: the four corner crops and the centre crop, and their mirrors, with
   the ten softmax outputs averaged.

2. PCA colour augmentation ("fancy PCA"). Find the principal components of the RGB values of
   every training pixel: the 3×3 covariance Σ = P diag(λ) Pᵀ. To every pixel of an image add

       [p1 p2 p3] · [α1·λ1, α2·λ2, α3·λ3]ᵀ,     α_i ~ N(0, σ²), σ = 0.1,

   with one α drawn per image per pass over the data. The shift is the same for every pixel of
   the image: it changes the colour and brightness of the illumination, not the object — and
   object identity is invariant to that, which is the point [P §4.1].

   Scale, stated openly: λ is a *variance*, so the size of α·λ depends on the pixel units. We
   work in [0, 1] units, where photographs have λ1 ≈ 0.1–0.3 (scikit-learn's two sample photos:
   0.33 and 0.15) and much smaller λ2, λ3, so σ = 0.1 shifts pixels by a few percent of the
   range along p1 (mostly brightness) and by a fraction of a percent in hue — a subtle change.
   (The paper does not say which units it used; the original code also divided by a noisy
   factor the paper does not mention.)
"""

from __future__ import annotations

import numpy as np


def crop_offsets(n: int, size: int, crop: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) random (top, left) offsets of a crop×crop patch inside a size×size image."""
    if not 0 < crop <= size:
        raise ValueError(f"crop_offsets: crop must be in [1, {size}], got {crop}")
    return rng.integers(0, size - crop + 1, size=(n, 2))


def crop_at(images: np.ndarray, offsets: np.ndarray, crop: int) -> np.ndarray:
    """(N, C, S, S) and (N, 2) offsets -> (N, C, crop, crop): image i cropped at offsets[i]."""
    patches = [
        img[:, top : top + crop, left : left + crop]
        for img, (top, left) in zip(images, offsets, strict=True)
    ]
    return np.stack(patches)


def center_crop(images: np.ndarray, crop: int) -> np.ndarray:
    """(N, C, S, S) -> (N, C, crop, crop), the central patch (a view, no copy)."""
    size = images.shape[-1]
    start = (size - crop) // 2
    return images[..., start : start + crop, start : start + crop]


def flip_some(images: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Mirror (left-right) the images where the boolean ``flip`` (N,) is True; in place."""
    images[flip] = images[flip][..., ::-1]
    return images


def ten_views(images: np.ndarray, crop: int) -> np.ndarray:
    """(N, C, S, S) -> (10, N, C, crop, crop): top-left, top-right, bottom-left, bottom-right,
    centre [P §4.1], then the same five mirrored."""
    size = images.shape[-1]
    far = size - crop
    corners = [(0, 0), (0, far), (far, 0), (far, far)]
    views = [images[..., t : t + crop, left : left + crop] for t, left in corners]
    views.append(center_crop(images, crop))
    views += [v[..., ::-1] for v in views]
    return np.stack(views)


def rgb_pca(images: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of the RGB values of every pixel of ``images`` (N, 3, H, W).

    uint8 images are read as [0, 1] values (x / 255). Returns (eigenvalues (3,), largest first;
    eigenvectors (3, 3) as columns, ``eigvecs[:, i]`` belonging to ``eigvals[i]``). Sums of x and
    x xᵀ are accumulated in float64 over chunks of images, so the covariance of millions of
    pixels needs no copy of the dataset. Each eigenvector's sign (arbitrary) is chosen so that
    its components sum to >= 0: p1 of a photo then reads "brighter".
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"rgb_pca: images must be (N, 3, H, W), got {images.shape}")
    scale = 1 / 255 if images.dtype == np.uint8 else 1.0
    total = np.zeros(3)
    outer = np.zeros((3, 3))
    count = 0
    for start in range(0, len(images), chunk):
        pixels = images[start : start + chunk].transpose(1, 0, 2, 3).reshape(3, -1) * scale
        total += pixels.sum(axis=1)
        outer += pixels @ pixels.T
        count += pixels.shape[1]
    mean = total / count
    cov = outer / count - np.outer(mean, mean)
    eigvals, eigvecs = np.linalg.eigh(cov)  # ascending
    order = np.argsort(eigvals)[::-1]
    eigvecs = eigvecs[:, order]
    eigvecs *= np.where(eigvecs.sum(axis=0) < 0, -1, 1)  # sign is arbitrary: R+G+B >= 0
    return np.clip(eigvals[order], 0, None), eigvecs


def pca_color_shifts(
    n: int,
    eigvals: np.ndarray,
    eigvecs: np.ndarray,
    rng: np.random.Generator,
    sigma: float = 0.1,
) -> np.ndarray:
    """(n, 3): the RGB shift Σ_i α_i·λ_i·p_i for each of n images, α_i ~ N(0, sigma²)."""
    alpha = rng.normal(0.0, sigma, size=(n, 3))
    return (alpha * eigvals) @ eigvecs.T
