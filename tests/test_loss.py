"""Softmax cross-entropy: the properties that define softmax, values worked out by hand, huge
logits, finite differences, bad labels. No second implementation of the loss."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import random_array, seeds

from minialexnet.gradcheck import check_array_gradient
from minialexnet.layers import softmax, softmax_cross_entropy

pytestmark = pytest.mark.exercise("loss")


@settings(deadline=None, max_examples=20)
@given(st.integers(1, 5), st.integers(2, 8), seeds)
def test_softmax_properties_and_finite_differences(n, k, seed):
    logits = random_array((n, k), seed) * 3
    labels = np.random.default_rng(seed).integers(0, k, n)
    # softmax is fixed by two facts: its rows sum to 1, and log p - z is the same for every
    # entry of a row (p_a / p_b = exp(z_a - z_b)).
    p = softmax(logits)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-14)
    gap = np.log(p) - logits
    np.testing.assert_allclose(gap, gap[:, :1] + np.zeros_like(gap), rtol=1e-12, atol=1e-12)
    # The loss is the mean of -log p[n, y_n], and adding a constant to a row changes nothing.
    loss, dlogits = softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(-np.log(p[np.arange(n), labels]).mean(), rel=1e-12)
    shifted = logits + random_array((n, 1), seed + 1) * 10
    loss2, dlogits2 = softmax_cross_entropy(shifted, labels)
    assert loss2 == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(dlogits2, dlogits, rtol=1e-10, atol=1e-14)
    # dL/dlogits: each row sums to 0 (shifting a row is a direction of zero change), and it
    # matches central differences.
    np.testing.assert_allclose(dlogits.sum(axis=1), 0, atol=1e-15)
    check = check_array_gradient(
        "logits", lambda: softmax_cross_entropy(logits, labels)[0], logits, dlogits
    )
    assert check.max_rel_error < 1e-6, check


def test_by_hand():
    # logits [0, ln 2, ln 5]: exp = [1, 2, 5], sum 8, p = [1/8, 2/8, 5/8].
    # Labels [0, 2] on two such rows: loss = (-ln(1/8) - ln(5/8)) / 2 = (ln 8 + ln(8/5)) / 2.
    # dL/dlogits = (p - onehot) / N = [[1/8 - 1, 2/8, 5/8], [1/8, 2/8, 5/8 - 1]] / 2.
    logits = np.tile([0.0, np.log(2), np.log(5)], (2, 1))
    loss, dlogits = softmax_cross_entropy(logits, np.array([0, 2]))
    assert loss == pytest.approx((np.log(8) + np.log(8 / 5)) / 2, rel=1e-14)
    expected = np.array([[-7 / 8, 2 / 8, 5 / 8], [1 / 8, 2 / 8, -3 / 8]]) / 2
    np.testing.assert_allclose(dlogits, expected, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(softmax(logits[:1]), [[1 / 8, 2 / 8, 5 / 8]], rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_for_huge_logits(dtype):
    # Row 0: logits [1e4, 0, -1e4], label 0: p = [1, e^-1e4, 0] -> loss 0, gradient 0.
    # Row 1: the same, label 1: log p_1 = 0 - 1e4 - log(1 + e^-1e4 + e^-2e4) = -1e4 -> loss 1e4.
    # Mean over N = 2: 5e3. dL/dlogits = (p - onehot)/2: row 0 zeros, row 1 [1/2, -1/2, 0].
    # A naive exp(1e4) overflows to inf and gives nan. (exp(-2e4) underflowing to 0 is right.)
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, dlogits = softmax_cross_entropy(logits, np.array([0, 1]))
    assert loss == pytest.approx(5e3, rel=1e-7)
    assert dlogits.dtype == dtype
    np.testing.assert_allclose(dlogits, [[0, 0, 0], [0.5, -0.5, 0]], atol=1e-7)
    probs = softmax(np.array([[1e4, 1e4 - np.log(3.0)]]))  # [3/4, 1/4] after the shift
    np.testing.assert_allclose(probs, [[0.75, 0.25]], rtol=1e-12)


def test_uniform_logits_give_log_k():
    loss, dlogits = softmax_cross_entropy(np.zeros((4, 10)), np.arange(4))
    assert loss == pytest.approx(np.log(10), rel=1e-15)
    np.testing.assert_allclose(dlogits.sum(axis=1), 0, atol=1e-16)  # softmax rows sum to 1


@pytest.mark.parametrize(
    ("logits", "labels", "error", "message"),
    [
        (
            np.zeros((2, 3)),
            np.array([0.0, 1.0]),
            TypeError,
            r"labels must be integers, got dtype float64",
        ),
        (
            np.zeros((2, 3)),
            np.array([0, 1, 2]),
            ValueError,
            r"labels must have shape \(2,\) to match logits \(2, 3\), got \(3,\)",
        ),
        (
            np.zeros((2, 3)),
            np.array([0, 3]),
            ValueError,
            r"labels must be in \[0, 3\), got values 0..3",
        ),
        (
            np.zeros((2, 3)),
            np.array([-1, 0]),
            ValueError,
            r"labels must be in \[0, 3\), got values -1..0",
        ),
        (
            np.zeros((2, 3, 1)),
            np.array([0, 1]),
            ValueError,
            r"logits must have 2 dimensions \(NK\), got shape \(2, 3, 1\)",
        ),
        (
            np.zeros((2, 3), dtype=np.int64),
            np.array([0, 1]),
            TypeError,
            r"logits must be float32 or float64, got dtype int64",
        ),
        (np.full((2, 3), np.nan), np.array([0, 1]), ValueError, r"logits contains NaN"),
    ],
)
def test_bad_input_is_named(logits, labels, error, message):
    with pytest.raises(error, match="^softmax_cross_entropy: " + message):
        softmax_cross_entropy(logits, labels)
