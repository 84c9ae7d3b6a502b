"""``python -m minialexnet grade``: each layer's forward and backward graded, here or in a copy.

Nothing here knows the answers as arrays computed by the reference code, so a student copy can
ship this file as it is. Forward passes are checked against small values worked out by hand
(the arithmetic is written next to each) and against properties any correct implementation has
(a shifted-delta kernel shifts the image; groups keep their channels apart; the loop and the
im2col convolutions agree). Backward passes are checked against central finite differences
(``minialexnet.gradcheck``). A region still marked ``raise NotImplementedError`` shows as
"not implemented"; any other exception shows as an error, never a traceback.

Rows: ``conv`` (the loop version), ``im2col`` (the fast version with its im2col/col2im helpers),
``pool``, ``lrn``, ``activations`` (ReLU, tanh, sigmoid), ``dropout``, ``linear`` (with Flatten),
``loss`` (softmax cross-entropy) and ``sgd`` (the paper's update rule).
Points: 4 for a layer's forward, 6 for its backward; ``sgd`` (one update rule) 10 on its own.
``engine`` picks whose layers are graded: the reference (default) or the fast engine, which the
same checks hold to the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from types import ModuleType

import numpy as np

from .gradcheck import DEFAULT_THRESHOLD, GradCheckReport, check_array_gradient, check_layer
from .model import engine_layers

FORWARD_POINTS, BACKWARD_POINTS = 4, 6


@dataclass
class Grade:
    layer: str
    forward: str  # "ok", "wrong", "not implemented" or "error: ..."
    backward: str
    max_rel_error: float | None
    points: int
    max_points: int

    @property
    def passed(self) -> bool:
        return self.points == self.max_points


def close(a: np.ndarray, b: np.ndarray | list) -> bool:
    return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=1e-10, atol=1e-12)


def f64(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


# ----------------------------------------------------------------------------------------
# Forward checks: hand-worked values and properties. Each returns True when correct.
# ----------------------------------------------------------------------------------------
def conv_forward_ok(L: ModuleType, impl: str) -> bool:
    # x = 1..16 in a 4x4 image, an all-ones 2x2 kernel at stride 2, bias 1: each output is its
    # window's sum plus 1: 1+2+5+6+1 = 15, 3+4+7+8+1 = 23, 9+10+13+14+1 = 47, 11+12+15+16+1 = 55.
    conv = L.Conv2d(1, 1, 2, stride=2, impl=impl, dtype=np.float64)
    conv.params["W"][...] = 1.0
    conv.params["b"][...] = 1.0
    ok = close(conv.forward(f64(np.arange(1, 17).reshape(1, 1, 4, 4))), [[[[15, 23], [47, 55]]]])
    # A 3x3 kernel that is 1 at its top-left, padding 1: out[i, j] = x[i - 1, j - 1] (0 off-edge).
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 1, 5, 4))
    conv = L.Conv2d(1, 1, 3, padding=1, impl=impl, dtype=np.float64)
    conv.params["W"][...] = 0.0
    conv.params["W"][0, 0, 0, 0] = 1.0
    shifted = np.zeros_like(x)
    shifted[:, :, 1:, 1:] = x[:, :, :-1, :-1]
    ok &= close(conv.forward(x), shifted)
    # Groups: with groups=2, the filters of group 0 never see the channels of group 1.
    conv = L.Conv2d(
        4, 6, (3, 2), stride=(2, 1), padding=(1, 0), groups=2, impl=impl, dtype=np.float64
    )
    x = rng.standard_normal((2, 4, 7, 6))
    before = conv.forward(x)[:, :3].copy()
    x[:, 2:] += 5.0
    ok &= close(conv.forward(x)[:, :3], before)
    return bool(ok)


def conv_backward(L: ModuleType, impl: str) -> list[GradCheckReport]:
    rng = np.random.default_rng(2)
    conv = L.Conv2d(
        4, 6, (3, 2), stride=(2, 1), padding=(1, 0), groups=2, impl=impl, dtype=np.float64, rng=rng
    )
    return [check_layer(conv, rng.standard_normal((2, 4, 7, 6)))]


def pool_forward_ok(L: ModuleType) -> bool:
    x = f64(np.arange(1, 26).reshape(1, 1, 5, 5))
    # 2x2 at stride 2 on 1..25 (5x5): windows {1,2,6,7} -> 7, {3,4,8,9} -> 9,
    # {11,12,16,17} -> 17, {13,14,18,19} -> 19 (the last row/column are not covered).
    ok = close(L.MaxPool2d(2, 2).forward(x), [[[[7, 9], [17, 19]]]])
    # 3x3 at stride 2: windows at rows/cols 0 and 2 end at 13, 15, 23, 25 — the bottom-right.
    ok &= close(L.MaxPool2d(3, 2).forward(x), [[[[13, 15], [23, 25]]]])
    return bool(ok)


def pool_backward(L: ModuleType) -> list[GradCheckReport]:
    rng = np.random.default_rng(3)
    return [
        check_layer(L.MaxPool2d(3, 2), rng.standard_normal((2, 3, 9, 7))),
        check_layer(L.MaxPool2d(2, 2), rng.standard_normal((2, 3, 8, 6))),
    ]


def lrn_forward_ok(L: ModuleType) -> bool:
    # One pixel, channels x = (1, 2, 3), n = 3, k = 1, beta = 1.
    # paper, alpha = 1:   s = 1 + (1+4), 1 + (1+4+9), 1 + (4+9) = 6, 15, 14
    #                     out = 1/6, 2/15, 3/14
    # caffe, alpha = 1:   a = 1/3: s = 1 + 5/3, 1 + 14/3, 1 + 13/3 = 8/3, 17/3, 16/3
    #                     out = 3/8, 6/17, 9/16
    x = f64([1, 2, 3]).reshape(1, 3, 1, 1)
    paper = L.LocalResponseNorm(3, alpha=1.0, beta=1.0, k=1.0, convention="paper").forward(x)
    caffe = L.LocalResponseNorm(3, alpha=1.0, beta=1.0, k=1.0, convention="caffe").forward(x)
    return close(paper.ravel(), [1 / 6, 2 / 15, 3 / 14]) and close(
        caffe.ravel(), [3 / 8, 6 / 17, 9 / 16]
    )


def lrn_backward(L: ModuleType) -> list[GradCheckReport]:
    rng = np.random.default_rng(4)
    return [
        check_layer(
            L.LocalResponseNorm(5, 1e-2, 0.75, 2.0, "paper"), rng.standard_normal((2, 7, 4, 3))
        ),
        check_layer(
            L.LocalResponseNorm(3, 1e-1, 0.75, 1.0, "caffe"), rng.standard_normal((2, 6, 4, 3))
        ),
    ]


def activations_forward_ok(L: ModuleType) -> bool:
    # relu(-1, 0, 2) = (0, 0, 2); tanh(ln 2) = (4 - 1) / (4 + 1) = 0.6;
    # sigmoid(ln 3) = 1 / (1 + 1/3) = 0.75; sigmoid(0) = 0.5.
    return (
        close(L.ReLU().forward(f64([[-1, 0, 2]])), [[0, 0, 2]])
        and close(L.Tanh().forward(f64([[np.log(2), 0]])), [[0.6, 0]])
        and close(L.Sigmoid().forward(f64([[np.log(3), 0]])), [[0.75, 0.5]])
    )


def activations_backward(L: ModuleType) -> list[GradCheckReport]:
    rng = np.random.default_rng(5)
    return [
        check_layer(layer, rng.standard_normal((3, 10)))
        for layer in (L.ReLU(), L.Tanh(), L.Sigmoid())
    ]


def dropout_forward_ok(L: ModuleType) -> bool:
    x = f64(np.arange(1, 201).reshape(2, 100))
    ok = close(L.Dropout(0.25, "paper").eval().forward(x), 0.75 * x)
    ok &= close(L.Dropout(0.25, "inverted").eval().forward(x), x)
    for mode, kept_scale in (("paper", 1.0), ("inverted", 1 / 0.75)):
        out = L.Dropout(0.25, mode, seed=7).forward(x)
        kept = out != 0
        ok &= close(out[kept], kept_scale * x[kept]) and 0.5 < kept.mean() < 0.95
        ok &= close(L.Dropout(0.25, mode, seed=7).forward(x), out)  # the same seed, the same mask
    return bool(ok)


def dropout_backward(L: ModuleType) -> list[GradCheckReport]:
    rng = np.random.default_rng(6)
    return [
        check_layer(L.Dropout(0.5, mode, seed=1), rng.standard_normal((3, 10)))
        for mode in ("paper", "inverted")
    ]


def linear_forward_ok(L: ModuleType) -> bool:
    # x = (1, 2); rows of W: (1, 0), (0, 1), (1, 1); b = (0, 1, 2) -> (1, 2+1, 3+2) = (1, 3, 5).
    fc = L.Linear(2, 3, dtype=np.float64)
    fc.params["W"][...] = [[1, 0], [0, 1], [1, 1]]
    fc.params["b"][...] = [0, 1, 2]
    flat = L.Flatten().forward(f64(np.arange(24).reshape(2, 3, 2, 2)))
    return close(fc.forward(f64([[1, 2]])), [[1, 3, 5]]) and close(flat[1], np.arange(12, 24))


def linear_backward(L: ModuleType) -> list[GradCheckReport]:
    rng = np.random.default_rng(7)
    return [
        check_layer(L.Linear(12, 5, dtype=np.float64, rng=rng), rng.standard_normal((3, 12))),
        check_layer(L.Flatten(), rng.standard_normal((2, 3, 4, 5))),
    ]


def loss_forward_ok(L: ModuleType) -> bool:
    # logits (0, ln 3): p = (1/4, 3/4); label 1: loss = -ln(3/4); dlogits = p - onehot.
    loss, dlogits = L.softmax_cross_entropy(f64([[0.0, np.log(3)]]), np.array([1]))
    ok = np.isclose(loss, -np.log(0.75)) and close(dlogits, [[0.25, -0.25]])
    # Ten equal logits: p = 1/10 each, loss = ln 10 — also for logits of 1e4 (no overflow).
    big, _ = L.softmax_cross_entropy(np.full((2, 10), 1e4), np.array([0, 9]))
    return bool(ok and np.isclose(big, np.log(10)))


def loss_backward(L: ModuleType) -> list[GradCheckReport]:
    rng = np.random.default_rng(8)
    logits, labels = rng.standard_normal((4, 6)), np.array([0, 5, 2, 2])
    _, dlogits = L.softmax_cross_entropy(logits, labels)
    check = check_array_gradient(
        "logits", lambda: L.softmax_cross_entropy(logits, labels)[0], logits, dlogits, rng=rng
    )
    return [GradCheckReport([check])]


def sgd_ok(L: ModuleType) -> bool:
    # The paper's rule, one step: v = 0.9*0.5 - 0.0005*0.1*1 - 0.1*2 = 0.45 - 0.00005 - 0.2
    # = 0.24995; w = 1 + 0.24995 = 1.24995.
    from .optim import sgd_update

    w, v, g = f64([1.0]), f64([0.5]), f64([2.0])
    sgd_update(w, v, g, lr=0.1, momentum=0.9, weight_decay=0.0005)
    return close(v, [0.24995]) and close(w, [1.24995])


# layer name -> (forward check, backward check or None)
# Each check takes the engine's layer package (``model.engine_layers``) first.
Check = Callable[[ModuleType], bool]
BackwardCheck = Callable[[ModuleType], list[GradCheckReport]]
CHECKS: dict[str, tuple[Check, BackwardCheck | None]] = {
    "conv": (partial(conv_forward_ok, impl="naive"), partial(conv_backward, impl="naive")),
    "im2col": (partial(conv_forward_ok, impl="im2col"), partial(conv_backward, impl="im2col")),
    "pool": (pool_forward_ok, pool_backward),
    "lrn": (lrn_forward_ok, lrn_backward),
    "activations": (activations_forward_ok, activations_backward),
    "dropout": (dropout_forward_ok, dropout_backward),
    "linear": (linear_forward_ok, linear_backward),
    "loss": (loss_forward_ok, loss_backward),
    "sgd": (sgd_ok, None),
}


def attempt(check: Callable[[], object]) -> tuple[str | None, object]:
    """Run a check: (None, its value), or ("not implemented" / "error: ...", None)."""
    try:
        return None, check()
    except NotImplementedError:
        return "not implemented", None
    except Exception as error:  # a student's bug must show as a row, not a traceback
        return f"error: {type(error).__name__}: {error}", None


def grade_layer(name: str, engine: str = "reference") -> Grade:
    """Grade one row of ``CHECKS`` on ``engine``'s layers."""
    L = engine_layers(engine)
    forward_check, backward_check = CHECKS[name]
    problem, correct = attempt(partial(forward_check, L))
    forward = problem or ("ok" if correct else "wrong")
    if backward_check is None:  # a single check worth all the points
        points = FORWARD_POINTS + BACKWARD_POINTS
        return Grade(name, forward, "-", None, points if forward == "ok" else 0, points)
    problem, reports = attempt(partial(backward_check, L))
    error = None if problem else max(r.max_rel_error for r in reports)  # type: ignore[union-attr]
    backward = problem or ("ok" if error <= DEFAULT_THRESHOLD else "wrong")  # type: ignore[operator]
    points = (forward == "ok") * FORWARD_POINTS + (backward == "ok") * BACKWARD_POINTS
    return Grade(name, forward, backward, error, points, FORWARD_POINTS + BACKWARD_POINTS)


def grade(layers: Iterable[str] | None = None, engine: str = "reference") -> list[Grade]:
    """Grade the named rows (default: all) on ``engine``'s layers: the reference (what a
    student writes) unless asked otherwise; the same checks hold the fast engine to it."""
    names = list(CHECKS) if layers is None else list(layers)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"grade: unknown layer(s) {unknown}; known: {list(CHECKS)}")
    engine_layers(engine)  # an unknown or missing engine fails here, naming it
    return [grade_layer(n, engine) for n in names]


def grade_table(grades: list[Grade]) -> str:
    header = f"{'layer':<13}{'forward':<18}{'backward':<18}{'max rel error':>14}{'points':>9}"
    lines = [header, "-" * len(header)]
    for g in grades:
        error = "-" if g.max_rel_error is None else f"{g.max_rel_error:.1e}"
        lines.append(
            f"{g.layer:<13}{g.forward[:17]:<18}{g.backward[:17]:<18}{error:>14}"
            f"{g.points:>5} / {g.max_points}"
        )
    total, possible = sum(g.points for g in grades), sum(g.max_points for g in grades)
    lines += ["-" * len(header), f"{'total':<63}{total:>5} / {possible}"]
    errors = [
        (g.layer, s) for g in grades for s in (g.forward, g.backward) if s.startswith("error")
    ]
    lines += [f"{layer}: {message}" for layer, message in errors]
    return "\n".join(lines)
