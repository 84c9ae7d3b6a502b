"""``python -m minialexnet grade [--student DIR]``: every exercise function graded, unfoolably.

A teacher runs this from the teacher's own install against a student copy (``--student DIR``;
without it, this checkout's own layers). What is trusted and what is not:

* **The parent** (this process) is trusted and never imports student code. For each layer it
  draws fresh random inputs from a seed drawn with ``secrets`` at grading time (``--seed``
  replays a grading), and adds hand-worked cases whose answers are written in
  ``grade_plans``.
* **The child**: each layer runs in a fresh ``python -I`` process (``grade_child.py``, copied
  from this install into a temporary folder, its working directory), with the student's DIR
  first on its path, so ``import minialexnet`` is the student's. It receives only the input
  arrays (never the seed, never an expected answer), calls the student's functions and writes
  the arrays they return to a record file; stdout and stderr go to a file the parent shows only
  under ``-v``, marked as student output. It is killed after ``timeout`` seconds (its whole
  process group). Student code can do anything inside it (exit, hang, print, patch modules,
  start threads) and none of it reaches the parent: a child that ends without its completion
  record, or runs out of time, fails every row of its layer with a one-line reason; an import
  or syntax error in the student's package shows as one line.
* **The verdicts** are the parent's alone: each returned array must have the expected shape,
  dtype and finite values and match the hand-worked values and this install's reference
  (``minialexnet.layers``, run here on the same inputs). Backward rows earn points only when
  their forward row passed, judged by central finite differences of the reference forward
  (``gradcheck``), never by the student's own forward.

Without ``--student`` the checkout grades itself, so the reference the parent uses is the code
being graded: the hand-worked cases are then what catches a wrong forward (in a student copy
the parent is the student's own code; a teacher grades with ``--student``).
The child runs as the same user as the parent: it is kept from the grader's state and verdicts
(separate process, no seed, the expected answers computed only after it ended, the parent made
undumpable so that it cannot be traced), not sandboxed from the file system: run the grader in
a container or as another user for that.

``--engine fast`` builds the classes from the student's (or this checkout's) ``minialexnet.fast``;
the helper functions it does not replace (``im2col``, ``col2im``, ``channel_window_sum``,
``log_softmax``, the loss, ``sgd_update``) are graded where they live, in the reference.

Rows: one per exercise function (``grade_plans``: 4 points for a layer's forward, 6 for its
backward, split across its functions; ``sgd`` 10). Exit status (``cli``): 0 only when at least
one layer was graded and every row passed. ``--json`` writes Gradescope's ``results.json``
(https://gradescope-autograders.readthedocs.io/en/latest/specs/: ``score``, ``tests`` of
``name``/``score``/``max_score``/``output``, ``visibility``, ``stdout_visibility``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write_text
from .grade_checks import Plan, Results, RowFailedError
from .grade_child import one_line
from .grade_plans import PLANS
from .model import ENGINES
from .safe_npz import read_npz

CHECKS = PLANS  # layer name -> its plan builder (the names are the EXERCISE tags)
CHILD = Path(__file__).resolve().with_name("grade_child.py")
DEFAULT_TIMEOUT = 60.0
OUTPUT_LIMIT = 2000  # characters of a child's stdout/stderr kept for -v
RECORD_LIMIT = 64 * 2**20  # bytes: the honest records are well under 1 MB


@dataclass
class Grade:
    """One graded function: its status ("ok", "wrong", "not implemented", "error: ...",
    "not graded: ..."), points, and what ``-v`` shows (the failing check, student output)."""

    layer: str
    function: str
    status: str
    points: int
    max_points: int
    max_error: float | None = None
    detail: str = ""
    student_output: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "ok" and self.points == self.max_points


@dataclass
class ChildRun:
    """What the parent learned from one child: its record (None if it never wrote a
    complete one), why not, and its output."""

    record: dict[str, np.ndarray] | None
    failure: str
    output: str


def student_root(student: str | Path | None) -> Path:
    """The folder whose ``minialexnet`` package is graded: DIR, or this checkout."""
    root = Path(__file__).resolve().parent.parent if student is None else Path(student)
    if not (root / "minialexnet" / "__init__.py").is_file():
        raise FileNotFoundError(
            f"grade: --student {root} must be a student copy (a folder holding "
            "minialexnet/__init__.py), but it has no minialexnet package"
        )
    return root.resolve()


def refuse_tracing() -> None:
    """Make this process undumpable (Linux ``prctl(PR_SET_DUMPABLE, 0)``), so a child of the
    same user can neither ptrace it nor read its memory through /proc (root still can)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # 4: PR_SET_DUMPABLE


def kill_group(process: subprocess.Popen) -> None:
    """Kill the child and anything it started (its own session), and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def read_record(path: Path) -> dict[str, np.ndarray]:
    """A child's record, refused (ValueError) if its arrays would take over ``RECORD_LIMIT``
    bytes (a forged record must not exhaust the parent's memory) or it is damaged."""
    try:
        with zipfile.ZipFile(path) as archive:
            size = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"not a zip archive: {error}") from None
    if size > RECORD_LIMIT:
        raise ValueError(f"its arrays take {size} bytes, over the {RECORD_LIMIT} expected at most")
    return read_npz(path)


def run_child(root: Path, package: str, plan: Plan, timeout: float) -> ChildRun:
    """Run one layer's plan in a fresh isolated child; read back its record."""
    with tempfile.TemporaryDirectory(prefix="minialexnet-grade-") as folder:
        inputs, record = Path(folder) / "inputs.npz", Path(folder) / "record.npz"
        np.savez(inputs, plan=np.array(json.dumps(plan.cases)), **plan.inputs)
        # run from a copy in the temporary folder: the child is not told where this install is
        child = Path(shutil.copy(CHILD, folder))
        command = [sys.executable, "-I", str(child), str(root), package, str(inputs), str(record)]
        with open(Path(folder) / "output.txt", "w+b") as output:
            process = subprocess.Popen(
                command,
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = process.wait(timeout=timeout)
                failure = "" if code == 0 else f"the child exited with code {code}, record unused"
            except subprocess.TimeoutExpired:
                failure = f"timed out after {timeout:g} s"
            kill_group(process)  # whatever it left running goes too, before its record is read
            output.seek(0)
            text = output.read(OUTPUT_LIMIT + 1).decode(errors="replace")
        if len(text) > OUTPUT_LIMIT:
            text = text[:OUTPUT_LIMIT] + "\n[... truncated]"
        arrays = None
        if not failure and not record.is_file():
            failure = "the child exited (code 0) before writing its completion record"
        elif not failure:
            try:
                arrays = read_record(record)
            except ValueError as error:
                failure = f"the completion record is unusable ({one_line(error)})"
            if arrays is not None and "done" not in arrays:
                arrays, failure = None, "the record has no completion mark"
        return ChildRun(arrays, failure, text)


def judge_layer(plan: Plan, run: ChildRun) -> list[Grade]:
    """Every row of one layer, judged here on the arrays the child returned."""
    grades: dict[str, Grade] = {}
    record = run.record or {}
    common = run.failure or str(record.get("import/error", ""))
    for row in plan.rows:
        grade = Grade(row.layer, row.function, "", 0, row.points, student_output=run.output)
        unmet = [need for need in row.needs if grades[need].status != "ok"]
        if common:
            grade.status = common if common.startswith("import error") else f"error: {common}"
        elif unmet:
            grade.status = f"not graded: needs {unmet[0]}"
        else:
            try:
                grade.max_error = row.judge(Results(record))
                grade.status, grade.points = "ok", row.points
            except RowFailedError as failed:
                grade.status, grade.detail = failed.status, failed.detail
            except (Exception, SystemExit) as error:  # the reference itself failed to run
                grade.status = f"error: the grader's reference failed: {one_line(error)}"
        grades[row.function] = grade
    return list(grades.values())


def draw_seed() -> int:
    """A fresh seed for a grading's random inputs, from the OS's entropy: no student code can
    know it in advance. Print it (``cli`` does) so that ``--seed`` can replay the grading."""
    return secrets.randbits(63)


def grade(
    layers: Iterable[str] | None = None,
    engine: str = "reference",
    student: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    seed: int | None = None,
) -> list[Grade]:
    """Grade the named layers (default: all) of ``student``'s package (default: this
    checkout's) on ``engine``'s classes, each layer in its own child (module docstring)."""
    names = list(CHECKS) if layers is None else list(layers)
    if not names:
        raise ValueError(f"grade: --layers names no layer; known: {','.join(CHECKS)}")
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"grade: unknown layer(s) {unknown}; known: {list(CHECKS)}")
    if engine not in ENGINES:
        raise ValueError(f"grade: --engine must be one of {tuple(ENGINES)}, got {engine!r}")
    if not timeout > 0:
        raise ValueError(f"grade: --timeout must be a positive number of seconds, got {timeout}")
    root = student_root(student)
    package = ENGINES[engine]
    if not (root / Path(*package.split("."))).is_dir():
        raise ValueError(
            f"grade: --engine {engine} is not available in {root} (it has no {package})"
        )
    seed = draw_seed() if seed is None else seed
    refuse_tracing()
    grades: list[Grade] = []
    for name in names:
        # one stream per layer, so --layers a,b draws the same inputs for b as a full grading
        rng = np.random.default_rng([seed, list(CHECKS).index(name)])
        plan = CHECKS[name](rng)
        grades += judge_layer(plan, run_child(root, package, plan, timeout))
    return grades


def grade_table(grades: list[Grade], verbose: bool = False) -> str:
    """The table: a row per function, the total, then each error in full; with ``verbose``
    first the failing checks' numbers and each layer's student output, marked as such."""
    lines: list[str] = []
    if verbose:
        for g in grades:
            if g.detail:
                lines.append(f"{g.layer}.{g.function}: {g.status}: {g.detail}")
        for layer in dict.fromkeys(g.layer for g in grades):
            text = next(g.student_output for g in grades if g.layer == layer)
            if text.strip():
                lines.append(f"student output of {layer} (not the grader's):")
                lines += [f"  student| {line}" for line in text.splitlines()]
        lines.append("")
    header = f"{'layer':<13}{'function':<21}{'result':<34}{'max error':>10}{'points':>10}"
    lines += [header, "-" * len(header)]
    for g in grades:
        error = "-" if g.max_error is None else f"{g.max_error:.1e}"
        status = g.status if len(g.status) <= 33 else g.status[:30] + "..."
        points = f"{g.points} / {g.max_points}"
        lines.append(f"{g.layer:<13}{g.function:<21}{status:<34}{error:>10}{points:>10}")
    total, possible = sum(g.points for g in grades), sum(g.max_points for g in grades)
    lines.append("-" * len(header))
    long = dict.fromkeys((g.layer, g.status) for g in grades if len(g.status) > 33)
    lines += [f"{layer}: {status}" for layer, status in long]
    lines.append(f"{'total':<78}{total:>5} / {possible}")
    return "\n".join(lines)


def gradescope_results(grades: list[Grade], seed: int | None = None) -> dict:
    """The grading as Gradescope's ``results.json`` (format: the module docstring); ``seed``,
    when given, is named in the overall output so the grading can be replayed."""
    tests = [
        {
            "name": f"{g.layer}: {g.function}",
            "score": g.points,
            "max_score": g.max_points,
            "output": g.status + (f"\n{g.detail}" if g.detail else ""),
            "visibility": "visible",
        }
        for g in grades
    ]
    total, possible = sum(g.points for g in grades), sum(g.max_points for g in grades)
    return {
        "score": total,
        "output": f"total {total} / {possible}"
        + ("" if seed is None else f" (inputs from --seed {seed})"),
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def write_results(path: str | Path, grades: list[Grade], seed: int | None = None) -> Path:
    """Write ``gradescope_results`` to ``path`` atomically."""
    results = gradescope_results(grades, seed)
    return atomic_write_text(path, json.dumps(results, indent=2) + "\n")
