"""Dropout in the paper's form and the inverted form: masks, scaling, seeds, expectations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import batch_shapes, random_array, seeds

from minialexnet.gradcheck import check_layer
from minialexnet.layers import Dropout

pytestmark = pytest.mark.exercise("dropout")

MODES = ["paper", "inverted"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_eval_mode_scales_by_one_minus_p_or_not_at_all(mode, dtype):
    # The paper multiplies by 1 - p at test time; inverted dropout leaves inference untouched.
    layer = Dropout(0.3, mode=mode).eval()
    x = random_array((4, 6), seed=0, dtype=dtype)
    out = layer.forward(x)
    assert out.dtype == dtype
    scale = dtype(0.7) if mode == "paper" else dtype(1)
    np.testing.assert_array_equal(out, x * scale)
    dout = random_array((4, 6), seed=1, dtype=dtype)
    np.testing.assert_array_equal(layer.backward(dout), dout * scale)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(16, 50), (3, 4, 5, 6)])
def test_training_outputs_are_zero_or_the_scaled_input(mode, shape):
    # paper: each unit is 0 or x; inverted: 0 or x / (1 - p). Never anything else.
    p = 0.4
    x = random_array(shape, seed=2) + 5  # keep x away from 0 so a dropped unit is visible
    out = Dropout(p, mode=mode, seed=3).forward(x)
    kept_value = x if mode == "paper" else x / (1 - p)
    kept = np.isclose(out, kept_value, rtol=1e-15, atol=0)
    dropped = out == 0
    assert np.all(kept | dropped)
    assert kept.any() and dropped.any()


@pytest.mark.parametrize("mode", MODES)
def test_backward_uses_the_forwards_mask(mode):
    layer = Dropout(0.5, mode=mode, seed=4)
    x = random_array((8, 40), seed=5) + 5
    first = layer.forward(x)
    mask = layer.forward(x) / x  # a new draw: 0 or 1 (paper), 0 or 1/(1-p) (inverted)
    assert not np.array_equal(mask, first / x), "two forwards drew the same mask"
    dout = random_array(x.shape, seed=6)
    np.testing.assert_allclose(layer.backward(dout), dout * mask, rtol=1e-14, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_the_same_seed_reproduces_the_masks(mode):
    x = np.ones((10, 30))
    a, b = Dropout(0.5, mode=mode, seed=7), Dropout(0.5, mode=mode, seed=7)
    first = [a.forward(x) for _ in range(3)]
    np.testing.assert_array_equal(np.stack(first), np.stack([b.forward(x) for _ in range(3)]))
    assert not np.array_equal(first[0], first[1]), "the masks should change between calls"
    assert not np.array_equal(first[0], Dropout(0.5, mode=mode, seed=8).forward(x))
    a.reseed(7)  # restart: the same sequence again
    np.testing.assert_array_equal(a.forward(x), first[0])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("p", [0.5, 0.2, 0.8])
def test_mean_activation_in_training_matches_test_time_in_expectation(mode, p):
    # Each unit's training output is x * B * c with B ~ Bernoulli(1 - p) and c = 1 (paper) or
    # 1/(1-p) (inverted); its expectation equals the test-time output x * (1-p) or x. For
    # x = 1 over M = 200,000 units the mean's standard deviation is c * sqrt(p(1-p)/M)
    # (<= 0.0045 for these p); the tolerance is 5 standard deviations, so a seed-to-seed failure
    # has odds ~1e-6 while a wrong scale (off by 1-p or more) misses by >= 0.1.
    M = 200_000
    x = np.ones((100, M // 100))
    layer = Dropout(p, mode=mode, seed=9)
    train_mean = layer.forward(x).mean()
    test_mean = layer.eval().forward(x).mean()
    c = 1.0 if mode == "paper" else 1 / (1 - p)
    sd = c * np.sqrt(p * (1 - p) / M)
    assert abs(train_mean - test_mean) < 5 * sd
    assert test_mean == pytest.approx(1 - p if mode == "paper" else 1.0, rel=1e-12)


@pytest.mark.parametrize("mode", MODES)
@settings(deadline=None, max_examples=10)
@given(shape=batch_shapes(), p=st.sampled_from([0.0, 0.3, 0.5]), seed=seeds)
def test_backward_matches_finite_differences(mode, shape, p, seed):
    layer = Dropout(p, mode=mode, seed=seed)
    report = check_layer(layer, random_array(shape, seed), seed=seed % 1000)
    assert report.passed, str(report)


def test_p_zero_is_the_identity_in_training():
    x = random_array((3, 7), seed=10)
    np.testing.assert_array_equal(Dropout(0.0, mode="inverted").forward(x), x)
    np.testing.assert_array_equal(Dropout(0.0, mode="paper").forward(x), x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": 1.0}, r"p must be in \[0, 1\), got 1.0"),
        ({"p": -0.1}, r"p must be in \[0, 1\), got -0.1"),
        ({"mode": "caffe"}, r"mode must be 'paper' or 'inverted', got 'caffe'"),
    ],
)
def test_bad_constructor_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match="^Dropout: " + message):
        Dropout(**kwargs)
