"""Every figure the lessons and the CLI draw, and where they are saved.

Figures are written as PNG with matplotlib's Agg backend (no screen needed) to the folder named
by the environment variable ``MINIALEXNET_FIGURES``, or ``figures/`` beside the running script's
working directory when it is unset. Lessons also read ``MINIALEXNET_QUICK=1``, which the test
suite sets to run each lesson on tiny sizes (``quick_mode``).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use("Agg"): the backend must be chosen first
from matplotlib.figure import Figure


def quick_mode() -> bool:
    """True when ``MINIALEXNET_QUICK=1``: lessons shrink their work to a smoke test."""
    return os.environ.get("MINIALEXNET_QUICK") == "1"


def figures_dir() -> Path:
    """The folder PNGs go to (created if missing)."""
    folder = Path(os.environ.get("MINIALEXNET_FIGURES", "figures"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_figure(fig: Figure, name: str) -> Path:
    """Save ``fig`` as ``<figures_dir>/<name>.png``, close it, and return the path."""
    path = figures_dir() / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
