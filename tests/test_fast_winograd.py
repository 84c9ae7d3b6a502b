"""The Winograd convolution equals the reference convolution.

The transforms are exact in exact arithmetic (checked in float64 on the 1-D algorithm); the
layer then must match the reference within 1e-12 in float64 and, in float32 against the
float64 reference, within ``WINOGRAD_FLOAT32_TOL`` (relative to each array's largest
magnitude): the transforms add rounding that grows with the tile (measured ~3e-6 for
F(3x3, 5x5) and ~4e-7 for F(2x2, 3x3) on these sizes; 1e-4 leaves room for larger sums while
a wrong transform entry or tile index misses by O(1)).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import random_array as rand
from test_fast_layers import FLOAT64_TOL, assert_close, run

import minialexnet.fast as fast
import minialexnet.layers as reference
from minialexnet.fast import conv as fast_conv
from minialexnet.fast import winograd

WINOGRAD_FLOAT32_TOL = 1e-4
TILES = [(2, 3), (3, 3), (4, 3), (2, 5), (3, 5)]


@pytest.mark.parametrize(("m", "r"), TILES)
def test_one_dimensional_transforms_compute_the_correlation(m, r):
    AT, G, BT = winograd.transforms(m, r)
    rng = np.random.default_rng(m * 10 + r)
    d, g = rng.standard_normal(m + r - 1), rng.standard_normal(r)
    direct = np.array([sum(g[j] * d[i + j] for j in range(r)) for i in range(m)])
    np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), direct, rtol=1e-13, atol=1e-13)


@st.composite
def winograd_cases(draw: st.DrawFn):
    """A stride-1 ungrouped square-kernel convolution (the kind Winograd takes) and its input:
    odd and even sizes, so tiles stick out past the output's edge; N = 1 included."""
    r = draw(st.sampled_from([3, 5]))
    P = draw(st.integers(0, r // 2))
    H = draw(st.integers(max(1, r - 2 * P), 12))
    W = draw(st.integers(max(1, r - 2 * P), 12).filter(lambda w: w != H))
    C, F, N = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    return (C, F, r, P), (N, C, H, W), draw(st.integers(0, 2**16))


def layers(args, seed: int, dtype):
    """(engine layer, reference layer) with the same random weights and bias."""
    C, F, r, P = args
    ref = reference.Conv2d(C, F, r, 1, P, rng=np.random.default_rng(seed), dtype=np.float64)
    ref.params["b"][...] = rand((F,), seed)
    conv = fast.Conv2d(C, F, r, 1, P, dtype=dtype)
    conv.params = {k: v.astype(dtype) for k, v in ref.params.items()}
    return conv, ref


@settings(deadline=None, max_examples=40)
@given(winograd_cases(), st.sampled_from([np.float64, np.float32]))
def test_winograd_conv_equals_the_reference(case, dtype):
    args, shape, seed = case
    conv, ref = layers(args, seed, dtype)
    x = rand(shape, seed + 1)
    with pytest.MonkeyPatch.context() as patch:  # one image takes Winograd too, here
        patch.setattr(fast_conv, "WINOGRAD_MIN_BATCH", 1)
        patch.setattr(fast_conv, "WINOGRAD_MIN_CHANNELS", 1)
        assert conv.winograd_tile(shape[0]) == fast_conv.WINOGRAD_TILES[args[2]]
        got, want = run(conv, x.astype(dtype), seed + 2), run(ref, x, seed + 2)
    tol = FLOAT64_TOL if dtype == np.float64 else WINOGRAD_FLOAT32_TOL
    for name, value in got.items():
        assert value.dtype == dtype
        assert_close(value, want[name], tol, name)


@pytest.mark.parametrize(("m", "r"), TILES)
@pytest.mark.parametrize("chunk_bytes", [1, 10**9])
def test_every_tile_size_and_chunking_equals_the_reference(m, r, chunk_bytes, monkeypatch):
    # chunk_bytes=1: one image per chunk, so dW sums over chunks and scratch is reused.
    monkeypatch.setitem(fast_conv.WINOGRAD_TILES, r, m)
    monkeypatch.setattr(winograd, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(fast_conv, "WINOGRAD_MIN_CHANNELS", 1)
    conv, ref = layers((4, 3, r, r // 2), 5, np.float64)
    assert conv.winograd_tile() == m
    x = rand((3, 4, 11, 8), 6)
    got, want = run(conv, x, 7), run(ref, x, 7)
    for name, value in got.items():
        assert_close(value, want[name], FLOAT64_TOL, name)


def test_winograd_and_im2col_paths_are_chosen_as_stated():
    C = fast_conv.WINOGRAD_MIN_CHANNELS
    assert fast.Conv2d(C, 4, 3, 1, 1).winograd_tile() is not None
    assert fast.Conv2d(C, 4, 3, 1, 1).winograd_tile(fast_conv.WINOGRAD_MIN_BATCH - 1) is None
    assert fast.Conv2d(C - 1, 4, 3, 1, 1).winograd_tile() is None  # too few channels
    assert fast.Conv2d(C, 4, 3, 2, 1).winograd_tile() is None  # stride 2
    assert fast.Conv2d(2 * C, 4, 3, 1, 1, groups=2).winograd_tile() is None
    assert fast.Conv2d(C, 4, (3, 5), 1, 1).winograd_tile() is None  # not square
    assert fast.Conv2d(3, 4, 11, 4).winograd_tile() is None  # conv1
    conv = fast.Conv2d(C, 4, 3, 1, 1)
    conv.use_winograd = False
    assert conv.winograd_tile() is None


def test_winograd_first_layer_and_no_grad():
    conv, ref = layers((3, 4, 3, 1), 8, np.float64)
    x = rand((2, 3, 7, 6), 9)
    conv.needs_input_grad = False
    out = conv.forward(x)
    assert_close(out, ref.forward(x), FLOAT64_TOL, "out")
    dout = rand(out.shape, 10)
    assert conv.backward(dout) is None
    ref.backward(dout)
    assert_close(conv.grads["W"], ref.grads["W"], FLOAT64_TOL, "dW")
    conv.grad_enabled = False
    assert_close(conv.forward(x), out, FLOAT64_TOL, "out under no_grad")
    assert conv._cache is None
    with pytest.raises(RuntimeError, match="no_grad"):
        conv.backward(dout)
