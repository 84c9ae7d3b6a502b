"""Decoding image files to 8-bit RGB (``minialexnet.data.images``): the modes Pillow's own
conversion gets wrong, EXIF orientation, transparency, decompression bombs, bad paths."""

from __future__ import annotations

import numpy as np
import pytest
from datafiles import write_forged_png
from PIL import Image

from minialexnet.data import read_image
from minialexnet.data.images import decode_image

RED, BLUE = (255, 0, 0), (0, 0, 255)


def decoded(path) -> np.ndarray:
    image = decode_image(path)
    assert image.mode == "RGB"
    return np.asarray(image)


@pytest.mark.parametrize("side", [20000, 10000])  # refused by Pillow / only warned about
def test_a_png_whose_header_claims_a_huge_size_is_refused_naming_the_file(tmp_path, side):
    path = write_forged_png(tmp_path / "bomb.png", side, side)
    assert path.stat().st_size < 100  # the test file stays tiny; only its header is huge
    assert side * side > Image.MAX_IMAGE_PIXELS
    with pytest.raises(ValueError, match=r"bomb.png: refused as a possible decompression bomb"):
        read_image(path, 8)


def test_16_bit_grey_png_keeps_its_grey_level(tmp_path):
    # 46% grey, and the two ends of the range: Pillow's convert("RGB") clips 16-bit to 255
    levels = np.array([[0.46, 0.0, 1.0]])
    Image.fromarray(np.rint(levels * 65535).astype(np.uint16)).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    rgb = decoded(tmp_path / "g16.png")
    assert rgb[0, :, 0].tolist() == np.rint(levels[0] * 255).tolist() == [117, 0, 255]
    assert np.all(rgb[..., 0] == rgb[..., 2])


def test_16_bit_pgm_opened_as_32_bit_integers_is_read_as_16_bit(tmp_path):
    Image.fromarray(np.full((2, 2), round(0.46 * 65535), np.uint16)).save(tmp_path / "g.pgm")
    assert Image.open(tmp_path / "g.pgm").mode == "I"
    assert np.all(decoded(tmp_path / "g.pgm") == round(0.46 * 255))


def test_32_bit_integer_tiff_is_refused_naming_file_and_mode(tmp_path):
    Image.fromarray(np.full((2, 2), 100_000, np.int32)).save(tmp_path / "i32.tiff")
    with pytest.raises(ValueError, match=r"i32.tiff: 32-bit integer samples \(mode I, TIFF\)"):
        decode_image(tmp_path / "i32.tiff")


def test_float_tiff_is_read_on_0_to_1(tmp_path):
    levels = np.array([[0.5, 0.25, 0.0, 1.0]], dtype=np.float32)
    Image.fromarray(levels).save(tmp_path / "f.tiff")
    assert Image.open(tmp_path / "f.tiff").mode == "F"
    grey = decoded(tmp_path / "f.tiff")[0, :, 1].astype(float)
    assert np.all(np.abs(grey - levels[0] * 255) <= 0.5)  # 0.5 -> 127.5 rounded, not 0


@pytest.mark.parametrize("bad", [2.0, -0.5, np.nan])
def test_float_tiff_outside_0_to_1_is_refused(tmp_path, bad):
    Image.fromarray(np.array([[0.5, bad]], dtype=np.float32)).save(tmp_path / "f.tiff")
    with pytest.raises(ValueError, match=r"f.tiff: float samples \(mode F\) in \[.*only \[0, 1\]"):
        decode_image(tmp_path / "f.tiff")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_is_applied(tmp_path, fmt):
    # stored 40 wide, 20 high: left half red, right half blue. Orientation 6 says "rotate 90°
    # clockwise to view": the viewed image is 20 wide, 40 high, red on top, blue below.
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20], pixels[:, 20:] = RED, BLUE
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    path = tmp_path / f"phone.{fmt.lower()}"
    Image.fromarray(pixels).save(path, fmt, exif=exif)
    rgb = decoded(path).astype(int)
    assert rgb.shape == (40, 20, 3)
    assert np.abs(rgb[2:18] - RED).max() < 40 and np.abs(rgb[22:38] - BLUE).max() < 40


def test_transparency_is_composited_over_white(tmp_path):
    # a black square drawn on a transparent canvas (whose hidden colour is black, as usual)
    pixels = np.zeros((10, 10, 4), dtype=np.uint8)
    pixels[3:7, 3:7, 3] = 255
    Image.fromarray(pixels, "RGBA").save(tmp_path / "drawing.png")
    rgb = decoded(tmp_path / "drawing.png")
    inside = np.zeros((10, 10), dtype=bool)
    inside[3:7, 3:7] = True
    assert np.all(rgb[inside] == 0) and np.all(rgb[~inside] == 255)


def test_a_missing_path_or_a_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing.png: no such file"):
        read_image(tmp_path / "nothing.png", 8)
    with pytest.raises(ValueError, match=rf"{tmp_path.name}: is a folder, not an image file"):
        read_image(tmp_path, 8)
