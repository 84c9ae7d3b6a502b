"""The grader's plans for the convolution, pooling and LRN layers (see ``grade_plans``)."""

from __future__ import annotations

import numpy as np

from . import layers as ref
from .grade_checks import Plan, Results, expect, expect_layer_gradients, f64
from .layers import conv as rconv
from .layers import lrn as rlrn

CONV = "minialexnet.layers.conv"
# The grouped, strided, padded geometry every conv case uses: x (2, 4, 7, 6) -> (2, 6, 4, 5).
GEOMETRY = {"in_channels": 4, "out_channels": 6, "kernel_size": [3, 2], "stride": [2, 1]}
GEOMETRY |= {"padding": [1, 0], "groups": 2, "dtype": "float64"}


def reference(cls: type, init: dict, params: dict[str, np.ndarray] | None = None) -> ref.Layer:
    """A trusted reference layer built like the child's, holding copies of the same params."""
    init = {k: tuple(v) if isinstance(v, list) else v for k, v in init.items()}
    layer = cls(**init)
    for name, value in (params or {}).items():
        layer.params[name] = value.copy()
    return layer


def add_conv(plan: Plan, rng: np.random.Generator, impl: str, points: tuple[int, int]) -> Plan:
    """``Conv2d(impl=...)``: a hand-worked 4x4 case and a random grouped one; rows
    ``<impl>_forward`` and ``<impl>_backward`` worth ``points``."""
    # x = 1..16 in a 4x4 image, an all-ones 2x2 kernel at stride 2, bias 1: each output is its
    # window's sum plus 1: 1+2+5+6+1 = 15, 3+4+7+8+1 = 23, 9+10+13+14+1 = 47, 11+12+15+16+1 = 55.
    hand_init = {"in_channels": 1, "out_channels": 1, "kernel_size": 2, "stride": 2}
    hand_init |= {"impl": impl, "dtype": "float64"}
    ones = {"W": np.ones((1, 1, 2, 2)), "b": np.ones(1)}
    plan.layer_case("hand", "Conv2d", hand_init, f64(np.arange(1, 17).reshape(1, 1, 4, 4)), ones)
    init = GEOMETRY | {"impl": impl}
    params = {"W": rng.standard_normal((6, 2, 3, 2)), "b": rng.standard_normal(6)}
    x, G = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((2, 6, 4, 5))
    plan.layer_case("random", "Conv2d", init, x, params, G)
    trusted = GEOMETRY | {"impl": "im2col"}  # the reference's fast path: same sums, quicker

    def forward(results: Results) -> float:
        worst = expect(
            "hand-worked 4x4", results.get("hand", "forward", "out"), f64([[[[15, 23], [47, 55]]]])
        )
        want = reference(ref.Conv2d, trusted, params).forward(x)
        return max(
            worst, expect("random vs reference", results.get("random", "forward", "out"), want)
        )

    def backward(results: Results) -> float:
        return expect_layer_gradients(
            results, "random", reference(ref.Conv2d, trusted, params), x, G, rng
        )

    plan.row(f"{impl}_forward", points[0], forward)
    plan.row(f"{impl}_backward", points[1], backward, f"{impl}_forward")
    return plan


def conv_plan(rng: np.random.Generator) -> Plan:
    """The loop convolution: forward 4, backward 6."""
    return add_conv(Plan("conv"), rng, "naive", (4, 6))


def im2col_plan(rng: np.random.Generator) -> Plan:
    """``im2col`` and ``col2im`` on their own (2 points each), then the im2col Conv2d
    (forward 2, backward 4)."""
    plan = Plan("im2col")
    xpad = f64(np.arange(1, 17).reshape(1, 1, 4, 4))
    plan.function_case("im2col_hand", CONV, "im2col", [xpad, 2, 2, [2, 2]], ["cols"])
    # Each 2x2 window at stride 2 becomes a row, in (c, u, v) order.
    hand_cols = [[1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]]
    xpad_random = rng.standard_normal((2, 4, 9, 6))
    plan.function_case("im2col_random", CONV, "im2col", [xpad_random, 3, 2, [2, 1]], ["cols"])
    # col2im of all-ones for a 3x3 image, 2x2 windows at stride 1: each pixel counts the
    # windows that cover it: corners 1, edges 2, the centre 4.
    plan.function_case(
        "col2im_hand", CONV, "col2im", [np.ones((4, 4)), [1, 1, 3, 3], 2, 2, [1, 1]], ["dxpad"]
    )
    dcols = rng.standard_normal((2 * 4 * 5, 4 * 3 * 2))
    plan.function_case(
        "col2im_random", CONV, "col2im", [dcols, [2, 4, 9, 6], 3, 2, [2, 1]], ["dxpad"]
    )

    def im2col(results: Results) -> float:
        worst = expect(
            "hand-worked 4x4", results.get("im2col_hand", "call", "cols"), f64(hand_cols)
        )
        want = rconv.im2col(xpad_random, 3, 2, (2, 1))
        return max(
            worst, expect("random vs reference", results.get("im2col_random", "call", "cols"), want)
        )

    def col2im(results: Results) -> float:
        counts = f64([[1, 2, 1], [2, 4, 2], [1, 2, 1]]).reshape(1, 1, 3, 3)
        worst = expect(
            "hand-worked overlap counts", results.get("col2im_hand", "call", "dxpad"), counts
        )
        want = rconv.col2im(dcols, (2, 4, 9, 6), 3, 2, (2, 1))
        return max(
            worst,
            expect("random vs reference", results.get("col2im_random", "call", "dxpad"), want),
        )

    plan.row("im2col", 2, im2col)
    plan.row("col2im", 2, col2im)
    return add_conv(plan, rng, "im2col", (2, 4))


def pool_plan(rng: np.random.Generator) -> Plan:
    """Max pooling, 2x2 and overlapping 3x3 at stride 2: forward 4, backward 6."""
    plan = Plan("pool")
    x = f64(np.arange(1, 26).reshape(1, 1, 5, 5))
    plan.layer_case("hand_2x2", "MaxPool2d", {"kernel_size": 2, "stride": 2}, x)
    plan.layer_case("hand_3x3", "MaxPool2d", {"kernel_size": 3, "stride": 2}, x)
    shapes = {"random_3x3": (3, (2, 3, 9, 7)), "random_2x2": (2, (2, 3, 8, 6))}
    cases = {}
    for case, (K, shape) in shapes.items():
        # distinct values 0.01 apart in a random order: a finite difference step (1e-5) never
        # changes a window's winner, as it could for two normal draws a hair apart
        xr = (rng.permutation(int(np.prod(shape))) * 0.01 - 1.5).reshape(shape)
        G = rng.standard_normal((2, 3, (shape[2] - K) // 2 + 1, (shape[3] - K) // 2 + 1))
        cases[case] = (K, xr, G)
        plan.layer_case(case, "MaxPool2d", {"kernel_size": K, "stride": 2}, xr, None, G)

    def forward(results: Results) -> float:
        # 2x2 at stride 2 on 1..25 (5x5): windows {1,2,6,7} -> 7, {3,4,8,9} -> 9,
        # {11,12,16,17} -> 17, {13,14,18,19} -> 19 (the last row/column are not covered).
        worst = expect(
            "hand-worked 2x2",
            results.get("hand_2x2", "forward", "out"),
            f64([[[[7, 9], [17, 19]]]]),
        )
        # 3x3 at stride 2: windows at rows/cols 0 and 2 end at 13, 15, 23, 25, the bottom-right.
        worst = max(
            worst,
            expect(
                "hand-worked 3x3",
                results.get("hand_3x3", "forward", "out"),
                f64([[[[13, 15], [23, 25]]]]),
            ),
        )
        for case, (K, xr, _) in cases.items():
            want = ref.MaxPool2d(K, 2).forward(xr)
            worst = max(
                worst, expect(f"{case} vs reference", results.get(case, "forward", "out"), want)
            )
        return worst

    def backward(results: Results) -> float:
        return max(
            expect_layer_gradients(results, case, ref.MaxPool2d(K, 2), xr, G, rng)
            for case, (K, xr, G) in cases.items()
        )

    plan.row("maxpool_forward", 4, forward)
    plan.row("maxpool_backward", 6, backward, "maxpool_forward")
    return plan


def lrn_plan(rng: np.random.Generator) -> Plan:
    """``channel_window_sum`` (2), the LRN forward (2) in both alpha conventions, backward (6)."""
    plan = Plan("lrn")
    LRN = "minialexnet.layers.lrn"
    plan.function_case(
        "window_hand",
        LRN,
        "channel_window_sum",
        [f64([1, 2, 3, 4]).reshape(1, 4, 1, 1), 3],
        ["out"],
    )
    a = rng.standard_normal((2, 7, 3, 3))
    plan.function_case("window_random", LRN, "channel_window_sum", [a, 5], ["out"])
    one_pixel = f64([1, 2, 3]).reshape(1, 3, 1, 1)
    hand = {"size": 3, "alpha": 1.0, "beta": 1.0, "k": 1.0}
    plan.layer_case("paper_hand", "LocalResponseNorm", hand | {"convention": "paper"}, one_pixel)
    plan.layer_case("caffe_hand", "LocalResponseNorm", hand | {"convention": "caffe"}, one_pixel)
    randoms = {
        "paper_random": (
            {"size": 5, "alpha": 1e-2, "beta": 0.75, "k": 2.0, "convention": "paper"},
            (2, 7, 4, 3),
        ),
        "caffe_random": (
            {"size": 3, "alpha": 1e-1, "beta": 0.75, "k": 1.0, "convention": "caffe"},
            (2, 6, 4, 3),
        ),
    }
    cases = {}
    for case, (init, shape) in randoms.items():
        x, G = rng.standard_normal(shape), rng.standard_normal(shape)
        cases[case] = (init, x, G)
        plan.layer_case(case, "LocalResponseNorm", init, x, None, G)

    def window(results: Results) -> float:
        # channels (1, 2, 3, 4), n = 3: 1+2, 1+2+3, 2+3+4, 3+4 (truncated at the edges).
        worst = expect(
            "hand-worked",
            results.get("window_hand", "call", "out"),
            f64([3, 6, 9, 7]).reshape(1, 4, 1, 1),
        )
        want = rlrn.channel_window_sum(a, 5)
        return max(
            worst, expect("random vs reference", results.get("window_random", "call", "out"), want)
        )

    def forward(results: Results) -> float:
        # One pixel, channels x = (1, 2, 3), n = 3, k = 1, beta = 1.
        # paper, alpha = 1:  s = 1 + (1+4), 1 + (1+4+9), 1 + (4+9) = 6, 15, 14;
        #                    out = 1/6, 2/15, 3/14
        # caffe, alpha = 1:  a = 1/3: s = 8/3, 17/3, 16/3; out = 3/8, 6/17, 9/16
        paper = f64([1 / 6, 2 / 15, 3 / 14]).reshape(1, 3, 1, 1)
        caffe = f64([3 / 8, 6 / 17, 9 / 16]).reshape(1, 3, 1, 1)
        worst = expect("hand-worked paper", results.get("paper_hand", "forward", "out"), paper)
        worst = max(
            worst, expect("hand-worked caffe", results.get("caffe_hand", "forward", "out"), caffe)
        )
        for case, (init, x, _) in cases.items():
            want = reference(ref.LocalResponseNorm, init).forward(x)
            worst = max(
                worst, expect(f"{case} vs reference", results.get(case, "forward", "out"), want)
            )
        return worst

    def backward(results: Results) -> float:
        return max(
            expect_layer_gradients(results, case, reference(ref.LocalResponseNorm, init), x, G, rng)
            for case, (init, x, G) in cases.items()
        )

    plan.row("channel_window_sum", 2, window)
    plan.row("lrn_forward", 2, forward)
    plan.row("lrn_backward", 6, backward, "lrn_forward")
    return plan
