"""Conv2d: gradient checks, the naive loops against im2col, hand-made cases, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import ConvConfig, conv_configs, random_array

from minialexnet.gradcheck import check_layer
from minialexnet.layers import Conv2d

pytestmark = pytest.mark.exercise("conv", "im2col")


def forward_backward(conv: Conv2d, x: np.ndarray, dout_seed: int):
    """(out, dx, dW, db) for a random dout drawn in the output's dtype."""
    out = conv.forward(x)
    dout = random_array(out.shape, dout_seed, out.dtype)
    dx = conv.backward(dout)
    return out, dx, conv.grads["W"], conv.grads["b"]


# -- finite differences ------------------------------------------------------------------
@settings(deadline=None, max_examples=25)
@given(conv_configs())
def test_im2col_backward_matches_finite_differences(cfg: ConvConfig):
    conv = cfg.layer(np.float64, impl="im2col")
    assert conv.forward(cfg.x()).shape == (cfg.N, cfg.F, *cfg.out_hw)
    report = check_layer(conv, cfg.x(), seed=cfg.seed % 1000)
    assert report.passed, f"{cfg}\n{report}"


@pytest.mark.parametrize(
    "cfg",
    [
        ConvConfig(2, 4, 6, 6, 5, (3, 2), (2, 1), (1, 0), 2, seed=1),
        ConvConfig(1, 3, 2, 5, 7, (2, 4), (1, 3), (0, 2), 1, seed=2),
    ],
)
def test_naive_backward_matches_finite_differences(cfg: ConvConfig):
    # The loops are slow, so two fixed cases; hypothesis ties them to im2col below.
    report = check_layer(cfg.layer(np.float64, impl="naive"), cfg.x(), max_samples=40)
    assert report.passed, str(report)


# -- the two implementations agree ---------------------------------------------------------
@settings(deadline=None, max_examples=25)
@given(conv_configs())
def test_naive_and_im2col_agree_in_float64(cfg: ConvConfig):
    naive = forward_backward(cfg.layer(np.float64, "naive"), cfg.x(), cfg.seed + 2)
    fast = forward_backward(cfg.layer(np.float64, "im2col"), cfg.x(), cfg.seed + 2)
    for name, a, b in zip(("out", "dx", "dW", "db"), naive, fast, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12, err_msg=f"{name} {cfg}")


@settings(deadline=None, max_examples=15)
@given(conv_configs())
def test_float32_im2col_matches_float64_naive(cfg: ConvConfig):
    # Tolerance: each value is a sum of at most a few hundred products of O(1) numbers; float32
    # keeps ~7 digits (eps 1.2e-7), so relative 1e-4 plus an absolute 1e-4 (for sums that
    # cancel to ~0) leaves a wide margin while a wrong index still misses by O(1).
    reference = forward_backward(cfg.layer(np.float64, "naive"), cfg.x(), cfg.seed + 2)
    conv32 = cfg.layer(np.float32, "im2col")
    fast = forward_backward(conv32, cfg.x(np.float32), cfg.seed + 2)
    for name, ref, got in zip(("out", "dx", "dW", "db"), reference, fast, strict=True):
        assert got.dtype == np.float32, name
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4, err_msg=f"{name} {cfg}")


def test_a_large_batch_equals_its_images_one_by_one():
    # 12 images whose receptive fields fill ~19 MB in float64: large enough that a fast path
    # working through the batch in chunks uses several. Each image's output and dL/dx must not
    # depend on its batch neighbours, and dW, db must be the sums of the per-image gradients.
    cfg = ConvConfig(12, 3, 4, 48, 56, (5, 5), (1, 1), (2, 2), 1, seed=3)
    conv, x = cfg.layer(np.float64), cfg.x()
    out, dx, dW, db = (a.copy() for a in forward_backward(conv, x, dout_seed=4))
    dout = random_array(out.shape, seed=4)
    dW_sum, db_sum = np.zeros_like(dW), np.zeros_like(db)
    for n in range(cfg.N):
        np.testing.assert_allclose(conv.forward(x[n : n + 1]), out[n : n + 1], rtol=1e-12)
        np.testing.assert_allclose(conv.backward(dout[n : n + 1]), dx[n : n + 1], rtol=1e-12)
        dW_sum += conv.grads["W"]
        db_sum += conv.grads["b"]
    np.testing.assert_allclose(dW, dW_sum, rtol=1e-10)
    np.testing.assert_allclose(db, db_sum, rtol=1e-10)


# -- hand-made cases: what a convolution *is*, independent of both implementations -----------
@pytest.mark.parametrize("impl", ["naive", "im2col"])
def test_one_hot_kernel_picks_a_shifted_pixel(impl):
    # A 2x3 kernel that is 1 at (u, v) = (1, 2) and 0 elsewhere: out[i, j] = x[i*SH + 1,
    # j*SW + 2] (cross-correlation, no kernel flip). With stride (2, 1) and no padding on a
    # 5x6 input: OH = (5-2)//2 + 1 = 2, OW = (6-3)//1 + 1 = 4.
    conv = Conv2d(1, 1, (2, 3), stride=(2, 1), impl=impl, dtype=np.float64)
    conv.params["W"][...] = 0
    conv.params["W"][0, 0, 1, 2] = 1
    conv.params["b"][...] = 0.5
    x = np.arange(30, dtype=np.float64).reshape(1, 1, 5, 6)
    expected = x[0, 0, 1::2, 2:][:2] + 0.5
    np.testing.assert_array_equal(conv.forward(x)[0, 0], expected)


@pytest.mark.parametrize("impl", ["naive", "im2col"])
def test_padding_is_zeros(impl):
    # A 3x3 kernel of ones with padding 1 sums each 3x3 neighbourhood: the corner of a 2x3
    # all-ones image sees 4 pixels, the middle of the top row 6.
    conv = Conv2d(1, 1, 3, padding=1, impl=impl, dtype=np.float64)
    conv.params["W"][...] = 1
    out = conv.forward(np.ones((1, 1, 2, 3)))
    np.testing.assert_array_equal(out[0, 0], [[4, 6, 4], [4, 6, 4]])


@pytest.mark.parametrize("impl", ["naive", "im2col"])
def test_groups_see_only_their_own_channels(impl):
    # groups=2, 4 input channels, 6 filters: filters 0-2 see channels 0-1, filters 3-5 see
    # channels 2-3. Zeroing channels 2-3 must leave filters 3-5 at their bias alone, and
    # changing channels 2-3 must leave filters 0-2 untouched.
    conv = Conv2d(4, 6, (3, 2), padding=(1, 0), groups=2, impl=impl, dtype=np.float64)
    conv.params["b"][...] = np.arange(6)
    x = random_array((2, 4, 5, 4), seed=0)
    x[:, 2:] = 0
    out = conv.forward(x)
    biases_only = np.broadcast_to(np.array([3.0, 4, 5])[None, :, None, None], out[:, 3:].shape)
    np.testing.assert_array_equal(out[:, 3:], biases_only)
    x2 = x.copy()
    x2[:, 2:] = random_array((2, 2, 5, 4), seed=1)
    np.testing.assert_array_equal(conv.forward(x2)[:, :3], out[:, :3])


def test_alexnet_conv1_output_size():
    # 227 input, 11x11 kernel, stride 4, no padding: (227 - 11) / 4 + 1 = 55 (Caffe's fix
    # for the paper's 224). torchvision's 224 with padding 2: (224 + 4 - 11) // 4 + 1 = 55.
    assert Conv2d(3, 96, 11, 4).output_shape((3, 227, 227)) == (96, 55, 55)
    assert Conv2d(3, 64, 11, 4, 2).output_shape((3, 224, 224)) == (64, 55, 55)


def test_macs_count_one_multiply_accumulate_per_weight_per_output_position():
    # 8 filters, each over (4/2) channels x 3 x 2 = 12 weights, at OH x OW = 4 x 5 positions.
    conv = Conv2d(4, 8, (3, 2), padding=(1, 0), groups=2)
    assert conv.output_shape((4, 4, 6)) == (8, 4, 5)
    assert conv.macs((4, 4, 6)) == 8 * 4 * 5 * 12
    assert conv.num_params() == 8 * 12 + 8


def test_matches_torch_conv2d(torch):
    # An external cross-check of the grouping, stride, padding and orientation conventions
    # that both of our implementations could otherwise share.
    cfg = ConvConfig(2, 6, 9, 8, 7, (3, 2), (2, 1), (1, 2), 3, seed=5)
    ours = forward_backward(cfg.layer(np.float64), cfg.x(), cfg.seed + 2)
    conv = cfg.layer(np.float64)
    x = torch.tensor(cfg.x(), requires_grad=True)
    W = torch.tensor(conv.params["W"], requires_grad=True)
    b = torch.tensor(conv.params["b"], requires_grad=True)
    out = torch.nn.functional.conv2d(
        x, W, b, stride=cfg.stride, padding=cfg.padding, groups=cfg.groups
    )
    out.backward(torch.tensor(random_array(tuple(out.shape), cfg.seed + 2)))
    theirs = (out.detach(), x.grad, W.grad, b.grad)
    for name, a, t in zip(("out", "dx", "dW", "db"), ours, theirs, strict=True):
        np.testing.assert_allclose(a, t.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


# -- bad arguments ---------------------------------------------------------------------------
def test_input_channels_must_match_the_weights():
    conv = Conv2d(4, 6, 3)
    with pytest.raises(ValueError, match=r"^Conv2d: x has 5 channels.*in_channels=4"):
        conv.forward(np.zeros((1, 5, 8, 8), dtype=np.float32))
    # output_shape is what Sequential and the accounting use instead of running the layer:
    # it must refuse the same input, not report a shape (and MACs) for it.
    with pytest.raises(ValueError, match=r"^Conv2d: x has 5 channels.*in_channels=4"):
        conv.output_shape((5, 8, 8))


@pytest.mark.parametrize(("in_ch", "out_ch", "groups"), [(4, 6, 3), (3, 6, 2), (4, 5, 2)])
def test_groups_must_divide_both_channel_counts(in_ch, out_ch, groups):
    with pytest.raises(
        ValueError,
        match=rf"^Conv2d: groups={groups} must divide in_channels={in_ch} and "
        rf"out_channels={out_ch}",
    ):
        Conv2d(in_ch, out_ch, 3, groups=groups)


@pytest.mark.parametrize(
    ("kernel", "padding", "hw", "message"),
    [
        (
            (5, 2),
            (1, 0),
            (2, 9),
            r"kernel height 5 is larger than the padded input height 2 \+ 2\*1 = 4",
        ),
        (
            (2, 7),
            (0, 2),
            (9, 2),
            r"kernel width 7 is larger than the padded input width 2 \+ 2\*2 = 6",
        ),
    ],
)
def test_kernel_larger_than_the_padded_input_is_refused(kernel, padding, hw, message):
    conv = Conv2d(2, 3, kernel, padding=padding)
    with pytest.raises(ValueError, match="^Conv2d: " + message):
        conv.forward(np.zeros((1, 2, *hw), dtype=np.float32))
    with pytest.raises(ValueError, match="^Conv2d: " + message):
        conv.output_shape((2, *hw))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"stride": 0}, ValueError, r"stride must be >= 1, got 0"),
        ({"padding": -1}, ValueError, r"padding must be >= 0, got -1"),
        ({"kernel_size": (3, 2, 1)}, ValueError, r"kernel_size must be an int or a pair"),
        ({"kernel_size": 2.5}, TypeError, r"kernel_size must be an int, got 2.5"),
        ({"impl": "fft"}, ValueError, r"impl must be 'im2col' or 'naive', got 'fft'"),
        ({"in_channels": 0}, ValueError, r"in_channels must be >= 1, got 0"),
    ],
)
def test_bad_constructor_arguments_are_named(kwargs, error, message):
    args = {"in_channels": 2, "out_channels": 4, "kernel_size": 3} | kwargs
    with pytest.raises(error, match="^Conv2d: " + message):
        Conv2d(**args)
