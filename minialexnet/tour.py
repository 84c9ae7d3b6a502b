"""``python -m minialexnet tour``: the parameter table, then every gradient check, narrated."""

from __future__ import annotations

import numpy as np

from .accounting import summarize
from .gradcheck import GradCheckReport, check_layer, check_model
from .layers import (
    Conv2d,
    Dropout,
    Flatten,
    Layer,
    Linear,
    LocalResponseNorm,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)
from .model import build_alexnet


def layer_cases() -> list[tuple[str, Layer, tuple[int, ...]]]:
    """One small float64 instance of every layer, with an input shape (distinct sizes per axis,
    so a transposed axis cannot hide)."""
    f64 = np.float64
    return [
        ("Conv2d 3x3 stride 2, pad 1", Conv2d(4, 6, 3, 2, 1, dtype=f64), (2, 4, 9, 7)),
        (
            "Conv2d 5x3, groups=2",
            Conv2d(4, 6, (5, 3), 1, (2, 1), groups=2, dtype=f64),
            (2, 4, 8, 6),
        ),
        ("Conv2d naive loops", Conv2d(3, 4, 3, 1, 1, impl="naive", dtype=f64), (2, 3, 6, 5)),
        ("MaxPool2d 3/2 (overlapping)", MaxPool2d(3, 2), (2, 3, 9, 7)),
        ("MaxPool2d 2/2", MaxPool2d(2, 2), (2, 3, 8, 6)),
        ("LRN, paper's alpha", LocalResponseNorm(5, 1e-2, 0.75, 2.0, "paper"), (2, 7, 4, 3)),
        ("LRN, Caffe's alpha/n", LocalResponseNorm(3, 1e-1, 0.75, 1.0, "caffe"), (2, 6, 4, 3)),
        ("ReLU", ReLU(), (3, 10)),
        ("Tanh", Tanh(), (3, 10)),
        ("Sigmoid", Sigmoid(), (3, 10)),
        ("Dropout (paper), training", Dropout(0.5, "paper", seed=1), (3, 10)),
        ("Dropout (inverted), training", Dropout(0.5, "inverted", seed=1), (3, 10)),
        ("Linear", Linear(12, 5, dtype=f64), (3, 12)),
        ("Flatten", Flatten(), (2, 3, 4, 5)),
    ]


def print_report(title: str, report: GradCheckReport) -> None:
    print(f"{title}\n{report}")


def network_check(max_samples: int = 5) -> GradCheckReport:
    """The whole 'mini' AlexNet in float64 on two random images under softmax cross-entropy.

    On two images many of its ReLU units are dead, so most entries of fc7.W (89%) have an
    exactly zero gradient: ``check_model`` samples among the non-zero ones (a sample of zeros
    would compare 0 with 0 and pass whatever the backward did), and each report line says for
    how many entries the relative error was measured against the 1%-of-largest floor.
    """
    model = build_alexnet("mini", dtype=np.float64, seed=0)
    x = np.random.default_rng(1).standard_normal((2, *model.input_shape))
    return check_model(model, x, np.array([3, 7]), max_samples=max_samples)


def run_tour() -> int:
    """Print the table and the checks; return 0 when every check passed, 1 otherwise."""
    print("AlexNet, the 'ungrouped' variant (227x227 input, no two-GPU split):\n")
    print(summarize(build_alexnet("ungrouped")).table())
    print(
        "\nThe three fully connected layers hold most of the parameters; the five conv layers"
        "\ndo most of the arithmetic, because each conv weight is reused at every position."
    )
    print(
        "\nGradient checks: each backward pass against central finite differences in float64."
        "\nA correct layer shows relative errors around 1e-11..1e-7; a bug shows 1e-2 or worse.\n"
    )
    rng = np.random.default_rng(0)
    failures = 0
    for title, layer, shape in layer_cases():
        x = rng.standard_normal(shape)
        report = check_layer(layer, x)
        failures += not report.passed
        print_report(title, report)
    print(
        "\nThe whole 'mini' AlexNet (32x32 input, 10 classes) under softmax cross-entropy, at"
        "\nentries with a non-zero gradient (a dead ReLU unit zeroes whole rows and columns):"
    )
    report = network_check()
    failures += not report.passed
    print(report)
    print(f"\n{'All checks passed.' if failures == 0 else f'{failures} check(s) FAILED.'}")
    return 0 if failures == 0 else 1
