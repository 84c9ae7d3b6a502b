"""Dataset loaders on small files the tests write: CIFAR-10 binary, image folders, digits."""

from __future__ import annotations

import numpy as np
import pytest
from datafiles import (
    CIFAR_CLASSES,
    COLORS,
    cifar_record,
    write_cifar,
    write_folder,
    write_forged_png,
)
from PIL import Image

from minialexnet.data import (
    Dataset,
    load_cifar10,
    load_dataset,
    load_digits,
    load_image_folder,
    read_image,
    split_off,
    stored_size,
)
from minialexnet.data.datasets import resize_center_crop


def test_cifar_binary_layout_is_parsed_exactly(tmp_path):
    train, test = load_cifar10(write_cifar(tmp_path / "cifar"))
    assert train.images.shape == (15, 3, 32, 32) and test.images.shape == (3, 3, 32, 32)
    assert train.classes == CIFAR_CLASSES
    # file f, record i: label (f + i) % 10, R = 10 f (but R[0, 1] = i), G = 100 + i, B = 200
    assert train.labels.tolist() == [(f + i) % 10 for f in range(5) for i in range(3)]
    image = train.images[3 * 2 + 1]  # data_batch_3.bin, record 1
    assert image[0, 0, 0] == 20 and image[0, 0, 1] == 1
    assert np.all(image[1] == 101) and np.all(image[2] == 200)
    assert test.labels.tolist() == [5, 6, 7]


def test_cifar_is_resized_to_the_stored_size(tmp_path):
    train, _ = load_cifar10(write_cifar(tmp_path / "cifar"), size=37)
    assert train.images.shape == (15, 3, 37, 37)
    assert np.all(train.images[:, 2] == 200)  # a flat plane stays flat


def test_truncated_cifar_file_is_an_error_naming_it(tmp_path):
    root = write_cifar(tmp_path / "cifar")
    bad = root / "data_batch_4.bin"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"data_batch_4.bin: 9119 bytes is not a whole number"):
        load_cifar10(root)


def test_cifar_label_beyond_the_class_list_names_the_file(tmp_path):
    root = write_cifar(tmp_path / "cifar")
    (root / "test_batch.bin").write_bytes(cifar_record(12, (0, 0, 0), 0))
    with pytest.raises(ValueError, match=r"test_batch.bin: record 0 has label 12"):
        load_cifar10(root)


def test_cifar_class_list_of_the_wrong_length_names_the_file(tmp_path):
    root = write_cifar(tmp_path / "cifar")
    (root / "batches.meta.txt").write_text("\n".join(CIFAR_CLASSES[:9]))
    with pytest.raises(ValueError, match=r"batches.meta.txt: expected 10 class names, found 9"):
        load_cifar10(root)


def test_missing_cifar_files_are_named(tmp_path):
    root = write_cifar(tmp_path / "cifar")
    (root / "data_batch_5.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"data_batch_5.bin: CIFAR-10 batch file not found"):
        load_cifar10(root)
    with pytest.raises(FileNotFoundError, match=r"batches.meta.txt: not found"):
        load_cifar10(tmp_path)


# ----------------------------------------------------------------------------------------
# image folders
# ----------------------------------------------------------------------------------------
def test_image_folder_with_train_and_val_splits(tmp_path):
    write_folder(tmp_path / "ds" / "train", {"cat": 3, "dog": 2, "eel": 2}, "JPEG")
    write_folder(tmp_path / "ds" / "val", {"cat": 1, "dog": 1, "eel": 1}, "PNG")
    train, test = load_image_folder(tmp_path / "ds", size=16)
    assert train.classes == ("cat", "dog", "eel")
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 2, 2] and test.labels.tolist() == [0, 1, 2]
    assert train.images.shape == (7, 3, 16, 16)
    for image, label in zip(test.images, test.labels, strict=True):
        colour = np.array(COLORS[train.classes[label]], dtype=np.uint8)[:, None, None]
        assert np.array_equal(image, np.broadcast_to(colour, image.shape))
    jpeg_means = train.images.reshape(7, 3, -1).mean(axis=2)  # JPEG is lossy: colour within 3
    expected = np.array([COLORS[train.classes[y]] for y in train.labels])
    assert np.abs(jpeg_means - expected).max() < 3


def test_flat_image_folder_is_split_by_class(tmp_path):
    write_folder(tmp_path / "flat", {"cat": 5, "dog": 5})
    train, test = load_image_folder(tmp_path / "flat", size=8, test_fraction=0.2)
    assert len(train) == 8 and np.bincount(test.labels).tolist() == [1, 1]


def test_classes_txt_renames_and_must_match_the_folders(tmp_path):
    root = write_folder(tmp_path / "ds" / "train", {"cat": 1, "dog": 1}).parent
    write_folder(root / "val", {"cat": 1, "dog": 1})
    (root / "classes.txt").write_text("cat Felis catus\ndog Canis familiaris\n")
    train, _ = load_image_folder(root, size=8)
    assert train.classes == ("Felis catus", "Canis familiaris")
    (root / "classes.txt").write_text("cat Felis catus\n")
    with pytest.raises(ValueError, match=r"classes.txt: names 1 classes but there are 2"):
        load_image_folder(root, size=8)
    (root / "classes.txt").write_text("cat Felis catus\nemu Dromaius\n")
    with pytest.raises(ValueError, match=r"classes.txt:2: no class folder named 'emu'"):
        load_image_folder(root, size=8)


def test_a_non_image_in_a_class_folder_is_an_error_naming_it(tmp_path):
    root = write_folder(tmp_path / "flat", {"cat": 2, "dog": 2})
    (root / "dog" / "notes.txt").write_text("not a picture")
    with pytest.raises(ValueError, match=r"notes.txt: not an image Pillow can read"):
        load_image_folder(root, size=8)


def test_a_truncated_jpeg_is_an_error_naming_it_or_skipped_on_request(tmp_path):
    root = write_folder(tmp_path / "flat", {"cat": 5, "dog": 5}, "JPEG")
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(root / "cat" / "big.jpeg", "JPEG")
    data = (root / "cat" / "big.jpeg").read_bytes()
    (root / "cat" / "big.jpeg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"big.jpeg: cannot decode the image"):
        load_image_folder(root, size=8)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable files \(first: .*big.jpeg\)"):
        train, test = load_image_folder(root, size=8, skip_bad=True)
    assert len(train) + len(test) == 10


def test_a_decompression_bomb_is_an_error_naming_it_or_skipped_and_counted(tmp_path):
    root = write_folder(tmp_path / "flat", {"cat": 5, "dog": 5})
    write_forged_png(root / "dog" / "huge.png", 20000, 20000)
    with pytest.raises(ValueError, match=r"huge.png: refused as a possible decompression bomb"):
        load_image_folder(root, size=8)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable files \(first: .*huge.png\)"):
        train, test = load_image_folder(root, size=8, skip_bad=True)
    assert len(train) + len(test) == 10


def test_an_empty_class_folder_is_refused_naming_it(tmp_path):
    # it would still be a class (a label, an output of the net) with no image to learn from
    root = write_folder(tmp_path / "ds" / "train", {"cat": 2, "dog": 2}).parent
    write_folder(root / "val", {"cat": 1, "dog": 1})
    (root / "train" / "emu").mkdir()
    with pytest.raises(ValueError, match=r"train/emu: empty class folder"):
        load_image_folder(root, size=8)
    (root / "train" / "emu").rmdir()
    (root / "val" / "dog" / "0.png").unlink()
    with pytest.raises(ValueError, match=r"val/dog: empty class folder"):
        load_image_folder(root, size=8)


def test_a_class_whose_every_image_is_skipped_is_refused_naming_it(tmp_path):
    root = write_folder(tmp_path / "flat", {"cat": 3, "dog": 3})
    write_folder(root, {"eel": 0})
    (root / "eel" / "notes.txt").write_text("not a picture")
    with (
        pytest.warns(UserWarning, match=r"skipped 1 unreadable files"),
        pytest.raises(ValueError, match=r"eel: no readable image in this class folder"),
    ):
        load_image_folder(root, size=8, skip_bad=True)


def test_a_single_class_is_refused_naming_the_folder(tmp_path):
    root = write_folder(tmp_path / "flat", {"cat": 4})
    with pytest.raises(ValueError, match=r"flat: only one class folder \(cat\)"):
        load_image_folder(root, size=8)


def test_a_val_class_folder_that_train_lacks_is_refused_naming_it(tmp_path):
    write_folder(tmp_path / "ds" / "train", {"cat": 2, "dog": 2})
    write_folder(tmp_path / "ds" / "val", {"cat": 1, "dog": 1, "eel": 1})
    with pytest.raises(ValueError, match=r"val/eel: class folder that .*train lacks"):
        load_image_folder(tmp_path / "ds", size=8)


def test_class_name_files_that_are_not_text_are_errors_naming_them(tmp_path):
    not_text = b"\x89PNG\r\n\x1a\n\xff\xfe"  # what a misplaced image starts with
    root = write_folder(tmp_path / "flat", {"cat": 2, "dog": 2})
    (root / "classes.txt").write_bytes(not_text)
    with pytest.raises(ValueError, match=r"classes.txt: not a UTF-8 text file"):
        load_image_folder(root, size=8)
    cifar = write_cifar(tmp_path / "cifar")
    (cifar / "batches.meta.txt").write_bytes(not_text)
    with pytest.raises(ValueError, match=r"batches.meta.txt: not a UTF-8 text file"):
        load_cifar10(cifar)


def test_class_name_files_may_start_with_a_byte_order_mark(tmp_path):
    root = write_folder(tmp_path / "flat", {"cat": 2, "dog": 2})
    (root / "classes.txt").write_text("\ufeffcat Felis catus\ndog Canis\n", encoding="utf-8")
    train, _ = load_image_folder(root, size=8)
    assert train.classes == ("Felis catus", "Canis")


def test_train_without_val_and_missing_folders_are_errors(tmp_path):
    write_folder(tmp_path / "ds" / "train", {"cat": 1})
    with pytest.raises(FileNotFoundError, match=r"ds: has train/ but neither val/ nor test/"):
        load_image_folder(tmp_path / "ds")
    with pytest.raises(FileNotFoundError, match=r"nowhere: image folder not found"):
        load_image_folder(tmp_path / "nowhere")


def test_resize_keeps_the_centre_of_the_longer_side():
    # 60×20 image: left third red, middle green, right third blue. Shorter side 20 -> 10:
    # the image becomes 30×10 and the central 10×10 is the green third.
    pixels = np.zeros((20, 60, 3), dtype=np.uint8)
    pixels[:, :20, 0] = pixels[:, 20:40, 1] = pixels[:, 40:, 2] = 255
    out = resize_center_crop(Image.fromarray(pixels), 10)
    assert out.shape == (3, 10, 10)
    assert np.all(out[1, :, 1:-1] == 255) and np.all(out[(0, 2), :, 1:-1] == 0)


def test_grayscale_images_become_rgb(tmp_path):
    Image.new("L", (12, 12), 77).save(tmp_path / "g.png")
    assert np.all(read_image(tmp_path / "g.png", 6) == 77)


# ----------------------------------------------------------------------------------------
# digits, splits, Dataset checks
# ----------------------------------------------------------------------------------------
def test_digits_are_rgb_padded_to_the_stored_size_with_a_stratified_test_split():
    train, test = load_digits(size=37)
    assert train.images.shape[1:] == (3, 37, 37) and train.images.dtype == np.uint8
    assert len(train) + len(test) == 1797
    assert np.all(train.images[:, 0] == train.images[:, 1])  # grey: R = G = B
    counts = np.bincount(test.labels)
    assert counts.min() >= 35 and counts.max() <= 37  # 20% of each class (174..183 images)
    train_rows = {img.tobytes() for img in train.images}
    assert sum(img.tobytes() in train_rows for img in test.images) <= 2  # (a few duplicates)
    assert train.images.max() == 255 and train.images.min() == 0
    # The digit is drawn 32x32 (the net's input) at offset 2 on a black canvas: rows and
    # columns outside [2, 34) are empty, so every random 32x32 crop holds the whole digit.
    inside = np.zeros((37, 37), dtype=bool)
    inside[2:34, 2:34] = True
    assert not train.images[..., ~inside].any()
    assert train.images[..., 2, 2:34].any() or train.images[..., 2:34, 2].any()


def test_split_off_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(4), 10)
    ds = Dataset(
        np.arange(40, dtype=np.uint8)[:, None, None, None].repeat(3, 1), labels, tuple("abcd")
    )
    rest, part = split_off(ds, 0.3, seed=1)
    assert np.bincount(part.labels).tolist() == [3, 3, 3, 3]
    assert set(rest.images[:, 0, 0, 0]).isdisjoint(part.images[:, 0, 0, 0])
    again = split_off(ds, 0.3, seed=1)[1]
    assert np.array_equal(again.images, part.images)


def test_dataset_rejects_inconsistent_arrays():
    with pytest.raises(ValueError, match=r"images must be uint8 \(N, 3, S, S\)"):
        Dataset(np.zeros((2, 3, 4, 4), dtype=np.float32), np.zeros(2, dtype=int), ("a",))
    with pytest.raises(ValueError, match=r"2 images but labels of shape \(3,\)"):
        Dataset(np.zeros((2, 3, 4, 4), dtype=np.uint8), np.zeros(3, dtype=int), ("a",))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 1\)"):
        Dataset(np.zeros((2, 3, 4, 4), dtype=np.uint8), np.array([0, 1]), ("a",))


def test_load_dataset_dispatch_and_errors(tmp_path):
    assert stored_size(224) == 256 and stored_size(32) == 37
    with pytest.raises(ValueError, match=r"load_dataset: name must be one of"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match=r"dataset 'cifar10' needs a data folder"):
        load_dataset("cifar10")
    train, _ = load_dataset("cifar10", write_cifar(tmp_path / "c"), size=32)
    assert len(train) == 15
