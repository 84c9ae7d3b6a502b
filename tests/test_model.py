"""Sequential and the AlexNet variants: shapes, names, modes, dtypes, construction checks."""

from __future__ import annotations

import numpy as np
import pytest
from strategies import random_array

from minialexnet import VARIANTS, Sequential, build_alexnet
from minialexnet.layers import (
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    LocalResponseNorm,
    MaxPool2d,
    ReLU,
)

# variant: (input side, classes) as the variants are documented (docs/facts.md, "224 vs 227":
# 227 for the Caffe-style nets, 224 for torchvision's; the mini family for 32x32 and 64x64).
EXPECTED_IO = {
    "ungrouped": (227, 1000),
    "paper": (227, 1000),
    "torchvision": (224, 1000),
    "mini": (32, 10),
    "mini64": (64, 10),
}
PARAM_NAMES = [
    f"{layer}.{p}"
    for layer in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
    for p in ("W", "b")
]


def test_every_variant_is_listed():
    assert set(VARIANTS) == set(EXPECTED_IO)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_and_backward_shapes_for_every_variant(alexnet, variant):
    model = alexnet(variant)
    side, classes = EXPECTED_IO[variant]
    assert model.input_shape == (3, side, side)
    batch = 2 if variant.startswith("mini") else 1  # the big ones: one image keeps it fast
    x = random_array((batch, 3, side, side), seed=0, dtype=np.float32)
    logits = model.forward(x)
    assert logits.shape == (batch, classes) and logits.dtype == np.float32
    assert np.isfinite(logits).all()
    model.backward(np.ones_like(logits) / batch)
    params, grads = model.params(), model.grads()
    assert list(params) == PARAM_NAMES and list(grads) == PARAM_NAMES
    for name in PARAM_NAMES:
        assert grads[name].shape == params[name].shape, name
        assert grads[name].dtype == np.float32, name
        assert np.isfinite(grads[name]).all(), name
    # The per-layer shapes the constructor computed are the shapes the forward produced.
    assert model.shapes["fc8"] == (classes,)


def test_params_are_the_live_arrays_reachable_by_name():
    model = build_alexnet("mini", dtype=np.float64).eval()
    x = random_array((2, 3, 32, 32), seed=1)
    before = model.forward(x)
    model.params()["fc8.b"][3] += 1.0  # the dict holds the arrays themselves, not copies
    after = model.forward(x)
    np.testing.assert_allclose(after - before, np.eye(10)[[3, 3]], atol=1e-12)
    assert model.layers["fc8"].params["b"] is model.params()["fc8.b"]


def test_a_batch_is_the_images_one_by_one():
    # Any mix-up between the batch axis and the others (im2col column order, pooling views)
    # would make an image's logits depend on its neighbours in the batch.
    model = build_alexnet("mini", dtype=np.float64).eval()
    x = random_array((3, 3, 32, 32), seed=2)
    together = model.forward(x)
    alone = np.concatenate([model.forward(x[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(together, alone, rtol=1e-12, atol=1e-12)


def test_gradients_overwrite_through_the_whole_network():
    model = build_alexnet("mini", dtype=np.float64).eval()
    logits = model.forward(random_array((2, 3, 32, 32), seed=3))
    dout = random_array(logits.shape, seed=4)
    model.backward(dout)
    first = {k: g.copy() for k, g in model.grads().items()}
    model.backward(dout)
    for k, g in model.grads().items():
        np.testing.assert_array_equal(g, first[k], err_msg=k)


def test_train_and_eval_switch_dropout():
    model = build_alexnet("mini", dtype=np.float64)
    x = random_array((2, 3, 32, 32), seed=5)
    assert all(layer.training for layer in model.layers.values())  # built in training mode
    assert not np.array_equal(model.forward(x), model.forward(x))  # a new mask each time
    model.eval()
    assert not any(layer.training for layer in model.layers.values())
    np.testing.assert_array_equal(model.forward(x), model.forward(x))
    # The paper's test-time rule inside the net: drop6 passes its input (fc6's ReLU output)
    # times 1 - p = 0.5.
    h = x
    for name, layer in model.layers.items():
        if name == "drop6":
            break
        h = layer.forward(h)
    assert isinstance(layer, Dropout) and layer.mode == "paper" and h.shape == (2, 256)
    np.testing.assert_array_equal(layer.forward(h), 0.5 * h)
    model.train()
    assert not np.array_equal(model.forward(x), model.forward(x))


@pytest.mark.parametrize(
    ("variant", "mode"), [("paper", "paper"), ("ungrouped", "paper"), ("torchvision", "inverted")]
)
def test_dropout_form_and_place_per_variant(alexnet, variant, mode):
    # The paper: fc -> ReLU -> dropout; torchvision: dropout -> fc -> ReLU, inverted.
    names = list(alexnet(variant).layers)
    drops = [alexnet(variant).layers[f"drop{i}"] for i in (6, 7)]
    assert all(d.mode == mode and d.p == 0.5 for d in drops)
    if mode == "paper":
        assert names.index("drop6") == names.index("fc6") + 2
    else:
        assert names.index("drop6") == names.index("fc6") - 1


def test_paper_variant_groups_and_torchvision_has_no_lrn(alexnet):
    paper = alexnet("paper").layers
    assert [paper[f"conv{i}"].groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    torchvision = alexnet("torchvision").layers.values()
    assert not any(isinstance(layer, LocalResponseNorm) for layer in torchvision)
    assert paper["norm1"].convention == "paper" and paper["norm1"].size == 5


def test_astype_converts_every_parameter_and_the_output():
    model = build_alexnet("mini").astype(np.float64)
    assert all(p.dtype == np.float64 for p in model.params().values())
    assert model.dtype == np.float64
    assert model.forward(random_array((1, 3, 32, 32), seed=6)).dtype == np.float64
    with pytest.raises(
        TypeError, match=r"^alexnet-mini: dtype must be float32 or float64, got int32"
    ):
        model.astype(np.int32)


def test_the_same_seed_builds_the_same_weights():
    a, b, c = (
        build_alexnet("mini", seed=3),
        build_alexnet("mini", seed=3),
        build_alexnet("mini", seed=4),
    )
    for name in PARAM_NAMES:
        np.testing.assert_array_equal(a.params()[name], b.params()[name], err_msg=name)
    assert not np.array_equal(a.params()["conv1.W"], c.params()["conv1.W"])


def test_num_classes():
    model = build_alexnet("mini", num_classes=7)
    assert model.params()["fc8.W"].shape == (7, 256)
    assert model.forward(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 7)


# -- construction checks and bad input --------------------------------------------------------
def test_unknown_variant_is_refused():
    with pytest.raises(
        ValueError, match=r"^build_alexnet: variant must be one of .*'mini'.*got 'tiny'"
    ):
        build_alexnet("tiny")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_classes": 0}, ValueError, "num_classes must be >= 1, got 0"),
        ({"num_classes": 10.0}, TypeError, "num_classes must be an int, got 10.0"),
        ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
        ({"seed": "0"}, TypeError, "seed must be an int, got '0'"),
        ({"dropout": 1.5}, ValueError, r"dropout must be in \[0, 1\), got 1.5"),
        ({"dropout": "0.5"}, TypeError, r"dropout must be a number, in \[0, 1\), got '0.5'"),
        ({"pool": (3, 0)}, ValueError, "pool stride must be >= 1, got 0"),
        ({"pool": (3.0, 2)}, TypeError, "pool kernel must be an int, got 3.0"),
        ({"pool": 3}, ValueError, r"pool must be \(kernel, stride\), got 3"),
        ({"lrn": "no"}, TypeError, "lrn must be True, False or None, got 'no'"),
    ],
)
def test_bad_build_arguments_name_build_alexnet_and_the_argument(kwargs, error, message):
    # Found: num_classes=0 read "Linear: out_features ...", seed=-1 failed inside NumPy.
    with pytest.raises(error, match="^build_alexnet: " + message):
        build_alexnet("mini", **kwargs)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            [("conv1", Conv2d(3, 8, 3)), ("relu1", ReLU()), ("conv2", Conv2d(16, 4, 3))],
            r"^conv2: x has 8 channels, the weights expect in_channels=16",
        ),
        (
            [("conv1", Conv2d(3, 5, 3)), ("flatten", Flatten()), ("fc", Linear(100, 10))],
            r"^fc: x has 400 features, the weights expect in_features=100",
        ),
        (
            [("conv1", Conv2d(3, 4, 5, stride=2)), ("pool", MaxPool2d(5, 2))],
            r"^pool: kernel height 5 is larger than the padded input height 4",
        ),
        ([("fc", Linear(360, 10))], r"^fc: input must be ND, got per-image shape \(3, 12, 10\)"),
    ],
)
def test_a_mismatched_sequential_fails_at_construction_naming_the_layer(layers, message):
    # conv1 on (3, 12, 10) with 3x3 -> (8, 10, 8); 5x5 stride 2 -> (4, 4, 3); 3x3 -> 5*10*8 = 400.
    with pytest.raises(ValueError, match=message):
        Sequential(layers, (3, 12, 10))


def test_duplicate_or_no_layers_are_refused():
    with pytest.raises(ValueError, match=r"^net: duplicate layer name 'relu'"):
        Sequential([("relu", ReLU()), ("relu", ReLU())], (3, 4, 5))
    with pytest.raises(ValueError, match=r"^net: a Sequential needs at least one layer"):
        Sequential([], (3, 4, 5))


def test_model_input_is_checked_once_naming_the_model():
    model = build_alexnet("mini")
    with pytest.raises(
        ValueError,
        match=r"^alexnet-mini: x must have per-image shape \(3, 32, 32\), got \(3, 32, 31\)",
    ):
        model.forward(np.zeros((1, 3, 32, 31), np.float32))
    with pytest.raises(
        ValueError, match=r"^alexnet-mini: x must have 4 dimensions .*got shape \(3, 32, 32\)"
    ):
        model.forward(np.zeros((3, 32, 32), np.float32))
    with pytest.raises(TypeError, match=r"^alexnet-mini: x has dtype float64 .*float32"):
        model.forward(np.zeros((1, 3, 32, 32)))
    bad = np.zeros((1, 3, 32, 32), np.float32)
    bad[0, 1, 2, 3] = np.nan
    with pytest.raises(
        ValueError, match=r"^alexnet-mini: x contains NaN or inf \(first at index \(0, 1, 2, 3\)\)"
    ):
        model.forward(bad)
