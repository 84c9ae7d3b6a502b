"""Every GPU layer twin against its NumPy layer: forward, backward and parameter gradients.

The NumPy layer runs in float64 on the same (float32) parameters and inputs; the GPU layer in
float32. Tolerance: rtol 1e-4 and atol 1e-5, float32 rounding over the short sums of these
tiny shapes. Every output buffer (out, dx, gradients) is filled with NaN before the launch,
so an element a kernel forgets to write fails the comparison. Shapes are small (the
simulator runs one OS thread per CUDA thread) and not multiples of any block size.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from numba import cuda

from minialexnet.cuda.activations import ReLUCuda, relu_forward
from minialexnet.cuda.bench import FixedDraws
from minialexnet.cuda.conv import Conv2dCuda, im2col
from minialexnet.cuda.dropout import DropoutCuda
from minialexnet.cuda.layout import flatten_maps, to_feature_major, to_host_layout
from minialexnet.cuda.linear import FlattenCuda, LinearCuda
from minialexnet.cuda.loss import softmax_cross_entropy as cuda_xent
from minialexnet.cuda.lrn import LocalResponseNormCuda
from minialexnet.cuda.optim import sgd_update as cuda_sgd
from minialexnet.cuda.pool import MaxPool2dCuda, maxpool_forward
from minialexnet.layers import (
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    LocalResponseNorm,
    MaxPool2d,
    ReLU,
    softmax_cross_entropy,
)
from minialexnet.optim import sgd_update

TOL = {"rtol": 1e-4, "atol": 1e-5}


def to_device_fm(x: np.ndarray):
    """A NumPy-layout batch (N, ...) as a feature-major float32 device array (..., N, ...)."""
    return cuda.to_device(np.ascontiguousarray(np.swapaxes(x, 0, 1), dtype=np.float32))


def host(device_array) -> np.ndarray:
    """A feature-major device array back in the NumPy layers' layout."""
    return to_host_layout(device_array.copy_to_host())


def poison(*arrays) -> None:
    for a in arrays:
        if a is not None:
            a.copy_to_device(np.full(a.shape, np.nan if a.dtype == np.float32 else 255, a.dtype))


def compare_twin(layer, twin, x: np.ndarray, training: bool = True) -> None:
    """Run the NumPy layer (float64) and its GPU twin on x and on one random dout; compare."""
    reference = copy.deepcopy(layer).astype(np.float64)
    reference.training = training
    want_out = reference.forward(x.astype(np.float64))
    dout = np.random.default_rng(1).standard_normal(want_out.shape).astype(np.float32)
    want_dx = reference.backward(dout.astype(np.float64))

    twin.resize(x.shape[0])
    poison(twin.out, twin.dx, *twin.grads.values())
    np.testing.assert_allclose(host(twin.forward(to_device_fm(x), training)), want_out, **TOL)
    dx = twin.backward(to_device_fm(dout))
    if twin.needs_input_grad:
        np.testing.assert_allclose(host(dx), want_dx, **TOL)
    else:
        assert dx is None
    for name, grad in twin.grads.items():
        np.testing.assert_allclose(grad.copy_to_host(), reference.grads[name], **TOL)


def images(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    "groups,kernel,stride,padding,needs_dx",
    [(2, (3, 2), (2, 1), (1, 0), True), (1, 3, 2, 0, False)],
    ids=["groups2-3x2-stride2x1-pad1x0", "first-layer-no-dx"],
)
def test_conv_matches_numpy(groups, kernel, stride, padding, needs_dx):
    rng = np.random.default_rng(2)
    layer = Conv2d(4, 6, kernel, stride, padding, groups, rng=rng)
    layer.params["b"][:] = rng.standard_normal(6)  # non-zero biases, so db and bias add count
    twin = Conv2dCuda(layer, (4, 7, 6))
    twin.needs_input_grad = needs_dx
    compare_twin(layer, twin, images((2, 4, 7, 6)))


def test_linear_matches_numpy():
    rng = np.random.default_rng(3)
    layer = Linear(7, 5, rng=rng)
    layer.params["b"][:] = rng.standard_normal(5)
    compare_twin(layer, LinearCuda(layer, (7,)), images((3, 7)))


def test_relu_matches_numpy():
    x = images((3, 2, 3, 5))
    x[0, 0, 0, :2] = 0.0  # the kink: the gradient there is 0 on both sides
    compare_twin(ReLU(), ReLUCuda(ReLU(), (2, 3, 5)), x)


def test_maxpool_matches_numpy_with_ties():
    # Small integers make many windows hold their maximum twice: both must route the gradient
    # to the first maximum in row-major order. 3/2 pooling overlaps, so pixels collect sums.
    x = np.random.default_rng(4).integers(0, 4, (2, 3, 7, 8)).astype(np.float32)
    layer = MaxPool2d(3, 2)
    compare_twin(layer, MaxPool2dCuda(layer, (3, 7, 8)), x)


@pytest.mark.parametrize("convention", ["paper", "caffe"])
def test_lrn_matches_numpy(convention):
    # A large alpha so that the normalisation, and its cross-channel gradient, are not tiny;
    # 7 channels with a window of 5: the edge channels see truncated windows.
    layer = LocalResponseNorm(size=5, alpha=0.3, beta=0.75, k=2.0, convention=convention)
    compare_twin(layer, LocalResponseNormCuda(layer, (7, 2, 3)), 2 * images((2, 7, 2, 3)))


def test_lrn_groups_match_numpy():
    # groups=2 (the paper's two GPUs): 8 channels in blocks of 4 with a window of 5, so every
    # window near the block boundary must stop at it, forward and backward.
    layer = LocalResponseNorm(size=5, alpha=0.3, beta=0.75, k=2.0, groups=2)
    compare_twin(layer, LocalResponseNormCuda(layer, (8, 2, 3)), 2 * images((2, 8, 2, 3)))


def test_flatten_matches_numpy():
    compare_twin(Flatten(), FlattenCuda(Flatten(), (3, 2, 5)), images((4, 3, 2, 5)))


@pytest.mark.parametrize("mode", ["paper", "inverted"])
def test_dropout_matches_numpy_given_the_same_mask(mode):
    x = images((3, 40))
    layer = Dropout(0.5, mode=mode)
    # Masks depend only on (seed, call): a first twin shows the mask a second one will draw.
    probe = DropoutCuda(layer, (40,), seed=5)
    mask = host(probe.forward(to_device_fm(np.ones_like(x)))) != 0
    assert 0 < mask.sum() < mask.size
    layer.rng = FixedDraws(mask)  # the NumPy layer now draws the GPU's mask
    compare_twin(layer, DropoutCuda(layer, (40,), seed=5), x)


@pytest.mark.parametrize("mode,scale", [("paper", 0.75), ("inverted", 1.0)])
def test_dropout_at_test_time_scales(mode, scale):
    layer = Dropout(0.25, mode=mode)
    compare_twin(layer, DropoutCuda(layer, (6,)), images((5, 6)), training=False)
    twin = DropoutCuda(layer, (6,))
    x = images((5, 6))
    np.testing.assert_allclose(host(twin.forward(to_device_fm(x), False)), x * scale, **TOL)


def test_dropout_masks_keep_one_minus_p_and_change_every_call():
    layer = Dropout(0.3)
    x = to_device_fm(np.ones((8, 500), np.float32))
    twin, again = DropoutCuda(layer, (500,), seed=1), DropoutCuda(layer, (500,), seed=1)
    first = host(twin.forward(x)).copy()
    second = host(twin.forward(x))
    # 4000 Bernoulli(0.7) draws: the kept fraction is within 0.7 +- 0.04 (5.5 sigma).
    assert abs((first != 0).mean() - 0.7) < 0.04
    assert (first != second).mean() > 0.2  # a new mask each call (two masks differ at ~42%)
    np.testing.assert_array_equal(host(again.forward(x)), first)  # same seed, same masks
    other = DropoutCuda(layer, (500,), seed=2)
    assert (host(other.forward(x)) != first).mean() > 0.2


def test_softmax_cross_entropy_matches_numpy():
    K, N = 7, 5
    logits = images((N, K)) * 4
    labels = np.array([0, 6, 3, 3, 1])
    want_loss, want_grad = softmax_cross_entropy(logits.astype(np.float64), labels)
    dlogits = cuda.to_device(np.full((K, N), np.nan, np.float32))
    losses = cuda.to_device(np.full(N, np.nan, np.float32))
    loss = cuda.to_device(np.full(1, np.nan, np.float32))
    cuda_xent(to_device_fm(logits), cuda.to_device(labels.astype(np.int32)), dlogits, losses, loss)
    np.testing.assert_allclose(loss.copy_to_host()[0], want_loss, **TOL)
    np.testing.assert_allclose(host(dlogits), want_grad, **TOL)


def test_sgd_update_matches_the_numpy_rule():
    rng = np.random.default_rng(6)
    w, v, g = (rng.standard_normal(300).astype(np.float32) for _ in range(3))
    w64, v64 = w.astype(np.float64), v.astype(np.float64)
    sgd_update(w64, v64, g.astype(np.float64), lr=0.05, momentum=0.9, weight_decay=5e-4)
    dw, dv = cuda.to_device(w), cuda.to_device(v)
    cuda_sgd(dw, dv, cuda.to_device(g), lr=0.05, momentum=0.9, weight_decay=5e-4)
    np.testing.assert_allclose(dv.copy_to_host(), v64, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw.copy_to_host(), w64, rtol=1e-6, atol=1e-7)


def test_layout_permutations():
    x = images((3, 2, 4, 5))
    out = cuda.to_device(np.full((2, 3, 4, 5), np.nan, np.float32))
    to_feature_major(cuda.to_device(x), out)
    np.testing.assert_array_equal(out.copy_to_host(), x.transpose(1, 0, 2, 3))
    flat = cuda.to_device(np.full((40, 3), np.nan, np.float32))
    flatten_maps(out, flat)
    np.testing.assert_array_equal(flat.copy_to_host().T, x.reshape(3, 40))


# -- preconditions are checked on the host, with errors that name the argument -------------
def test_kernel_wrappers_refuse_bad_arguments():
    x = cuda.to_device(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(TypeError, match="relu_forward: out must be a device array"):
        relu_forward(x, np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"relu_forward: x, out must have the same shape"):
        relu_forward(x, cuda.device_array((2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match="maxpool_forward: need 1 <= kernel_size"):
        maxpool_forward(x, x, x, kernel_size=5, stride=1)
    with pytest.raises(ValueError, match=r"im2col: cols must have shape \(18, 12\)"):
        im2col(x, cuda.device_array((27, 9), np.float32), (3, 3), (1, 1), (0, 0))
    with pytest.raises(ValueError, match="im2col: kernel 5x5, stride 1x1, padding 0x0 do not fit"):
        im2col(x, cuda.device_array((75, 1), np.float32), (5, 5), (1, 1), (0, 0))


def test_twins_check_their_inputs():
    twin = ReLUCuda(ReLU(), (3, 4, 4))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        twin.backward(cuda.device_array((3, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"x must be a feature-major device batch"):
        twin.forward(np.zeros((3, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"x must have shape \(3, 2, 4, 4\)"):
        twin.forward(cuda.device_array((2, 2, 4, 4), np.float32))
