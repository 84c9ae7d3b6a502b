"""ReLU, tanh and sigmoid: values worked out by hand, the identities that pin each function down,
derivatives by hand, gradient checks. No second implementation of a layer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import batch_shapes, random_array, seeds

from minialexnet.gradcheck import check_layer
from minialexnet.layers import ReLU, Sigmoid, Tanh

pytestmark = pytest.mark.exercise("activations")

ACTIVATIONS = [ReLU, Tanh, Sigmoid]


@pytest.mark.parametrize("cls", ACTIVATIONS)
@settings(deadline=None, max_examples=15)
@given(shape=batch_shapes(), seed=seeds)
def test_backward_matches_finite_differences(cls, shape, seed):
    x = random_array(shape, seed)
    # ReLU has a kink at 0: keep every input at least 1e-3 away (eps is 1e-5).
    x = np.where(np.abs(x) < 1e-3, 1e-3, x)
    report = check_layer(cls(), x, seed=seed % 1000)
    assert report.passed, str(report)


@settings(deadline=None, max_examples=15)
@given(shape=batch_shapes(), seed=seeds)
def test_identities_that_fix_each_function(shape, seed):
    x = random_array(shape, seed) * 4
    # ReLU: r(x) >= 0, r(x) * r(-x) = 0 and r(x) - r(-x) = x hold only for r = max(x, 0).
    relu, relu_neg = ReLU().forward(x), ReLU().forward(-x)
    assert np.all(relu >= 0) and np.all(relu * relu_neg == 0)
    np.testing.assert_array_equal(relu - relu_neg, x)
    # tanh and sigmoid: their inverses, artanh(y) = log((1 + y) / (1 - y)) / 2 and
    # logit(s) = log(s / (1 - s)), give x back. Within |x| <= 3, 1 - y >= 5e-3, so the
    # inverse amplifies a rounding of y by at most ~1e2: 1e-12 is ample.
    inner = np.clip(x, -3, 3)
    y = Tanh().forward(inner)
    np.testing.assert_allclose(np.log((1 + y) / (1 - y)) / 2, inner, rtol=1e-12, atol=1e-12)
    s = Sigmoid().forward(inner)
    np.testing.assert_allclose(np.log(s / (1 - s)), inner, rtol=1e-12, atol=1e-12)
    y, s = Tanh().forward(x), Sigmoid().forward(x)
    # tanh is odd; sigmoid(x) + sigmoid(-x) = 1.
    np.testing.assert_allclose(Tanh().forward(-x), -y, rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(s + Sigmoid().forward(-x), 1.0, rtol=1e-15)


@settings(deadline=None, max_examples=15)
@given(shape=batch_shapes(), seed=seeds)
def test_float32_matches_float64(shape, seed):
    # float32: a few ulps (eps 1.2e-7) of values of magnitude <= 1; ReLU is exact.
    x = random_array(shape, seed, np.float32) * 4
    for cls in ACTIVATIONS:
        out = cls().forward(x)
        assert out.dtype == np.float32
        want = cls().forward(x.astype(np.float64))
        tol = 0 if cls is ReLU else 1e-6
        np.testing.assert_allclose(out, want, rtol=tol, atol=tol, err_msg=cls.__name__)


def test_values_by_hand():
    # tanh(ln a) = (a - 1/a) / (a + 1/a): ln 2 -> (2 - 1/2) / (2 + 1/2) = 3/5,
    # ln 3 -> (3 - 1/3) / (3 + 1/3) = 4/5. sigmoid(ln a) = 1 / (1 + 1/a) = a / (a + 1):
    # ln 3 -> 3/4, -ln 3 -> 1/4, 0 -> 1/2.
    x = np.array([[np.log(2), np.log(3), 0.0, -np.log(3)]])
    np.testing.assert_array_equal(ReLU().forward(x), [[np.log(2), np.log(3), 0.0, 0.0]])
    np.testing.assert_allclose(Tanh().forward(x), [[3 / 5, 4 / 5, 0, -4 / 5]], rtol=1e-15)
    np.testing.assert_allclose(Sigmoid().forward(x), [[2 / 3, 3 / 4, 1 / 2, 1 / 4]], rtol=1e-15)


def test_local_derivatives_by_hand():
    # ReLU' = [x > 0] (0 at x = 0 by choice). tanh' = 1 - tanh^2: at ln 2, 1 - (3/5)^2 =
    # 16/25; at 0, 1. sigmoid' = s (1 - s): at ln 3, (3/4)(1/4) = 3/16; at 0, 1/4.
    # Times dout = [2, 1, 1]: the chain rule multiplies.
    x = np.array([[-2.0, 0.0, 3.0]])
    relu = ReLU()
    relu.forward(x)
    np.testing.assert_array_equal(relu.backward(np.array([[2.0, 1, 1]])), [[0.0, 0.0, 1.0]])
    tanh = Tanh()
    tanh.forward(np.array([[np.log(2), 0.0]]))
    np.testing.assert_allclose(tanh.backward(np.array([[2.0, 1]])), [[32 / 25, 1]], rtol=1e-14)
    sigmoid = Sigmoid()
    sigmoid.forward(np.array([[np.log(3), 0.0]]))
    np.testing.assert_allclose(
        sigmoid.backward(np.array([[2.0, 1]])), [[6 / 16, 1 / 4]], rtol=1e-14
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_tanh_saturate_without_overflow(dtype):
    x = np.array([[-1e4, -100.0, 100.0, 1e4]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise"):  # an overflow becomes an error
        out = Sigmoid().forward(x)
        # sigmoid(-100) = e^-100 / (1 + e^-100) = 3.7e-44: a float32 subnormal, or 0 when
        # rounded away; below the smallest subnormal (1.4e-45 in float32), e^-1e4 is 0.
        assert out.dtype == dtype and 0 <= out[0, 1] <= 4e-44
        np.testing.assert_array_equal(out[:, [0, 2, 3]], np.array([[0, 1, 1]], dtype))
        np.testing.assert_array_equal(Tanh().forward(x), np.array([[-1, -1, 1, 1]], dtype))
