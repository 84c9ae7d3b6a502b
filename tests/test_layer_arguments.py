"""Every constructor argument of every layer refuses a bad value with a message that names the
layer, the argument, what was expected and what was given (both engines: the fast classes
share the reference constructors, and this proves it).

Found: ``Dropout("0.5")`` failed inside a comparison ("'<=' not supported ..."), and
``LocalResponseNorm(alpha="a")`` inside NumPy, naming nothing; ``Dropout(p=False)``,
``Conv2d(3, 4, 3, stride=True)`` and ``Conv2d(..., dtype=None)`` (NumPy reads None as float64)
were accepted.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from minialexnet.model import engine_layers

NAN, INF = float("nan"), float("inf")

# Each layer with the arguments it needs to be built.
REQUIRED = {
    "Conv2d": {"in_channels": 4, "out_channels": 6, "kernel_size": 3},
    "Linear": {"in_features": 4, "out_features": 6},
    "MaxPool2d": {},
    "LocalResponseNorm": {},
    "Dropout": {},
}

INT_FIELDS = [  # (layer, argument, smallest valid value, what the message says is expected)
    ("Conv2d", "in_channels", 1, "an int"),
    ("Conv2d", "out_channels", 1, "an int"),
    ("Conv2d", "groups", 1, "an int"),
    ("Conv2d", "kernel_size", 1, "an int"),
    ("Conv2d", "stride", 1, "an int"),
    ("Conv2d", "padding", 0, "an int"),
    ("Linear", "in_features", 1, "an int"),
    ("Linear", "out_features", 1, "an int"),
    ("MaxPool2d", "kernel_size", 1, "an int"),
    ("MaxPool2d", "stride", 1, "an int"),
    ("LocalResponseNorm", "size", 1, "an int"),
    ("Dropout", "seed", 0, "an int"),
]
REAL_FIELDS = [  # (layer, argument, the range the message states, a value below it)
    ("LocalResponseNorm", "alpha", "finite and >= 0", -1e-4),
    ("LocalResponseNorm", "beta", "finite and >= 0", -0.75),
    ("LocalResponseNorm", "k", "finite and > 0", 0.0),
    ("Dropout", "p", "in [0, 1)", 1.0),
]
CHOICE_FIELDS = [
    ("Conv2d", "impl", "'im2col' or 'naive'"),
    ("LocalResponseNorm", "convention", "'paper' (alpha as written) or 'caffe'"),
    ("Dropout", "mode", "'paper' or 'inverted'"),
]


def refused(engine: str, layer: str, argument: str, value: object) -> tuple[type, str]:
    """Build ``layer`` with ``argument=value``; return the error's type and message."""
    cls = getattr(engine_layers(engine), layer)
    with pytest.raises((TypeError, ValueError)) as error:
        cls(**{**REQUIRED[layer], argument: value})
    return error.type, str(error.value)


def assert_named(message: str, layer: str, argument: str, expected: str, given: object) -> None:
    """The message starts with the layer, then names the argument, the expected, the given."""
    parts = [f"{layer}: {argument} must be", expected, f"got {given!r}"]
    pattern = "^" + ".*".join(re.escape(p) for p in parts)
    assert re.search(pattern, message), message


@pytest.mark.parametrize("engine", ["reference", "fast"])
@pytest.mark.parametrize(("layer", "argument", "minimum", "expected"), INT_FIELDS)
def test_int_arguments_refuse_other_types_bools_and_values_below_the_minimum(
    engine, layer, argument, minimum, expected
):
    for value in ("3", True, 2.5, NAN, None):
        kind, message = refused(engine, layer, argument, value)
        assert kind is TypeError, (value, message)
        assert_named(message, layer, argument, expected, value)
    kind, message = refused(engine, layer, argument, minimum - 1)
    assert kind is ValueError
    assert message == f"{layer}: {argument} must be >= {minimum}, got {minimum - 1}"


@pytest.mark.parametrize("engine", ["reference", "fast"])
@pytest.mark.parametrize(("layer", "argument", "expected", "below"), REAL_FIELDS)
def test_real_arguments_refuse_strings_bools_nan_inf_and_values_out_of_range(
    engine, layer, argument, expected, below
):
    for value in ("0.5", True, None, [0.5]):
        kind, message = refused(engine, layer, argument, value)
        assert kind is TypeError, (value, message)
        assert_named(message, layer, argument, expected, value)
    for value in (NAN, INF, -INF, below):
        kind, message = refused(engine, layer, argument, value)
        assert kind is ValueError, (value, message)
        assert_named(message, layer, argument, expected, value)


@pytest.mark.parametrize("engine", ["reference", "fast"])
@pytest.mark.parametrize(("layer", "argument", "expected"), CHOICE_FIELDS)
def test_string_choices_refuse_anything_else(engine, layer, argument, expected):
    for value in ("fft", None, 1, ""):
        kind, message = refused(engine, layer, argument, value)
        assert kind is ValueError
        assert_named(message, layer, argument, expected, value)


@pytest.mark.parametrize("engine", ["reference", "fast"])
@pytest.mark.parametrize("layer", ["Conv2d", "Linear"])
def test_rng_and_dtype_refuse_what_is_not_a_generator_or_a_float_dtype(engine, layer):
    for value in (0, np.random.RandomState(0), "rng"):
        kind, message = refused(engine, layer, "rng", value)
        assert kind is TypeError
        assert message.startswith(f"{layer}: rng must be a numpy.random.Generator or None")
        assert message.endswith(f"got {type(value).__name__}")
    for value, shown in ((None, "None"), ("abc", "'abc'"), (np.int32, "int32"), (int, "int64")):
        kind, message = refused(engine, layer, "dtype", value)
        assert kind is TypeError
        assert message == f"{layer}: dtype must be float32 or float64, got {shown}"


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_pairs_refuse_the_wrong_length_and_name_a_bad_member(engine):
    for argument in ("kernel_size", "stride", "padding"):
        kind, message = refused(engine, "Conv2d", argument, (1, 2, 3))
        assert kind is ValueError
        assert_named(message, "Conv2d", argument, "an int or a pair of ints", (1, 2, 3))
        kind, message = refused(engine, "Conv2d", argument, (3, "3"))
        assert kind is TypeError
        assert_named(message, "Conv2d", argument, "an int", "3")
    conv = engine_layers(engine).Conv2d(4, 6, [5, 3], stride=[2, 1], padding=[2, 1])
    assert (conv.kernel_size, conv.stride, conv.padding) == ((5, 3), (2, 1), (2, 1))


def test_dropout_reseed_checks_its_seed_like_the_constructor():
    layer = engine_layers("reference").Dropout()
    with pytest.raises(TypeError, match=r"^Dropout: seed must be an int, got '1'"):
        layer.reseed("1")
    with pytest.raises(ValueError, match=r"^Dropout: seed must be >= 0, got -1"):
        layer.reseed(-1)


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_lrn_k_0_is_refused_because_an_all_zero_window_divides_0_by_0(engine):
    # Found: LocalResponseNorm(k=0) returned NaN for an all-zero window (a dead ReLU map).
    L = engine_layers(engine)
    for k in (0, 0.0, -1.0):
        with pytest.raises(ValueError, match=r"^LocalResponseNorm: k must be finite and > 0"):
            L.LocalResponseNorm(k=k)
    # The smallest k allowed still gives a finite (zero) output for such a window.
    layer = L.LocalResponseNorm(k=1e-30, alpha=1e-4)
    x = np.zeros((1, 6, 2, 3))
    x[0, 0] = 1.0  # the window of channel 5 (3..7) holds only zeros
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out))
    assert np.isfinite(out).all() and np.isfinite(dx).all()
    assert not out[0, 3:].any()
