"""MaxPool2d: a loop reference with the tie rule, hand-made ties and overlaps, gradient checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import pool_configs, random_array, seeds

from minialexnet.gradcheck import check_layer
from minialexnet.layers import MaxPool2d


def maxpool_reference(x: np.ndarray, K: int, S: int, dout: np.ndarray):
    """(out, dx) by looping over every window. The winner of a window is ``np.argmax`` of the
    window flattened in row-major order: the first maximum, which is the stated tie rule."""
    N, C, H, W = x.shape
    OH, OW = (H - K) // S + 1, (W - K) // S + 1
    out = np.empty((N, C, OH, OW), dtype=x.dtype)
    dx = np.zeros_like(x)
    for n, c, i, j in np.ndindex(N, C, OH, OW):
        window = x[n, c, i * S : i * S + K, j * S : j * S + K]
        u, v = divmod(int(np.argmax(window)), K)
        out[n, c, i, j] = window[u, v]
        dx[n, c, i * S + u, j * S + v] += dout[n, c, i, j]
    return out, dx


@settings(deadline=None, max_examples=40)
@given(pool_configs(), st.booleans(), seeds)
def test_matches_the_loop_reference_including_ties(cfg, many_ties, seed):
    shape, K, S = cfg
    rng = np.random.default_rng(seed)
    # Values from {0, 1, 2} make most windows tie; continuous values almost never do.
    x = rng.integers(0, 3, shape).astype(np.float64) if many_ties else rng.standard_normal(shape)
    pool = MaxPool2d(K, S)
    out = pool.forward(x)
    dout = rng.standard_normal(out.shape)
    ref_out, ref_dx = maxpool_reference(x, K, S, dout)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_allclose(pool.backward(dout), ref_dx, rtol=1e-12, atol=0)


@settings(deadline=None, max_examples=20)
@given(pool_configs(), seeds)
def test_backward_matches_finite_differences(cfg, seed):
    shape, K, S = cfg
    report = check_layer(MaxPool2d(K, S), random_array(shape, seed), seed=seed % 1000)
    assert report.passed, str(report)


def test_output_sizes():
    # AlexNet's 3/2: 55 -> 27 -> 13 -> 6 (conv1, conv2, conv5 maps); 2/2 halves, rounding down.
    pool = MaxPool2d(3, 2)
    assert [pool.output_shape((96, s, s))[1] for s in (55, 27, 13)] == [27, 13, 6]
    assert MaxPool2d(2, 2).output_shape((4, 9, 12)) == (4, 4, 6)


@pytest.mark.parametrize(("K", "S"), [(3, 2), (2, 2)])
def test_float32_matches_the_reference(K, S):
    pool = MaxPool2d(K, S)
    x = random_array((2, 3, 7, 10), seed=0, dtype=np.float32)
    out = pool.forward(x)
    dout = random_array(out.shape, seed=1, dtype=np.float32)
    ref_out, ref_dx = maxpool_reference(x, K, S, dout)
    np.testing.assert_array_equal(out, ref_out)
    # A pixel that wins up to 4 overlapping windows sums up to 4 float32 values, in an order
    # that may differ from the reference's: a few float32 ulps (eps 1.2e-7) apart at most.
    np.testing.assert_allclose(pool.backward(dout), ref_dx, rtol=1e-6, atol=1e-6)


def test_tie_rule_first_maximum_in_row_major_order_takes_the_gradient():
    # 2x2 windows at stride 2 over a 2x4 input:
    #   window 0 = [[1, 5], [5, 2]]: 5 at (0, 1) and (1, 0) -> (0, 1) comes first
    #   window 1 = [[5, 0], [5, 5]]: 5 at (0, 0), (1, 0), (1, 1) -> (0, 0), i.e. x[0, 2]
    x = np.array([[[[1.0, 5, 5, 0], [5, 2, 5, 5]]]])
    pool = MaxPool2d(2, 2)
    np.testing.assert_array_equal(pool.forward(x), [[[[5.0, 5.0]]]])
    dx = pool.backward(np.array([[[[10.0, 20.0]]]]))
    np.testing.assert_array_equal(dx, [[[[0.0, 10, 20, 0], [0, 0, 0, 0]]]])


def test_tie_rule_with_overlapping_windows_on_a_constant_image():
    # A constant 5x5 image, 3/2 pooling: every pixel ties, so each of the four windows sends
    # its gradient to its own top-left pixel: (0, 0), (0, 2), (2, 0), (2, 2).
    pool = MaxPool2d(3, 2)
    pool.forward(np.full((1, 1, 5, 5), 7.0))
    dx = pool.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = np.zeros((5, 5))
    expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_pixel_winning_overlapping_windows_collects_the_sum():
    # 3/2 pooling on 5x5: the centre pixel (2, 2) lies in all four windows. Make it the largest
    # value and it wins all four, so its gradient is 1 + 2 + 3 + 4 = 10 and every other pixel
    # gets nothing.
    x = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5) / 100
    x[0, 0, 2, 2] = 9.0
    pool = MaxPool2d(3, 2)
    np.testing.assert_array_equal(pool.forward(x), np.full((1, 1, 2, 2), 9.0))
    dx = pool.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = np.zeros((1, 1, 5, 5))
    expected[0, 0, 2, 2] = 10.0
    np.testing.assert_array_equal(dx, expected)


def test_matches_torch_max_pool(torch):
    x = random_array((2, 3, 9, 12), seed=3)
    dout = random_array((2, 3, 4, 5), seed=4)
    pool = MaxPool2d(3, 2)
    out = pool.forward(x)
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.nn.functional.max_pool2d(tx, 3, 2)
    tout.backward(torch.tensor(dout))
    np.testing.assert_array_equal(out, tout.detach().numpy())
    # Overlapping windows sum gradients in a different order: equal to rounding.
    np.testing.assert_allclose(pool.backward(dout), tx.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_kernel_larger_than_the_input_is_refused():
    with pytest.raises(
        ValueError, match=r"^MaxPool2d: kernel height 3 is larger than the padded input height 2"
    ):
        MaxPool2d(3, 2).forward(np.zeros((1, 1, 2, 5)))
    with pytest.raises(
        ValueError, match=r"^MaxPool2d: kernel width 3 is larger than the padded input width 1"
    ):
        MaxPool2d(3, 2).forward(np.zeros((1, 1, 5, 1)))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"kernel_size": 0}, ValueError, "kernel_size must be >= 1, got 0"),
        ({"stride": 0}, ValueError, "stride must be >= 1, got 0"),
        ({"kernel_size": (3, 3)}, TypeError, r"kernel_size must be an int, got \(3, 3\)"),
    ],
)
def test_bad_constructor_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match="^MaxPool2d: " + message):
        MaxPool2d(**kwargs)
