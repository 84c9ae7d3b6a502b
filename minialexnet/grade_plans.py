"""What the grader asks of each layer, and how it judges the answers: one ``Plan`` per layer.

Every plan draws its random inputs from the generator it is given (seeded at grading time, in
the parent: the child sees only the arrays) and adds hand-worked cases whose answers are
written out next to them. Forward rows compare the child's outputs with those hand-worked
values and with this package's own reference (``minialexnet.layers``, trusted: it runs in the
parent, on copies of the same inputs); backward rows compare the returned gradients with
central finite differences of the reference forward. Points: 4 for a layer's forward and 6
for its backward, split across its functions; ``sgd`` (one rule) 10 on its own.
"""

from __future__ import annotations

import numpy as np

from . import layers as ref
from .grade_checks import (
    Plan,
    Results,
    RowFailedError,
    expect,
    expect_gradient,
    expect_layer_gradients,
    f64,
)
from .grade_plans_conv import conv_plan, im2col_plan, lrn_plan, pool_plan, reference
from .layers import loss as rloss
from .optim import sgd_update


def activations_plan(rng: np.random.Generator) -> Plan:
    """ReLU, Tanh, Sigmoid: a row for each forward (1, 1, 2) and each backward (2 each)."""
    plan = Plan("activations")
    # relu(-1, 0, 2) = (0, 0, 2); tanh(ln 2) = (4 - 1) / (4 + 1) = 0.6; sigmoid(ln 3) =
    # 1 / (1 + 1/3) = 0.75, sigmoid(0) = 0.5, and sigmoid(-800) = 0, sigmoid(800) = 1 without
    # an overflow to NaN.
    hands = {
        "ReLU": ([[-1, 0, 2]], [[0, 0, 2]]),
        "Tanh": ([[np.log(2), 0]], [[0.6, 0]]),
        "Sigmoid": ([[np.log(3), 0, -800, 800]], [[0.75, 0.5, 0, 1]]),
    }
    for cls, (x, want) in hands.items():
        # at least 0.1 away from ReLU's kink, where a finite difference (step 1e-5) is not defined
        x_random = rng.uniform(0.1, 2.0, (3, 10)) * rng.choice([-1.0, 1.0], (3, 10))
        G = rng.standard_normal((3, 10))
        plan.layer_case(f"{cls}_hand", cls, {}, f64(x))
        plan.layer_case(f"{cls}_random", cls, {}, x_random, None, G)

        def forward(
            results: Results, cls: str = cls, want: list = want, x: np.ndarray = x_random
        ) -> float:
            worst = expect("hand-worked", results.get(f"{cls}_hand", "forward", "out"), f64(want))
            want_random = getattr(ref, cls)().forward(x)
            return max(
                worst,
                expect(
                    "random vs reference",
                    results.get(f"{cls}_random", "forward", "out"),
                    want_random,
                ),
            )

        def backward(
            results: Results, cls: str = cls, x: np.ndarray = x_random, G: np.ndarray = G
        ) -> float:
            return expect_layer_gradients(results, f"{cls}_random", getattr(ref, cls)(), x, G, rng)

        plan.row(f"{cls}.forward", 2 if cls == "Sigmoid" else 1, forward)
        plan.row(f"{cls}.backward", 2, backward, f"{cls}.forward")
    return plan


def dropout_plan(rng: np.random.Generator) -> Plan:
    """Dropout in both modes: test-time scaling by hand; in training, properties of the mask
    the student's generator drew (each unit 0 or scaled x, about 1-p kept, the same seed the
    same mask) and dL/dx = dout times exactly that mask (the layer is linear in x)."""
    plan = Plan("dropout")
    p = 0.25
    x_hand = f64(np.arange(1, 201).reshape(2, 100))
    x = rng.uniform(0.5, 2.0, (4, 100)) * rng.choice([-1.0, 1.0], (4, 100))  # never 0
    G = rng.standard_normal((4, 100))
    scales = {"paper": (1 - p, 1.0), "inverted": (1.0, 1 / (1 - p))}  # (test, kept in training)
    for mode in scales:
        seed = int(rng.integers(2**31))
        plan.layer_case(
            f"{mode}_test", "Dropout", {"p": p, "mode": mode}, x_hand, None, G[:2, :], eval=True
        )
        plan.layer_case(
            f"{mode}_train", "Dropout", {"p": p, "mode": mode, "seed": seed}, x, None, G
        )
        plan.layer_case(f"{mode}_again", "Dropout", {"p": p, "mode": mode, "seed": seed}, x)

    def masks(results: Results) -> dict[str, np.ndarray]:
        """Each mode's training multiplier out / x, once the forward is known to be a mask."""
        found = {}
        for mode, (test, kept) in scales.items():
            expect(
                f"{mode} test time: x * {test}",
                results.get(f"{mode}_test", "forward", "out"),
                test * x_hand,
            )
            out = results.get(f"{mode}_train", "forward", "out")
            expect(
                f"{mode} training, the same seed again",
                results.get(f"{mode}_again", "forward", "out"),
                out,
            )
            check = np.where(out != 0, kept * x, 0.0)
            expect(f"{mode} training: each unit 0 or x * {kept:.4g}", out, check)
            fraction = float((out != 0).mean())
            if not 0.6 < fraction < 0.9:
                raise RowFailedError(
                    "wrong", f"{mode} training kept {fraction:.0%} of units, p = {p} keeps 75%"
                )
            found[mode] = out / x
        return found

    def forward(results: Results) -> float:
        masks(results)
        return 0.0

    def backward(results: Results) -> float:
        worst = 0.0
        for mode, multiplier in masks(results).items():
            got = results.get(f"{mode}_test", "backward", "dx")
            worst = max(worst, expect(f"{mode} test-time dx", got, scales[mode][0] * G[:2, :]))
            got = results.get(f"{mode}_train", "backward", "dx")
            worst = max(worst, expect(f"{mode} training dx = dout * mask", got, G * multiplier))
        return worst

    plan.row("forward", 4, forward)
    plan.row("backward", 6, backward, "forward")
    return plan


def linear_plan(rng: np.random.Generator) -> Plan:
    """Linear forward 3, backward 4; Flatten forward 1, backward 2."""
    plan = Plan("linear")
    # x = (1, 2); rows of W: (1, 0), (0, 1), (1, 1); b = (0, 1, 2) -> (1, 2+1, 3+2) = (1, 3, 5).
    hand = {"W": f64([[1, 0], [0, 1], [1, 1]]), "b": f64([0, 1, 2])}
    sizes = {"in_features": 2, "out_features": 3, "dtype": "float64"}
    plan.layer_case("linear_hand", "Linear", sizes, f64([[1, 2]]), hand)
    init = {"in_features": 12, "out_features": 5, "dtype": "float64"}
    params = {"W": rng.standard_normal((5, 12)), "b": rng.standard_normal(5)}
    x, G = rng.standard_normal((3, 12)), rng.standard_normal((3, 5))
    plan.layer_case("linear_random", "Linear", init, x, params, G)
    plan.layer_case("flatten_hand", "Flatten", {}, f64(np.arange(24).reshape(2, 3, 2, 2)))
    x4, G2 = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 60))
    plan.layer_case("flatten_random", "Flatten", {}, x4, None, G2)

    def linear_forward(results: Results) -> float:
        worst = expect(
            "hand-worked", results.get("linear_hand", "forward", "out"), f64([[1, 3, 5]])
        )
        want = reference(ref.Linear, init, params).forward(x)
        return max(
            worst,
            expect("random vs reference", results.get("linear_random", "forward", "out"), want),
        )

    def linear_backward(results: Results) -> float:
        return expect_layer_gradients(
            results, "linear_random", reference(ref.Linear, init, params), x, G, rng
        )

    def flatten_forward(results: Results) -> float:
        # C order: image n's row is its 12 entries in (c, h, w) order: 0..11 and 12..23.
        worst = expect(
            "hand-worked",
            results.get("flatten_hand", "forward", "out"),
            f64(np.arange(24).reshape(2, 12)),
        )
        return max(
            worst,
            expect(
                "random vs reference",
                results.get("flatten_random", "forward", "out"),
                x4.reshape(2, 60),
            ),
        )

    def flatten_backward(results: Results) -> float:
        return expect_layer_gradients(results, "flatten_random", ref.Flatten(), x4, G2, rng)

    plan.row("Linear.forward", 3, linear_forward)
    plan.row("Flatten.forward", 1, flatten_forward)
    plan.row("Linear.backward", 4, linear_backward, "Linear.forward")
    plan.row("Flatten.backward", 2, flatten_backward, "Flatten.forward")
    return plan


def loss_plan(rng: np.random.Generator) -> Plan:
    """``log_softmax`` (2), the cross-entropy's value (2) and its gradient dL/dlogits (6)."""
    plan = Plan("loss")
    LOSS = "minialexnet.layers.loss"
    plan.function_case("log_softmax_hand", LOSS, "log_softmax", [f64([[0, np.log(3)]])], ["out"])
    logits = 3 * rng.standard_normal((4, 6))
    logits[3] += 1e4  # huge logits: a softmax that does not subtract the row maximum overflows
    plan.function_case("log_softmax_random", LOSS, "log_softmax", [logits], ["out"])
    CE, outputs = "softmax_cross_entropy", ["loss", "dlogits"]
    plan.function_case("ce_hand", LOSS, CE, [f64([[0, np.log(3)]]), np.array([1])], outputs)
    plan.function_case("ce_big", LOSS, CE, [np.full((2, 10), 1e4), np.array([0, 9])], outputs)
    labels = rng.integers(0, 6, 4)
    plan.function_case("ce_random", LOSS, CE, [logits, labels], outputs)

    def log_softmax(results: Results) -> float:
        # logits (0, ln 3): p = (1/4, 3/4).
        worst = expect(
            "hand-worked",
            results.get("log_softmax_hand", "call", "out"),
            np.log(f64([[0.25, 0.75]])),
        )
        want = rloss.log_softmax(logits)
        return max(
            worst,
            expect("random vs reference", results.get("log_softmax_random", "call", "out"), want),
        )

    def value(results: Results) -> float:
        # logits (0, ln 3), label 1: loss = -ln(3/4); ten equal logits of 1e4: loss = ln 10.
        worst = expect("hand-worked", results.get("ce_hand", "call", "loss"), f64(-np.log(0.75)))
        worst = max(
            worst,
            expect(
                "ten equal logits of 1e4", results.get("ce_big", "call", "loss"), f64(np.log(10))
            ),
        )
        want = f64(rloss.softmax_cross_entropy(logits, labels)[0])
        return max(
            worst, expect("random vs reference", results.get("ce_random", "call", "loss"), want)
        )

    def gradient(results: Results) -> float:
        # dlogits = (p - onehot) / N = (1/4, 3/4 - 1) = (0.25, -0.25).
        worst = expect(
            "hand-worked", results.get("ce_hand", "call", "dlogits"), f64([[0.25, -0.25]])
        )
        z = logits.copy()
        analytic = results.get("ce_random", "call", "dlogits")
        return max(
            worst,
            expect_gradient(
                "random dlogits",
                lambda: rloss.softmax_cross_entropy(z, labels)[0],
                z,
                analytic,
                rng,
            ),
        )

    plan.row("log_softmax", 2, log_softmax)
    plan.row("cross_entropy", 2, value)
    plan.row("cross_entropy_grad", 6, gradient, "cross_entropy")
    return plan


def sgd_plan(rng: np.random.Generator) -> Plan:
    """The paper's update rule, in place: by hand, at random, and in float32 (10 points)."""
    plan = Plan("sgd")
    OPTIM, inplace = "minialexnet.optim", (0, 1)
    plan.function_case(
        "hand",
        OPTIM,
        "sgd_update",
        [f64([1.0]), f64([0.5]), f64([2.0]), 0.1, 0.9, 0.0005],
        [],
        inplace=inplace,
    )
    hyper = [
        float(rng.uniform(0.001, 0.1)),
        float(rng.uniform(0.5, 0.99)),
        float(rng.uniform(1e-4, 1e-2)),
    ]
    arrays = {
        dtype: [rng.standard_normal((3, 4)).astype(dtype) for _ in range(3)]
        for dtype in (np.float64, np.float32)
    }
    for dtype, (w, v, g) in arrays.items():
        plan.function_case(
            np.dtype(dtype).name, OPTIM, "sgd_update", [w, v, g, *hyper], [], inplace=inplace
        )

    def judge(results: Results) -> float:
        # v = 0.9*0.5 - 0.0005*0.1*1 - 0.1*2 = 0.45 - 0.00005 - 0.2 = 0.24995; w = 1 + v = 1.24995.
        worst = expect("hand-worked velocity", results.get("hand", "call", "arg1"), f64([0.24995]))
        worst = max(
            worst,
            expect("hand-worked parameter", results.get("hand", "call", "arg0"), f64([1.24995])),
        )
        for dtype, (w, v, g) in arrays.items():
            w, v, name = w.copy(), v.copy(), np.dtype(dtype).name
            sgd_update(w, v, g, *hyper)
            rtol = 1e-5 if dtype == np.float32 else 1e-12
            worst = max(
                worst,
                expect(f"{name} velocity vs reference", results.get(name, "call", "arg1"), v, rtol),
            )
            worst = max(
                worst,
                expect(
                    f"{name} parameter vs reference", results.get(name, "call", "arg0"), w, rtol
                ),
            )
        return worst

    plan.row("sgd_update", 10, judge)
    return plan


# layer name -> its plan, in the order ``grade`` runs them (the names are the EXERCISE tags).
PLANS = {
    "conv": conv_plan,
    "im2col": im2col_plan,
    "pool": pool_plan,
    "lrn": lrn_plan,
    "activations": activations_plan,
    "dropout": dropout_plan,
    "linear": linear_plan,
    "loss": loss_plan,
    "sgd": sgd_plan,
}
