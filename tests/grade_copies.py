"""Helpers for the grader's tests: student copies, attacks written into them, the table read.

Every test runs ``python -m minialexnet grade --student COPY`` from THIS checkout, as a teacher
would, and reads the table the parent printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from minialexnet.exercises import find_regions, project_root, strip_regions, write_student_copy

ROOT = project_root()


def stripped_copy(folder: Path) -> Path:
    """A student copy with every exercise stripped (one per test module: it is copied)."""
    copy = folder / "course"
    write_student_copy(copy, layers=None)
    return copy


def fresh_student(stripped: Path, folder: Path) -> Path:
    """A fresh student copy (its package only: all the grader imports) to attack."""
    copy = folder / "student"
    shutil.copytree(stripped / "minialexnet", copy / "minialexnet")
    return copy


def put_back(copy: Path, *relative: str) -> None:
    """The teacher's own solution for these files."""
    for name in relative:
        shutil.copy2(ROOT / name, copy / name)


def patch(copy: Path, relative: str, old: str, new: str) -> None:
    """Replace the one occurrence of ``old`` in a student file (the attack goes there)."""
    path = copy / relative
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not found once in {relative}"
    path.write_text(text.replace(old, new))


def strip_one(copy: Path, relative: str, task: str) -> None:
    """Strip again the one region of a student file whose task starts with ``task``."""
    path = copy / relative
    lines = path.read_text().splitlines()
    (region,) = [r for r in find_regions(path, lines) if r.task.startswith(task)]
    path.write_text("\n".join(strip_regions(lines, [region])) + "\n")


def grade(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m minialexnet grade ARGS`` from this checkout (the teacher's install)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "minialexnet", "grade", *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def rows(stdout: str) -> dict[tuple[str, str], str]:
    """(layer, function) -> that table row, from the lines after the header."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("layer ")) + 2
    table = {}
    for line in lines[start:]:
        if line.startswith("-"):
            break
        layer, function = line.split()[:2]
        table[layer, function] = line
    return table


def points(row: str) -> tuple[int, int]:
    got, _, possible = row.split()[-3:]
    return int(got), int(possible)


def total(stdout: str) -> tuple[int, int]:
    last = stdout.splitlines()[-1]
    assert last.startswith("total"), stdout
    return points(last)


RELU_FORWARD = '        raise NotImplementedError("exercise activations: ReLU forward'


def relu_attack(copy: Path, code: str) -> None:
    """Put ``code`` (one indented line or several) where the student's ReLU forward goes."""
    path = copy / "minialexnet/layers/activations.py"
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(RELU_FORWARD))
    lines[at] = "\n".join("        " + line for line in code.splitlines())
    path.write_text("\n".join(lines) + "\n")
