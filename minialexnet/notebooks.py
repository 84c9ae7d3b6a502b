"""The lessons as Jupyter notebooks: ``python -m minialexnet notebooks [OUTDIR]``.

Each ``lessons/*.py`` is a script in the "percent" cell format that Jupytext, VS Code and
Spyder read: a line ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell whose
lines are comments (``# `` stripped gives the markdown). This module converts that format to
nbformat v4 JSON itself, in a few dozen lines, so that opening the lessons as notebooks needs
nothing beyond the standard library. The conversion loses nothing: the notebook's code cells,
joined, are the script's code, and its markdown cells are the comments' text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .checkpoint import atomic_write

# The lessons sit beside the package in a clone (they are not installed with it)
LESSONS_DIR = Path(__file__).resolve().parent.parent / "lessons"
CELL_MARKER = "# %%"
NOTEBOOK_METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


def _cell(kind: str, lines: list[str], number: int) -> dict:
    """One nbformat 4.5 cell; ``source`` is a list of lines, each but the last ending in a
    newline, as Jupyter itself writes them."""
    while lines and not lines[0].strip():  # blank lines between cells belong to neither
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    cell = {
        "cell_type": kind,
        "id": f"cell-{number}",  # unique within the notebook, as nbformat 4.5 requires
        "metadata": {},
        "source": [line + "\n" for line in lines[:-1]] + lines[-1:],
    }
    if kind == "code":
        cell |= {"execution_count": None, "outputs": []}
    return cell


def _markdown_text(line: str) -> str:
    """A markdown cell's comment line without its comment sign (``#`` alone: a blank line)."""
    if line.startswith("# "):
        return line[2:]
    return line[1:] if line.startswith("#") else line


def script_to_notebook(text: str) -> dict:
    """The percent-format script ``text`` as an nbformat v4 notebook (a dict, ready for
    ``json.dump``). Lines before the first ``# %%`` form a code cell of their own; cells with
    nothing but blank lines are dropped."""
    blocks: list[tuple[str, list[str]]] = [("code", [])]
    for line in text.splitlines():
        if line.startswith(CELL_MARKER):
            kind = "markdown" if "[markdown]" in line[len(CELL_MARKER) :] else "code"
            blocks.append((kind, []))
        else:
            kind, lines = blocks[-1]
            lines.append(_markdown_text(line) if kind == "markdown" else line)
    cells = [
        _cell(kind, lines, i)
        for i, (kind, lines) in enumerate(blocks)
        if any(line.strip() for line in lines)
    ]
    return {"cells": cells, "metadata": NOTEBOOK_METADATA, "nbformat": 4, "nbformat_minor": 5}


def lesson_scripts(lessons_dir: Path = LESSONS_DIR) -> list[Path]:
    """The lessons, in order: ``NN_*.py`` in ``lessons_dir``."""
    return sorted(Path(lessons_dir).glob("[0-9][0-9]_*.py"))


def write_notebooks(outdir: str | Path, scripts: Iterable[Path]) -> list[Path]:
    """Write each script as ``<outdir>/<stem>.ipynb`` (atomically); return the paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for script in scripts:
        notebook = script_to_notebook(script.read_text(encoding="utf-8"))
        data = (json.dumps(notebook, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
        path = outdir / f"{script.stem}.ipynb"
        atomic_write(path, lambda file, data=data: file.write(data))
        written.append(path)
    return written
