"""LocalResponseNorm under both alpha conventions: values worked out by hand, special cases and
properties the formula implies, gradient checks, and PyTorch's layer for the Caffe convention.
No second implementation of the layer.

The formula (docs/facts.md, "LRN"; [P] §3.3), for channel i of N channels at one pixel:
    b[i] = a[i] / (k + A * sum_{j = max(0, i - n//2)}^{min(N - 1, i + n//2)} a[j]**2) ** beta
with A = alpha under the paper's convention and A = alpha / n under Caffe's / PyTorch's.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import lrn_configs, random_array, seeds

from minialexnet.gradcheck import check_layer
from minialexnet.layers import LocalResponseNorm

pytestmark = pytest.mark.exercise("lrn")


def denominator(layer: LocalResponseNorm, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """s = k + A * window_sum(x**2), read back from out = x / s**beta (x must be non-zero)."""
    return (x / out) ** (1 / layer.beta)


@settings(deadline=None, max_examples=40)
@given(lrn_configs(), st.data())
def test_two_lit_channels_see_each_other_only_within_the_window(cfg, data):
    # All channels 0 except i and j: channel i's window sum is x_i^2, plus x_j^2 exactly when
    # |i - j| <= n // 2 (the truncation at the edges cannot matter: no other channel is lit),
    # and every unlit channel stays 0. A shifted, one-sided or too wide window misses.
    layer, shape = cfg
    C = shape[1]
    if C < 2:
        return
    i = data.draw(st.integers(0, C - 1))
    j = data.draw(st.integers(0, C - 2))
    j += j >= i  # any channel but i
    xi = random_array(shape[:1] + shape[2:], data.draw(seeds)) * 3 + 0.1
    xj = random_array(shape[:1] + shape[2:], data.draw(seeds)) * 3 + 0.1
    x = np.zeros(shape)
    x[:, i], x[:, j] = xi, xj
    A = layer.effective_alpha
    sees = abs(i - j) <= layer.size // 2
    expected = np.zeros(shape)
    expected[:, i] = xi / (layer.k + A * (xi**2 + sees * xj**2)) ** layer.beta
    expected[:, j] = xj / (layer.k + A * (xj**2 + sees * xi**2)) ** layer.beta
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-300)


@settings(deadline=None, max_examples=30)
@given(lrn_configs(), seeds)
def test_the_window_sum_is_linear_in_the_squares(cfg, seed):
    # s - k = A * window_sum(x**2) is linear in q = x**2: with x = sqrt(q),
    # s(q1 + q2) - k = (s(q1) - k) + (s(q2) - k). Together with the two-channel test above
    # (which pins every weight of the window), this fixes the whole window sum.
    layer, shape = cfg
    rng = np.random.default_rng(seed)
    q1, q2 = rng.uniform(0.5, 4.0, shape), rng.uniform(0.5, 4.0, shape)
    s = {}
    for name, q in (("q1", q1), ("q2", q2), ("sum", q1 + q2)):
        x = np.sqrt(q)
        s[name] = denominator(layer, x, layer.forward(x))
    np.testing.assert_allclose(s["sum"] - layer.k, s["q1"] + s["q2"] - 2 * layer.k, rtol=1e-9)


@settings(deadline=None, max_examples=30)
@given(lrn_configs(), seeds)
def test_reversing_the_channels_reverses_the_output(cfg, seed):
    # The window |i - j| <= n // 2, truncated at both ends, is symmetric under i -> N - 1 - i.
    layer, shape = cfg
    x = random_array(shape, seed) * 3
    out = layer.forward(x)
    np.testing.assert_allclose(layer.forward(x[:, ::-1]), out[:, ::-1], rtol=1e-13, atol=1e-15)


@settings(deadline=None, max_examples=30)
@given(lrn_configs(), seeds)
def test_backward_matches_finite_differences(cfg, seed):
    layer, shape = cfg
    # alpha up to 2 on inputs ~3 makes the checked loss ~1e2: its rounding (~1e-16 * L / eps)
    # then outweighs the truncation error at eps = 1e-5 (1.2e-6 on a correct layer, seen), so
    # eps = 3e-5 (2.5e-7 there); a wrong term still misses by 1e-2 or more.
    report = check_layer(layer, random_array(shape, seed) * 3, eps=3e-5, seed=seed % 1000)
    assert report.passed, f"{layer!r} {shape}\n{report}"


@pytest.mark.parametrize("convention", ["paper", "caffe"])
def test_float32_matches_float64(convention):
    # float32 keeps ~7 digits; one division and one power per value: 1e-5 relative is ample.
    layer = LocalResponseNorm(5, 1e-4, 0.75, 2.0, convention)
    x = random_array((2, 96, 5, 4), seed=0) * 50  # ReLU outputs can be large: let LRN bite
    expected = layer.forward(x)  # float64, itself checked by the tests above
    out = layer.forward(x.astype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


# -- hand-computed cases ---------------------------------------------------------------------
def test_one_pixel_three_channels_by_hand():
    # x = [1, 2, 2] at one pixel, n = 3, k = 1, beta = 0.5. Window sums of squares:
    #   channel 0 (edge):   channels 0..1 -> 1 + 4     = 5
    #   channel 1:          channels 0..2 -> 1 + 4 + 4 = 9
    #   channel 2 (edge):   channels 1..2 -> 4 + 4     = 8
    x = np.array([1.0, 2.0, 2.0]).reshape(1, 3, 1, 1)
    # paper, alpha = 1:      s = 1 + [5, 9, 8]     = [6, 10, 9]
    #                        b = [1/sqrt(6), 2/sqrt(10), 2/3]
    paper = LocalResponseNorm(3, alpha=1.0, beta=0.5, k=1.0, convention="paper")
    np.testing.assert_allclose(
        paper.forward(x).ravel(), [1 / np.sqrt(6), 2 / np.sqrt(10), 2 / 3], rtol=1e-15
    )
    # caffe, alpha = 1 -> A = 1/3:  s = 1 + [5, 9, 8]/3 = [8/3, 4, 11/3]
    #                        b = [sqrt(3/8), 2/2 = 1, 2*sqrt(3/11)]
    caffe = LocalResponseNorm(3, alpha=1.0, beta=0.5, k=1.0, convention="caffe")
    np.testing.assert_allclose(
        caffe.forward(x).ravel(), [np.sqrt(3 / 8), 1.0, 2 * np.sqrt(3 / 11)], rtol=1e-15
    )
    # caffe with alpha = 3 (A = 3/3 = 1) is the paper's alpha = 1 again.
    caffe3 = LocalResponseNorm(3, alpha=3.0, beta=0.5, k=1.0, convention="caffe")
    np.testing.assert_allclose(caffe3.forward(x), paper.forward(x), rtol=1e-15)


def test_window_wider_than_the_channels_covers_them_all():
    # n = 5 over 3 channels: every window is truncated to channels 0..2, sum = 1 + 4 + 4 = 9;
    # paper, alpha = 1, k = 1, beta = 0.5: s = 10 for every channel, b = x / sqrt(10).
    x = np.array([1.0, 2.0, 2.0]).reshape(1, 3, 1, 1)
    layer = LocalResponseNorm(5, alpha=1.0, beta=0.5, k=1.0, convention="paper")
    np.testing.assert_allclose(layer.forward(x), x / np.sqrt(10), rtol=1e-15)


def test_five_channels_with_powers_of_two_by_hand():
    # x = [1, 2, 4, 8, 16] at one pixel: the squares 1, 4, 16, 64, 256 are powers of 4, so
    # each window sum names exactly the channels it holds. k = 1, alpha = 1 (paper), beta = 1:
    # b = x / (1 + window_sum).
    #   n = 3: sums [1+4, 1+4+16, 4+16+64, 16+64+256, 64+256] = [5, 21, 84, 336, 320]
    #   n = 5: sums [1+4+16, 1+..+64, 1+..+256, 4+..+256, 16+64+256] = [21, 85, 341, 340, 336]
    x = np.array([1.0, 2, 4, 8, 16]).reshape(1, 5, 1, 1)
    for n, sums in ((3, [5, 21, 84, 336, 320]), (5, [21, 85, 341, 340, 336])):
        layer = LocalResponseNorm(n, alpha=1.0, beta=1.0, k=1.0, convention="paper")
        expected = x.ravel() / (1 + np.array(sums, dtype=np.float64))
        np.testing.assert_allclose(layer.forward(x).ravel(), expected, rtol=1e-15)


def test_backward_by_hand_one_channel():
    # One channel, x = 2, k = 1, alpha = 1 (paper), beta = 1: b = x / (1 + x^2) = 2/5 and
    # db/dx = ((1 + x^2) - 2x^2) / (1 + x^2)^2 = (1 - 4) / 25 = -0.12.
    layer = LocalResponseNorm(1, alpha=1.0, beta=1.0, k=1.0, convention="paper")
    x = np.full((1, 1, 1, 1), 2.0)
    np.testing.assert_allclose(layer.forward(x).item(), 0.4, rtol=1e-15)
    np.testing.assert_allclose(layer.backward(np.ones((1, 1, 1, 1))).item(), -0.12, rtol=1e-14)


def test_backward_by_hand_cross_channel_term():
    # Two channels x = [1, 2], n = 3, k = 1, alpha = 1 (paper), beta = 1: both windows hold
    # both channels, s = 1 + 1 + 4 = 6, b = [1/6, 2/6]. With dL/db = [1, 0]:
    #   dL/dx0 = db0/dx0 = (s - x0 * 2 x0) / s^2 = (6 - 2) / 36 =  1/9
    #   dL/dx1 = db0/dx1 =    - x0 * 2 x1  / s^2 =     -4  / 36 = -1/9   (the cross term)
    layer = LocalResponseNorm(3, alpha=1.0, beta=1.0, k=1.0, convention="paper")
    x = np.array([1.0, 2.0]).reshape(1, 2, 1, 1)
    np.testing.assert_allclose(layer.forward(x).ravel(), [1 / 6, 2 / 6], rtol=1e-15)
    dx = layer.backward(np.array([1.0, 0.0]).reshape(1, 2, 1, 1))
    np.testing.assert_allclose(dx.ravel(), [1 / 9, -1 / 9], rtol=1e-14)


def test_defaults_are_the_papers():
    layer = LocalResponseNorm()
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (5, 1e-4, 0.75, 2.0)
    assert layer.convention == "paper" and layer.effective_alpha == 1e-4
    assert LocalResponseNorm(convention="caffe").effective_alpha == pytest.approx(1e-4 / 5)


@pytest.mark.parametrize(("size", "channels"), [(5, 7), (3, 4), (5, 3)])
def test_caffe_convention_matches_torch(torch, size, channels):
    # torch.nn.LocalResponseNorm divides alpha by size: our "caffe" convention. Edge channels
    # included (C = 7 with n = 5 has two truncated windows at each end; C = 3 < n = 5).
    x = random_array((2, channels, 3, 5), seed=size) * 4
    dout = random_array(x.shape, seed=size + 1)
    ours = LocalResponseNorm(size, alpha=0.5, beta=0.75, k=1.5, convention="caffe")
    out = ours.forward(x)
    dx = ours.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.nn.LocalResponseNorm(size, alpha=0.5, beta=0.75, k=1.5)(tx)
    tout.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 4}, "size must be odd .*got 4"),
        ({"size": 0}, "size must be >= 1, got 0"),
        ({"convention": "torch"}, "convention must be 'paper' .* or 'caffe' .*got 'torch'"),
        ({"alpha": -1.0}, "alpha must be finite and >= 0, got -1.0"),
        ({"beta": float("nan")}, "beta must be finite and >= 0, got nan"),
        ({"k": 0.0, "alpha": 0.0}, "k and alpha cannot both be 0"),
    ],
)
def test_bad_constructor_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match="^LocalResponseNorm: " + message):
        LocalResponseNorm(**kwargs)


# -- groups: blocks of channels normalised apart (the paper's two GPUs, model.py) -----------
@settings(deadline=None, max_examples=30)
@given(lrn_configs(), st.integers(2, 3), seeds)
def test_groups_normalise_each_block_as_a_tensor_of_its_own(cfg, groups, seed):
    # groups=G on G·C channels: forward and backward equal the groups=1 layer run on each
    # block of C channels separately (each block's edge truncates the window like the edge).
    one, shape = cfg
    layer = LocalResponseNorm(one.size, one.alpha, one.beta, one.k, one.convention, groups)
    x = random_array((shape[0], groups * shape[1], *shape[2:]), seed) * 3
    dout = random_array(x.shape, seed + 1)
    out, dx = layer.forward(x), layer.backward(dout)
    blocks = np.split(np.arange(x.shape[1]), groups)
    for block in blocks:
        np.testing.assert_array_equal(out[:, block], one.forward(x[:, block]))
        np.testing.assert_array_equal(dx[:, block], one.backward(dout[:, block]))


def test_a_channel_at_the_boundary_does_not_see_the_other_half():
    # 4 channels in 2 groups, window 5, only channels 1 and 2 lit (adjacent, but in different
    # halves): each is normalised by its own square alone; groups=1 would mix them.
    x = np.zeros((1, 4, 1, 1))
    x[0, 1], x[0, 2] = 3.0, 2.0
    out = LocalResponseNorm(5, 0.5, 0.75, 2.0, groups=2).forward(x)
    expected = [0.0, 3 / (2 + 0.5 * 9) ** 0.75, 2 / (2 + 0.5 * 4) ** 0.75, 0.0]
    np.testing.assert_allclose(out[0, :, 0, 0], expected, rtol=1e-14)
    mixed = LocalResponseNorm(5, 0.5, 0.75, 2.0).forward(x)[0, 1, 0, 0]
    assert mixed == pytest.approx(3 / (2 + 0.5 * 13) ** 0.75, rel=1e-14)


@settings(deadline=None, max_examples=15)
@given(lrn_configs(), seeds)
def test_grouped_backward_matches_finite_differences(cfg, seed):
    one, shape = cfg
    layer = LocalResponseNorm(one.size, one.alpha, one.beta, one.k, one.convention, groups=2)
    x = random_array((shape[0], 2 * shape[1], *shape[2:]), seed) * 3
    report = check_layer(layer, x, eps=3e-5, seed=seed % 1000)  # eps: as the ungrouped check
    assert report.passed, f"{layer!r} {x.shape}\n{report}"


def test_bad_groups_are_named():
    with pytest.raises(ValueError, match=r"^LocalResponseNorm: groups must be >= 1, got 0"):
        LocalResponseNorm(groups=0)
    with pytest.raises(TypeError, match=r"^LocalResponseNorm: groups must be an int, got True"):
        LocalResponseNorm(groups=True)
    with pytest.raises(ValueError, match=r"groups=2 must divide the channels, .*\(5, 3, 3\)"):
        LocalResponseNorm(groups=2).forward(np.ones((1, 5, 3, 3)))
