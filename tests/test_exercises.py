"""The teacher's tools: student copies (``exercises``) and grading (``grade``).

This file is left out of student copies (it needs the reference bodies to test against).
Copies are made from ``snapshot``: a git checkout in a temporary folder holding the project's
tracked files and its new files that git does not ignore, i.e. the project as it will be
committed (a copy takes only what git tracks).
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from grade_copies import points, put_back, rows, total

from minialexnet.cli import main
from minialexnet.exercises import (
    find_regions,
    project_root,
    strip_regions,
    tracked_files,
    unfinished_tag,
    unfinished_tags,
    write_student_copy,
)
from minialexnet.grade import CHECKS

ROOT = project_root()


def run_in(copy: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` inside a student copy, importing the copy's package, not ours."""
    env = {**os.environ, "PYTHONPATH": str(copy), "MINIALEXNET_FIGURES": str(copy / "figures")}
    return subprocess.run(
        [sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=600
    )


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def git_checkout_of(root: Path, names: list[str], into: Path) -> Path:
    """A new git repository at ``into`` whose index holds ``names`` copied from ``root``."""
    for name in names:
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, into / name)
    git(into, "init", "-q")
    git(into, "add", "--", *names)
    return into


def project_snapshot(into: Path) -> Path:
    """The project as it will be committed (see the module docstring), as a git checkout."""
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    )
    names = [n for n in listing.stdout.decode().split("\0") if n and (ROOT / n).is_file()]
    return git_checkout_of(ROOT, names, into)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    return project_snapshot(tmp_path_factory.mktemp("snapshot"))


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
    with pytest.raises(NotImplementedError, match="exercise demo") as raised:
        namespace["f"](1)
    assert unfinished_tag(raised.value) == "demo"  # what the copy's conftest reads back


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
    with pytest.raises(ValueError, match=r"^exercises: OUTDIR must be a new or empty folder"):
        write_student_copy(tmp_path / "b", ["pool"])
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["keep.txt"]


@pytest.fixture(scope="module")
def student_copy(tmp_path_factory, snapshot) -> Path:
    """A student copy with every layer stripped."""
    out = tmp_path_factory.mktemp("student") / "course"
    write_student_copy(out, root=snapshot)
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
    # The copy grades itself (no --student): its own grader, its own layers.
    copy = tmp_path / "course"
    regions = write_student_copy(copy, ["pool", "lrn"])
    assert {r.tag for r in regions} == {"pool", "lrn"}

    result = run_in(copy, "-m", "minialexnet", "grade", "--layers", "pool,lrn,linear")
    assert result.returncode == 1, result.stdout + result.stderr
    table = rows(result.stdout)  # (layer, function) -> row
    for layer in ("pool", "lrn"):  # a row per function: the forwards not implemented, 0 points
        mine = [row for (name, _), row in table.items() if name == layer]
        assert any("not implemented" in row for row in mine), table
        assert all(points(row)[0] == 0 for row in mine), table
    linear = [row for (name, _), row in table.items() if name == "linear"]
    assert linear and all(points(row)[0] == points(row)[1] for row in linear), table
    assert "Traceback" not in result.stdout + result.stderr

    # the teacher puts the reference bodies back
    put_back(copy, *{r.path.relative_to(ROOT).as_posix() for r in regions})
    result = run_in(copy, "-m", "minialexnet", "grade", "--layers", "pool,lrn,linear")
    assert result.returncode == 0, result.stdout + result.stderr
    assert total(result.stdout) == (30, 30)


# -- what a copy holds ------------------------------------------------------------------------
def make_project(root: Path, *, tracked: bool = True) -> Path:
    """A tiny project with one exercise, a test, a README and a setup.cfg naming numba."""
    files = {
        "README.md": "# teacher's README: see minialexnet/cuda/\n",
        "setup.cfg": "[metadata]\nname = demo\n[options]\ninstall_requires =\n"
        "    numpy\n    numba>=0.59\n",
        "minialexnet/layers/demo.py": "def f(x):\n    # EXERCISE demo: double x.\n"
        "    return 2 * x\n    # END EXERCISE\n",
        "tests/test_demo.py": "def test_f():\n    pass\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    if tracked:
        git(root, "init", "-q")
        git(root, "add", "--", *files)
    return root


def test_a_copy_takes_only_the_files_git_tracks(tmp_path):
    # The tester's finding: untracked files of the teacher's checkout reached the copy.
    root = make_project(tmp_path / "teacher")
    (root / "teacher_solutions.md").write_text("the answers")
    (root / "tests" / "test_my_solution.py").write_text("def test_x(): pass\n")
    (root / "tests" / "test_demo.py").unlink()  # tracked, deleted from the work tree
    assert [p.name for p in tracked_files(root)] == ["README.md", "demo.py", "setup.cfg"]
    write_student_copy(tmp_path / "course", root=root)
    copied = sorted(
        p.relative_to(tmp_path / "course").as_posix()
        for p in (tmp_path / "course").rglob("*")
        if p.is_file()
    )
    assert copied == ["README.md", "minialexnet/layers/demo.py", "setup.cfg"]


def test_a_root_that_is_not_a_git_checkout_is_refused(tmp_path):
    root = make_project(tmp_path / "unpacked", tracked=False)
    with pytest.raises(FileNotFoundError, match=r"^exercises: .*unpacked must be a git checkout"):
        write_student_copy(tmp_path / "course", root=root)
    assert not (tmp_path / "course").exists()


def test_only_a_copy_has_unfinished_exercises(snapshot, tmp_path):
    # The copy's conftest skips tests only where exercises are stripped: never in the
    # teacher's checkout, whose docs and README template show the raise line as text.
    assert unfinished_tags(ROOT / "minialexnet") == set()
    write_student_copy(tmp_path / "course", ["pool", "lrn"], root=snapshot)
    assert unfinished_tags(tmp_path / "course" / "minialexnet") == {"pool", "lrn"}
    (tmp_path / "course" / "minialexnet" / "layers" / "pool.py").write_text("def broken(:\n")
    assert unfinished_tags(tmp_path / "course" / "minialexnet") == {"lrn"}


def test_stripping_conv_strips_im2col_too(snapshot, tmp_path):
    # The loop convolution and the im2col one compute the same thing: a copy that kept either
    # would hand over the other's answer.
    for asked in ("conv", "im2col"):
        regions = write_student_copy(tmp_path / asked, [asked], root=snapshot)
        assert {r.tag for r in regions} == {"conv", "im2col"}


def test_the_copys_readme_and_setup_cfg_fit_what_it_holds(student_copy, snapshot):
    # The tester's finding: the copy's README documented cuda/ and lesson 09, and its setup.cfg
    # installed numba-cuda and ~130 MB of NVIDIA wheels.
    config = configparser.ConfigParser(interpolation=None)
    config.read(student_copy / "setup.cfg")
    lists = [config["options"]["install_requires"]]
    lists += [config["options.extras_require"][key] for key in config["options.extras_require"]]
    # one requirement per line, "name[extras] >= version; marker", comments and blanks aside
    lines = [line.strip() for v in lists for line in v.splitlines()]
    requirements = [line for line in lines if line and not line.startswith("#")]
    names = {re.match(r"[A-Za-z0-9_.-]+", req)[0].lower() for req in requirements}
    assert {"numpy", "matplotlib", "pytest", "hypothesis"} <= names
    assert sorted(n for n in names if n.startswith(("numba", "nvidia"))) == []
    readme = (student_copy / "README.md").read_text()
    for absent in ("minialexnet/cuda", "minialexnet/fast", "09_gpu", "numba", "gpu_check"):
        assert absent not in readme.lower(), absent
    stripped = write_student_copy(student_copy.parent / "again", root=snapshot)
    for region in stripped:  # every exercise is listed with its place
        assert f"`{region.path.relative_to(snapshot).as_posix()}:{region.begin + 1}`" in readme
    assert "python -m pytest tests/test_pool.py" in readme
    # Nothing left in the copy needs numba: every module imports with numba unimportable.
    code = (
        "import importlib, pkgutil, sys; sys.modules['numba'] = None; import minialexnet\n"
        "for m in pkgutil.walk_packages(minialexnet.__path__, 'minialexnet.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "print(minialexnet.__file__)"
    )
    result = run_in(student_copy, "-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(student_copy / "minialexnet" / "__init__.py")


def test_a_full_copy_collects_its_tests_without_errors(student_copy):
    result = run_in(student_copy, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize(
    "where", ["a file", "below a file", "the project root", "inside the project"]
)
def test_exercises_onto_a_file_or_into_the_project_is_one_line_and_exit_2(where, tmp_path, capsys):
    # The tester's finding: `exercises some_file.txt` gave a traceback.
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    target = {"a file": notes, "below a file": notes / "course", "the project root": ROOT}.get(
        where, ROOT / "course"
    )
    assert main(["exercises", str(target), "--layers", "pool"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("exercises: OUTDIR must be"), err
    assert str(target) in err
    assert not (ROOT / "course").exists()
    assert notes.read_text() == "mine"


def test_exercises_into_a_relative_path_or_an_empty_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["exercises", "course", "--layers", "sgd"]) == 0
    assert "wrote a student copy to course" in capsys.readouterr().out
    assert "raise NotImplementedError" in (tmp_path / "course/minialexnet/optim.py").read_text()
    (tmp_path / "empty").mkdir()
    assert main(["exercises", str(tmp_path / "empty"), "--layers", "sgd"]) == 0
    assert (tmp_path / "empty" / "setup.cfg").is_file()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is Python 3.11+")
def test_unfinished_tag_reads_the_exercise_from_the_error():
    assert unfinished_tag(NotImplementedError("exercise pool: the window maxima.")) == "pool"
    assert unfinished_tag(NotImplementedError("subclasses implement this")) is None
    assert unfinished_tag(ValueError("exercise pool: not a NotImplementedError")) is None
    same = [NotImplementedError("exercise lrn: a"), NotImplementedError("exercise lrn: b")]
    assert unfinished_tag(ExceptionGroup("hypothesis", same)) == "lrn"  # noqa: F821
    mixed = [NotImplementedError("exercise lrn: a"), ValueError("a real bug")]
    assert unfinished_tag(ExceptionGroup("hypothesis", mixed)) is None  # noqa: F821
