"""The grader's judging tools, run in the trusted parent on the arrays a child sent back.

``Plan`` collects what one layer's child is asked to run (cases: a class or function, its
input arrays) and the rows that judge the answers. A row's judge reads the child's arrays
(``Results.get``), compares them with hand-worked values or with the parent's own reference
(``expect``), and checks gradients by central finite differences of the reference forward
(``expect_gradient``, on ``minialexnet.gradcheck``). A judge returns the worst relative error
or raises ``RowFailedError`` with the row's status and a one-line detail for ``grade -v``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .gradcheck import DEFAULT_THRESHOLD, check_array_gradient

FORWARD_RTOL = 1e-7  # float64 answers that agree up to summation order; a bug gives >= 1e-3


class RowFailedError(Exception):
    """A row that earns nothing: ``status`` for the table, ``detail`` for ``-v``."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(status)
        self.status, self.detail = status, detail


class Results:
    """The arrays of one child's record, keyed ``case/step/name`` (step: forward, backward or
    call); a failed step has ``case/step/error`` instead."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def get(self, case: str, step: str, name: str) -> np.ndarray:
        error = self.arrays.get(f"{case}/{step}/error")
        if error is not None:
            message = str(self.arrays.get(f"{case}/{step}/message", error))
            raise RowFailedError(str(error), f"{case}: {step} raised {message}")
        array = self.arrays.get(f"{case}/{step}/{name}")
        if array is None:
            raise RowFailedError(
                "error: no output", f"{case}: the child sent back no {step} {name}"
            )
        return array


def f64(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def check_returned(check: str, got: np.ndarray, shape: tuple, dtype: np.dtype) -> None:
    """Fail the row unless ``got`` has the shape and dtype wanted and is all finite."""
    if got.shape != tuple(shape):
        raise RowFailedError("wrong shape", f"{check}: shape {got.shape}, expected {tuple(shape)}")
    if got.dtype != dtype:
        raise RowFailedError("wrong dtype", f"{check}: dtype {got.dtype}, expected {dtype}")
    if not np.isfinite(got).all():
        raise RowFailedError(
            "wrong: NaN/inf", f"{check}: {np.size(got) - np.isfinite(got).sum()} NaN/inf"
        )


def expect(check: str, got: np.ndarray, expected: object, rtol: float = FORWARD_RTOL) -> float:
    """Compare a returned array with the expected one (same shape and dtype, all finite, equal
    within ``rtol`` of the expected array's scale); return the max relative error."""
    want = np.asarray(expected)
    check_returned(check, got, want.shape, want.dtype)
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-300)
    abs_error = float(np.abs(got.astype(np.float64) - want).max(initial=0.0))
    rel_error = abs_error / scale
    if rel_error > rtol:
        raise RowFailedError(
            "wrong",
            f"{check}: max abs error {abs_error:.2e}, max rel error {rel_error:.2e} "
            f"(tolerance {rtol:.0e}), shape {want.shape}",
        )
    return rel_error


def expect_gradient(
    check: str,
    loss: Callable[[], float],
    array: np.ndarray,
    analytic: np.ndarray,
    rng: np.random.Generator,
) -> float:
    """The returned gradient ``analytic`` of ``loss`` (the REFERENCE forward) in ``array``
    against central differences; ``array`` is perturbed in place and restored."""
    check_returned(check, analytic, array.shape, array.dtype)
    report = check_array_gradient(check, loss, array, analytic, rng=rng)
    if report.max_rel_error > DEFAULT_THRESHOLD:
        raise RowFailedError(
            "wrong",
            f"{check}: max rel error {report.max_rel_error:.2e} at {report.worst_index} "
            f"(returned {report.analytic:+.6e}, finite difference {report.numeric:+.6e}; "
            f"threshold {DEFAULT_THRESHOLD:.0e}), shape {array.shape}",
        )
    return report.max_rel_error


def expect_layer_gradients(
    results: Results,
    case: str,
    reference: Any,
    x: np.ndarray,
    G: np.ndarray,
    rng: np.random.Generator,
) -> float:
    """dx and every parameter gradient a child returned for layer ``case`` against finite
    differences of ``sum(reference.forward(x) * G)``, the reference layer holding the same
    parameters."""
    x = x.copy()

    def loss() -> float:
        return float(np.sum(reference.forward(x) * G))

    worst = expect_gradient(f"{case} dx", loss, x, results.get(case, "backward", "dx"), rng)
    for name, param in reference.params.items():
        analytic = results.get(case, "backward", f"grad_{name}")
        worst = max(worst, expect_gradient(f"{case} d{name}", loss, param, analytic, rng))
    return worst


@dataclass
class Row:
    """One graded function: its points, its judge, and the rows it needs passed first (a
    backward earns nothing unless its forward is right)."""

    layer: str
    function: str
    points: int
    judge: Callable[[Results], float]
    needs: tuple[str, ...] = ()


@dataclass
class Plan:
    """One layer's child job: cases (JSON for the child), their input arrays, and the rows."""

    layer: str
    cases: list[dict] = field(default_factory=list)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)

    def layer_case(
        self,
        case: str,
        cls: str,
        init: dict,
        x: np.ndarray,
        params: dict[str, np.ndarray] | None = None,
        G: np.ndarray | None = None,
        *,
        eval: bool = False,
    ) -> str:
        """Ask the child to build ``cls(**init)`` from the graded engine, set ``params``, run
        the forward on ``x`` and, given ``G``, the backward."""
        params = params or {}
        self.cases.append(
            {"id": case, "kind": "layer", "class": cls, "init": init, "params": list(params)}
            | {"eval": eval}
        )
        self.inputs[f"{case}/x"] = x
        self.inputs |= {f"{case}/{name}": value for name, value in params.items()}
        if G is not None:
            self.inputs[f"{case}/G"] = G
        return case

    def function_case(
        self,
        case: str,
        module: str,
        function: str,
        args: list,
        outputs: list[str],
        *,
        kwargs: dict | None = None,
        inplace: tuple[int, ...] = (),
    ) -> str:
        """Ask the child to call ``module.function(*args, **kwargs)`` (arrays travel as
        arrays, other arguments as JSON) and return ``outputs`` and the ``inplace`` arrays."""
        spec = []
        for i, arg in enumerate(args):
            if isinstance(arg, np.ndarray):
                self.inputs[f"{case}/arg{i}"] = arg
                spec.append(["array", i])
            else:
                spec.append(["value", arg])
        self.cases.append(
            {"id": case, "kind": "function", "module": module, "function": function}
            | {"args": spec, "outputs": outputs, "kwargs": kwargs or {}, "inplace": list(inplace)}
        )
        return case

    def row(
        self, function: str, points: int, judge: Callable[[Results], float], *needs: str
    ) -> None:
        self.rows.append(Row(self.layer, function, points, judge, needs))
