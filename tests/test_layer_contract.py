"""The layer contract of ``minialexnet/layers/base.py``, checked on every layer.

The layer instances are the tour's (``minialexnet.tour.layer_cases``: one small instance of
every layer, including the naive conv, with non-square input shapes), rebuilt fresh for each
test by ``cases.make_case``. Each test states one clause of the contract: dtype kept, a
parameterised layer refuses another dtype, gradients overwrite, inputs are left alone, and bad
input raises an error that names the layer, the argument, what was expected and what was given.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from cases import CASE_IDS, make_case

from minialexnet.layers import Layer

DTYPES = [np.float32, np.float64]


def named(layer: Layer, *parts: str) -> str:
    """A regex matching a message that starts with the layer's name and then holds ``parts``
    in order (each escaped)."""
    return "^" + re.escape(layer.name) + ":" + "".join(".*" + re.escape(p) for p in parts)


# -- dtypes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("title", CASE_IDS)
def test_layer_keeps_dtype_and_its_own_output_shape(title, dtype):
    layer, x = make_case(title, dtype)
    out = layer.forward(x)
    assert out.dtype == dtype
    assert out.shape == (x.shape[0], *layer.output_shape(x.shape[1:]))
    dx = layer.backward(np.ones_like(out))
    assert dx.dtype == dtype and dx.shape == x.shape
    assert set(layer.grads) == set(layer.params)
    for name, grad in layer.grads.items():
        assert grad.dtype == dtype, name
        assert grad.shape == layer.params[name].shape, name


@pytest.mark.parametrize("title", [t for t in CASE_IDS if make_case(t)[0].params])
def test_parameterised_layer_refuses_another_dtype(title):
    layer, x = make_case(title, np.float64)
    with pytest.raises(TypeError, match=named(layer, "x", "float32", "float64")):
        layer.forward(x.astype(np.float32))
    layer.astype(np.float32)
    with pytest.raises(TypeError, match=named(layer, "x", "float64", "float32")):
        layer.forward(x)


@pytest.mark.parametrize("dtype", [np.int32, np.float16, "complex"])
def test_astype_refuses_a_non_float32_64_dtype(dtype):
    layer, _ = make_case(CASE_IDS[0])
    with pytest.raises(TypeError, match=named(layer, "dtype", "float32 or float64")):
        layer.astype(dtype)


# -- gradients overwrite, inputs untouched -----------------------------------------------
@pytest.mark.parametrize("title", CASE_IDS)
def test_gradients_overwrite_and_do_not_accumulate(title):
    layer, x = make_case(title)
    out = layer.forward(x)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    dx1 = layer.backward(dout).copy()
    grads1 = {k: g.copy() for k, g in layer.grads.items()}
    # The same dout again gives the same gradients, not twice them ...
    dx2 = layer.backward(dout)
    np.testing.assert_array_equal(dx2, dx1)
    for k, g in layer.grads.items():
        np.testing.assert_array_equal(g, grads1[k], err_msg=k)
    # ... and 2*dout gives exactly twice (2x, not 3x = accumulated onto the last call's).
    dx3 = layer.backward(2 * dout)
    np.testing.assert_allclose(dx3, 2 * dx1, rtol=1e-12, atol=1e-15)
    for k, g in layer.grads.items():
        np.testing.assert_allclose(g, 2 * grads1[k], rtol=1e-12, atol=1e-15, err_msg=k)


@pytest.mark.parametrize("title", CASE_IDS)
def test_forward_and_backward_leave_their_inputs_alone(title):
    layer, x = make_case(title)
    x_before = x.copy()
    out = layer.forward(x)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    dout_before = dout.copy()
    layer.backward(dout)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)


@pytest.mark.parametrize("title", CASE_IDS)
def test_returned_arrays_stay_valid_after_later_calls(title):
    # Outputs, dL/dx and grads are the caller's to keep: a later forward/backward on other data
    # must not write into them (gradcheck holds dL/dx while calling forward again; an optimizer
    # reads grads after other layers ran). Scratch buffers reused between calls must stay inside.
    layer, x = make_case(title)
    rng = np.random.default_rng(4)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    grads = dict(layer.grads)
    kept = {"out": out.copy(), "dx": dx.copy()} | {k: g.copy() for k, g in grads.items()}
    layer.forward(rng.standard_normal(x.shape))
    layer.backward(rng.standard_normal(out.shape))
    np.testing.assert_array_equal(out, kept["out"])
    np.testing.assert_array_equal(dx, kept["dx"])
    for k, g in grads.items():
        np.testing.assert_array_equal(g, kept[k], err_msg=k)


@pytest.mark.parametrize("title", [t for t in CASE_IDS if make_case(t)[0].params])
def test_without_input_grad_backward_returns_none_and_the_same_param_grads(title):
    layer, x = make_case(title)
    dout = np.random.default_rng(3).standard_normal(layer.forward(x).shape)
    layer.backward(dout)
    expected = {k: g.copy() for k, g in layer.grads.items()}
    layer.needs_input_grad = False
    layer.forward(x)
    assert layer.backward(dout) is None
    for k, g in layer.grads.items():
        np.testing.assert_allclose(g, expected[k], rtol=1e-12, err_msg=k)


# -- bad input: every message names the layer, the argument, the expected and the given -----
@pytest.mark.parametrize("title", CASE_IDS)
def test_wrong_rank_is_refused(title):
    layer, x = make_case(title)
    bad = x.reshape(x.shape[0], -1)[..., None]  # rank 3: no layer takes it
    with pytest.raises(ValueError, match=named(layer, "x", "dimensions", str(bad.shape))):
        layer.forward(bad)


@pytest.mark.parametrize("title", CASE_IDS)
def test_integer_input_is_refused(title):
    layer, x = make_case(title)
    with pytest.raises(TypeError, match=named(layer, "x", "float32 or float64", "int64")):
        layer.forward(np.round(x).astype(np.int64))


@pytest.mark.parametrize("title", CASE_IDS)
def test_non_array_input_is_refused(title):
    layer, x = make_case(title)
    with pytest.raises(TypeError, match=named(layer, "x", "ndarray", "list")):
        layer.forward(x.tolist())


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
@pytest.mark.parametrize("title", CASE_IDS)
def test_nan_or_inf_input_is_refused_with_its_index(title, bad_value):
    layer, x = make_case(title)
    index = (x.shape[0] - 1, *(s // 2 for s in x.shape[1:]))
    x[index] = bad_value
    with pytest.raises(ValueError, match=named(layer, "x", "NaN or inf", str(index))):
        layer.forward(x)


@pytest.mark.parametrize("title", CASE_IDS)
def test_backward_before_forward_is_refused(title):
    # A call out of order rather than a bad value: RuntimeError, still naming the layer.
    layer, _ = make_case(title)
    with pytest.raises(RuntimeError, match=named(layer, "backward", "before forward")):
        layer.backward(np.ones((1, 1)))


@pytest.mark.parametrize("title", CASE_IDS)
def test_dout_of_the_wrong_shape_is_refused(title):
    layer, x = make_case(title)
    out = layer.forward(x)
    bad = np.ones((*out.shape[:-1], out.shape[-1] + 1))
    with pytest.raises(ValueError, match=named(layer, "dout", str(out.shape), str(bad.shape))):
        layer.backward(bad)
    with pytest.raises(ValueError, match=named(layer, "dout", "dimensions", str(out.shape[1:]))):
        layer.backward(np.ones(out.shape[1:]))


@pytest.mark.parametrize("title", CASE_IDS)
def test_dout_of_another_float_dtype_is_refused_naming_the_forward_output(title):
    # dout must match the dtype of the forward's *output*; the message should say that (and not
    # blame "the layer's parameters", which ReLU or MaxPool2d do not have).
    layer, x = make_case(title)
    out = layer.forward(x)
    with pytest.raises(TypeError, match=named(layer, "dout", "float32")) as error:
        layer.backward(np.ones(out.shape, dtype=np.float32))
    message = str(error.value)
    assert "output" in message and "float64" in message, message
    assert "parameters" not in message, message


@pytest.mark.parametrize("title", CASE_IDS)
def test_dout_of_integer_dtype_or_with_nan_is_refused(title):
    layer, x = make_case(title)
    out = layer.forward(x)
    with pytest.raises(TypeError, match=named(layer, "dout", "float32 or float64", "int64")):
        layer.backward(np.ones(out.shape, dtype=np.int64))
    dout = np.ones_like(out)
    dout.flat[-1] = np.nan
    with pytest.raises(ValueError, match=named(layer, "dout", "NaN or inf")):
        layer.backward(dout)
