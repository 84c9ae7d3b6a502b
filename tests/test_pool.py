"""MaxPool2d: windows worked out by hand, ties and overlaps, properties every max-pool has,
gradient checks. No second implementation of the layer: an impulse must show in exactly the
windows that hold it (the positions follow from the window formula), the maximum commutes with
increasing maps and moves with the image, and the backward is checked by finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import pool_configs, random_array, seeds

from minialexnet.gradcheck import check_layer
from minialexnet.layers import MaxPool2d

pytestmark = pytest.mark.exercise("pool")


def windows_holding(p: int, K: int, S: int, n_out: int) -> range:
    """The output positions i whose window rows i*S .. i*S + K - 1 hold input row p: from
    i*S <= p <= i*S + K - 1, ceil((p - K + 1) / S) <= i <= floor(p / S), within 0 .. n_out - 1."""
    return range(max(0, -((K - 1 - p) // S)), min(n_out - 1, p // S) + 1)


@settings(deadline=None, max_examples=40)
@given(pool_configs(), st.data())
def test_two_impulses_on_a_flat_image_land_in_exactly_their_windows(cfg, data):
    # Every pixel is -1 except a = 5 at (p1, q1) and b = 3 at (p2, q2). A window's maximum is
    # then 5 if it holds (p1, q1), else 3 if it holds (p2, q2), else -1 (a tie of the whole
    # window: the first pixel in row-major order, its top-left (i*S, j*S), takes the gradient).
    # An average, a minimum, a second-largest value or a wrong window all miss somewhere.
    shape, K, S = cfg
    N, C, H, W = shape
    p1, p2 = data.draw(st.integers(0, H - 1)), data.draw(st.integers(0, H - 1))
    q1, q2 = data.draw(st.integers(0, W - 1)), data.draw(st.integers(0, W - 1))
    assume((p1, q1) != (p2, q2))
    x = np.full(shape, -1.0)
    x[:, :, p1, q1], x[:, :, p2, q2] = 5.0, 3.0
    pool = MaxPool2d(K, S)
    out = pool.forward(x)
    OH, OW = (H - K) // S + 1, (W - K) // S + 1
    rows1, cols1 = windows_holding(p1, K, S, OH), windows_holding(q1, K, S, OW)
    rows2, cols2 = windows_holding(p2, K, S, OH), windows_holding(q2, K, S, OW)
    dout = random_array((N, C, OH, OW), seed=data.draw(seeds))
    expected_out = np.full((N, C, OH, OW), -1.0)
    expected_dx = np.zeros(shape)
    for i, j in np.ndindex(OH, OW):
        if i in rows1 and j in cols1:
            value, (u, v) = 5.0, (p1, q1)
        elif i in rows2 and j in cols2:
            value, (u, v) = 3.0, (p2, q2)
        else:
            value, (u, v) = -1.0, (i * S, j * S)
        expected_out[:, :, i, j] = value
        expected_dx[:, :, u, v] += dout[:, :, i, j]
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_allclose(pool.backward(dout), expected_dx, rtol=1e-12, atol=0)


@settings(deadline=None, max_examples=30)
@given(pool_configs(), seeds)
def test_the_maximum_commutes_with_increasing_maps(cfg, seed):
    # max(f(window)) = f(max(window)) for increasing f: exactly for 2x + 1 (the same element
    # wins, or elements that round to the same value), to rounding for exp. An average fails.
    shape, K, S = cfg
    x = random_array(shape, seed)
    out = MaxPool2d(K, S).forward(x)
    np.testing.assert_array_equal(MaxPool2d(K, S).forward(2 * x + 1), 2 * out + 1)
    np.testing.assert_allclose(MaxPool2d(K, S).forward(np.exp(x)), np.exp(out), rtol=1e-15)


@settings(deadline=None, max_examples=30)
@given(pool_configs(), seeds)
def test_shifting_the_image_by_a_stride_shifts_the_output_by_one(cfg, seed):
    shape, K, S = cfg
    _, _, H, W = shape
    x = random_array(shape, seed)
    out = MaxPool2d(K, S).forward(x)
    if H - S >= K:  # the image without its first S rows still holds a window
        down = MaxPool2d(K, S).forward(x[:, :, S:, :])
        np.testing.assert_array_equal(down, out[:, :, 1 : 1 + down.shape[2], :])
    if W - S >= K:
        right = MaxPool2d(K, S).forward(x[:, :, :, S:])
        np.testing.assert_array_equal(right, out[:, :, :, 1 : 1 + right.shape[3]])
    # Each window sends its whole gradient to one pixel: dx sums to dout's sum.
    dout = random_array(out.shape, seed + 1)
    pool = MaxPool2d(K, S)
    pool.forward(x)
    assert pool.backward(dout).sum() == pytest.approx(dout.sum(), rel=1e-12, abs=1e-12)


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
def test_float32_matches_float64(K, S):
    # The forward picks input values, so float32 equals float64 exactly on float32 inputs. A
    # pixel that wins up to 4 overlapping windows sums up to 4 float32 gradients: a few float32
    # ulps (eps 1.2e-7) from the float64 sum at most.
    x = random_array((2, 3, 7, 10), seed=0, dtype=np.float32)
    pool32, pool64 = MaxPool2d(K, S), MaxPool2d(K, S)
    out = pool32.forward(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, pool64.forward(x.astype(np.float64)))
    dout = random_array(out.shape, seed=1, dtype=np.float32)
    dx = pool32.backward(dout)
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, pool64.backward(dout.astype(np.float64)), rtol=1e-6, atol=1e-6)


def test_overlapping_windows_by_hand():
    # 2x2 windows at stride 1 over a 3x4 image: OH = 3 - 2 + 1 = 2, OW = 4 - 2 + 1 = 3.
    #   x = [[1, 6, 2, 0],     window (0, 0) = [[1, 6], [7, 3]] -> 7 at (1, 0)
    #        [7, 3, 8, 4],     window (0, 1) = [[6, 2], [3, 8]] -> 8 at (1, 2)
    #        [5, 9, 1, 2]]     window (0, 2) = [[2, 0], [8, 4]] -> 8 at (1, 2)
    #                          window (1, 0) = [[7, 3], [5, 9]] -> 9 at (2, 1)
    #                          window (1, 1) = [[3, 8], [9, 1]] -> 9 at (2, 1)
    #                          window (1, 2) = [[8, 4], [1, 2]] -> 8 at (1, 2)
    # With dout = [[1, 2, 3], [4, 5, 6]]: dx(1, 0) = 1, dx(1, 2) = 2 + 3 + 6 = 11,
    # dx(2, 1) = 4 + 5 = 9, every other pixel 0.
    x = np.array([[1.0, 6, 2, 0], [7, 3, 8, 4], [5, 9, 1, 2]]).reshape(1, 1, 3, 4)
    pool = MaxPool2d(2, 1)
    np.testing.assert_array_equal(pool.forward(x)[0, 0], [[7.0, 8, 8], [9, 9, 8]])
    dx = pool.backward(np.array([[1.0, 2, 3], [4, 5, 6]]).reshape(1, 1, 2, 3))
    np.testing.assert_array_equal(dx[0, 0], [[0.0, 0, 0, 0], [1, 0, 11, 0], [0, 9, 0, 0]])


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
