"""The fast engine's layers equal the reference layers: output, dL/dx and every gradient.

float64: within 1e-12 of the reference, relative to each array's largest magnitude (the two
sum in different orders, so exact equality is not promised except where noted).
float32: the engine in float32 against the reference in float64, within ``FLOAT32_TOL`` (same
scale): the sums here have at most a few hundred O(1) terms, float32 keeps ~7 digits, so 1e-5
leaves a wide margin while a wrong index or a stale buffer misses by O(1).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import ConvConfig, batch_shapes, conv_configs, lrn_configs, pool_configs
from strategies import random_array as rand

import minialexnet.fast as fast
import minialexnet.layers as reference
from minialexnet.fast import linear as fast_linear

FLOAT64_TOL = 1e-12
FLOAT32_TOL = 1e-5
LAYERS = ["Conv2d", "MaxPool2d", "LocalResponseNorm", "ReLU", "Tanh", "Dropout", "Linear"]


def assert_close(got: np.ndarray, ref: np.ndarray, tol: float, what: str) -> None:
    """max |got - ref| <= tol * max |ref|; shapes and the engine's dtype checked first."""
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    scale = max(float(np.abs(ref).max()), 1e-30)
    error = float(np.abs(got.astype(np.float64) - ref).max())
    assert error <= tol * scale, f"{what}: error {error:.3g} > {tol} * {scale:.3g}"


def run(layer, x: np.ndarray, dout_seed: int) -> dict[str, np.ndarray]:
    """out, dx and the grads of one forward/backward, dout drawn in the output's dtype."""
    out = layer.forward(x)
    dx = layer.backward(rand(out.shape, dout_seed, out.dtype))
    return {"out": out, "dx": dx, **{f"d{k}": g for k, g in layer.grads.items()}}


def compare(engine_layer, reference_layer, x: np.ndarray, seed: int) -> None:
    """Run both on x (the engine in its own dtype) and compare every result."""
    dtype = engine_layer.dtype or x.dtype
    got = run(engine_layer, x.astype(dtype), seed)
    ref = run(reference_layer, x.astype(np.float64), seed)
    assert got.keys() == ref.keys()
    tol = FLOAT64_TOL if np.dtype(dtype) == np.float64 else FLOAT32_TOL
    for name, value in got.items():
        assert value.dtype == dtype, name
        assert_close(value, ref[name], tol, name)


def engine_conv(cfg: ConvConfig, dtype: type) -> fast.Conv2d:
    """The engine's Conv2d with cfg's reference layer's parameters."""
    ref = cfg.layer(np.float64)
    conv = fast.Conv2d(cfg.C, cfg.F, cfg.kernel, cfg.stride, cfg.padding, cfg.groups, dtype=dtype)
    conv.params = {k: v.astype(dtype) for k, v in ref.params.items()}
    return conv


# -- the engine is the reference's API ------------------------------------------------------
@pytest.mark.parametrize("name", LAYERS)
def test_each_engine_class_is_a_subclass_of_the_reference_class(name):
    assert issubclass(getattr(fast, name), getattr(reference, name))
    for name_ in ("Flatten", "Sigmoid", "Layer", "softmax", "softmax_cross_entropy"):
        assert hasattr(fast, name_)


def test_engine_conv_shares_the_reference_checks():
    conv = fast.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="channels"):
        conv.forward(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(TypeError, match="float64"):
        conv.forward(np.zeros((1, 3, 5, 5), np.float64))


# -- convolution ----------------------------------------------------------------------------
@settings(deadline=None, max_examples=30)
@given(conv_configs(), st.sampled_from([np.float64, np.float32]))
def test_conv_equals_the_reference(cfg: ConvConfig, dtype):
    compare(engine_conv(cfg, dtype), cfg.layer(np.float64), cfg.x(), cfg.seed + 2)


@pytest.mark.parametrize(
    "cfg",
    [
        ConvConfig(2, 3, 8, 23, 27, (11, 11), (4, 4), (0, 0), 1, seed=1),  # conv1's geometry
        ConvConfig(1, 4, 6, 7, 9, (5, 5), (1, 1), (2, 2), 2, seed=2),  # conv2's, grouped
        ConvConfig(3, 6, 3, 5, 8, (1, 2), (3, 4), (1, 0), 3, seed=3),  # stride > kernel
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_equals_the_reference_on_alexnet_like_cases(cfg, dtype):
    compare(engine_conv(cfg, dtype), cfg.layer(np.float64), cfg.x(), cfg.seed + 2)


def test_conv_first_layer_skips_dx_and_still_fills_grads():
    cfg = ConvConfig(2, 3, 4, 6, 7, (3, 3), (1, 1), (1, 1), 1, seed=4)
    conv, ref = engine_conv(cfg, np.float64), cfg.layer(np.float64)
    conv.needs_input_grad = False
    conv.forward(cfg.x())
    ref.forward(cfg.x())
    dout = rand((2, 4, 6, 7), 5)
    assert conv.backward(dout) is None
    ref.backward(dout)
    for name in ("W", "b"):
        assert_close(conv.grads[name], ref.grads[name], FLOAT64_TOL, name)


# -- max pooling ----------------------------------------------------------------------------
@settings(deadline=None, max_examples=30)
@given(pool_configs(), st.sampled_from([np.float64, np.float32]), st.integers(0, 99))
def test_pool_equals_the_reference(config, dtype, seed):
    shape, K, S = config
    compare(fast.MaxPool2d(K, S), reference.MaxPool2d(K, S), rand(shape, seed, dtype), seed + 1)


@settings(deadline=None, max_examples=30)
@given(pool_configs(), st.integers(0, 99))
def test_pool_ties_go_where_the_reference_sends_them(config, seed):
    # Small integers: windows often hold several maxima, and the tie rule (the first in
    # row-major order wins) decides where the gradient goes. With integer gradients every sum
    # is exact whatever its order, so the engine must equal the reference exactly.
    shape, K, S = config
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, shape).astype(np.float32)
    got, ref = fast.MaxPool2d(K, S), reference.MaxPool2d(K, S)
    np.testing.assert_array_equal(got.forward(x), ref.forward(x))
    dout = rng.integers(-4, 5, got._out_shape).astype(np.float32)
    np.testing.assert_array_equal(got.backward(dout), ref.backward(dout))


# -- LRN ------------------------------------------------------------------------------------
@settings(deadline=None, max_examples=30)
@given(lrn_configs(), st.sampled_from([np.float64, np.float32]), st.integers(0, 99))
def test_lrn_equals_the_reference(config, dtype, seed):
    ref, shape = config
    lrn = fast.LocalResponseNorm(ref.size, ref.alpha, ref.beta, ref.k, ref.convention)
    compare(lrn, ref, rand(shape, seed, dtype), seed + 1)


@settings(deadline=None, max_examples=20)
@given(
    lrn_configs(), st.integers(2, 3), st.sampled_from([np.float64, np.float32]), st.integers(0, 99)
)
def test_grouped_lrn_equals_the_reference(config, groups, dtype, seed):
    one, shape = config
    args = (one.size, one.alpha, one.beta, one.k, one.convention, groups)
    x = rand((shape[0], groups * shape[1], *shape[2:]), seed, dtype)
    compare(fast.LocalResponseNorm(*args), reference.LocalResponseNorm(*args), x, seed + 1)


def test_grouped_lrn_refuses_a_partial_block_even_unchecked():
    # forward_unchecked skips output_shape's check; the kernels would index past channel 4.
    layer = fast.LocalResponseNorm(groups=2)
    with pytest.raises(ValueError, match=r"groups=2 must divide the channels, got 5"):
        layer.forward_unchecked(np.ones((1, 5, 3, 3)))


def test_lrn_at_the_papers_constants_equals_the_reference():
    # beta = 0.75 takes the square-root path: check it on AlexNet's 96 channels.
    x = rand((2, 96, 3, 5), 6) * 20  # large enough that the normalization matters
    for dtype in (np.float64, np.float32):
        compare(fast.LocalResponseNorm(), reference.LocalResponseNorm(), x.astype(dtype), 7)


# -- ReLU and Linear ------------------------------------------------------------------------
@settings(deadline=None, max_examples=30)
@given(batch_shapes(), st.sampled_from([np.float64, np.float32]), st.integers(0, 99))
def test_relu_equals_the_reference(shape, dtype, seed):
    x = rand(shape, seed)
    got = run(fast.ReLU(), x.astype(dtype), seed + 1)
    ref = run(reference.ReLU(), x.astype(dtype), seed + 1)
    for name in ("out", "dx"):
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


@pytest.mark.parametrize(
    "make_x",
    [
        lambda x: x,  # NCHW
        lambda x: np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
        lambda x: x[:, ::2],  # not one dense block: NumPy's path
    ],
    ids=["nchw", "channels-last", "strided-view"],
)
def test_relu_on_any_layout_keeps_it_and_equals_the_reference(make_x):
    x = make_x(rand((2, 6, 5, 4), 8))
    out = fast.ReLU().forward(x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    relu = fast.ReLU()
    relu.forward(x)
    dout = rand(x.shape, 9)
    np.testing.assert_array_equal(relu.backward(dout), dout * (x > 0))


@pytest.mark.parametrize("N", [1, 3, fast_linear.SMALL_BATCH, fast_linear.SMALL_BATCH + 5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_equals_the_reference_on_both_weight_gradient_paths(N, dtype):
    ref = reference.Linear(13, 7, rng=np.random.default_rng(N), dtype=np.float64)
    ref.params["b"][...] = rand((7,), N)
    lin = fast.Linear(13, 7, dtype=dtype)
    lin.params = {k: v.astype(dtype) for k, v in ref.params.items()}
    compare(lin, ref, rand((N, 13), N + 1), N + 2)
