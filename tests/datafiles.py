"""Small dataset files written by the tests: CIFAR-10 binary batches, image folders, and a PNG
whose header claims a huge size."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from minialexnet.data.datasets import CIFAR_TRAIN_FILES

CIFAR_CLASSES = (
    *("airplane", "automobile", "bird", "cat", "deer"),
    *("dog", "frog", "horse", "ship", "truck"),
)


def cifar_record(label: int, rgb: tuple[int, int, int], marker: int) -> bytes:
    """One 3073-byte record: label, then the R, G and B planes (32×32 each, row-major).
    Pixel (row 0, col 1) of the red plane holds ``marker`` so layout mistakes show."""
    planes = np.empty((3, 32, 32), dtype=np.uint8)
    for c, value in enumerate(rgb):
        planes[c] = value
    planes[0, 0, 1] = marker
    return bytes([label]) + planes.tobytes()


def write_cifar(root: Path, per_file: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "batches.meta.txt").write_text("\n".join(CIFAR_CLASSES) + "\n\n")
    for f, name in enumerate((*CIFAR_TRAIN_FILES, "test_batch.bin")):
        records = [cifar_record((f + i) % 10, (10 * f, 100 + i, 200), i) for i in range(per_file)]
        (root / name).write_bytes(b"".join(records))
    return root


COLORS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "eel": (30, 30, 200)}


def write_folder(root: Path, counts: dict[str, int], fmt: str = "PNG") -> Path:
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            size = (40 + 7 * i, 30)  # landscape images of different widths
            Image.new("RGB", size, COLORS[cls]).save(root / cls / f"{i}.{fmt.lower()}", fmt)
    return root


def write_forged_png(path: Path, width: int, height: int) -> Path:
    """A real 1×1 grey PNG whose header (IHDR) claims ``width`` × ``height`` pixels, with the
    header's CRC fixed: about 70 bytes that Pillow opens as a huge image."""
    Image.new("L", (1, 1), 0).save(path, "PNG")
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"  # after the 8-byte signature and the chunk's length
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path
