"""The grader cannot be fooled: each attack a tester found, mounted on a real student copy.

Each test writes the attack into a fresh stripped student copy (``grade_copies``) and grades
it from this checkout with ``--layers`` limited to the attacked layer (and one more, to show
the grading goes on after it).
"""

from __future__ import annotations

from pathlib import Path

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
    stripped_copy,
    total,
)


@pytest.fixture(scope="module")
def stripped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stripped_copy(tmp_path_factory.mktemp("stripped"))


@pytest.fixture
def student(stripped: Path, tmp_path: Path) -> Path:
    return fresh_student(stripped, tmp_path)


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)"])
def test_an_exit_in_a_forward_fails_instead_of_passing(student: Path, exit_call: str) -> None:
    put_back(student, "minialexnet/layers/activations.py")
    patch(student, "minialexnet/layers/activations.py", "out = np.maximum(x, 0)", exit_call)
    result = grade("--student", str(student), "--layers", "activations,sgd")
    assert result.returncode == 1, result.stdout + result.stderr
    table = rows(result.stdout)
    assert points(table["activations", "ReLU.forward"]) == (0, 1)
    assert "error" in table["activations", "ReLU.forward"]
    assert points(table["sgd", "sgd_update"]) == (0, 10)  # graded after it, in its own child
    assert total(result.stdout)[0] <= 8  # at most Tanh and Sigmoid, never the ReLU rows
    if "os._exit" in exit_call:  # the child died: no completion record, the whole layer fails
        assert "before writing its completion record" in result.stdout
        assert total(result.stdout) == (0, 20)


THREAD_ATTACK = """
import threading, sys, time
def _forge():
    for _ in range(200):
        for name in ("minialexnet.grade", "minialexnet.grade_checks", "minialexnet.grade_plans"):
            module = sys.modules.get(name)
            if module is None:
                try:
                    module = __import__(name, fromlist=["x"])
                except Exception:
                    continue
            for attr in ("grade_layer", "judge_layer", "expect", "expect_layer_gradients"):
                setattr(module, attr, lambda *a, **k: 0.0)
        time.sleep(0.01)
threading.Thread(target=_forge, daemon=True).start()
"""


def test_a_thread_patching_the_grader_changes_nothing(student: Path) -> None:
    path = student / "minialexnet/layers/__init__.py"
    path.write_text(path.read_text() + THREAD_ATTACK)
    result = grade("--student", str(student), "--layers", "activations,pool,linear")
    assert result.returncode == 1, result.stdout + result.stderr
    assert total(result.stdout) == (0, 30), result.stdout


ZEROS = """
import numpy as np
from .base import Layer
class _Zeros(Layer):
    input_ndim = (2, 4)
    input_axes = "ND or NCHW"
    def _forward(self, x):
        return np.zeros_like(x)
    def _backward(self, dout):
        return np.zeros_like(dout)
class ReLU(_Zeros): pass
class Tanh(_Zeros): pass
class Sigmoid(_Zeros): pass
ElementwiseLayer = _Zeros
"""


def test_zero_forward_and_backward_earn_no_backward_points(student: Path) -> None:
    (student / "minialexnet/layers/activations.py").write_text(ZEROS)
    result = grade("--student", str(student), "--layers", "activations")
    table = rows(result.stdout)
    assert total(result.stdout) == (0, 10), result.stdout
    for cls in ("ReLU", "Tanh", "Sigmoid"):
        assert "wrong" in table["activations", f"{cls}.forward"]
        assert "not graded" in table["activations", f"{cls}.backward"]


def test_a_backward_is_judged_by_finite_differences_not_the_students_forward(
    student: Path,
) -> None:
    # Forward right, backward consistent with nothing (zeros): the backward row fails.
    put_back(student, "minialexnet/layers/activations.py")
    patch(
        student,
        "minialexnet/layers/activations.py",
        "return dout * (1 - out * out)",
        "return 0 * dout",
    )
    result = grade("--student", str(student), "--layers", "activations", "-v")
    table = rows(result.stdout)
    assert points(table["activations", "Tanh.forward"]) == (1, 1)
    assert "wrong" in table["activations", "Tanh.backward"]
    assert points(table["activations", "Tanh.backward"]) == (0, 2)
    assert total(result.stdout) == (8, 10)
    assert "finite difference" in result.stdout  # -v names the check and its numbers


def test_an_endless_loop_times_out_and_the_grading_goes_on(student: Path) -> None:
    put_back(student, "minialexnet/optim.py")
    relu_attack(student, "while True:\n    pass")
    result = grade("--student", str(student), "--layers", "activations,sgd", "--timeout", "3")
    assert result.returncode == 1
    table = rows(result.stdout)
    assert "timed out" in table["activations", "ReLU.forward"]
    assert all(points(r)[0] == 0 for k, r in table.items() if k[0] == "activations")
    assert points(table["sgd", "sgd_update"]) == (10, 10)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("raise RuntimeError('broken at import')", "RuntimeError: broken at import (pool.py:"),
        ("def broken(:\n    pass", "SyntaxError:"),
    ],
)
def test_an_import_or_syntax_error_is_one_line_in_the_table(
    student: Path, code: str, expected: str
) -> None:
    path = student / "minialexnet/layers/pool.py"
    path.write_text(path.read_text() + "\n" + code + "\n")
    result = grade("--student", str(student), "--layers", "pool,sgd")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    error_lines = [line for line in result.stdout.splitlines() if expected in line]
    assert error_lines and all("import error" in line for line in error_lines), result.stdout
    assert total(result.stdout) == (0, 20)


FAKE_TABLE = """print("sgd          sgd_update           ok      0.0e+00   10 / 10")
print("total" + " " * 73 + "90 / 90")
out = np.maximum(x, 0)
self._cache = out
return out"""


def test_a_student_print_cannot_forge_the_table(student: Path) -> None:
    relu_attack(student, FAKE_TABLE)
    result = grade("--student", str(student), "--layers", "activations,sgd")
    assert "90 / 90" not in result.stdout + result.stderr
    assert total(result.stdout) == (1, 20)  # ReLU.forward only; its backward is still stripped
    verbose = grade("--student", str(student), "--layers", "activations,sgd", "-v")
    forged = [line for line in verbose.stdout.splitlines() if "90 / 90" in line]
    assert forged and all(line.startswith("  student| ") for line in forged)
    assert total(verbose.stdout) == (1, 20)


def test_the_child_is_not_told_where_the_teachers_install_is(student: Path, tmp_path: Path) -> None:
    # A student who found the teacher's package could return the reference's answers.
    report = tmp_path / "seen.txt"
    spy = (
        f"import sys, os\nopen({str(report)!r}, 'w').write(repr([sys.argv, sys.path, os.getcwd()]))"
    )
    relu_attack(student, spy + "\nraise NotImplementedError")
    grade("--student", str(student), "--layers", "activations")
    seen = report.read_text()
    assert str(student) in seen
    assert str(ROOT) not in seen.replace(str(student), "")


FORGED_RECORD = """import sys, os
arrays = {"done": np.array(True)}
for case in [c + s for c in ("ReLU", "Tanh", "Sigmoid") for s in ("_hand", "_random")]:
    for name in ("forward/out", "backward/dx"):
        arrays[case + "/" + name] = np.zeros((3, 10))
with open(sys.argv[4], "wb") as file:
    np.savez(file, **arrays)
os._exit(0)"""


@pytest.mark.parametrize(
    ("forgery", "expected"),
    [
        ("import sys, os\nopen(sys.argv[4], 'wb').write(b'PK garbage')\nos._exit(0)", "unusable"),
        (FORGED_RECORD, "wrong"),
    ],
)
def test_a_forged_record_earns_nothing(student: Path, forgery: str, expected: str) -> None:
    # The child's record is only arrays; the parent judges them, whatever else it claims.
    relu_attack(student, forgery)
    result = grade("--student", str(student), "--layers", "activations")
    assert result.returncode == 1
    assert total(result.stdout) == (0, 10), result.stdout
    assert expected in result.stdout
