"""ReLU, tanh and sigmoid: values against their formulas, derivatives, gradient checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import batch_shapes, float_dtypes, random_array, seeds

from minialexnet.gradcheck import check_layer
from minialexnet.layers import ReLU, Sigmoid, Tanh

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
@given(shape=batch_shapes(), seed=seeds, dtype=float_dtypes)
def test_values_match_the_formulas(shape, seed, dtype):
    x = random_array(shape, seed, dtype) * 4
    x64 = x.astype(np.float64)
    expected = {
        ReLU: np.where(x64 > 0, x64, 0.0),
        Tanh: (np.exp(x64) - np.exp(-x64)) / (np.exp(x64) + np.exp(-x64)),
        Sigmoid: 1 / (1 + np.exp(-x64)),
    }
    # float32: a few ulps of values of magnitude <= 1 (ReLU is exact in either dtype).
    tol = 1e-6 if dtype == np.float32 else 1e-14
    for cls, want in expected.items():
        out = cls().forward(x)
        assert out.dtype == dtype
        np.testing.assert_allclose(out, want, rtol=tol, atol=tol, err_msg=cls.__name__)


def test_local_derivatives_by_hand():
    # ReLU' = [x > 0] (0 at x = 0 by choice); tanh'(0) = 1, tanh'(x) = 1 - tanh(x)^2;
    # sigmoid'(0) = 1/4, sigmoid'(x) = s(1 - s).
    x = np.array([[-2.0, 0.0, 3.0]])
    ones = np.ones_like(x)
    relu = ReLU()
    relu.forward(x)
    np.testing.assert_array_equal(relu.backward(ones), [[0.0, 0.0, 1.0]])
    tanh = Tanh()
    tanh.forward(x)
    np.testing.assert_allclose(tanh.backward(ones), 1 - np.tanh(x) ** 2, rtol=1e-14)
    assert tanh.backward(ones)[0, 1] == 1.0
    sigmoid = Sigmoid()
    sigmoid.forward(x)
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(sigmoid.backward(ones), s * (1 - s), rtol=1e-14)
    assert sigmoid.backward(ones)[0, 1] == 0.25


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_tanh_saturate_without_overflow(dtype):
    x = np.array([[-1e4, -100.0, 100.0, 1e4]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise"):  # an overflow becomes an error
        np.testing.assert_array_equal(Sigmoid().forward(x), np.array([[0, 0, 1, 1]], dtype))
        np.testing.assert_array_equal(Tanh().forward(x), np.array([[-1, -1, 1, 1]], dtype))
