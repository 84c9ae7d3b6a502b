"""The paper's SGD rule, its initializers, and the divide-by-10 schedule (minialexnet.optim)."""

from __future__ import annotations

import numpy as np
import pytest

from minialexnet import build_alexnet
from minialexnet.layers import softmax_cross_entropy
from minialexnet.optim import PAPER_BIAS_ONE, SGD, PlateauSchedule, initialize, sgd_update

pytestmark = pytest.mark.exercise("sgd")


def test_sgd_update_matches_a_step_computed_by_hand():
    # lr 0.1, momentum 0.9, weight decay 0.5 (large, so its term is visible):
    #   v = 0.9*v - 0.5*0.1*w - 0.1*g ;  w = w + v
    # element 0: 0.9*0.2 - 0.05*1.0 - 0.1*0.3  = 0.18 - 0.05 - 0.03 = 0.10 -> w = 1.10
    # element 1: 0.9*0.0 - 0.05*(-2) - 0.1*(-1) = 0 + 0.10 + 0.10   = 0.20 -> w = -1.80
    # element 2: 0.9*(-1) - 0.05*4.0 - 0.1*0.0  = -0.9 - 0.2        = -1.1 -> w = 2.90
    w = np.array([1.0, -2.0, 4.0])
    v = np.array([0.2, 0.0, -1.0])
    g = np.array([0.3, -1.0, 0.0])
    sgd_update(w, v, g, lr=0.1, momentum=0.9, weight_decay=0.5)
    np.testing.assert_allclose(v, [0.10, 0.20, -1.1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(w, [1.10, -1.80, 2.90], rtol=0, atol=1e-15)


def test_paper_defaults_are_momentum_0_9_and_decay_0_0005():
    w, v, g = np.array([2.0]), np.array([1.0]), np.array([3.0])
    sgd_update(w, v, g, lr=0.01)
    # v = 0.9*1 - 0.0005*0.01*2 - 0.01*3 = 0.9 - 0.00001 - 0.03 = 0.86999
    np.testing.assert_allclose(v, [0.86999], rtol=1e-14)
    np.testing.assert_allclose(w, [2.86999], rtol=1e-14)


def test_decay_inside_the_velocity_equals_an_l2_term_in_the_gradient():
    # v ← m v − wd·lr·w − lr·g  is momentum SGD on  L + wd/2·|w|²  (gradient g + wd·w).
    rng = np.random.default_rng(0)
    w1, v1, g = rng.standard_normal((3, 4, 5))
    w2, v2 = w1.copy(), v1.copy()
    sgd_update(w1, v1, g, lr=0.03, momentum=0.8, weight_decay=0.2)
    sgd_update(w2, v2, g + 0.2 * w2, lr=0.03, momentum=0.8, weight_decay=0.0)
    np.testing.assert_allclose(w1, w2, rtol=1e-13)
    np.testing.assert_allclose(v1, v2, rtol=1e-13)


def test_sgd_update_keeps_float32():
    w, v, g = (np.ones(3, dtype=np.float32) for _ in range(3))
    sgd_update(w, v, g, lr=0.1)
    assert w.dtype == v.dtype == np.float32


def test_sgd_update_rejects_mismatched_arrays():
    w = np.zeros(3)
    with pytest.raises(ValueError, match=r"sgd_update: grad must be an array of param's shape"):
        sgd_update(w, np.zeros(3), np.zeros(4), lr=0.1)
    with pytest.raises(TypeError, match=r"sgd_update: velocity has dtype float32"):
        sgd_update(w, np.zeros(3, dtype=np.float32), np.zeros(3), lr=0.1)


def test_sgd_steps_every_parameter_with_its_own_velocity():
    # SGD.step is sgd_update (checked by hand above) applied to each parameter with its own
    # velocity, kept between steps: two steps from the same gradients, against copies.
    model = build_alexnet("mini", num_classes=4, dtype=np.float64, dropout=0)
    opt = SGD(model, lr=0.05, momentum=0.8, weight_decay=0.01)
    assert set(opt.velocities) == set(model.params())
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32))
    _, d = softmax_cross_entropy(model.forward(x), np.array([0, 3]))
    model.backward(d)
    grads = {k: g.copy() for k, g in model.grads().items()}
    expected = {k: (p.copy(), np.zeros_like(p)) for k, p in model.params().items()}
    for _ in range(2):
        opt.step()
        for name, (w, v) in expected.items():
            sgd_update(w, v, grads[name], lr=0.05, momentum=0.8, weight_decay=0.01)
    for name, p in model.params().items():
        w, v = expected[name]
        np.testing.assert_array_equal(opt.velocities[name], v, err_msg=name)
        np.testing.assert_array_equal(p, w, err_msg=name)
        assert np.any(v != 0), name


def test_sgd_refuses_a_negative_learning_rate():
    with pytest.raises(ValueError, match="SGD: lr must be finite and >= 0"):
        SGD(build_alexnet("mini"), lr=-1)


def test_paper_init_std_and_biases():
    model = initialize(build_alexnet("mini"), "paper", seed=3)
    for name, p in model.params().items():
        layer, kind = name.split(".")
        if kind == "W" and p.size > 10_000:
            assert p.std() == pytest.approx(0.01, rel=0.05), name
            assert abs(p.mean()) < 0.001, name
        if kind == "b":
            expected = 1.0 if layer in PAPER_BIAS_ONE else 0.0
            assert np.all(p == expected), name
    assert {"conv2", "conv4", "conv5", "fc6", "fc7"} == set(PAPER_BIAS_ONE)


def test_he_init_std_is_sqrt_two_over_fan_in():
    model = initialize(build_alexnet("mini"), "he", seed=3)
    fan_in = {"conv1.W": 3 * 5 * 5, "conv3.W": 64 * 3 * 3, "fc6.W": 576, "fc7.W": 256}
    for name, n in fan_in.items():
        assert model.params()[name].std() == pytest.approx(np.sqrt(2 / n), rel=0.05), name
    assert all(np.all(p == 0) for k, p in model.params().items() if k.endswith(".b"))


def test_init_is_reproducible_from_the_seed_and_rejects_unknown_schemes():
    a = initialize(build_alexnet("mini"), "paper", seed=7).params()
    b = initialize(build_alexnet("mini"), "paper", seed=7).params()
    c = initialize(build_alexnet("mini"), "paper", seed=8).params()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1.W"], c["conv1.W"])
    with pytest.raises(ValueError, match="initialize: scheme must be one of"):
        initialize(build_alexnet("mini"), "xavier")


def test_plateau_schedule_divides_by_ten_after_patience_epochs_without_improvement():
    opt = SGD(build_alexnet("mini"), lr=0.01)
    schedule = PlateauSchedule(opt, patience=2, max_drops=2)
    errors = [0.5, 0.4, 0.41, 0.40, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]
    drops = [schedule.step(e) for e in errors]
    # improvement resets the count; two epochs without it divide; at most two divisions
    assert drops == [False, False, False, True, False, False, True, False, False, False, False]
    assert opt.lr == pytest.approx(1e-4)
    restored = PlateauSchedule(SGD(build_alexnet("mini")), patience=2, max_drops=2)
    restored.load_state(schedule.state())
    assert restored.state() == schedule.state() == {"best": 0.3, "bad_epochs": 4, "drops": 2}
