"""Fixtures shared across the test suite, and the rule for unwritten exercises.

Hypothesis strategies live in ``strategies.py``; the layer tests import them from there.

In a student copy (``python -m minialexnet exercises``) some layers raise
``NotImplementedError("exercise <tag>: ...")`` until the student writes them. A test that
merely *uses* such a layer (a whole-network test, a lesson, the CLI) is then skipped with a
reason naming the layer; only that layer's own tests, marked ``pytest.mark.exercise(tag)``,
fail, in one line. The rule is off in the teacher's checkout, where no exercise is stripped,
so nothing there is ever turned into a skip. Likewise a test that needs the fast engine or the
GPU path, which a student copy leaves out, is skipped there naming the missing package.
"""

from __future__ import annotations

import os

# The GPU path's tests (test_cuda_*.py) run in Numba's CUDA simulator unless
# MINIALEXNET_REAL_GPU=1 asks for the real GPU. Numba reads the switch once, when it is first
# imported, so it is set here, before anything else is imported.
if os.environ.get("MINIALEXNET_REAL_GPU") == "1":
    os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
else:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import functools
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

import minialexnet
from minialexnet import Sequential, build_alexnet
from minialexnet.exercises import UNFINISHED as UNFINISHED_MESSAGE
from minialexnet.exercises import unfinished_tag, unfinished_tags
from minialexnet.model import is_real_package

# The exercises stripped in the package under test: empty in the teacher's checkout.
UNFINISHED = unfinished_tags(Path(minialexnet.__file__).parent)
# The engines a student copy leaves out (they would hand over the solutions): empty in the
# teacher's checkout. A test that needs one is skipped there, naming it.
LEFT_OUT = {name for name in ("minialexnet.fast", "minialexnet.cuda") if not is_real_package(name)}
LEFT_OUT_REASON = "needs {name}, which a student copy leaves out"
# How an unwritten exercise shows in the output of a subprocess (a lesson, the CLI, a
# benchmark child) that a test reports.
UNFINISHED_IN_OUTPUT = re.compile("NotImplementedError: " + UNFINISHED_MESSAGE.pattern.lstrip("^"))

# In CI the hypothesis examples are derandomized: a run is reproducible, and a failure there is
# a failure every time. Local runs keep exploring fresh random examples.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def torch():
    """PyTorch, when importable: an optional yardstick, never a dependency of minialexnet.

    Every test that uses it sits beside NumPy-only checks of the same property, so a machine
    without PyTorch still checks everything; it only loses the cross-check.
    """
    return pytest.importorskip(
        "torch", reason="PyTorch is not installed (optional cross-check only)"
    )


@functools.cache
def _alexnet_float32(variant: str) -> Sequential:
    return build_alexnet(variant, dtype=np.float32, seed=0)


@pytest.fixture(scope="session")
def alexnet():
    """``alexnet(variant)``: a float32 AlexNet built once per session (the big variants hold
    ~62M parameters and take a second to initialise). Tests may run forward/backward on it but
    must not change its parameters, dtype or mode; build a fresh one for that."""
    return _alexnet_float32


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "exercise(*tags): this file holds the own tests of these exercise tags; in a student "
        "copy they fail while the layer is unwritten, where other tests skip",
    )


SKIP_REASON = "needs the {tag} layer, still an exercise (NotImplementedError)"
OWN_FAILURE = "the {tag} layer is still an exercise: NotImplementedError, write it"


def own_tags(item: pytest.Item) -> set[str]:
    return {tag for mark in item.iter_markers("exercise") for tag in mark.args}


def exercise_behind(call: pytest.CallInfo, report: pytest.TestReport) -> str | None:
    """The stripped exercise that made this test fail: raised here, or in a subprocess whose
    output the failure shows; None for any other failure."""
    error = call.excinfo.value if call.excinfo is not None else None
    # exercise_tag: set by stop_at_an_unwritten_exercise on the failure it raises.
    tag = getattr(error, "exercise_tag", None) or (unfinished_tag(error) if error else None)
    if tag is None:
        text = "\n".join([str(report.longrepr), *(content for _, content in report.sections)])
        tags = {m["tag"] for m in UNFINISHED_IN_OUTPUT.finditer(text)} & UNFINISHED
        tag = min(tags) if tags else None
    return tag if tag in UNFINISHED else None


def left_out_behind(call: pytest.CallInfo) -> str | None:
    """The left-out package whose absence made this test fail (its import, or
    ``engine_layers`` refusing the engine, which chains the import error); None otherwise."""
    error = call.excinfo.value if call.excinfo is not None else None
    while error is not None:
        if isinstance(error, ModuleNotFoundError) and error.name in LEFT_OUT:
            return error.name
        error = error.__cause__ or error.__context__
    return None


def skip_report(item: pytest.Item, report: pytest.TestReport, reason: str) -> None:
    report.outcome = "skipped"
    _, line, _ = item.location
    report.longrepr = (str(item.path), (line or 0) + 1, f"Skipped: {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    if not report.failed or call.when == "teardown":
        return report
    if LEFT_OUT and (name := left_out_behind(call)) is not None:
        skip_report(item, report, LEFT_OUT_REASON.format(name=name))
        return report
    tag = exercise_behind(call, report) if UNFINISHED else None
    if tag is None:
        return report
    if tag in own_tags(item):
        report.longrepr = OWN_FAILURE.format(tag=tag)
    else:
        skip_report(item, report, SKIP_REASON.format(tag=tag))
    return report


def stop_at_an_unwritten_exercise(test: Callable, own: set[str]) -> Callable:
    """``test`` (a hypothesis test's inner function), ending at once, as a skip or a one-line
    failure, when it meets an unwritten exercise: hypothesis would otherwise shrink an error
    that every input raises, ~10 s per test for nothing. pytest's skip and fail outcomes are
    not exceptions hypothesis shrinks."""

    @functools.wraps(test)
    def run(*args: object, **kwargs: object) -> object:
        try:
            return test(*args, **kwargs)
        except Exception as error:
            tag = unfinished_tag(error)
            if tag not in UNFINISHED:
                raise
            if tag in own:
                failure = pytest.fail.Exception(OWN_FAILURE.format(tag=tag), pytrace=False)
                failure.exercise_tag = tag  # type: ignore[attr-defined]
                raise failure from None
            pytest.skip(SKIP_REASON.format(tag=tag))

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not UNFINISHED:
        return
    for item in items:
        # The documented hook for wrapping a hypothesis test's body (pytest-trio uses it).
        handle = getattr(getattr(item, "obj", None), "hypothesis", None)
        if handle is not None:
            handle.inner_test = stop_at_an_unwritten_exercise(handle.inner_test, own_tags(item))
