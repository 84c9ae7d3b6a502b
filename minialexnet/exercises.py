"""Student copies of the project: every marked solution region replaced by its hint.

The reference code marks each region a student should write, in comments that read as part of
the code:

    def _forward(self, x):
        # EXERCISE pool: take the running maximum over the K*K window offsets.
        # hint: x (N, C, H, W) -> out (N, C, OH, OW), OH = (H - K) // S + 1; keep argmax.
        ...the reference code...
        # END EXERCISE

``write_student_copy`` copies the project and replaces the code between the first comment block
and ``# END EXERCISE`` by ``raise NotImplementedError(...)``, keeping the EXERCISE and hint lines.
Tags name the layer (``conv``, ``pool``, ``lrn``, ...); ``layers`` picks which to strip.

The regions cover exactly the reference (``minialexnet/layers/``, plus the SGD rule in
``optim.py``): plain NumPy that returns its results, the code a student reads and writes.
What a student copy leaves out, because it would hand over a solution: the fast CPU engine
(``minialexnet/fast/`` and its tests: the same math, tuned), the GPU path (``minialexnet/cuda/``,
its tests and lesson 09: the same math as CUDA kernels) and the teacher's own test of this tool
(``tests/test_exercises.py``). Without ``fast/`` the copy's default engine is the reference
(``model.default_engine``), so the whole network trains on the student's own layers.
Everything else is copied as is, so the copy installs, its tests run, and its lessons run as
far as the implemented layers allow.
"""

from __future__ import annotations

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

# Never copied into a student copy (see the module docstring for why).
EXCLUDED = (
    ".git",
    ".ci",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
    ".whl",
    "figures",
    "runs",
    "build",
    "dist",
    "minialexnet/cuda",
    "minialexnet/fast",
    "tests/test_fast_*",
    "tests/test_cuda_*",
    "tests/test_exercises.py",
    "lessons/09_*",
)


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
        out.append(f'{indent}raise NotImplementedError("exercise {region.tag}: {region.task}")')
        position = region.end + 1
    out += lines[position:]
    return out


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


def source_files(root: Path) -> list[Path]:
    """The files a student copy starts from: what git tracks or would track (so downloaded
    datasets and training runs stay out), else every file; exclusions applied; sorted."""
    listing = subprocess.run(
        ["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        check=False,
    )
    if listing.returncode == 0:
        candidates = [root / name for name in listing.stdout.decode().split("\0") if name]
    else:  # not a git checkout (an unpacked archive): take every file
        candidates = list(root.rglob("*"))
    return sorted(
        path
        for path in candidates
        if path.is_file() and not is_excluded(path.relative_to(root).as_posix())
    )


def all_regions(root: Path) -> list[Region]:
    """Every EXERCISE region in the project's Python sources."""
    regions = []
    for path in source_files(root):
        if path.suffix == ".py":
            regions += find_regions(path, path.read_text().splitlines())
    return regions


def known_tags(root: Path) -> list[str]:
    return sorted({r.tag for r in all_regions(root)})


def write_student_copy(
    out_dir: Path, layers: Iterable[str] | None = None, root: Path | None = None
) -> list[Region]:
    """Copy the project to ``out_dir`` with the regions of ``layers`` (default: all) stripped.

    Returns the stripped regions. Refuses to write into a non-empty folder, and fails (before
    writing anything) on an unknown layer name.
    """
    root = root if root is not None else project_root()
    tags = known_tags(root)
    wanted = set(tags if layers is None else layers)
    unknown = wanted - set(tags)
    if unknown:
        raise ValueError(f"exercises: unknown layer(s) {sorted(unknown)}; known: {tags}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"exercises: {out_dir} exists and is not empty")
    stripped: list[Region] = []
    for path in source_files(root):
        target = out_dir / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix != ".py":
            shutil.copy2(path, target)
            continue
        lines = path.read_text().splitlines()
        regions = [r for r in find_regions(path, lines) if r.tag in wanted]
        stripped += regions
        target.write_text("\n".join(strip_regions(lines, regions)) + "\n")
    return stripped
