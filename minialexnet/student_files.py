"""The README and setup.cfg of a student copy (``exercises``), written for what the copy holds.

The teacher's README documents the fast engine, the GPU path and lesson 09, and its setup.cfg
installs Numba, numba-cuda and ~130 MB of NVIDIA wheels for them; none of that is in a copy.
So the copy gets a short README of its own (what to write, how to test, how it is graded) and
the teacher's setup.cfg with those requirements taken out: nothing left in a copy imports
numba (only ``minialexnet/fast/`` and ``minialexnet/cuda/`` do).
"""

from __future__ import annotations

import configparser
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

# Requirements only the fast engine and the GPU path need (names as pip spells them).
GPU_AND_ENGINE_REQUIREMENTS = re.compile(r"^(numba|numba-cuda|nvidia-[a-z0-9-]+)\b", re.I)
# A layer test file declares whose own tests it holds: pytestmark = pytest.mark.exercise("pool").
EXERCISE_MARK = re.compile(r"^pytestmark = pytest\.mark\.exercise\((?P<tags>[^)]*)\)", re.M)


class RegionLike(Protocol):
    path: Path
    tag: str
    task: str
    begin: int


def tests_of(root: Path, names: Iterable[str]) -> dict[str, list[str]]:
    """tag -> the test files (of ``names``) marked as that layer's own tests."""
    owners: dict[str, list[str]] = {}
    for name in names:
        if not (name.startswith("tests/test_") and name.endswith(".py")):
            continue
        match = EXERCISE_MARK.search((root / name).read_text())
        for tag in re.findall(r"[a-z0-9_]+", match["tags"] if match else ""):
            owners.setdefault(tag, []).append(name)
    return owners


def student_readme(regions: list[RegionLike], root: Path, names: list[str]) -> str:
    """The copy's README.md: its exercises (file:line, task), how to test and grade them."""
    owners = tests_of(root, names)
    rows = [
        f"| `{r.tag}` | `{r.path.relative_to(root).as_posix()}:{r.begin + 1}` | {r.task} |"
        for r in regions
    ]
    tags = sorted({r.tag for r in regions})
    test_lines = [
        f"python -m pytest {' '.join(owners[tag])}".ljust(38) + f"# the {tag} tests"
        for tag in tags
        if tag in owners
    ]
    lessons = [name for name in names if re.fullmatch(r"lessons/\d\d_.*\.py", name)]
    lesson_list = ", ".join(f"`{Path(name).stem}`" for name in lessons)
    exercises = (
        "| layer | where | what to write |\n|---|---|---|\n" + "\n".join(rows)
        if rows
        else "None: every layer is already written (the copy was made with no layer stripped)."
    )
    return f"""# minialexnet: student copy

AlexNet (Krizhevsky, Sutskever, Hinton, *ImageNet Classification with Deep Convolutional Neural
Networks*, NIPS 2012) written out layer by layer in plain NumPy. In this copy some layers are
yours to write. Each place is marked in the code:

```python
    # EXERCISE pool: the window maxima and which entry won each window.
    # hint: ...
    raise NotImplementedError("exercise pool: ...")
```

Replace the `raise` line by your code. The docstring of each module gives the shapes and the
formulas; `minialexnet/layers/base.py` states the layer contract (read it first).

## Your exercises

{exercises}

## Install and test

```bash
python -m pip install -e ".[test]"    # NumPy, matplotlib, scikit-learn, ...; pytest, hypothesis
{chr(10).join(test_lines)}
python -m pytest                      # everything
```

A layer's own tests fail until you write it; every other test that merely *uses* an unwritten
layer is skipped, naming the layer it waits for, and runs once you have written it. The tests
check your layers against central finite differences (`minialexnet/gradcheck.py`), properties
any correct layer has, and small values worked out by hand (the arithmetic is in the comments).

## Grading

```bash
python -m minialexnet grade                # every layer; --layers pool,lrn for some
```

It prints one row per function you write (result, worst error, points; `-v` for the numbers
of a failing check) and exits 0 only when every requested layer passes. Your teacher grades
your copy the same way from the teacher's own install (`grade --student`), on inputs drawn
afresh, against the teacher's reference and finite differences.

## Also in this copy

- `python -m minialexnet tour`: the parameter table and a gradient check of every layer.
- `python -m minialexnet train`: trains the `mini` net on scikit-learn's digits (no download)
  on your own layers; `evaluate`, `predict`, `summary`: `python -m minialexnet --help`.
- Lessons, plain scripts in `# %%` cells (`python lessons/NAME.py`):
  {lesson_list}.
- `docs/facts.md`: the facts the code relies on, with their sources.

Not in this copy: the tuned CPU engine and the GPU path of the full project (they hold every
layer written again), so `--engine fast` and `--backend cuda` are not available here.
"""


def student_setup_cfg(text: str) -> str:
    """The teacher's setup.cfg without the requirements of the fast engine and the GPU path.

    Parsed and written back with configparser (its comments do not survive: a header says
    where the file comes from); every other key is kept as it is."""
    config = configparser.ConfigParser(interpolation=None)
    config.optionxform = str  # type: ignore[assignment, method-assign]  # keep keys' case
    config.read_string(text)
    config["metadata"]["description"] = (
        "A student copy of minialexnet: AlexNet's layers in NumPy, to write and to grade"
    )
    lists = [("options", "install_requires")]
    if config.has_section("options.extras_require"):
        lists += [("options.extras_require", key) for key in config["options.extras_require"]]
    for section, key in lists:
        if config.has_option(section, key):
            kept = [
                line
                for line in config[section][key].splitlines()
                if line.strip() and not GPU_AND_ENGINE_REQUIREMENTS.match(line.strip())
            ]
            config[section][key] = "\n" + "\n".join(kept)
    out = io.StringIO()
    out.write(
        "# Written by `python -m minialexnet exercises` for a student copy: the project's\n"
        "# setup.cfg without Numba, numba-cuda and NVIDIA's wheels (only the fast engine and\n"
        "# the GPU path use them, and neither is in the copy).\n"
    )
    config.write(out)
    return out.getvalue()
