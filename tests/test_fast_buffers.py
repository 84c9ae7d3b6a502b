"""The fast engine's reused memory never leaks into what a layer returns, and never goes stale.

The engine's rules (``minialexnet/fast/__init__.py``): outputs and dL/dx are fresh arrays, so
a caller may hold them across any later call; parameter gradients are per-layer buffers that
only the same layer's next backward overwrites; scratch is shared by a network's layers and
never returned; under ``no_grad`` a forward keeps nothing. (Moved here from test_bench.py,
which tested the old tuned paths in minialexnet/layers.)
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from strategies import random_array as rand

import minialexnet.fast as fast
import minialexnet.layers as reference
from minialexnet import Sequential
from minialexnet.fast import conv as fast_conv
from minialexnet.fast import winograd as fast_winograd


def cases() -> list[tuple[str, object, tuple[int, ...]]]:
    """One small float64 engine layer of each kind with an input shape (H != W)."""
    f64 = np.float64
    return [
        ("conv 3x3 stride 2 pad 1", fast.Conv2d(4, 6, 3, 2, 1, dtype=f64), (2, 4, 9, 7)),
        ("conv 5x3 groups 2", fast.Conv2d(4, 6, (5, 3), 1, (2, 1), 2, dtype=f64), (2, 4, 8, 6)),
        ("conv 3x3 winograd", fast.Conv2d(4, 5, 3, 1, 1, dtype=f64), (2, 4, 7, 6)),
        ("conv 5x5 winograd", fast.Conv2d(3, 4, 5, 1, 2, dtype=f64), (2, 3, 8, 7)),
        ("pool 3/2", fast.MaxPool2d(3, 2), (2, 3, 9, 7)),
        ("lrn", fast.LocalResponseNorm(5, 1e-1, 0.75, 2.0), (2, 7, 4, 3)),
        ("relu maps", fast.ReLU(), (2, 3, 4, 5)),
        ("relu flat", fast.ReLU(), (3, 10)),
        ("linear", fast.Linear(12, 5, dtype=f64), (3, 12)),
    ]


@pytest.mark.parametrize("title", [title for title, _, _ in cases()])
def test_returned_arrays_survive_later_calls(title, monkeypatch):
    # One image per conv chunk, so scratch is reused within a call as well. A second layer
    # sharing the scratch runs in between, as in a network.
    monkeypatch.setattr(fast_conv, "CHUNK_BYTES", 1)
    monkeypatch.setattr(fast_winograd, "CHUNK_BYTES", 1)
    ((layer, shape),) = [(lay, shp) for t, lay, shp in cases() if t == title]
    other = fast.Conv2d(shape[1], 3, 1, dtype=np.float64) if len(shape) == 4 else None
    model = types.SimpleNamespace()  # stands for the Sequential that keeps the scratch
    for user in (layer, other):
        if hasattr(user, "share_scratch"):
            user.share_scratch(model)
    out1 = layer.forward(rand(shape, 1))
    dx1 = layer.backward(rand(out1.shape, 3))
    grads1 = dict(layer.grads)
    kept = (out1.copy(), dx1.copy(), {k: g.copy() for k, g in grads1.items()})
    if other is not None:  # another layer's forward and backward: grads1 must survive too
        other.backward(rand(other.forward(rand(shape, 5)).shape, 6))
        for name, grad in grads1.items():
            np.testing.assert_array_equal(grad, kept[2][name], err_msg=name)
    out2 = layer.forward(rand(shape, 2))  # the same layer again: out1 and dx1 must survive
    layer.backward(rand(out2.shape, 4))
    np.testing.assert_array_equal(out1, kept[0])
    np.testing.assert_array_equal(dx1, kept[1])


@pytest.mark.parametrize("chunk_bytes", [1, 10_000, 10**9])
@pytest.mark.parametrize("groups", [1, 2])
def test_chunked_conv_matches_the_reference(chunk_bytes, groups, monkeypatch):
    # 5 images of 5x5 outputs; one image's cols hold 5*5 * 3*2*4 float64s = 4800 bytes.
    # chunk_bytes=1 makes each image a chunk; 10_000 makes chunks of 2 (2, 2, 1), so dW sums
    # over chunks and the last chunk is short; 10**9 one chunk.
    monkeypatch.setattr(fast_conv, "CHUNK_BYTES", chunk_bytes)
    args = (4, 6, (3, 2), (2, 1), (1, 1), groups)
    engine = fast.Conv2d(*args, dtype=np.float64, rng=np.random.default_rng(0))
    ref = reference.Conv2d(*args, dtype=np.float64, rng=np.random.default_rng(0))
    x = rand((5, 4, 9, 4), 5)
    np.testing.assert_allclose(engine.forward(x), ref.forward(x), rtol=1e-12, atol=1e-12)
    dout = rand(ref._out_shape, 6)
    np.testing.assert_allclose(engine.backward(dout), ref.backward(dout), rtol=1e-12, atol=1e-12)
    for name in ("W", "b"):
        np.testing.assert_allclose(engine.grads[name], ref.grads[name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: fast.Conv2d(3, 4, 3, 2, padding=1, dtype=np.float64, rng=np.random.default_rng(1)),
        lambda: fast.Conv2d(3, 4, 3, padding=1, dtype=np.float64, rng=np.random.default_rng(1)),
        lambda: fast.LocalResponseNorm(3, alpha=0.5),
        lambda: fast.MaxPool2d(3, 2),
        lambda: fast.Linear(3 * 7 * 6, 5, dtype=np.float64, rng=np.random.default_rng(2)),
    ],
    ids=["conv-im2col", "conv-winograd", "lrn", "pool", "linear"],
)
def test_batch_size_can_change_between_calls_with_poisoned_scratch(make, monkeypatch):
    # Buffers are sized by the call that needs them; after a larger batch, a smaller one (and
    # a larger one again) must give what a fresh layer gives. Before every call the scratch is
    # filled with NaN: a value read before it is written would show. 20_000 bytes hold the
    # cols of 2 images here (7*6 positions * 27 weights * 8 bytes), so chunks change too.
    monkeypatch.setattr(fast_conv, "CHUNK_BYTES", 20_000)
    monkeypatch.setattr(fast_winograd, "CHUNK_BYTES", 20_000)
    layer = make()
    for n in (1, 4, 2, 3, 12):
        x = rand((n, 3, 7, 6), n)
        x = x.reshape(n, -1) if isinstance(layer, fast.Linear) else x
        fresh = make()
        expected = fresh.forward(x)
        if hasattr(layer, "scratch"):
            layer.scratch.poison()
        np.testing.assert_array_equal(layer.forward(x), expected)
        dout = rand(expected.shape, n + 10)
        if hasattr(layer, "scratch"):
            layer.scratch.poison()
        np.testing.assert_array_equal(layer.backward(dout), fresh.backward(dout))
        for name, grad in fresh.grads.items():
            np.testing.assert_array_equal(layer.grads[name], grad, err_msg=name)


def test_layers_of_a_sequential_share_one_scratch_and_match_the_reference():
    # conv_b's cols land in memory conv_a has just filled with its own (larger) cols: a value
    # left stale would change conv_b's output. Both must still equal the reference.
    def convs(L) -> list[tuple[str, object]]:
        rng = np.random.default_rng(4)
        return [
            ("conv_a", L.Conv2d(3, 4, 3, dtype=np.float64, rng=rng)),
            ("relu", L.ReLU()),
            ("conv_b", L.Conv2d(4, 5, 3, padding=1, dtype=np.float64, rng=rng)),
        ]

    engine, ref = Sequential(convs(fast), (3, 9, 8)), Sequential(convs(reference), (3, 9, 8))
    assert engine.layers["conv_a"].scratch is engine.layers["conv_b"].scratch
    assert fast.Conv2d(3, 4, 3).scratch is not engine.layers["conv_a"].scratch
    for n in (2, 3):
        x = rand((n, 3, 9, 8), 9 + n)
        np.testing.assert_allclose(engine.forward(x), ref.forward(x), rtol=1e-12, atol=1e-12)
        dout = rand((n, 5, 7, 6), 10 + n)
        engine.backward(dout)
        ref.backward(dout)
        for name, grad in ref.grads().items():
            np.testing.assert_allclose(engine.grads()[name], grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("title", [title for title, _, _ in cases()])
def test_no_grad_keeps_no_cache_and_backward_then_raises(title):
    ((layer, shape),) = [(lay, shp) for t, lay, shp in cases() if t == title]
    x = rand(shape, 7)
    expected = layer.forward(x).copy()  # with grad: the same numbers
    layer.forward(x)
    layer.grad_enabled = False
    np.testing.assert_array_equal(layer.forward(x), expected)
    assert layer._cache is None
    with pytest.raises(RuntimeError, match="no_grad"):
        layer.backward(rand(expected.shape, 8))
    layer.grad_enabled = True


def test_no_grad_in_a_network_keeps_no_caches():
    net = Sequential(
        [
            ("conv", fast.Conv2d(3, 4, 3, dtype=np.float64)),
            ("relu", fast.ReLU()),
            ("norm", fast.LocalResponseNorm()),
            ("pool", fast.MaxPool2d(2, 2)),
        ],
        (3, 8, 9),
    )
    x = rand((2, 3, 8, 9), 1)
    expected = net.forward(x)
    with net.no_grad():
        np.testing.assert_array_equal(net.forward(x), expected)
    assert all(layer._cache is None for layer in net.layers.values())
    with pytest.raises(RuntimeError, match="no_grad"):
        net.backward(np.ones_like(expected))
