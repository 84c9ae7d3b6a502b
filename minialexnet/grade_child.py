"""The grader's child process: run a student's functions on the parent's inputs, return arrays.

The parent (``minialexnet.grade``) runs this file BY PATH from the teacher's install, as
``python -I grade_child.py STUDENT_DIR ENGINE INPUTS.npz RECORD.npz`` with a temporary folder
as its working directory. ``-I`` (isolated mode) ignores PYTHONPATH and the user's site folder
and leaves the script's own folder off ``sys.path``; this file then puts ``STUDENT_DIR`` first,
so ``import minialexnet`` is the student's package, and checks that it really is.

It imports nothing of minialexnet at module level (it must run before the student's package is
on the path) and holds no answers: the inputs file carries a plan (JSON: which class or
function to call on which arrays) and the arrays; this file only calls what the plan names and
writes every output array, or a one-line error, to ``RECORD.npz``, last of all with ``done``.
Nothing it writes is trusted: the parent judges the arrays against its own reference, and a
record without ``done`` (an early exit, a crash, a timeout) fails the whole layer.
Student code runs here with this process's full powers (same user, same files); what it cannot
do is reach the parent's memory, see the seed the inputs were drawn from, or change a verdict.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np


def one_line(error: BaseException, limit: int = 300) -> str:
    """``Type: message (file:line)`` on one line: where a student's code raised, never a
    traceback (a SyntaxError names its own file and line)."""
    if isinstance(error, SyntaxError):
        where = f" ({os.path.basename(error.filename or '?')}:{error.lineno})"
        text = f"{type(error).__name__}: {error.msg}{where}"
    else:
        frames = traceback.extract_tb(error.__traceback__)
        where = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
        text = f"{type(error).__name__}: {error}{where}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def problem(error: BaseException) -> str:
    """How a failed call is recorded: "not implemented" for an exercise still to write."""
    if isinstance(error, NotImplementedError):
        return "not implemented"
    return f"error: {one_line(error)}"


class Record:
    """The arrays to send back, keyed ``case/name``; a failure is a string under ``case/error``."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def put(self, key: str, value: Any) -> None:
        array = np.array(value)  # a copy: later student code cannot change what was returned
        if array.dtype.kind not in "biuf":
            raise TypeError(f"returned a {type(value).__name__}, not a numeric array")
        self.arrays[key] = array

    def attempt(self, key: str, call: Callable[[], dict[str, Any]]) -> bool:
        """Run ``call`` and keep its outputs under ``key/...``; on failure keep ``key/error``."""
        try:
            outputs = call()
            for name, value in outputs.items():
                self.put(f"{key}/{name}", value)
        except (Exception, SystemExit) as error:  # sys.exit in a forward fails that call only
            self.arrays[f"{key}/error"] = np.array(problem(error))
            self.arrays[f"{key}/message"] = np.array(one_line(error))  # for -v: which exercise
            return False
        return True


def run_layer_case(case: dict, package: Any, inputs: dict, record: Record) -> None:
    """Build ``case["class"]`` from the engine's package, set its parameters, run the forward
    (output ``out``) and, when the plan has ``G``, the backward (``dx`` and ``grad_<param>``)."""
    cid = case["id"]
    layer: Any = None

    def forward() -> dict[str, Any]:
        nonlocal layer
        init = {k: tuple(v) if isinstance(v, list) else v for k, v in case["init"].items()}
        layer = getattr(package, case["class"])(**init)
        for name in case.get("params", []):
            layer.params[name][...] = inputs[f"{cid}/{name}"]
        if case.get("eval"):
            layer.eval()
        return {"out": layer.forward(inputs[f"{cid}/x"])}

    if not record.attempt(f"{cid}/forward", forward):
        return
    if f"{cid}/G" in inputs:

        def backward() -> dict[str, Any]:
            dx = layer.backward(inputs[f"{cid}/G"])
            return {"dx": dx} | {f"grad_{k}": v for k, v in layer.grads.items()}

        record.attempt(f"{cid}/backward", backward)


def run_function_case(case: dict, inputs: dict, record: Record) -> None:
    """Call ``case["module"].case["function"]`` on its arguments: argument i is the array
    ``case/arg<i>`` or a JSON value (lists become tuples). Keep what it returns, named by
    ``outputs``, and the arrays it changed in place (``inplace``: argument numbers, kept as
    ``arg<i>``)."""
    cid = case["id"]

    def call() -> dict[str, Any]:
        function = getattr(importlib.import_module(case["module"]), case["function"])
        args = [
            inputs[f"{cid}/arg{i}"] if kind == "array" else tuple(v) if isinstance(v, list) else v
            for i, (kind, v) in enumerate(case["args"])
        ]
        result = function(*args, **case.get("kwargs", {}))
        names = case.get("outputs", [])
        if len(names) > 1 and (not isinstance(result, tuple) or len(result) != len(names)):
            raise TypeError(f"expected a tuple ({', '.join(names)}), got {type(result).__name__}")
        outputs = dict(zip(names, result if len(names) > 1 else (result,), strict=False))
        outputs |= {f"arg{i}": args[i] for i in case.get("inplace", [])}
        return outputs

    record.attempt(f"{cid}/call", call)


def import_student(student_dir: str, engine_package: str) -> Any:
    """Import the student's package from ``student_dir`` (and refuse any other copy)."""
    # Any other copy of the package on the path (an installed or editable teacher's one) goes:
    # the student's code must find only its own.
    sys.path[:] = [student_dir] + [
        entry
        for entry in sys.path
        if not os.path.isfile(os.path.join(entry or ".", "minialexnet", "__init__.py"))
    ]
    package = importlib.import_module(engine_package)
    where = os.path.realpath(package.__file__ or "")
    if not where.startswith(os.path.realpath(student_dir) + os.sep):
        raise ImportError(f"{engine_package} was imported from {where}, not from {student_dir}")
    return package


def main(argv: list[str]) -> int:
    student_dir, engine_package, inputs_path, record_path = argv
    with np.load(inputs_path, allow_pickle=False) as data:
        inputs = {key: data[key] for key in data.files}
    plan = json.loads(str(inputs.pop("plan")))
    record = Record()
    try:
        package = import_student(student_dir, engine_package)
    except (Exception, SystemExit) as error:
        record.arrays["import/error"] = np.array(f"import error: {one_line(error)}")
    else:
        for case in plan:
            if case["kind"] == "layer":
                run_layer_case(case, package, inputs, record)
            else:
                run_function_case(case, inputs, record)
    record.arrays["done"] = np.array(True)
    temporary = record_path + ".tmp"
    with open(temporary, "wb") as file:
        np.savez(file, **record.arrays)
    os.replace(temporary, record_path)  # the record appears whole, or not at all
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
