"""The lessons as notebooks (``minialexnet.notebooks``, ``python -m minialexnet notebooks``):
every lesson converts to a valid nbformat v4 notebook that loses nothing of the script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minialexnet.cli import main
from minialexnet.notebooks import CELL_MARKER, lesson_scripts, script_to_notebook

LESSONS = lesson_scripts()


def code_and_markdown(text: str) -> tuple[list[str], list[str]]:
    """The script's non-blank code lines and markdown lines (comment sign stripped), read
    line by line independently of the converter's cell logic."""
    code, markdown, kind = [], [], "code"
    for line in text.splitlines():
        if line.startswith(CELL_MARKER):
            kind = "markdown" if "[markdown]" in line else "code"
        elif line.strip():
            if kind == "code":
                code.append(line)
            else:
                markdown.append(line.removeprefix("#").removeprefix(" "))
    return code, [line for line in markdown if line.strip()]


def cell_lines(notebook: dict, kind: str) -> list[str]:
    text = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == kind)
    return [line for line in text.splitlines() if line.strip()]


def test_lessons_are_found() -> None:
    assert len(LESSONS) >= 9, LESSONS


def test_cells_are_split_as_the_percent_format_says() -> None:
    text = "import os\n\n# %% [markdown]\n# # Title\n#\n# text\n\n# %%\nx = 1\n\n\ny = 2\n"
    cells = script_to_notebook(text)["cells"]
    assert [c["cell_type"] for c in cells] == ["code", "markdown", "code"]
    assert [c["source"] for c in cells] == [
        ["import os"],
        ["# Title\n", "\n", "text"],
        ["x = 1\n", "\n", "\n", "y = 2"],  # blank lines inside a cell are kept
    ]
    assert len({c["id"] for c in cells}) == 3
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in cells[::2])


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_converts_without_loss(lesson: Path) -> None:
    text = lesson.read_text(encoding="utf-8")
    notebook = json.loads(json.dumps(script_to_notebook(text)))  # what a file holds
    assert (notebook["nbformat"], notebook["nbformat_minor"]) == (4, 5)
    assert notebook["metadata"]["kernelspec"]["language"] == "python"
    kinds = [c["cell_type"] for c in notebook["cells"]]
    assert set(kinds) == {"code", "markdown"} and kinds[0] == "markdown"  # opens on its title
    assert "".join(notebook["cells"][0]["source"]).startswith("# ")  # a level-1 heading
    code, markdown = code_and_markdown(text)
    assert cell_lines(notebook, "code") == code  # joined code cells = the script's code
    assert cell_lines(notebook, "markdown") == markdown
    for cell in notebook["cells"]:
        assert cell["source"] and all(line.endswith("\n") for line in cell["source"][:-1])
        assert not cell["source"][-1].endswith("\n")


def test_notebooks_validate_against_nbformat_schema(tmp_path: Path) -> None:
    """The command writes one notebook per lesson, each valid under nbformat's JSON schema."""
    nbformat = pytest.importorskip("nbformat")
    assert main(["notebooks", str(tmp_path)]) == 0
    written = sorted(tmp_path.glob("*.ipynb"))
    assert [p.stem for p in written] == [p.stem for p in LESSONS]
    for path in written:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)  # raises ValidationError on any schema violation


def test_command_refuses_a_folder_without_lessons(tmp_path: Path, capsys) -> None:
    assert main(["notebooks", str(tmp_path / "out"), "--lessons", str(tmp_path)]) == 2
    assert "no lessons" in capsys.readouterr().err
