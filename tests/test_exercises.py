"""The teacher's tools: student copies (``exercises``) and grading (``grade``).

This file is left out of student copies (it needs the reference bodies to test against).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minialexnet.exercises import find_regions, project_root, strip_regions, write_student_copy
from minialexnet.grade import CHECKS

ROOT = project_root()


def run_in(copy: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` inside a student copy, importing the copy's package, not ours."""
    env = {**os.environ, "PYTHONPATH": str(copy), "MINIALEXNET_FIGURES": str(copy / "figures")}
    return subprocess.run(
        [sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=600
    )


def test_strip_keeps_the_hint_and_raises():
    source = [
        "def f(x):",
        "    # EXERCISE demo: double x.",
        "    # hint: x (N,) -> out (N,)",
        "    out = 2 * x",
        "    return out",
        "    # END EXERCISE",
        "",
    ]
    regions = find_regions(Path("demo.py"), source)
    assert [(r.tag, r.begin, r.end) for r in regions] == [("demo", 1, 5)]
    student = strip_regions(source, regions)
    assert student == [
        "def f(x):",
        "    # EXERCISE demo: double x.",
        "    # hint: x (N,) -> out (N,)",
        '    raise NotImplementedError("exercise demo: double x.")',
        "",
    ]
    namespace: dict = {}
    exec("\n".join(student), namespace)
    with pytest.raises(NotImplementedError, match="exercise demo"):
        namespace["f"](1)


def test_markers_inside_a_string_are_not_regions():
    source = ['"""Docs that show the markers:', "# EXERCISE a: x", "# END EXERCISE", '"""']
    assert find_regions(Path("doc.py"), source) == []


@pytest.mark.parametrize(
    "source, message",
    [
        (["# EXERCISE a: x", "pass"], "never closed"),
        (["pass", "# END EXERCISE"], "without an EXERCISE"),
        (["# EXERCISE a: x", "# EXERCISE b: y", "# END EXERCISE"], "inside the region"),
    ],
)
def test_malformed_markers_name_the_line(source, message):
    with pytest.raises(ValueError, match=message):
        find_regions(Path("bad.py"), source)


def test_every_graded_layer_has_marked_regions():
    tags = {r.tag for r in _reference_regions()}
    assert set(CHECKS) <= tags, f"layers graded but never marked: {set(CHECKS) - tags}"


def _reference_regions():
    from minialexnet.exercises import all_regions

    return all_regions(ROOT)


def test_unknown_layer_and_non_empty_folder_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown layer"):
        write_student_copy(tmp_path / "a", ["convolution"])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        write_student_copy(tmp_path / "b", ["pool"])


@pytest.fixture(scope="module")
def student_copy(tmp_path_factory) -> Path:
    """A student copy with every layer stripped."""
    out = tmp_path_factory.mktemp("student") / "course"
    write_student_copy(out)
    return out


def test_student_copy_holds_no_solution_line(student_copy):
    """No line of code from any stripped region appears anywhere in the student copy."""
    solution_lines = set()
    for region in _reference_regions():
        lines = region.path.read_text().splitlines()[region.begin + 1 : region.end]
        for line in lines:
            code = line.strip()
            # Short lines ("return out", "else:") are not solutions; comments stay as hints.
            if len(code) >= 25 and not code.startswith("#"):
                solution_lines.add(code)
    assert solution_lines
    leaks = [
        (path.relative_to(student_copy).as_posix(), line.strip())
        for path in student_copy.rglob("*")
        if path.is_file() and path.suffix in (".py", ".md", ".sh", ".cfg", ".txt")
        for line in path.read_text().splitlines()
        if line.strip() in solution_lines
    ]
    assert leaks == []


def test_student_copy_leaves_out_the_gpu_kernels(student_copy):
    assert not (student_copy / "minialexnet" / "cuda").exists()
    assert not (student_copy / "minialexnet" / "fast").exists()
    assert not list((student_copy / "tests").glob("test_fast_*"))
    assert not list((student_copy / "tests").glob("test_cuda_*"))
    assert not (student_copy / "tests" / "test_exercises.py").exists()
    assert (student_copy / "setup.cfg").is_file()
    assert (student_copy / "lessons").is_dir()


def test_stripped_copy_grades_zero_then_full_marks_with_the_bodies_back(tmp_path):
    copy = tmp_path / "course"
    regions = write_student_copy(copy, ["pool", "lrn"])
    assert {r.tag for r in regions} == {"pool", "lrn"}

    result = run_in(copy, "-m", "minialexnet", "grade", "--layers", "pool,lrn,linear")
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "not implemented" in rows["pool"] and rows["pool"].rstrip().endswith("0 / 10")
    assert "not implemented" in rows["lrn"] and rows["lrn"].rstrip().endswith("0 / 10")
    assert rows["linear"].rstrip().endswith("10 / 10")
    assert "Traceback" not in result.stdout + result.stderr

    for region in regions:  # the teacher puts the reference bodies back
        relative = region.path.relative_to(ROOT)
        shutil.copy2(region.path, copy / relative)
    result = run_in(copy, "-m", "minialexnet", "grade", "--layers", "pool,lrn,linear")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].split()[-3:] == ["30", "/", "30"]


def test_student_copy_tests_fail_exactly_on_the_stripped_layer(tmp_path):
    copy = tmp_path / "course"
    write_student_copy(copy, ["pool"])
    stripped = run_in(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_pool.py")
    assert stripped.returncode == 1, stripped.stdout[-2000:]
    assert "NotImplementedError" in stripped.stdout
    pytest_args = ("-m", "pytest", "-q", "-p", "no:cacheprovider")
    untouched = run_in(copy, *pytest_args, "tests/test_lrn.py", "tests/test_linear.py")
    assert untouched.returncode == 0, untouched.stdout[-2000:]
