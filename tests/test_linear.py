"""Linear and Flatten: values against the formula, gradient checks, the feature check."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import random_array, seeds

from minialexnet.gradcheck import check_layer
from minialexnet.layers import Flatten, Linear

pytestmark = pytest.mark.exercise("linear")


def random_linear(d_in: int, d_out: int, seed: int, dtype: type = np.float64) -> Linear:
    layer = Linear(d_in, d_out, rng=np.random.default_rng(seed), dtype=dtype)
    layer.params["b"][...] = random_array((d_out,), seed + 1)
    return layer


@settings(deadline=None, max_examples=20)
@given(st.integers(1, 4), st.integers(1, 9), st.integers(1, 7), seeds)
def test_linear_backward_matches_finite_differences(n, d_in, d_out, seed):
    layer = random_linear(d_in, d_out, seed)
    report = check_layer(layer, random_array((n, d_in), seed + 2), seed=seed % 1000)
    assert report.passed, str(report)


def test_linear_by_hand():
    # W = [[1, 2], [3, 4], [5, 6]] (3 outputs x 2 inputs), b = [0.5, 0, -1], x = [[1, -1]]:
    # out = x @ W.T + b = [1-2, 3-4, 5-6] + b = [-0.5, -1, -2].
    layer = Linear(2, 3, dtype=np.float64)
    layer.params["W"][...] = [[1, 2], [3, 4], [5, 6]]
    layer.params["b"][...] = [0.5, 0, -1]
    x = np.array([[1.0, -1.0]])
    np.testing.assert_array_equal(layer.forward(x), [[-0.5, -1.0, -2.0]])
    # dL/dout = [[1, 0, 2]]: dx = g @ W = [1 + 10, 2 + 12]; dW = g.T @ x; db = g.
    dx = layer.backward(np.array([[1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(dx, [[11.0, 14.0]])
    np.testing.assert_array_equal(layer.grads["W"], [[1, -1], [0, 0], [2, -2]])
    np.testing.assert_array_equal(layer.grads["b"], [1, 0, 2])


def test_linear_float32_matches_float64():
    # D_in = 300 products per output: float32 relative error well under 1e-5.
    layer64 = random_linear(300, 20, seed=0)
    layer32 = random_linear(300, 20, seed=0, dtype=np.float32)
    x = random_array((5, 300), seed=1)
    out32 = layer32.forward(x.astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, layer64.forward(x), rtol=1e-5, atol=1e-4)


def test_linear_counts():
    layer = Linear(96, 40)
    assert layer.num_params() == 96 * 40 + 40
    assert layer.macs((96,)) == 96 * 40
    assert layer.output_shape((96,)) == (40,)


def test_linear_refuses_the_wrong_number_of_features():
    with pytest.raises(ValueError, match=r"^Linear: x has 7 features.*in_features=6"):
        Linear(6, 2).forward(np.zeros((3, 7), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^Linear: in_features must be >= 1, got 0"):
        Linear(0, 2)


@settings(deadline=None, max_examples=10)
@given(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 5)), seeds)
def test_flatten_backward_matches_finite_differences(shape, seed):
    report = check_layer(Flatten(), random_array(shape, seed), seed=seed % 1000)
    assert report.passed, str(report)


def test_flatten_is_c_order_and_backward_restores_the_shape():
    # fc6's input index is c*H*W + h*W + w: element (c, h, w) = (1, 2, 3) of a (2, 3, 4) map
    # lands at 1*12 + 2*4 + 3 = 23.
    x = random_array((2, 2, 3, 4), seed=0)
    layer = Flatten()
    out = layer.forward(x)
    assert out.shape == (2, 24)
    assert out[1, 23] == x[1, 1, 2, 3]
    dout = random_array((2, 24), seed=1)
    dx = layer.backward(dout)
    assert dx.shape == x.shape and dx[1, 1, 2, 3] == dout[1, 23]
    assert layer.output_shape((256, 6, 6)) == (9216,)
