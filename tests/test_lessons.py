"""Smoke-run every lesson: each ``lessons/*.py`` must run to the end and write its figures.

Each lesson runs as its own process, the way a reader runs it, with ``MINIALEXNET_QUICK=1``
(tiny sizes) and ``MINIALEXNET_FIGURES`` pointing at a fresh folder. New lessons are picked
up automatically.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use("Agg")
import pytest

LESSONS_DIR = Path(__file__).resolve().parent.parent / "lessons"
LESSONS = sorted(LESSONS_DIR.glob("[0-9][0-9]_*.py"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_lessons_are_found() -> None:
    """Guard against the parametrised test silently running on an empty list."""
    assert LESSONS, f"no lessons found in {LESSONS_DIR}"


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_and_writes_figures(lesson: Path, tmp_path: Path) -> None:
    figures = tmp_path / "figures"
    env = {**os.environ, "MINIALEXNET_QUICK": "1", "MINIALEXNET_FIGURES": str(figures)}
    env.setdefault("MPLBACKEND", "Agg")
    result = subprocess.run(
        [sys.executable, str(lesson)],
        cwd=tmp_path,  # anything a lesson writes beside itself lands in the temporary folder
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"{lesson.name} exited with {result.returncode}\n"
        f"--- stdout (tail) ---\n{result.stdout[-3000:]}\n"
        f"--- stderr (tail) ---\n{result.stderr[-3000:]}"
    )
    pngs = sorted(figures.glob("*.png"))
    assert pngs, f"{lesson.name} wrote no PNG to MINIALEXNET_FIGURES ({figures})"
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_SIGNATURE, f"{png.name} is not a PNG file"
        pixels = plt.imread(png)  # decodes the whole file: a truncated PNG fails here
        assert pixels.ndim == 3 and pixels.std() > 0, f"{png.name} is a blank image"
