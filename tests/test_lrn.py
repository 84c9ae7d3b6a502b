"""LocalResponseNorm under both alpha conventions: a loop reference written from the paper's
formula, hand-computed cases, gradient checks, and PyTorch's layer for the Caffe convention.

The formula (docs/facts.md, "LRN"; [P] §3.3), for channel i of N channels at one pixel:
    b[i] = a[i] / (k + A * sum_{j = max(0, i - n//2)}^{min(N - 1, i + n//2)} a[j]**2) ** beta
with A = alpha under the paper's convention and A = alpha / n under Caffe's / PyTorch's.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import lrn_configs, random_array, seeds

from minialexnet.gradcheck import check_layer
from minialexnet.layers import LocalResponseNorm


def lrn_reference(
    x: np.ndarray, n: int, alpha: float, beta: float, k: float, convention: str
) -> np.ndarray:
    """The formula above, one output channel at a time, the window sum as an explicit loop."""
    A = alpha if convention == "paper" else alpha / n
    channels = x.shape[1]
    out = np.empty_like(x)
    for i in range(channels):
        window_sum = np.zeros_like(x[:, 0])
        for j in range(max(0, i - n // 2), min(channels - 1, i + n // 2) + 1):
            window_sum += x[:, j] ** 2
        out[:, i] = x[:, i] / (k + A * window_sum) ** beta
    return out


@settings(deadline=None, max_examples=40)
@given(lrn_configs(), seeds)
def test_forward_matches_the_loop_reference(cfg, seed):
    layer, shape = cfg
    x = random_array(shape, seed) * 3
    expected = lrn_reference(x, layer.size, layer.alpha, layer.beta, layer.k, layer.convention)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-14)


@settings(deadline=None, max_examples=30)
@given(lrn_configs(), seeds)
def test_backward_matches_finite_differences(cfg, seed):
    layer, shape = cfg
    report = check_layer(layer, random_array(shape, seed) * 3, seed=seed % 1000)
    assert report.passed, f"{layer!r} {shape}\n{report}"


@pytest.mark.parametrize("convention", ["paper", "caffe"])
def test_float32_matches_the_float64_reference(convention):
    # float32 keeps ~7 digits; one division and one power per value: 1e-5 relative is ample.
    layer = LocalResponseNorm(5, 1e-4, 0.75, 2.0, convention)
    x = random_array((2, 96, 5, 4), seed=0) * 50  # ReLU outputs can be large: let LRN bite
    expected = lrn_reference(x, 5, 1e-4, 0.75, 2.0, convention)
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
