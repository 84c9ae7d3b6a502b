"""The gradient-check utility itself: it reports what it says, it can fail, and the whole
``mini`` network passes it (in training mode, dropout included).

The per-layer checks over random configurations live beside each layer (test_conv.py, ...).
Here, planted bugs show that the check is able to fail: each is a one-line mistake of the kind
a backward pass really gets wrong, and each must fail by orders of magnitude, on the right array.
"""

from __future__ import annotations

import numpy as np
import pytest
from strategies import random_array

from minialexnet import build_alexnet
from minialexnet.gradcheck import (
    DEFAULT_THRESHOLD,
    check_array_gradient,
    check_layer,
    check_model,
    sample_indices,
)
from minialexnet.layers import Conv2d, Linear, LocalResponseNorm, softmax_cross_entropy


# -- the utility on a function whose gradient is known ---------------------------------------
def test_exact_gradient_passes_and_a_wrong_one_is_reported_with_its_worst_entry():
    a = random_array((3, 4), seed=0) + 3  # keep away from 0: the derivative 3a^2 stays large
    a_before = a.copy()

    def loss() -> float:
        return float(np.sum(a**3))

    good = check_array_gradient("a", loss, a, 3 * a**2)
    assert good.max_rel_error < 1e-9 and good.checked == good.size == 12
    np.testing.assert_array_equal(a, a_before)  # every perturbation was undone
    # 2a^2 instead of 3a^2 is wrong by |2 - 3| / 3 = 1/3 at every entry.
    bad = check_array_gradient("a", loss, a, 2 * a**2)
    assert bad.max_rel_error == pytest.approx(1 / 3, rel=1e-6)
    assert bad.analytic == pytest.approx(2 * a[bad.worst_index] ** 2, rel=1e-12)
    assert bad.numeric == pytest.approx(3 * a[bad.worst_index] ** 2, rel=1e-6)


def test_large_arrays_are_sampled_without_repeats():
    rng = np.random.default_rng(0)
    everything = sample_indices((3, 4), 200, rng)
    assert sorted(everything) == [(i, j) for i in range(3) for j in range(4)]
    sampled = sample_indices((50, 60), 100, rng)
    assert len(set(sampled)) == 100
    assert all(0 <= i < 50 and 0 <= j < 60 for i, j in sampled)


def test_float32_is_refused_for_finite_differences():
    message = r"^check_layer: finite differences need float64, got x float32 and Linear parameters"
    with pytest.raises(TypeError, match=message + " float32"):
        check_layer(Linear(3, 2), random_array((2, 3), 0, np.float32))
    with pytest.raises(TypeError, match=message + " float64"):
        check_layer(Linear(3, 2, dtype=np.float64), random_array((2, 3), 0, np.float32))
    with pytest.raises(
        TypeError, match=r"^check_layer: .*got x float64 and Linear parameters float32"
    ):
        check_layer(Linear(3, 2), random_array((2, 3), 0))
    model = build_alexnet("mini")  # float32
    with pytest.raises(TypeError, match=r"^check_model: finite differences need float64.*float32"):
        check_model(model, random_array((1, *model.input_shape), 0), np.array([0]))
    with pytest.raises(TypeError, match=r"^gradcheck: a must be float64 .*got float32"):
        a = np.ones(3, dtype=np.float32)
        check_array_gradient("a", lambda: float(np.sum(a)), a, np.ones(3, np.float32))


def test_report_summarises_pass_or_fail_and_the_margin():
    report = check_layer(Linear(4, 3, dtype=np.float64), random_array((2, 4), seed=1))
    assert [c.name for c in report.checks] == ["x", "W", "b"]
    assert report.passed and report.threshold == DEFAULT_THRESHOLD
    assert report.margin == pytest.approx(report.max_rel_error / report.threshold)
    assert "PASS" in str(report) and "FAIL" not in str(report)


# -- planted bugs: the check catches each, on the array that is wrong -------------------------
class ConvTransposedKernelGrad(Conv2d):
    """dL/dW with the kernel's two spatial axes swapped: a wrong transpose."""

    def _backward(self, dout):
        dx = super()._backward(dout)
        self.grads["W"] = self.grads["W"].transpose(0, 1, 3, 2).copy()
        return dx


class ConvFlippedInputGrad(Conv2d):
    """dL/dx upside down: the classic forgotten or doubled kernel flip."""

    def _backward(self, dout):
        return super()._backward(dout)[:, :, ::-1, :].copy()


class LRNWithoutCrossChannelTerm(LocalResponseNorm):
    """Keeps only the first term of dL/dx, g * s**-beta = g * out / x; drops the windowed sum."""

    def _forward(self, x):
        out = super()._forward(x)
        self._planted = (x, out)
        return out

    def _backward(self, dout):
        x, out = self._planted
        return dout * out / x


class LinearMeanBiasGrad(Linear):
    """dL/db averaged over the batch instead of summed."""

    def _backward(self, dout):
        dx = super()._backward(dout)
        self.grads["b"] = dout.mean(axis=0)
        return dx


PLANTED = [
    (
        "conv dW transposed",
        lambda: ConvTransposedKernelGrad(3, 4, 3, padding=1, dtype=np.float64),
        (2, 3, 6, 5),
        "W",
    ),
    (
        "conv dx flipped",
        lambda: ConvFlippedInputGrad(3, 4, (3, 2), dtype=np.float64),
        (2, 3, 6, 5),
        "x",
    ),
    (
        "LRN cross term dropped",
        lambda: LRNWithoutCrossChannelTerm(5, 0.5, 0.75, 1.0),
        (2, 7, 3, 4),
        "x",
    ),
    ("linear db averaged", lambda: LinearMeanBiasGrad(5, 3, dtype=np.float64), (4, 5), "b"),
]


@pytest.mark.parametrize(("title", "make", "shape", "wrong"), PLANTED, ids=[p[0] for p in PLANTED])
def test_a_planted_bug_is_caught_on_the_right_array(title, make, shape, wrong):
    layer = make()
    x = random_array(shape, seed=2)
    if isinstance(layer, Conv2d | Linear):
        layer.params["b"][...] = random_array(layer.params["b"].shape, seed=3)
    report = check_layer(layer, x)
    errors = {c.name: c.max_rel_error for c in report.checks}
    assert not report.passed, f"{title}: the planted bug went unnoticed\n{report}"
    assert errors[wrong] > 1e-2, f"{title}\n{report}"
    # Everything the bug did not touch still passes: the report points at the culprit.
    assert all(e < DEFAULT_THRESHOLD for name, e in errors.items() if name != wrong), str(report)
    assert "FAIL" in str(report)


def test_a_planted_bug_inside_the_network_is_caught_by_check_model():
    # conv3's dL/dW with the wrong sign (a "-=" for a "+="): every checked entry is off by 2x
    # its size, so even the few entries check_model samples per array expose it.
    model = build_alexnet("mini", dtype=np.float64, seed=0)
    conv3 = model.layers["conv3"]
    correct_backward = conv3._backward

    def backward_with_wrong_sign(dout):
        dx = correct_backward(dout)
        conv3.grads["W"] = -conv3.grads["W"]
        return dx

    conv3._backward = backward_with_wrong_sign
    x = random_array((2, *model.input_shape), seed=4)
    report = check_model(model, x, np.array([3, 8]), max_samples=4)
    errors = {c.name: c.max_rel_error for c in report.checks}
    assert not report.passed and errors["conv3.W"] > 0.5, str(report)
    assert all(e < report.threshold for name, e in errors.items() if name != "conv3.W")


# -- the whole network ---------------------------------------------------------------------
def test_whole_mini_network_in_training_mode_with_dropout():
    model = build_alexnet("mini", dtype=np.float64, seed=0).train()
    x = random_array((2, *model.input_shape), seed=5)
    labels = np.array([1, 6])
    # Training mode really is stochastic here (dropout draws a new mask per forward) ...
    assert not np.array_equal(model.forward(x), model.forward(x))
    # ... and check_model holds the masks fixed while it differentiates.
    # 4 sampled entries per array (each costs two forward passes); the directional test below
    # covers every entry at once.
    report = check_model(model, x, labels, max_samples=4)
    assert [c.name for c in report.checks] == list(model.params())
    assert report.passed, str(report)


def test_whole_mini_network_directional_derivative_covers_every_parameter():
    # check_model samples entries; this compares the full gradient along one random direction
    # V of all parameters at once: sum(grad * V) against (L(p + eps V) - L(p - eps V)) / 2eps.
    model = build_alexnet("mini", dtype=np.float64, seed=1).train()
    drops = [layer for layer in model.layers.values() if hasattr(layer, "reseed")]
    x = random_array((3, *model.input_shape), seed=6)
    labels = np.array([0, 4, 9])

    def loss_and_grad():
        for i, layer in enumerate(drops):
            layer.reseed(100 + i)  # the same masks at every evaluation
        return softmax_cross_entropy(model.forward(x), labels)

    model.backward(loss_and_grad()[1])
    grads = {k: g.copy() for k, g in model.grads().items()}
    rng = np.random.default_rng(7)
    direction = {k: rng.standard_normal(p.shape) for k, p in model.params().items()}
    analytic = sum(float(np.sum(grads[k] * v)) for k, v in direction.items())
    # Moving every parameter at once shifts each pre-activation by ~eps * sqrt(fan_in), so with
    # thousands of ReLUs and max-pool windows some unit sits within that distance of a kink:
    # eps = 1e-5 crosses one here (error 1e-2). At eps = 1e-7 the rounding error is still only
    # ~1e-16 * |L| / eps ~ 1e-9, and a kink crossing is 100x less likely.
    eps = 1e-7
    losses = []
    for sign in (1, -1):
        for k, p in model.params().items():
            p += sign * eps * direction[k]
        losses.append(loss_and_grad()[0])
        for k, p in model.params().items():
            p -= sign * eps * direction[k]
    numeric = (losses[0] - losses[1]) / (2 * eps)
    assert abs(analytic) > 1e-3  # a real signal, not two zeros agreeing
    assert numeric == pytest.approx(analytic, rel=1e-5)
