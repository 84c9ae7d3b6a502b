"""The paper's augmentation and the preprocessing pipeline: crops, flips, ten views, PCA colour
shifts (their statistics), the training mean, and batch order."""

from __future__ import annotations

import numpy as np
import pytest

from minialexnet.data import Dataset, Preprocessor, batch_slices, dataset_mean, num_batches
from minialexnet.data.augment import (
    center_crop,
    crop_at,
    crop_offsets,
    flip_some,
    pca_color_shifts,
    rgb_pca,
    ten_views,
)


def numbered_images(n: int = 2, size: int = 6) -> np.ndarray:
    """Every pixel a distinct number, so any crop or flip is identified exactly."""
    return np.arange(n * 3 * size * size, dtype=np.float64).reshape(n, 3, size, size)


def test_crop_offsets_cover_every_position_uniformly_and_repeat_with_the_seed():
    offsets = crop_offsets(30_000, size=8, crop=6, rng=np.random.default_rng(0))
    counts = np.zeros((3, 3))
    np.add.at(counts, (offsets[:, 0], offsets[:, 1]), 1)
    assert counts.min() > 0.9 * 30_000 / 9 and counts.max() < 1.1 * 30_000 / 9
    again = crop_offsets(30_000, size=8, crop=6, rng=np.random.default_rng(0))
    assert np.array_equal(offsets, again)
    with pytest.raises(ValueError, match=r"crop_offsets: crop must be in \[1, 8\], got 9"):
        crop_offsets(1, 8, 9, np.random.default_rng(0))


def test_crop_at_takes_each_image_at_its_own_offset():
    images = numbered_images()
    out = crop_at(images, np.array([[0, 2], [1, 0]]), 4)
    assert np.array_equal(out[0], images[0, :, 0:4, 2:6])
    assert np.array_equal(out[1], images[1, :, 1:5, 0:4])


def test_flip_some_mirrors_only_the_chosen_images():
    images = numbered_images(3)
    out = flip_some(images.copy(), np.array([True, False, True]))
    assert np.array_equal(out[0], images[0, :, :, ::-1])
    assert np.array_equal(out[1], images[1])
    assert np.array_equal(out[2, :, :, 0], images[2, :, :, -1])


def test_ten_views_are_the_four_corners_the_centre_and_their_mirrors():
    images = numbered_images(size=7)
    views = ten_views(images, 4)
    assert views.shape == (10, 2, 3, 4, 4)
    expected = [
        images[..., 0:4, 0:4],
        images[..., 0:4, 3:7],
        images[..., 3:7, 0:4],
        images[..., 3:7, 3:7],
        images[..., 1:5, 1:5],
    ]
    for i, view in enumerate(expected):
        assert np.array_equal(views[i], view), i
        assert np.array_equal(views[5 + i], view[..., ::-1]), i
    assert np.array_equal(center_crop(images, 4), expected[4])


def correlated_images(cov: np.ndarray, n: int = 64, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(3)
    pixels = rng.multivariate_normal([0.4, 0.5, 0.3], cov, size=n * size * size)
    return pixels.reshape(n, size, size, 3).transpose(0, 3, 1, 2)


def test_rgb_pca_matches_the_covariance_of_all_pixels():
    cov = np.array([[0.04, 0.03, 0.02], [0.03, 0.04, 0.025], [0.02, 0.025, 0.03]])
    images = correlated_images(cov)
    eigvals, eigvecs = rgb_pca(images, chunk=5)  # chunked sums == one np.cov over all pixels
    reference = np.cov(images.transpose(1, 0, 2, 3).reshape(3, -1), bias=True)
    ref_vals = np.linalg.eigvalsh(reference)[::-1]
    np.testing.assert_allclose(eigvals, ref_vals, rtol=1e-9)
    assert np.all(np.diff(eigvals) <= 0)
    np.testing.assert_allclose(eigvecs.T @ eigvecs, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(reference @ eigvecs, eigvecs * eigvals, atol=1e-12)


def test_rgb_pca_reads_uint8_as_values_in_zero_one():
    images = (np.random.default_rng(0).random((4, 3, 8, 8)) * 255).round().astype(np.uint8)
    vals_uint8, _ = rgb_pca(images)
    vals_float, _ = rgb_pca(images / 255.0)
    np.testing.assert_allclose(vals_uint8, vals_float, rtol=1e-9)


def test_pca_shift_statistics_follow_the_paper():
    # shift = P diag(λ) α with α ~ N(0, σ² I): mean 0, covariance σ² P diag(λ²) Pᵀ, and the
    # component along p_i has standard deviation σ·λ_i.
    eigvecs, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))
    eigvals = np.array([0.09, 0.01, 0.002])
    shifts = pca_color_shifts(200_000, eigvals, eigvecs, np.random.default_rng(2), sigma=0.1)
    assert shifts.shape == (200_000, 3)
    np.testing.assert_allclose(shifts.mean(axis=0), 0, atol=5e-5)
    expected_cov = 0.01 * eigvecs @ np.diag(eigvals**2) @ eigvecs.T
    np.testing.assert_allclose(np.cov(shifts.T), expected_cov, rtol=0.02, atol=1e-8)
    np.testing.assert_allclose((shifts @ eigvecs).std(axis=0), 0.1 * eigvals, rtol=0.01)


def tiny_dataset(n: int = 8, size: int = 10) -> Dataset:
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    return Dataset(images, np.arange(n) % 2, ("a", "b"))


def test_the_pixel_mean_is_removed_from_every_pixel():
    train = tiny_dataset()
    pre = Preprocessor.fit(train, crop=10, mean="pixel")
    x = pre.test_batch(train.images)
    assert x.dtype == np.float32 and x.shape == (8, 3, 10, 10)
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-6)
    channel = dataset_mean(train.images, "channel")
    assert channel.shape == (3, 1, 1)
    np.testing.assert_allclose(channel.ravel(), train.images.mean(axis=(0, 2, 3)) / 255, rtol=1e-6)


def test_the_colour_shift_is_one_constant_per_image_and_channel():
    train = tiny_dataset()
    plain = Preprocessor.fit(train, crop=8, flip=True)
    coloured = Preprocessor.fit(train, crop=8, flip=True, pca=True, pca_sigma=0.5)
    # the same seed draws the same crops and flips first; the colour draws come last
    a = plain.train_batch(train.images, np.random.default_rng(9))
    b = coloured.train_batch(train.images, np.random.default_rng(9))
    difference = (b - a).reshape(8, 3, -1)
    np.testing.assert_allclose(
        difference, np.broadcast_to(difference[:, :, :1], difference.shape), atol=1e-6
    )
    assert np.abs(difference).max() > 1e-4


def test_training_batches_are_reproducible_and_crops_of_the_mean_subtracted_image():
    train = tiny_dataset()
    pre = Preprocessor.fit(train, crop=7, flip=True)
    a = pre.train_batch(train.images, np.random.default_rng(4))
    b = pre.train_batch(train.images, np.random.default_rng(4))
    assert np.array_equal(a, b)
    full = train.images.astype(np.float32) / 255 - pre.mean
    for x in a:  # every output is some 7×7 crop of some image, maybe mirrored
        found = any(
            np.allclose(x, view[..., ::s], atol=1e-6)
            for img in full
            for t in range(4)
            for left in range(4)
            for view in [img[:, t : t + 7, left : left + 7]]
            for s in (1, -1)
        )
        assert found


def test_preprocessor_rejects_wrong_images_and_oversized_crops():
    train = tiny_dataset(size=10)
    with pytest.raises(ValueError, match=r"crop 12 is larger than the stored images \(10×10\)"):
        Preprocessor.fit(train, crop=12)
    pre = Preprocessor.fit(train, crop=8)
    with pytest.raises(ValueError, match=r"images must be uint8 \(N, 3, 10, 10\)"):
        pre.test_batch(np.zeros((1, 3, 9, 9), dtype=np.uint8))


def test_preprocessor_survives_a_save_and_load():
    train = tiny_dataset()
    pre = Preprocessor.fit(train, crop=8, flip=True, pca=True, mean="channel")
    again = Preprocessor.from_saved(pre.arrays(), pre.settings())
    x = pre.train_batch(train.images, np.random.default_rng(1))
    assert np.array_equal(x, again.train_batch(train.images, np.random.default_rng(1)))


def test_batch_slices_visit_every_index_once_and_resume_midway():
    order = np.random.default_rng(0).permutation(10)
    batches = list(batch_slices(order, 4))
    assert [len(b) for b in batches] == [4, 4, 2] == [len(b) for b in batches[:3]]
    assert np.array_equal(np.concatenate(batches), order)
    assert num_batches(10, 4) == 3
    resumed = list(batch_slices(order, 4, start=1))
    assert all(np.array_equal(a, b) for a, b in zip(resumed, batches[1:], strict=True))


def test_test_views_drop_the_mirrors_when_training_did_not_flip():
    train = tiny_dataset()
    flipped = Preprocessor.fit(train, crop=8, flip=True).test_views(train.images)
    plain = Preprocessor.fit(train, crop=8, flip=False).test_views(train.images)
    assert flipped.shape == (10, 8, 3, 8, 8) and plain.shape == (5, 8, 3, 8, 8)
    assert np.array_equal(flipped[:5], plain)
