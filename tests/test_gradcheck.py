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
    GradCheckReport,
    check_array_gradient,
    check_layer,
    check_model,
    sample_indices,
)
from minialexnet.layers import Conv2d, Linear, LocalResponseNorm, softmax_cross_entropy
from minialexnet.tour import network_check


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


# -- which entries are sampled, and when the floor was used ------------------------------------
def test_sampling_among_given_entries_draws_only_those():
    rng = np.random.default_rng(0)
    among = np.array([3, 17, 256, 2999])
    assert sorted(sample_indices((50, 60), 10, rng, among)) == [(0, 3), (0, 17), (4, 16), (49, 59)]
    drawn = sample_indices((50, 60), 2, rng, among)
    assert len(set(drawn)) == 2 and {i * 60 + j for i, j in drawn} <= set(among)


def test_the_tour_network_check_samples_entries_with_a_non_zero_gradient():
    # Found: the tour's fc7.W check passed with 5 sampled entries that were all exactly 0
    # (dead ReLU units zero whole columns), comparing 0 with 0.
    report = network_check()
    assert report.passed, str(report)
    for check in report.checks:
        assert check.zero_checked == 0, check.describe()
        assert check.nonzero is not None and check.checked == min(5, check.nonzero)
    fc7 = next(c for c in report.checks if c.name == "fc7.W")
    # Most of fc7.W's gradient is exactly 0 here, so a uniform sample would mostly hit zeros.
    assert fc7.nonzero < fc7.size / 2
    line = fc7.describe()
    assert f"5/{fc7.size} entries, among {fc7.nonzero} non-zero; floor used for" in line


def test_the_floor_is_counted_and_printed_for_the_entries_it_judged():
    # Gradient (100, 1e-3, 1e-3, 1e-3, 2): the floor is 1% of 100 = 1, so it judges the three
    # entries of 1e-3 and not the others.
    c = np.array([100.0, 1e-3, 1e-3, 1e-3, 2.0])
    a = np.ones(5)
    check = check_array_gradient("a", lambda: float(np.sum(c * a)), a, c.copy())
    assert (check.floor_used, check.checked) == (3, 5)
    assert check.describe().endswith("5/5 entries; floor used for 3 of 5)")
    assert "floor used for 3 of 5" in str(GradCheckReport([check]))


def test_an_all_zero_gradient_is_still_checked_and_says_so():
    a = np.ones(4)
    check = check_array_gradient(
        "a", lambda: 0.0 * float(a.sum()), a, np.zeros(4), nonzero_only=True
    )
    assert (check.nonzero, check.checked, check.zero_checked) == (0, 4, 4)
    assert "the gradient is zero everywhere" in check.describe()
    # A backward that returns 0 where the function does depend on the entry still fails.
    wrong = check_array_gradient("a", lambda: float(a.sum()), a, np.zeros(4), nonzero_only=True)
    assert wrong.max_rel_error == pytest.approx(1.0)


def test_a_kink_within_eps_is_measured_again_and_a_wrong_gradient_still_fails():
    # L = |a - c| with c 5e-6 above a: the true slope at a is -1, but the central difference
    # at eps = 1e-5 straddles the kink and reads -0.5 (error 0.5). What lesson 02 hit in the
    # whole network (a ReLU or max-pool unit crossing its kink): 1.3e-3 on a correct conv1.W.
    a, c = np.array([1.0]), 1.0 + 5e-6

    def loss() -> float:
        return float(abs(a[0] - c))

    plain = check_array_gradient("a", loss, a, np.array([-1.0]))
    assert plain.max_rel_error == pytest.approx(0.5, rel=1e-6)
    retried = check_array_gradient("a", loss, a, np.array([-1.0]), retry_above=1e-5)
    assert retried.max_rel_error < 1e-9 and retried.retried == 1
    assert "1 re-measured at eps/10, eps/100" in retried.describe()
    # A wrong backward (+1) is wrong at every eps (error 1.5 at eps, 2 below): it still fails.
    wrong = check_array_gradient("a", loss, a, np.array([1.0]), retry_above=1e-5)
    assert wrong.max_rel_error == pytest.approx(1.5, rel=1e-6) and wrong.retried == 1
