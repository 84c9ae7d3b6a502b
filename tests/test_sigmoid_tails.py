"""Sigmoid keeps its relative precision in both tails, forward and backward, in both engines.

Found: ``0.5 * (1 + tanh(x / 2))`` returned exactly 0 for x <= -40 (the true value there is
4.2e-18): the 1 + tanh(...) cancels every digit. The expected values here come from Python's
``decimal`` at 50 digits, independent of NumPy and of the layer's formula.
"""

from __future__ import annotations

import warnings
from decimal import Decimal, localcontext

import numpy as np
import pytest

from minialexnet.model import engine_layers


def true_sigmoid_and_slope(x: float) -> tuple[float, float]:
    """sigma(x) = 1 / (1 + e**-x) and sigma'(x) = e**-x / (1 + e**-x)**2, to 50 digits."""
    with localcontext() as context:
        context.prec = 50
        e = (-Decimal(x)).exp()
        return float(1 / (1 + e)), float(e / (1 + e) ** 2)


def relative_errors(engine: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|got - true| / true for the layer's output and its dL/dx at dout = 1."""
    layer = engine_layers(engine).Sigmoid()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way
        out = layer.forward(x)
        dx = layer.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == x.dtype
    truth = np.array([true_sigmoid_and_slope(float(v)) for v in x.ravel()])
    out_error = np.abs(out.ravel().astype(np.float64) - truth[:, 0]) / truth[:, 0]
    dx_error = np.abs(dx.ravel().astype(np.float64) - truth[:, 1]) / truth[:, 1]
    return out_error, dx_error


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_float64_is_precise_at_both_tails(engine):
    x = np.array([[-700.0, -40.0, -20.0, -1.0, 0.0, 1.0, 20.0, 40.0, 700.0]])
    out_error, dx_error = relative_errors(engine, x)
    # a few units in the last place (float64: 1.1e-16); the old form was off by 100% at -40
    # and in the slope at +40 (out rounds to 1, so out * (1 - out) was 0).
    assert out_error.max() < 1e-15, out_error
    assert dx_error.max() < 1e-15, dx_error


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_float32_is_precise_over_its_whole_range(engine):
    # Up to |x| = 87 the true values (down to 1.6e-38) are normal float32 numbers.
    x = np.concatenate([np.linspace(-87, 87, 175), [-40, -20, -1, 1, 20, 40]])
    out_error, dx_error = relative_errors(engine, x.astype(np.float32).reshape(1, -1))
    assert out_error.max() < 1e-6, out_error.max()  # float32: 6e-8 per rounding
    assert dx_error.max() < 1e-6, dx_error.max()
