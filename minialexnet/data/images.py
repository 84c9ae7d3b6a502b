"""Image files into 8-bit RGB, the one way every loader and ``predict`` decodes them.

Pillow opens many files in modes that ``Image.convert("RGB")`` gets silently wrong: a 16-bit
grey PNG ("I;16") is clipped to 255 (46% grey reads as white), a float TIFF ("F") is truncated
(0.5 reads as 0), and a phone photo's EXIF orientation is ignored (it lies on its side).
``decode_image`` and ``to_rgb8`` state and apply the rules; what cannot be known is refused
with a ValueError naming the file, never guessed.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow's 16-bit greyscale modes (byte orders), and the formats whose 32-bit "I" mode holds
# 16-bit samples (Pillow opens 16-bit PPM/PGM, and 16-bit PNG in older versions, as "I")
MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N")
FORMATS_I_IS_16BIT = ("PNG", "PPM")
FLOAT_TOLERANCE = 1e-3  # float samples this far outside [0, 1] are rounding, not another range

# what Pillow raises on a malformed file, beyond OSError: bad chunks, short reads, bad tables
DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, TypeError, IndexError, struct.error)


class ImageModeError(Exception):
    """Samples whose meaning cannot be known (decode_image adds the file name)."""


def decode_image(path: str | Path) -> Image.Image:
    """Decode one image file into an 8-bit RGB Pillow image, or raise naming the file.

    Rules, in order:
    - a missing path is FileNotFoundError; a folder or a file Pillow cannot read, ValueError;
    - more pixels than ``Image.MAX_IMAGE_PIXELS`` (Pillow's decompression-bomb limit, 89.5
      million; a header can claim 20000×20000 in a 100-byte file) is refused before decoding,
      whether Pillow would warn (up to twice the limit) or refuse: raise the limit in
      ``PIL.Image.MAX_IMAGE_PIXELS`` to read such files on purpose;
    - the EXIF orientation tag is applied (``ImageOps.exif_transpose``): a phone photo comes
      out upright, as a viewer shows it;
    - the samples become 8-bit RGB by ``to_rgb8``'s rules.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()  # decode now: a truncated file fails here, and PNG's EXIF is read
                upright = ImageOps.exif_transpose(image)
                upright.format = image.format  # to_rgb8 reads the format; transposing drops it
                return to_rgb8(upright)
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image Pillow can read (JPEG, PNG, ...)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ValueError(
            f"{path}: refused as a possible decompression bomb ({error}); raise "
            f"PIL.Image.MAX_IMAGE_PIXELS (now {Image.MAX_IMAGE_PIXELS:,}) to read it"
        ) from None
    except ImageModeError as error:
        raise ValueError(f"{path}: {error}") from None
    except DECODE_ERRORS as error:
        raise ValueError(f"{path}: cannot decode the image ({error})") from None


def to_rgb8(image: Image.Image) -> Image.Image:
    """Convert a decoded image of any Pillow mode to 8-bit RGB, by these rules:

    - 8-bit modes ("L", "P", "RGB", "CMYK", "YCbCr", ...): Pillow's own conversion;
    - with transparency ("RGBA", "LA", "PA", "P" with a transparent colour): composited over
      white, as a viewer shows it on a white page (dropping alpha would show whatever colour
      the transparent pixels hold, usually black: a black drawing would vanish);
    - 16-bit grey ("I;16*"; "I" from PNG or PPM/PGM, which hold 16 bits there): v / 257
      rounded, so 0..65535 maps onto 0..255 exactly (16-bit RGB PNGs Pillow already reads
      as 8-bit RGB);
    - 32-bit integers ("I" from other formats, e.g. TIFF): refused, their range is unknown;
    - 32-bit floats ("F"): read as 0 = black, 1 = white, v·255 rounded (the convention of
      float image files and of ``matplotlib.image``); values outside [0, 1], NaN or infinity
      are refused, since no other range can be known from the file.
    """
    mode = image.mode
    if mode in MODES_16BIT or (mode == "I" and image.format in FORMATS_I_IS_16BIT):
        return grey_to_rgb(np.asarray(image).astype(np.float64) / 257)
    if mode == "I":
        raise ImageModeError(
            f"32-bit integer samples (mode I, {image.format}): their range is unknown; "
            f"save it as 8- or 16-bit"
        )
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())  # NaN if any sample is NaN
        if not np.isfinite(values).all() or low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
            raise ImageModeError(
                f"float samples (mode F) in [{low:g}, {high:g}]: only [0, 1] (0 black, "
                f"1 white) is understood; save it as 8- or 16-bit"
            )
        return grey_to_rgb(values * 255)
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:  # a mode Pillow cannot convert (e.g. "LAB")
        raise ImageModeError(f"mode {mode} cannot be converted to RGB ({error})") from None


def grey_to_rgb(levels: np.ndarray) -> Image.Image:
    """An RGB image from grey levels (H, W) on the 0..255 scale, rounded and clipped."""
    grey = np.clip(np.rint(levels), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2))
