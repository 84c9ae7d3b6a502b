"""The edges of the layer contract (``minialexnet/layers/base.py``), in both CPU engines.

Each test reproduces a problem a tester found and states the rule the contract now gives:
a batch of 0 images gives empty results everywhere (the loss alone refuses it), an image with
an empty axis is refused even where padding would make a window, a layer's parameters share
one dtype and their declared shapes (checked when the layer runs, since users replace them),
and a backward uses the parameters as they are at backward time, in every implementation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from minialexnet.layers import softmax_cross_entropy
from minialexnet.model import Sequential, build_alexnet, engine_layers

ENGINES = ["reference", "fast"]

# (title, build(L) -> layer, per-image input shape): one of every layer, any engine L.
LAYERS: list[tuple[str, Callable[[ModuleType], object], tuple[int, ...]]] = [
    ("conv im2col", lambda L: L.Conv2d(4, 6, 3, 2, 1, dtype=np.float64), (4, 9, 7)),
    ("conv naive", lambda L: L.Conv2d(4, 6, 3, 1, 1, impl="naive", dtype=np.float64), (4, 6, 5)),
    ("conv 3x3 wide", lambda L: L.Conv2d(16, 4, 3, 1, 1, dtype=np.float64), (16, 6, 5)),
    ("conv groups", lambda L: L.Conv2d(4, 6, (5, 3), 1, (2, 1), 2, dtype=np.float64), (4, 8, 6)),
    ("maxpool", lambda L: L.MaxPool2d(3, 2), (3, 9, 7)),
    ("lrn", lambda L: L.LocalResponseNorm(5, 1e-2, 0.75, 2.0), (7, 4, 3)),
    ("relu", lambda L: L.ReLU(), (10,)),
    ("relu maps", lambda L: L.ReLU(), (3, 4, 5)),
    ("tanh", lambda L: L.Tanh(), (10,)),
    ("sigmoid", lambda L: L.Sigmoid(), (10,)),
    ("dropout", lambda L: L.Dropout(0.5, seed=1), (10,)),
    ("dropout eval", lambda L: L.Dropout(0.5, seed=1).eval(), (10,)),
    ("linear", lambda L: L.Linear(12, 5, dtype=np.float64), (12,)),
    ("flatten", lambda L: L.Flatten(), (3, 4, 5)),
]
LAYER_IDS = [title for title, _, _ in LAYERS]


def build(engine: str, title: str):
    ((make, shape),) = [(make, shape) for t, make, shape in LAYERS if t == title]
    return make(engine_layers(engine)), shape


# -- a batch of 0 images ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("title", LAYER_IDS)
@pytest.mark.parametrize("engine", ENGINES)
def test_an_empty_batch_gives_empty_results_and_zero_gradients(engine, title, dtype):
    # Found: the fast conv raised IndexError (chunks(0, ...)), Flatten failed inside NumPy.
    layer, shape = build(engine, title)
    layer.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning either
        out = layer.forward(np.zeros((0, *shape), dtype))
        assert out.shape == (0, *layer.output_shape(shape)) and out.dtype == dtype
        dx = layer.backward(np.zeros(out.shape, dtype))
    assert dx.shape == (0, *shape) and dx.dtype == dtype
    assert set(layer.grads) == set(layer.params)
    for name, grad in layer.grads.items():  # the gradient of a sum over no images: 0
        assert grad.shape == layer.params[name].shape and grad.dtype == dtype
        assert not grad.any(), name


@pytest.mark.parametrize("title", ["conv im2col", "conv 3x3 wide", "linear"])
@pytest.mark.parametrize("engine", ENGINES)
def test_an_empty_batch_after_a_full_one_zeroes_the_kept_gradients(engine, title):
    # The fast engine overwrites its gradient buffers in place: they must not keep the last
    # batch's values after an empty one.
    layer, shape = build(engine, title)
    x = np.random.default_rng(0).standard_normal((2, *shape))
    layer.backward(np.ones_like(layer.forward(x)))
    assert all(g.any() for g in layer.grads.values())
    layer.backward(np.zeros_like(layer.forward(x[:0])))
    assert not any(g.any() for g in layer.grads.values())
    # ... and the next full batch is computed as before.
    out = layer.forward(x)
    assert np.isfinite(layer.backward(np.ones_like(out))).all()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_network_runs_an_empty_batch_in_training_and_inference(engine):
    model = build_alexnet("mini", engine=engine)
    x = np.zeros((0, *model.input_shape), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logits = model.forward(x)
        assert logits.shape == (0, 10) and logits.dtype == np.float32
        model.backward(np.zeros_like(logits))
        with model.no_grad():
            assert model.eval().forward(x).shape == (0, 10)
    assert set(model.grads()) == set(model.params())
    assert not any(g.any() for g in model.grads().values())


@pytest.mark.parametrize("shape", [(0, 10), (3, 0)])
def test_the_loss_refuses_an_empty_batch_instead_of_returning_nan(shape):
    # Found: nan with a RuntimeWarning ("mean of empty slice").
    labels = np.zeros(shape[0], dtype=np.int64)
    with pytest.raises(ValueError, match=r"^softmax_cross_entropy: logits must hold at least 1"):
        softmax_cross_entropy(np.zeros(shape), labels)


# -- an image with an empty axis ---------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_a_conv_refuses_an_image_of_height_0_even_with_padding(engine):
    # Found: H = 0 with padding 1 made a 3x3 window of padding and returned an output.
    conv = engine_layers(engine).Conv2d(3, 4, 3, padding=1)
    message = (
        r"^Conv2d: every axis of x but the batch must be >= 1 .*got per-image shape \(3, 0, 5\)"
    )
    with pytest.raises(ValueError, match=message):
        conv.forward(np.zeros((2, 3, 0, 5), np.float32))
    with pytest.raises(ValueError, match=message):
        conv.output_shape((3, 0, 5))


@pytest.mark.parametrize(("title", "shape"), [("relu", (0,)), ("maxpool", (3, 9, 0))])
def test_every_layer_refuses_an_empty_non_batch_axis(title, shape):
    layer, _ = build("reference", title)
    with pytest.raises(ValueError, match=r"every axis of x but the batch must be >= 1"):
        layer.forward(np.zeros((2, *shape)))


def test_a_network_refuses_an_input_shape_with_an_empty_or_fractional_axis():
    conv = engine_layers("reference").Conv2d(3, 4, 3, padding=1)
    with pytest.raises(ValueError, match=r"^net: input_shape must be >= 1, got 0"):
        Sequential([("conv", conv)], (3, 0, 8))
    with pytest.raises(TypeError, match=r"^net: input_shape must be an int, got 8.5"):
        Sequential([("conv", conv)], (3, 8, 8.5))  # int() would have made it 8


# -- the parameters: one dtype, their declared shapes -------------------------------------------
@pytest.mark.parametrize("title", ["conv im2col", "conv 3x3 wide", "linear"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_float64_bias_beside_float32_weights_is_refused_not_promoted(engine, title):
    # Found: the output came back float64.
    layer, shape = build(engine, title)
    layer.astype(np.float32)
    layer.params["b"] = layer.params["b"].astype(np.float64)
    x = np.zeros((2, *shape), np.float32)
    with pytest.raises(TypeError, match=r"parameters must all have one dtype, got W float32, b "):
        layer.forward(x)
    layer.astype(np.float32)  # the advice in the message works
    assert layer.forward(x).dtype == np.float32


@pytest.mark.parametrize(
    ("replace", "error", "message"),
    [
        (
            lambda p: p.pop("b"),
            ValueError,
            r"params must have the keys \['W', 'b'\], got \['W'\]",
        ),
        (
            lambda p: p.update(b=[0.0] * 5),
            TypeError,
            r"params\['b'\] must be a float32 or float64 numpy.ndarray, got list",
        ),
        (lambda p: p.update(b=np.zeros(5, int)), TypeError, r"params\['b'\] must .*got int64"),
        (
            lambda p: p.update(W=np.zeros((5, 11))),
            ValueError,
            r"params\['W'\] must have shape \(5, 12\), got \(5, 11\)",
        ),
    ],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_a_replaced_parameter_of_another_kind_or_shape_is_refused(engine, replace, error, message):
    layer = engine_layers(engine).Linear(12, 5, dtype=np.float64)
    replace(layer.params)
    with pytest.raises(error, match="^Linear: " + message):
        layer.forward(np.zeros((2, 12)))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_parameter_replaced_between_forward_and_backward_is_checked_too(engine):
    model = build_alexnet("mini", engine=engine)
    out = model.forward(np.zeros((1, *model.input_shape), np.float32))
    layer = model.layers["fc7"]
    layer.params["b"] = layer.params["b"].astype(np.float64)
    with pytest.raises(TypeError, match=r"^fc7: parameters must all have one dtype"):
        model.backward(np.ones_like(out))
    with pytest.raises(TypeError, match=r"^fc7: parameters must all have one dtype"):
        layer.backward(np.ones((1, 256), np.float32))


def test_a_network_refuses_layers_of_different_dtypes():
    model = build_alexnet("mini", engine="reference")
    model.layers["fc8"].astype(np.float64)
    with pytest.raises(TypeError, match=r"^alexnet-mini: every layer's parameters must have one "):
        model.forward(np.zeros((1, *model.input_shape), np.float32))


# -- the parameters a backward uses: those of backward time --------------------------------------
CONV_IMPLS = [
    ("reference", "naive", True),
    ("reference", "im2col", True),
    ("fast", "im2col", False),  # the engine's im2col path (Winograd off)
    ("fast", "im2col", True),  # Winograd: 3x3, stride 1, 16 channels, 2 images
]


def make_conv(engine: str, impl: str, winograd: bool):
    conv = engine_layers(engine).Conv2d(16, 4, 3, 1, 1, impl=impl, dtype=np.float64)
    conv.use_winograd = winograd
    return conv


@pytest.mark.parametrize("in_place", [False, True], ids=["replaced", "in-place"])
def test_every_conv_backward_uses_the_weights_of_backward_time(in_place):
    # Found: the loop conv and the im2col conv disagreed when W changed in between.
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((2, 16, 6, 5)), rng.standard_normal((2, 4, 6, 5))
    W2 = rng.standard_normal((4, 16, 3, 3))
    # What each must give: the gradients of a layer that held W2 all along (dx = dout
    # convolved back with W2; dW and db depend only on x and dout).
    fresh = make_conv("reference", "naive", True)
    fresh.params["W"] = W2.copy()
    fresh.forward(x)
    expected_dx = fresh.backward(g)
    expected = {k: v.copy() for k, v in fresh.grads.items()}
    for engine, impl, winograd in CONV_IMPLS:
        conv = make_conv(engine, impl, winograd)
        conv.forward(x)
        if in_place:
            conv.params["W"][...] = W2
        else:
            conv.params["W"] = W2.copy()
        dx = conv.backward(g)
        what = f"{engine} {impl} winograd={winograd}"
        np.testing.assert_allclose(dx, expected_dx, rtol=1e-10, atol=1e-12, err_msg=what)
        for name, grad in conv.grads.items():
            np.testing.assert_allclose(grad, expected[name], rtol=1e-10, atol=1e-12, err_msg=what)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_linear_backward_uses_the_weights_of_backward_time(engine):
    L = engine_layers(engine)
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((3, 12)), rng.standard_normal((3, 5))
    layer = L.Linear(12, 5, dtype=np.float64)
    layer.forward(x)
    W2 = rng.standard_normal((5, 12))
    layer.params["W"] = W2
    np.testing.assert_allclose(layer.backward(g), g @ W2, rtol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], g.T @ x, rtol=1e-12)
