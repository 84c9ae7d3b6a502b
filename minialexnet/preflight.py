"""Checks made before a run trains, so that what can fail fails in the first second, not after
an epoch: the output folder, the memory the stored dataset needs, the validation split, the
disk space a checkpoint needs. Each failure is a ``ValueError`` naming the option concerned,
what was expected and what was found (the CLI prints it as one line, exit code 2).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .checkpoint import CHECKPOINT_FILE, atomic_write_text, remove_stale_temps

RUN_FILES = (CHECKPOINT_FILE, "history.json", "curves.png")  # what a run writes to --out
PROBE_FILE = ".write-probe"
CIFAR_RECORD = 3073  # bytes per image in CIFAR-10's binary files: label + 3×32×32
MARGIN = 1 << 20  # history.json and curves.png, beside the checkpoint


def prepare_out(out: Path, *, fresh: bool, overwrite: bool = False) -> None:
    """Make ``out`` ready for a run: a folder we can write to, not holding another run.

    ``fresh``: the run does not continue a checkpoint in ``out`` itself, so run files already
    there belong to another run: refused, unless ``overwrite`` (then they are deleted now,
    not left to look like part of the new run). Stale temporary files of a killed save are
    removed (``checkpoint.remove_stale_temps``).
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, expected a folder (or a path to create)")
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if fresh and existing and not overwrite:
        raise ValueError(
            f"--out {out}: already holds a run ({', '.join(existing)}); continue it with "
            f"--resume {out / CHECKPOINT_FILE}, choose another --out, or pass --overwrite to "
            f"replace it"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / PROBE_FILE, "minialexnet checks it can write here\n").unlink()
        remove_stale_temps(out)
        if fresh and overwrite:
            for name in existing:
                (out / name).unlink()
    except OSError as error:
        raise ValueError(
            f"--out {out}: cannot write there ({error.strerror or error}); expected a "
            f"writable folder"
        ) from None


def check_disk_space(out: Path, checkpoint_bytes: int) -> None:
    """A save writes a whole new checkpoint beside the old one before replacing it: refuse a
    folder whose disk cannot hold it now, rather than fail at the end of the first epoch."""
    free = shutil.disk_usage(out).free
    if free < checkpoint_bytes + MARGIN:
        raise ValueError(
            f"--out {out}: a checkpoint needs about {format_bytes(checkpoint_bytes + MARGIN)} "
            f"of free disk, the disk has {format_bytes(free)}"
        )


def estimated_images(dataset: str, data: str | None) -> int:
    """How many images (train + test) ``dataset`` holds, without decoding any: digits is
    1797; CIFAR-10's count follows from its files' sizes; an image folder's from its files."""
    if dataset == "digits":
        return 1797
    if data is None or not Path(data).is_dir():
        return 0  # the loader says what is wrong with the folder
    root = Path(data)
    if dataset == "cifar10":
        return sum(p.stat().st_size for p in root.glob("*.bin")) // CIFAR_RECORD
    return sum(len(files) for _, _, files in os.walk(root))


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's MemAvailable; else the physical
    memory), None where the system does not tell."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, AttributeError):
        return None


def check_dataset_memory(dataset: str, data: str | None, image_size: int) -> None:
    """The stored dataset (uint8, 3 × S × S per image) must fit in the memory there is."""
    need = estimated_images(dataset, data) * 3 * image_size * image_size
    have = available_memory()
    if have is not None and need > have:
        raise ValueError(
            f"--image-size {image_size}: the {dataset} images stored at {image_size}x"
            f"{image_size} need about {format_bytes(need)} of memory, {format_bytes(have)} is "
            f"available; expected a smaller --image-size"
        )


def check_split_sizes(n_train: int, n_val: int, val_fraction: float) -> None:
    """Both the training and the validation split need images (an empty validation split
    divided by zero after the first epoch)."""
    if n_val == 0 or n_train == 0:
        which = "validation" if n_val == 0 else "training"
        raise ValueError(
            f"--val-fraction {val_fraction}: leaves {n_val} validation and {n_train} training "
            f"images (each class gives round(its images x fraction)); expected at least one "
            f"{which} image: choose a {'larger' if n_val == 0 else 'smaller'} --val-fraction"
        )


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest binary unit that keeps it >= 1 (up to TiB)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    step = 0
    while n >= 1024 and step < len(units) - 1:
        n, step = n / 1024, step + 1
    return f"{n:.1f} {units[step]}"
