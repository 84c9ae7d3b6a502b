"""Student copies of the project: every marked solution region replaced by its hint.

The reference code marks each region a student should write, in comments that read as part of
the code:

    def _forward(self, x):
        # EXERCISE pool: take the running maximum over the K*K window offsets.
        # hint: x (N, C, H, W) -> out (N, C, OH, OW), OH = (H - K) // S + 1; keep argmax.
        ...the reference code...
        # END EXERCISE

``write_student_copy`` copies the project and replaces the code between the first comment block
and ``# END EXERCISE`` by ``raise NotImplementedError("exercise <tag>: <task>")``, keeping the
EXERCISE and hint lines. Tags name the layer (``conv``, ``im2col``, ``pool``, ``lrn``,
``activations``, ``dropout``, ``linear``, ``loss``, ``sgd``); ``layers`` picks which to strip.
``conv`` and ``im2col`` are two codings of one convolution, so stripping either strips both
(``SAME_MATH``): a copy that kept one would hand over the other's answer.

The rules of a copy, and why:

* **Only what git tracks** (``git ls-files``), so nothing the teacher keeps beside the code
  (``teacher_solutions.md``, notes, datasets, training runs) reaches students. A root that is
  not a git checkout is refused: there is no safe way to tell its course files from the rest.
* **No solution anywhere.** The regions cover exactly the reference (``minialexnet/layers/``,
  plus the SGD rule in ``optim.py``); the tests check the layers with finite differences,
  properties and values worked out by hand, never with a second implementation. Left out
  (``EXCLUDED``), because each holds the same math written again:
    - ``minialexnet/fast/`` and ``tests/test_fast_*``: the tuned CPU engine, every layer again;
    - ``minialexnet/cuda/``, ``tests/test_cuda_*``, ``lessons/09_*``: the GPU kernels and their
      lesson, every layer again in CUDA;
    - ``tests/test_exercises*.py``, ``tests/test_grade*.py``: the teacher's tests of this tool and
      of the grader, which put the reference bodies into copies (and make copies, which a
      copy, not a git checkout, cannot);
    - ``.ci/``: the teacher's CI script, which installs the GPU test extra;
    - ``figures/``: the lessons' rendered output (the lessons draw them again).
  Kept, after checking they hold no stripped region's answer: ``gradcheck.py`` (finite
  differences of whatever a layer computes), ``grade.py`` (hand-worked values and gradient
  checks), ``accounting.py`` and ``tour.py`` (shapes and counts), ``torch_twin.py`` (maps each
  layer to PyTorch's module of the same name; PyTorch is an optional yardstick, and the twin
  holds no NumPy code of a layer), the lessons 01-08 and ``docs/``.
* **README.md and setup.cfg are rewritten** for what the copy holds (``student_files``): a
  student README (what to write, how to test, how grading works) and packaging without
  Numba, numba-cuda or NVIDIA's wheels (nothing outside ``fast/`` and ``cuda/`` imports them).
* **Its tests fail only where a layer is missing.** ``tests/conftest.py`` turns the
  ``NotImplementedError`` of an unwritten exercise into a skip ("needs the pool layer, still an
  exercise") in every test but that layer's own tests (marked ``pytest.mark.exercise(tag)``),
  where it stays a one-line failure. ``unfinished_tag`` reads the tag from the error.

Without ``fast/`` the copy's default engine is the reference (``model.default_engine``), so
the whole network trains on the student's own layers.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import re
import shutil
import subprocess
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

BEGIN = re.compile(r"^(?P<indent>\s*)# EXERCISE (?P<tag>[a-z0-9_]+): (?P<task>.+)$")
HINT = re.compile(r"^\s*# hint: ")
END = re.compile(r"^\s*# END EXERCISE\s*$")
# What a stripped region raises, and how its tag is read back from the error (conftest, grade).
RAISED = "exercise {tag}: {task}"
UNFINISHED = re.compile(r"^exercise (?P<tag>[a-z0-9_]+): ")

# Never copied into a student copy (the module docstring says why, for each).
EXCLUDED = (
    ".ci",
    "figures",
    "minialexnet/cuda",
    "minialexnet/fast",
    "tests/test_fast_*",
    "tests/test_cuda_*",
    "tests/test_exercises*.py",
    "tests/test_grade*.py",
    "lessons/09_*",
)
# Written for the copy instead of copied (student_files.py).
REWRITTEN = ("README.md", "setup.cfg")
# Tags whose regions solve each other: the loop convolution and the im2col one.
SAME_MATH = ({"conv", "im2col"},)


@dataclass(frozen=True)
class Region:
    """One marked region: file, tag, task line, and its line span (0-based, END inclusive)."""

    path: Path
    tag: str
    task: str
    begin: int
    end: int


def comment_lines(lines: list[str]) -> set[int]:
    """The (0-based) lines that hold a real comment, not text inside a string (this module's
    own docstring shows the markers without being an exercise)."""
    source = io.StringIO("\n".join(lines) + "\n")
    return {
        token.start[0] - 1
        for token in tokenize.generate_tokens(source.readline)
        if token.type == tokenize.COMMENT
    }


def find_regions(path: Path, lines: list[str]) -> list[Region]:
    """Every EXERCISE region of one file; raise ValueError on an unterminated or nested one."""
    regions: list[Region] = []
    open_at: int | None = None
    match = None
    comments = comment_lines(lines)
    for number, line in enumerate(lines):
        if number not in comments:
            continue
        if BEGIN.match(line):
            if open_at is not None:
                raise ValueError(
                    f"{path}:{number + 1}: EXERCISE inside the region opened at line {open_at + 1}"
                )
            open_at, match = number, BEGIN.match(line)
        elif END.match(line):
            if open_at is None or match is None:
                raise ValueError(f"{path}:{number + 1}: END EXERCISE without an EXERCISE")
            regions.append(Region(path, match["tag"], match["task"], open_at, number))
            open_at = None
    if open_at is not None:
        raise ValueError(f"{path}:{open_at + 1}: EXERCISE region is never closed")
    return regions


def strip_regions(lines: list[str], regions: list[Region]) -> list[str]:
    """Replace each region's code by ``raise NotImplementedError``, keeping its comment lines."""
    out: list[str] = []
    position = 0
    for region in regions:
        out += lines[position : region.begin]
        header = [lines[region.begin]]
        i = region.begin + 1
        while i < region.end and HINT.match(lines[i]):
            header.append(lines[i])
            i += 1
        indent = BEGIN.match(lines[region.begin])["indent"]  # type: ignore[index]
        out += header
        message = RAISED.format(tag=region.tag, task=region.task)
        out.append(f'{indent}raise NotImplementedError("{message}")')
        position = region.end + 1
    out += lines[position:]
    return out


def unfinished_tag(error: BaseException) -> str | None:
    """The tag of the unwritten exercise that raised ``error``, else None. An exception group
    (hypothesis may gather failures) counts when all its members are the same exercise's."""
    members = getattr(error, "exceptions", None)  # an ExceptionGroup (Python >= 3.11)
    if isinstance(members, tuple) and members:
        tags = {unfinished_tag(member) for member in members}
        return tags.pop() if len(tags) == 1 else None
    if isinstance(error, NotImplementedError):
        match = UNFINISHED.match(str(error))
        return match["tag"] if match else None
    return None


def unfinished_tags(package: Path) -> set[str]:
    """The exercise tags still stripped in the package folder ``package`` (empty in the
    teacher's checkout): the ``raise NotImplementedError("exercise <tag>: ...")`` statements
    strip_regions wrote, found as statements (not as text: docs and templates show them too).
    A file that does not parse is passed over: importing it shows its error where it belongs."""
    tags = set()
    for path in sorted(package.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text())
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            call = node.exc if isinstance(node, ast.Raise) else None
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == "NotImplementedError"
                and call.args
                and isinstance(call.args[0], ast.Constant)
                and isinstance(call.args[0].value, str)
                and (match := UNFINISHED.match(call.args[0].value))
            ):
                tags.add(match["tag"])
    return tags


def project_root() -> Path:
    """The source checkout this package was imported from (it must hold tests/ and lessons/)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "setup.cfg").is_file() or not (root / "tests").is_dir():
        raise FileNotFoundError(
            f"exercises: {root} is not a minialexnet source checkout (no setup.cfg and tests/); "
            "install with `pip install -e .` from a clone"
        )
    return root


def is_excluded(relative: str) -> bool:
    """True when a pattern of EXCLUDED names the path, a folder above it, or any one part of it."""
    parts = relative.split("/")
    folders = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(name, pattern) for name in folders + parts for pattern in EXCLUDED)


def tracked_files(root: Path) -> list[Path]:
    """The files git tracks under ``root`` that exist in the work tree, sorted. Refuses a root
    that is not a git checkout: untracked files there could be anything (solutions, notes)."""
    command = ["git", "-C", str(root), "ls-files", "--cached", "-z", "--", "."]
    try:
        listing = subprocess.run(command, capture_output=True, check=False)
    except FileNotFoundError:
        listing = None
    if listing is None or listing.returncode != 0:
        why = "git is not installed" if listing is None else listing.stderr.decode().strip()
        raise FileNotFoundError(
            f"exercises: {root} must be a git checkout (a student copy takes only the files git "
            f"tracks, so that untracked files never reach students); got: {why}"
        )
    names = sorted({name for name in listing.stdout.decode().split("\0") if name})
    return [root / name for name in names if (root / name).is_file()]


def source_files(root: Path) -> list[Path]:
    """The files a student copy starts from: what git tracks, less EXCLUDED and REWRITTEN."""
    return [
        path
        for path in tracked_files(root)
        if not is_excluded(relative := path.relative_to(root).as_posix())
        and relative not in REWRITTEN
    ]


def regions_in(files: Iterable[Path]) -> list[Region]:
    """Every EXERCISE region in the Python files among ``files``."""
    regions = []
    for path in files:
        if path.suffix == ".py":
            regions += find_regions(path, path.read_text().splitlines())
    return regions


def all_regions(root: Path) -> list[Region]:
    """Every EXERCISE region in the project's Python sources."""
    return regions_in(source_files(root))


def with_same_math(tags: set[str]) -> set[str]:
    """``tags`` plus every tag whose regions solve one of them (SAME_MATH)."""
    return tags.union(*(group for group in SAME_MATH if group & tags))


def check_out_dir(out_dir: Path, root: Path) -> Path:
    """``out_dir`` made absolute, once it is known to be a new or empty folder outside the
    project (a copy inside it would be collected by the teacher's pytest and git status)."""
    target = Path(out_dir).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise ValueError(f"exercises: OUTDIR must be a new or empty folder, got the file {out_dir}")
    if target == root or root in target.parents:
        raise ValueError(
            f"exercises: OUTDIR must be outside the project {root}, got {out_dir} "
            "(write the copy beside the project, e.g. ../course)"
        )
    if target.exists() and any(target.iterdir()):
        raise ValueError(
            f"exercises: OUTDIR must be a new or empty folder, got {out_dir}: not empty"
        )
    try:  # a file on the way, a read-only place: say so in one line, before copying anything
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"exercises: OUTDIR must be a folder that can be created, got {out_dir}: "
            f"{error.strerror or error}"
        ) from None
    return target


def write_student_copy(
    out_dir: Path, layers: Iterable[str] | None = None, root: Path | None = None
) -> list[Region]:
    """Copy the project to ``out_dir`` with the regions of ``layers`` (default: all) stripped.

    Returns the stripped regions. Checks everything before writing anything: an unknown layer
    name, an OUTDIR that is a file, not empty or inside the project, a root that is not a git
    checkout (ValueError / FileNotFoundError, each naming what it got).
    """
    from .student_files import student_readme, student_setup_cfg  # the teacher's side only

    root = Path(root).resolve() if root is not None else project_root()
    files = source_files(root)  # listed and scanned once: the checks and the copy share them
    regions = regions_in(files)
    tags = sorted({r.tag for r in regions})
    wanted = set(tags if layers is None else layers)
    unknown = wanted - set(tags)
    if unknown:
        raise ValueError(f"exercises: unknown layer(s) {sorted(unknown)}; known: {tags}")
    wanted = with_same_math(wanted)
    target = check_out_dir(out_dir, root)
    stripped = [r for r in regions if r.tag in wanted]
    for path in files:
        destination = target / path.relative_to(root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix != ".py":
            shutil.copy2(path, destination)
            continue
        lines = path.read_text().splitlines()
        mine = [r for r in stripped if r.path == path]
        destination.write_text("\n".join(strip_regions(lines, mine)) + "\n")
    names = [path.relative_to(root).as_posix() for path in files]
    (target / "README.md").write_text(student_readme(stripped, root, names))
    (target / "setup.cfg").write_text(student_setup_cfg((root / "setup.cfg").read_text()))
    return stripped
