"""Lesson 10's measurements (``minialexnet.plots.real``): intermediate activations, the two
conv1 kernel statistics, receptive fields and occlusion maps, each checked against a
property computed another way (a full forward, a hand-made kernel, a perturbed input)."""

from __future__ import annotations

import numpy as np
import pytest

from minialexnet import Sequential
from minialexnet.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU
from minialexnet.plots.real import (
    colour_fraction,
    frequency_concentration,
    layer_outputs,
    occlusion_corners,
    occlusion_sensitivity,
    receptive_field,
)


def small_net(seed: int = 0) -> Sequential:
    """conv 5/2 pad 1 -> ReLU -> pool 3/2 -> conv 3/1 pad 1 -> ReLU -> fc, float64, 21×21 in."""
    rng = np.random.default_rng(seed)
    layers = [
        ("conv1", Conv2d(3, 6, 5, 2, 1, rng=rng, dtype=np.float64)),
        ("relu1", ReLU()),
        ("pool1", MaxPool2d(3, 2)),
        ("conv2", Conv2d(6, 4, 3, 1, 1, rng=rng, dtype=np.float64)),
        ("relu2", ReLU()),
        ("flatten", Flatten()),
        ("fc", Linear(4 * 4 * 4, 5, rng=rng, dtype=np.float64)),
    ]
    return Sequential(layers, (3, 21, 21), name="small")


def test_layer_outputs_match_the_forward_pass_and_keep_the_mode() -> None:
    model = small_net().train()
    x = np.random.default_rng(1).standard_normal((5, 3, 21, 21))
    out = layer_outputs(model, x, ["relu1", "fc"], batch_size=2)  # batches of 2, 2, 1
    assert out["relu1"].shape == (5, 6, 10, 10)
    model.eval()
    np.testing.assert_allclose(out["fc"], model.forward(x), rtol=1e-12, atol=1e-12)
    by_hand = model.layers["relu1"].forward(model.layers["conv1"].forward(x))
    np.testing.assert_allclose(out["relu1"], by_hand, rtol=1e-12, atol=1e-12)
    model.train()
    layer_outputs(model, x, ["conv1"])
    assert all(layer.training for layer in model.layers.values())  # put back as it was


@pytest.mark.parametrize("names", [["conv9"], []])
def test_layer_outputs_refuse_unknown_layers(names: list[str]) -> None:
    with pytest.raises(ValueError, match="layer_outputs: names must be layers of small"):
        layer_outputs(small_net(), np.zeros((1, 3, 21, 21)), names)


def test_colour_fraction_of_known_kernels() -> None:
    rng = np.random.default_rng(2)
    pattern = rng.standard_normal((7, 7))
    grey = np.stack([pattern] * 3)  # R = G = B: sees brightness only
    opponent = np.stack([pattern, -pattern, 0 * pattern])  # channels sum to zero: colour only
    np.testing.assert_allclose(colour_fraction(np.stack([grey, opponent])), [0, 1], atol=1e-12)
    # independent noise: the channel-varying part holds (C - 1) / C of the energy on average
    noise = rng.standard_normal((2000, 3, 11, 11))
    assert abs(colour_fraction(noise).mean() - 2 / 3) < 0.01


def test_frequency_concentration_tells_a_grating_from_noise() -> None:
    rows, cols = np.mgrid[0:11, 0:11]
    grating = np.cos(2 * np.pi * (2 * rows + 3 * cols) / 11)  # one DFT frequency and its mirror
    kernel = np.stack([grating, 0.5 * grating, -grating])[None]
    np.testing.assert_allclose(frequency_concentration(kernel, top=2), [1.0], atol=1e-12)
    noise = np.random.default_rng(3).standard_normal((500, 3, 11, 11))
    assert frequency_concentration(noise, top=4).mean() < 0.2
    assert frequency_concentration(np.ones((1, 3, 5, 5)))[0] == 0  # no pattern, no power


def test_receptive_field_is_what_the_unit_sees() -> None:
    """Perturbing every input pixel outside the computed field leaves the unit exactly as it
    was; perturbing only the field's first or last row, or first or last column, changes it."""
    model = small_net(seed=4).eval()
    size, stride, start = receptive_field(model, "relu2")
    row, col = 2, 2  # a unit whose field lies inside the 21×21 image
    top, left = start + row * stride, start + col * stride
    assert top >= 0 and left >= 0 and top + size <= 21 and left + size <= 21  # inside the image
    rng = np.random.default_rng(5)
    x = rng.uniform(0.5, 1.5, (1, 3, 21, 21))

    def unit(image: np.ndarray) -> float:
        return float(layer_outputs(model, image, ["conv2"])["conv2"][0, 0, row, col])

    inside = np.zeros((21, 21), bool)
    inside[top : top + size, left : left + size] = True
    outside = np.where(inside, x, rng.uniform(-3, 3, x.shape))
    assert unit(outside) == unit(x)
    for edge in (
        (slice(top, top + 1), slice(left, left + size)),
        (slice(top + size - 1, top + size), slice(left, left + size)),
        (slice(top, top + size), slice(left, left + 1)),
        (slice(top, top + size), slice(left + size - 1, left + size)),
    ):
        changed = x.copy()
        changed[(0, slice(None), *edge)] += 5.0
        assert unit(changed) != unit(x), edge


def test_receptive_field_refuses_a_layer_without_maps() -> None:
    with pytest.raises(ValueError, match="receptive_field: layer must be one of small's"):
        receptive_field(small_net(), "fc")


def test_occlusion_corners() -> None:
    np.testing.assert_array_equal(occlusion_corners(224, 40, 8), np.arange(0, 185, 8))
    assert occlusion_corners(10, 10, 3).tolist() == [0]
    for patch, stride in ((0, 1), (11, 1), (3, 0)):
        with pytest.raises(ValueError, match="occlusion: need 1 <= patch"):
            occlusion_corners(10, patch, stride)


def test_occlusion_drops_equal_occluding_by_hand() -> None:
    model = small_net(seed=6).eval()
    image = np.random.default_rng(7).uniform(0, 1, (3, 21, 21))
    patch, stride = 6, 5
    corners = occlusion_corners(21, patch, stride)
    drops = occlusion_sensitivity(
        model,
        image,
        {"conv2": lambda a: a[:, 1, 0, 0], "fc": lambda z: z[:, 3]},
        patch=patch,
        stride=stride,
        fill=0.25,
        batch_size=4,  # 3 occluded copies and the image per batch: several batches
    )
    assert drops["conv2"].shape == drops["fc"].shape == (len(corners), len(corners))
    before = model.forward(image[None])[0, 3]
    for r, c in ((0, 0), (1, 2), (len(corners) - 1, len(corners) - 1)):
        occluded = image.copy()
        occluded[:, corners[r] : corners[r] + patch, corners[c] : corners[c] + patch] = 0.25
        after = model.forward(occluded[None])[0, 3]
        np.testing.assert_allclose(drops["fc"][r, c], before - after, rtol=1e-10, atol=1e-12)
    # conv2's unit (0, 0) sees rows and columns start .. start + size - 1 only
    size, _, start = receptive_field(model, "conv2")
    missed = (corners >= start + size)[:, None] | (corners >= start + size)[None, :]
    assert missed.any() and (drops["conv2"][missed] == 0).all()
    assert (drops["conv2"][~missed] != 0).any()
