"""A drawing of one digit, as the digits dataset's images: what ``predict`` feeds a digits net.

scikit-learn's digits (UCI "optdigits") were made from 32×32 binary bitmaps of digits written on
forms, each digit scaled to fill the bitmap's height, then counted in 4×4 blocks: 8×8 images,
ink 0..16 on a black background. A drawing from a paint program is its negative (dark ink on
white), anywhere on a large canvas, with strokes of any width; fed as it is, every drawing reads
as one class (a digits net said "0" at 99% for all of them). ``digit_from_drawing`` redoes the
dataset's preparation on the drawing; ``read_drawn_digit`` then stores it as ``load_digits`` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from .datasets import digits_canvas
from .images import decode_image

DIGIT_SIDE = 8  # the dataset's images: 8×8 blocks of 4×4 bitmap pixels, each counted 0..16
BLOCK_PIXELS = 16
WORK_SIDE = 256  # the digit's longer side is reduced to at most this before measuring strokes
STROKE_FRACTION = 0.2  # the dataset's typical stroke width, as a fraction of the digit's height
PLAIN_BACKGROUND = 0.5  # at least this fraction of a drawing's pixels is its background colour
BACKGROUND_TOLERANCE = 0.15  # grey levels (0..1) this close to the background's count as it
INK_CONTRAST = 0.25  # the ink differs from the background by at least this (0..1)


def digit_from_drawing(image: Image.Image, name: str = "image") -> np.ndarray:
    """One digit drawn on a plain background -> (8, 8) float64 grey levels 0..16, like the
    digits dataset's images. The input rule of ``predict`` on a digits network:

    - one digit, in one colour on a plain background: black on white as paint programs draw,
      white on black, or a photo of a digit on paper cropped to the paper. The background is
      the median grey of the image's border; the ink is whatever differs from it by more than
      half of the most contrasting pixels' difference (so either polarity works);
    - refused (ValueError naming the image) when under half of the pixels are the background's
      grey (±0.15: a photograph, not a drawing) or nothing contrasts with it (an empty canvas);
    - then as the dataset was made: the ink's bounding box, scaled so its longer side fills
      the frame and centred in it; strokes thickened to the dataset's typical width (20% of
      the digit's height, where drawings' mean grey level matches the dataset's, 4.9 of 16: a
      thin pen stroke would otherwise fade out when counted in blocks);
      the frame counted in 8×8 blocks, 16 for a block full of ink.
    """
    grey = np.asarray(image.convert("L"), dtype=np.float64) / 255
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    distance = np.abs(grey - background)
    plain = float((distance <= BACKGROUND_TOLERANCE).mean())
    if plain < PLAIN_BACKGROUND:
        raise ValueError(
            f"{name}: does not look like a drawn digit: only {plain:.0%} of its pixels are its "
            f"background's grey; a digits network reads one digit drawn in one colour on a "
            f"plain background (black on white, or white on black)"
        )
    strongest = float(distance.max())
    if strongest < INK_CONTRAST:
        raise ValueError(
            f"{name}: no digit found: nothing on it differs from its background's grey by "
            f"{INK_CONTRAST:.0%} or more"
        )
    ink = distance > strongest / 2
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    ink = thicken(shrink_keeping_strokes(ink, WORK_SIDE), STROKE_FRACTION)
    return block_counts(centred_square(ink), DIGIT_SIDE) * BLOCK_PIXELS


def read_drawn_digit(path: str | Path, size: int) -> np.ndarray:
    """A drawn digit's image file -> (3, size, size) uint8, stored as ``load_digits`` stores
    the dataset's digits (``digit_from_drawing``'s rule for what the drawing must be)."""
    digit = digit_from_drawing(decode_image(path), str(path))
    return digits_canvas(digit[None], size)[0]


def shrink_keeping_strokes(mask: np.ndarray, side: int) -> np.ndarray:
    """Reduce a boolean mask by a whole factor until its longer side is at most ``side``; a
    reduced pixel is ink when any pixel it covers is, so a 1-pixel line survives."""
    factor = -(-max(mask.shape) // side)
    if factor == 1:
        return mask
    h, w = -(-mask.shape[0] // factor) * factor, -(-mask.shape[1] // factor) * factor
    padded = np.zeros((h, w), dtype=bool)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded.reshape(h // factor, factor, w // factor, factor).any(axis=(1, 3))


def stroke_width(mask: np.ndarray) -> float:
    """A stroke's width in pixels, about 2·area / boundary (a stroke of width s and length l
    has area s·l and about 2·l pixels on its boundary)."""
    padded = np.pad(mask, 1)
    inside = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    boundary = int((mask & ~inside).sum())
    return 2 * int(mask.sum()) / max(boundary, 1)


def thicken(mask: np.ndarray, fraction: float) -> np.ndarray:
    """Dilate (square neighbourhood) until strokes are about ``fraction`` of the longer side."""
    missing = fraction * max(mask.shape) - stroke_width(mask)
    radius = int(np.ceil(missing / 2)) if missing > 0 else 0
    if radius == 0:
        return mask
    padded = np.pad(mask, 2 * radius)  # the strokes grow by radius on every side
    window = 2 * radius + 1  # a square max filter, separable: rows, then columns
    rows = sliding_window_view(padded, window, axis=0).any(axis=-1)
    return sliding_window_view(rows, window, axis=1).any(axis=-1)


def centred_square(mask: np.ndarray) -> np.ndarray:
    """The mask centred in a square frame as tall and as wide as its longer side."""
    side = max(mask.shape)
    frame = np.zeros((side, side), dtype=np.float64)
    top, left = (side - mask.shape[0]) // 2, (side - mask.shape[1]) // 2
    frame[top : top + mask.shape[0], left : left + mask.shape[1]] = mask
    return frame


def block_counts(frame: np.ndarray, side: int) -> np.ndarray:
    """The fraction of each of side×side blocks that is ink (area-weighted: Pillow's BOX)."""
    image = Image.fromarray(frame.astype(np.float32))  # mode "F"
    return np.asarray(image.resize((side, side), Image.Resampling.BOX), dtype=np.float64)
