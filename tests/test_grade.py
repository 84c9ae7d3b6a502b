"""The grader: rows, totals, usage errors, fresh inputs, results.json, both engines.

One stripped student copy per module; each test copies its package and writes solutions into
it (``grade_copies``). The attacks a tester found are in ``test_grade_attacks.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from grade_copies import (
    ROOT,
    fresh_student,
    grade,
    patch,
    points,
    put_back,
    relu_attack,
    rows,
    strip_one,
    stripped_copy,
    total,
)


@pytest.fixture(scope="module")
def stripped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stripped_copy(tmp_path_factory.mktemp("stripped"))


@pytest.fixture
def student(stripped: Path, tmp_path: Path) -> Path:
    return fresh_student(stripped, tmp_path)


def test_stripped_copy_scores_zero_and_full_solution_scores_everything(student: Path) -> None:
    result = grade("--student", str(student))
    assert result.returncode == 1, result.stdout + result.stderr
    table = rows(result.stdout)
    assert len(table) > 9  # a row per function, not one per layer
    assert all("not implemented" in r or "not graded" in r for r in table.values()), table
    assert total(result.stdout) == (0, 90)

    put_back(
        student,
        *[f"minialexnet/layers/{p.name}" for p in (ROOT / "minialexnet/layers").glob("*.py")],
    )
    put_back(student, "minialexnet/optim.py")
    result = grade("--student", str(student))
    assert result.returncode == 0, result.stdout + result.stderr
    assert total(result.stdout) == (90, 90)
    assert all(points(r)[0] == points(r)[1] for r in rows(result.stdout).values())


def test_the_student_package_is_graded_not_the_teachers(student: Path) -> None:
    # The teacher's checkout is on the grader's path and passes everything; the copy must
    # still score 0 on the layer it has not written.
    result = grade("--student", str(student), "--layers", "pool")
    assert total(result.stdout) == (0, 10), result.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--layers", ""), "--layers"),
        (("--layers", ","), "--layers"),
        (("--layers", " , "), "--layers"),
        (("--timeout", "0"), "--timeout"),
        (("--student", "/nonexistent/course"), "--student"),
    ],
)
def test_nothing_to_grade_is_a_usage_error_not_a_pass(args: tuple[str, ...], named: str) -> None:
    result = grade(*args)
    assert result.returncode == 2
    assert "total" not in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and named in result.stderr


def test_a_row_per_function_says_which_activation_failed(student: Path) -> None:
    put_back(student, "minialexnet/layers/activations.py")
    patch(
        student, "minialexnet/layers/activations.py", "out = np.tanh(x)", "out = 1.01 * np.tanh(x)"
    )
    strip_one(student, "minialexnet/layers/activations.py", "sigmoid forward")
    result = grade("--student", str(student), "--layers", "activations", "-v")
    table = rows(result.stdout)
    assert points(table["activations", "ReLU.forward"]) == (1, 1)
    assert points(table["activations", "ReLU.backward"]) == (2, 2)
    assert "wrong" in table["activations", "Tanh.forward"]
    assert "not implemented" in table["activations", "Sigmoid.forward"]
    detail = next(
        line for line in result.stdout.splitlines() if line.startswith("activations.Tanh.forward")
    )
    assert "max rel error 1.00e-02" in detail and "shape" in detail  # 1.01x: 1e-2 relative


def test_inputs_are_drawn_at_grading_time_and_replayed_by_seed(
    student: Path, tmp_path: Path
) -> None:
    # The student's forward saves every input it is given: two gradings must differ.
    seen = tmp_path / "seen"
    seen.mkdir()
    save = f"import uuid\nnp.save({str(seen)!r} + '/' + uuid.uuid4().hex, x)\n"
    save += "raise NotImplementedError"
    relu_attack(student, save)

    def random_input(*args: str) -> tuple[np.ndarray, str]:
        before = set(seen.iterdir())
        result = grade("--student", str(student), "--layers", "activations", *args)
        arrays = [np.load(path) for path in set(seen.iterdir()) - before]
        # the random case, not the hand one; and the seed the grading says it drew
        seed = re.search(r"inputs drawn from seed (\d+): --seed \1 ", result.stdout)
        assert seed is not None, result.stdout
        return next(a for a in arrays if a.shape == (3, 10)), seed[1]

    (first, seed), (second, _) = random_input(), random_input()
    assert not np.array_equal(first, second)  # no seed: fresh each grading
    assert np.array_equal(random_input("--seed", "5")[0], random_input("--seed", "5")[0])
    assert np.array_equal(random_input("--seed", seed)[0], first)  # the printed seed replays it


def test_json_is_gradescope_results_and_matches_the_table(student: Path, tmp_path: Path) -> None:
    put_back(student, "minialexnet/optim.py")
    path = tmp_path / "out" / "results.json"
    result = grade("--student", str(student), "--layers", "pool,sgd", "--json", str(path))
    results = json.loads(path.read_text())
    assert set(results) >= {"score", "tests"}
    assert (
        results["score"]
        == sum(t["score"] for t in results["tests"])
        == total(result.stdout)[0]
        == 10
    )
    assert all({"name", "score", "max_score", "output"} <= set(t) for t in results["tests"])
    assert sum(t["max_score"] for t in results["tests"]) == 20
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary left


def test_fast_engine_is_still_graded() -> None:
    pytest.importorskip("numba")
    result = grade("--engine", "fast", "--layers", "activations")
    assert result.returncode == 0, result.stdout + result.stderr
    assert total(result.stdout) == (10, 10)


def test_a_copy_without_the_fast_engine_is_a_usage_error(student: Path) -> None:
    result = grade("--student", str(student), "--engine", "fast")
    assert result.returncode == 2 and "--engine fast" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
