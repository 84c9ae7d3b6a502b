"""``predict`` on the inputs people give it: digits drawn black on white, photographs, bad paths,
bad ``--top`` values; ``evaluate`` on a missing data folder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from sklearn.datasets import load_digits as sklearn_digits
from sklearn.datasets import load_sample_image
from sklearn.neighbors import KNeighborsClassifier

from minialexnet.cli import main
from minialexnet.data import load_digits
from minialexnet.data.drawn import digit_from_drawing, read_drawn_digit

# digits drawn as strokes on a 240×320 canvas, as in a paint program
STROKES = {
    1: [(140, 40), (140, 280)],
    4: [(150, 280), (150, 40), (50, 200), (200, 200)],
    7: [(60, 50), (190, 50), (100, 280)],
}


def drawing(digit: int, width: int, ink: str = "black", paper: str = "white") -> Image.Image:
    image = Image.new("RGB", (240, 320), paper)
    draw = ImageDraw.Draw(image)
    if digit == 0:
        draw.ellipse((60, 40, 180, 280), outline=ink, width=width)
    else:
        draw.line(STROKES[digit], fill=ink, width=width, joint="curve")
    return image


@pytest.fixture(scope="module")
def dataset_knn():
    """A 5-nearest-neighbour classifier of scikit-learn's 8×8 digits: it recognises a digit
    only if it looks like the dataset's images (scale, position, polarity, stroke weight)."""
    bunch = sklearn_digits()
    return KNeighborsClassifier(5).fit(bunch.images.reshape(len(bunch.images), -1), bunch.target)


@pytest.mark.parametrize("width", [3, 12, 30])  # a thin pen, a marker, a brush
def test_digits_drawn_black_on_white_become_like_the_dataset(dataset_knn, width):
    digits = [0, 1, 4, 7]
    prepared = np.array([digit_from_drawing(drawing(d, width)).ravel() for d in digits])
    assert prepared.min() >= 0 and prepared.max() <= 16
    assert dataset_knn.predict(prepared).tolist() == digits
    # fed as it was before (the whole white canvas shrunk to 8×8) nothing looked like a digit
    naive = [np.asarray(drawing(d, width).convert("L").resize((8, 8))) / 255 * 16 for d in digits]
    assert np.mean([dataset_knn.predict(n.reshape(1, -1))[0] for n in naive] != digits) >= 0.5


def test_a_drawing_and_its_negative_are_the_same_digit():
    black_on_white = digit_from_drawing(drawing(7, 12))
    white_on_black = digit_from_drawing(drawing(7, 12, ink="white", paper="black"))
    assert np.array_equal(black_on_white, white_on_black)


def test_a_drawn_digit_is_stored_as_the_dataset_stores_its_digits(tmp_path):
    drawing(4, 12).save(tmp_path / "four.png")
    image = read_drawn_digit(tmp_path / "four.png", 37)
    train, _ = load_digits(size=37)
    assert image.shape == train.images.shape[1:] and image.dtype == np.uint8
    assert np.all(image[0] == image[1]) and np.all(image[0] == image[2])
    inside = np.zeros((37, 37), dtype=bool)
    inside[2:34, 2:34] = True  # the net's 32×32 input, on a black border, as in load_digits
    assert not image[:, ~inside].any() and image.max() > 200
    # its grey level is the dataset's, within a third (a thin pen stroke would be far darker)
    assert abs(image.mean() / train.images.mean() - 1) < 1 / 3


def test_a_photograph_or_an_empty_canvas_is_refused_saying_what_is_expected():
    photo = Image.fromarray(load_sample_image("china.jpg"))
    with pytest.raises(ValueError, match=r"china.jpg: does not look like a drawn digit.*plain"):
        digit_from_drawing(photo, "china.jpg")
    with pytest.raises(ValueError, match=r"blank.png: no digit found"):
        digit_from_drawing(Image.new("RGB", (50, 50), "white"), "blank.png")


# ----------------------------------------------------------------------------------------
# the predict and evaluate commands
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    """A mini net after one epoch on digits: enough to check what predict reads and prints."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--epochs", "1", "--out", str(out)]) == 0
    return str(out / "checkpoint.npz")


def one_line_error(capsys, prefix: str) -> str:
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith(prefix), captured.err
    assert "Traceback" not in captured.err
    return captured.err


def test_predict_on_a_digits_checkpoint_reads_a_drawing_and_clamps_top(
    digits_checkpoint, tmp_path, capsys
):
    drawing(7, 12).save(tmp_path / "seven.png")
    capsys.readouterr()
    assert main(["predict", digits_checkpoint, str(tmp_path / "seven.png"), "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("seven.png") and len(lines) == 1 + 3
    assert main(["predict", digits_checkpoint, str(tmp_path / "seven.png"), "--top", "50"]) == 0
    ranked = capsys.readouterr().out.splitlines()[1:]  # all 10 classes, each once
    assert sorted(line.split()[-1] for line in ranked) == [str(d) for d in range(10)]


@pytest.mark.parametrize("top", ["0", "-1"])
def test_predict_refuses_top_below_1_in_one_line(digits_checkpoint, tmp_path, capsys, top):
    drawing(1, 12).save(tmp_path / "one.png")
    capsys.readouterr()
    assert main(["predict", digits_checkpoint, str(tmp_path / "one.png"), "--top", top]) == 2
    assert f"--top must be at least 1, got {top}" in one_line_error(capsys, "predict: ")


def test_predict_on_a_photo_a_folder_or_a_missing_file_says_so_in_one_line(
    digits_checkpoint, tmp_path, capsys
):
    Image.fromarray(load_sample_image("china.jpg")).save(tmp_path / "photo.jpg")
    capsys.readouterr()
    for path, says in [
        (tmp_path / "photo.jpg", "photo.jpg: does not look like a drawn digit"),
        (tmp_path, f"{tmp_path.name}: is a folder, not an image file"),
        (tmp_path / "gone.png", "gone.png: no such file"),
    ]:
        assert main(["predict", digits_checkpoint, str(path)]) == 2
        assert says in one_line_error(capsys, "predict: ")


def test_evaluate_on_a_missing_or_file_data_path_says_so_in_one_line(
    digits_checkpoint, tmp_path, capsys
):
    (tmp_path / "file.png").write_bytes(b"")
    capsys.readouterr()
    for data, says in [
        ("nowhere", "nowhere: image folder not found"),
        ("file.png", "file.png: is a file, not an image folder"),
    ]:
        argv = ["evaluate", digits_checkpoint, "--dataset", "folder", "--data"]
        assert main([*argv, str(tmp_path / data)]) == 2
        assert says in one_line_error(capsys, "evaluate: ")
