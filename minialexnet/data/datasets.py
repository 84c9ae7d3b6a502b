"""Datasets as arrays: scikit-learn's digits, CIFAR-10 (binary version), and folders of images.

Every loader returns ``Dataset`` objects holding

    images   (N, 3, S, S) uint8   square RGB images at the stored size S
    labels   (N,)         int64   class indices into ``classes``
    classes  tuple of N_classes names

Images stay uint8 (a quarter of float32's memory) until ``Preprocessor`` turns a batch into
float32 NCHW. Each image is stored as the paper prepared ImageNet [P §2]: the shorter side
rescaled to S, then the central S×S crop. The network then sees random crops of its own
input size from these (224 of 256 in the paper); ``stored_size`` keeps that 256/224 ratio.

A file that cannot be read is an error naming the file: a truncated CIFAR batch, a class list
that does not match the labels or is not text, a non-image in a class folder, an image over
Pillow's decompression-bomb limit or in a mode whose range cannot be known (``images``: the
decode rules). Only ``skip_bad=True`` skips unreadable images, and it says how many it skipped.
A folder layout that would silently change the classes is refused, naming the folder: an empty
class folder, a single class, a class folder in val/ that train/ lacks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .images import decode_image

DATASETS = ("digits", "cifar10", "folder")
CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 R, 1024 G, 1024 B bytes (row-major)
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))


@dataclass(frozen=True)
class Dataset:
    """Images (N, 3, S, S) uint8, labels (N,) int64, class names; ``name`` says where from."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    name: str = "dataset"

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"Dataset {self.name}: images must be uint8 (N, 3, S, S), got "
                f"{self.images.dtype} {self.images.shape}"
            )
        if self.labels.shape != (len(self.images),):
            raise ValueError(
                f"Dataset {self.name}: {len(self.images)} images but labels of shape "
                f"{self.labels.shape}"
            )
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(
                f"Dataset {self.name}: labels must be in [0, {len(self.classes)}), got "
                f"{self.labels.min()}..{self.labels.max()}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return self.images.shape[2]

    def subset(self, index: np.ndarray, name: str | None = None) -> Dataset:
        return Dataset(self.images[index], self.labels[index], self.classes, name or self.name)


STORED_PER_INPUT = 256 / 224  # the paper's stored image side per network input side


def stored_size(input_size: int) -> int:
    """The stored image size for a network input size, at the paper's 256:224 ratio."""
    return round(input_size * STORED_PER_INPUT)


def split_off(dataset: Dataset, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split into (rest, part) with ``fraction`` of every class in ``part`` (stratified, seeded).

    Used to carve a validation split out of the training images and the digits test split.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"split_off: fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    part = []
    for c in range(len(dataset.classes)):
        members = np.flatnonzero(dataset.labels == c)
        take = round(len(members) * fraction)
        part.append(rng.permutation(members)[:take])
    in_part = np.zeros(len(dataset), dtype=bool)
    in_part[np.concatenate(part)] = True
    return (
        dataset.subset(np.flatnonzero(~in_part)),
        dataset.subset(np.flatnonzero(in_part), name=f"{dataset.name}-split"),
    )


# ----------------------------------------------------------------------------------------
# Resizing, shared by every loader
# ----------------------------------------------------------------------------------------
def resize_center_crop(image: Image.Image, size: int) -> np.ndarray:
    """Rescale so the shorter side is ``size``, take the central size×size: (3, size, size) uint8.

    Bilinear (with Pillow's antialiasing when shrinking). Expects RGB, as ``images.decode_image``
    gives it (transparency over white); another mode is converted as Pillow converts it.

    The arithmetic is torchvision's (``transforms.functional``: ``_compute_resized_output_size``
    truncates the longer side, ``int(size * long / short)``; ``center_crop`` rounds the offset,
    ``int(round((side - crop) / 2))``, half to even), so that ``size=256`` followed by
    ``Preprocessor``'s centre 224 (offset 16, an even shift that commutes with that rounding)
    is exactly torchvision's ``Resize(256)`` + ``CenterCrop(224)``.
    """
    if image.mode != "RGB":  # convert() would copy an RGB image for nothing
        image = image.convert("RGB")
    w, h = image.size
    short = min(w, h)  # integer division: exactly int(size * long / short) for image sizes
    new_w, new_h = size * w // short, size * h // short
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = round((new_w - size) / 2), round((new_h - size) / 2)
    image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def read_image(path: str | Path, size: int) -> np.ndarray:
    """Decode one image file (``images.decode_image``'s rules) into (3, size, size) uint8, or
    raise ValueError (FileNotFoundError when missing) naming the file."""
    return resize_center_crop(decode_image(path), size)


def read_text_file(path: Path) -> str:
    """A class-name file's text (UTF-8, a byte-order mark allowed), or ValueError naming it."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not a UTF-8 text file (undecodable byte at offset {error.start})"
        ) from None


# ----------------------------------------------------------------------------------------
# digits: 1,797 8×8 handwritten digits shipped inside scikit-learn (no download)
# ----------------------------------------------------------------------------------------
def load_digits(size: int = 37, test_fraction: float = 0.2) -> tuple[Dataset, Dataset]:
    """scikit-learn's digits as (train, test): 8×8 grey levels 0..16, bilinearly enlarged to the
    network's input size (size × 224/256: 32 for the stored 37), centred on a size×size black
    canvas and repeated over R, G, B. The test split is a fixed stratified 20%.

    Why the border: the 8×8 digits fill their frame, so a random crop of a digit enlarged to the
    whole canvas can cut off up to one of its 8 pixel columns (an 8 without its left edge looks
    like a 3). Padded, every crop holds the whole digit, shifted: the "pad, then crop" of CIFAR
    training. Measured with the default `train` (seeds 0-3): 97.8-98.6% test accuracy,
    against 97.5-98.1% (seeds 0-2) with the digit stretched over the canvas.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    classes = tuple(str(d) for d in range(10))
    full = Dataset(
        digits_canvas(bunch.images, size), bunch.target.astype(np.int64), classes, "digits"
    )
    train, test = split_off(full, test_fraction, seed=0)
    return replace(train, name="digits-train"), replace(test, name="digits-test")


def digits_canvas(digits: np.ndarray, size: int) -> np.ndarray:
    """8×8 digits (N, 8, 8), grey levels 0..16, as ``load_digits`` stores them: (N, 3, size,
    size) uint8, each enlarged to the net's input side and centred on a black canvas."""
    digit_size = round(size / STORED_PER_INPUT)  # the net's input side for this stored side
    top, end = (size - digit_size) // 2, (size - digit_size) // 2 + digit_size
    images = np.zeros((len(digits), 3, size, size), dtype=np.uint8)
    for i, digit in enumerate(digits):
        grey = Image.fromarray((digit * (255 / 16)).astype(np.float32))  # mode "F"
        big = np.asarray(grey.resize((digit_size, digit_size), Image.Resampling.BILINEAR))
        images[i, :, top:end, top:end] = np.clip(np.rint(big), 0, 255).astype(np.uint8)
    return images


# ----------------------------------------------------------------------------------------
# CIFAR-10, binary version: data_batch_{1..5}.bin, test_batch.bin, batches.meta.txt
# ----------------------------------------------------------------------------------------
def read_cifar_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR binary file -> (images (n, 3, 32, 32) uint8, labels (n,) int64)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CIFAR-10 batch file not found")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise ValueError(
            f"{path}: {raw.size} bytes is not a whole number of {CIFAR_RECORD}-byte records "
            f"(truncated or not a CIFAR-10 binary batch)"
        )
    records = raw.reshape(-1, CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise ValueError(
            f"{path}: record {bad[0]} has label {labels[bad[0]]}, but batches.meta.txt names "
            f"only {num_classes} classes"
        )
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def resize_all(images: np.ndarray, size: int, desc: str) -> np.ndarray:
    """Resize a stack of square (N, 3, s, s) uint8 images to (N, 3, size, size)."""
    if images.shape[2] == size:
        return images
    out = np.empty((len(images), 3, size, size), dtype=np.uint8)
    for i in tqdm(range(len(images)), desc=desc, leave=False, disable=len(images) < 5000):
        out[i] = resize_center_crop(Image.fromarray(images[i].transpose(1, 2, 0)), size)
    return out


def load_cifar10(root: str | Path, size: int = 32) -> tuple[Dataset, Dataset]:
    """CIFAR-10 (binary version, parsed with NumPy — no pickle) as (train, test) at ``size``."""
    root = Path(root)
    meta = root / "batches.meta.txt"
    if not meta.is_file():
        raise FileNotFoundError(
            f"{meta}: not found; is {root} the extracted cifar-10-batches-bin folder? "
            f"(python data/fetch.py cifar10)"
        )
    text = read_text_file(meta)
    classes = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(classes) != 10:
        raise ValueError(f"{meta}: expected 10 class names, found {len(classes)}")
    splits = []
    for files, name in (
        (CIFAR_TRAIN_FILES, "cifar10-train"),
        (("test_batch.bin",), "cifar10-test"),
    ):
        parts = [read_cifar_batch(root / f, len(classes)) for f in files]
        images = resize_all(np.concatenate([p[0] for p in parts]), size, f"resizing {name}")
        splits.append(Dataset(images, np.concatenate([p[1] for p in parts]), classes, name))
    return splits[0], splits[1]


# ----------------------------------------------------------------------------------------
# Image folders: root/<class>/<image> or root/{train,val}/<class>/<image> (ImageNet layout)
# ----------------------------------------------------------------------------------------
def read_class_names(root: Path, folders: list[str]) -> tuple[str, ...]:
    """Readable names from an optional ``classes.txt`` ("<folder> <name>" per line)."""
    path = root / "classes.txt"
    if not path.is_file():
        return tuple(folders)
    names = {}
    for number, line in enumerate(read_text_file(path).splitlines(), start=1):
        if line.strip():
            folder, _, name = line.strip().partition(" ")
            names[folder] = name.strip() or folder
            if folder not in folders:
                raise ValueError(f"{path}:{number}: no class folder named {folder!r}")
    if len(names) != len(folders):
        raise ValueError(
            f"{path}: names {len(names)} classes but there are {len(folders)} class folders"
        )
    return tuple(names[f] for f in folders)


def class_folders(split_root: Path) -> list[str]:
    """The sorted names of the class folders of a split (hidden folders excepted)."""
    return sorted(p.name for p in split_root.iterdir() if p.is_dir() and p.name[0] != ".")


def class_files(class_dir: Path) -> list[Path]:
    """The sorted image files of one class folder (hidden files excepted); an empty folder is
    refused: its class would count in the labels while no image of it is read."""
    members = sorted(p for p in class_dir.iterdir() if p.is_file() and p.name[0] != ".")
    if not members:
        raise ValueError(
            f"{class_dir}: empty class folder (every class folder is a class): add images "
            f"or remove it"
        )
    return members


def load_folder_split(
    split_root: Path, folders: list[str], classes: tuple[str, ...], size: int, skip_bad: bool
) -> Dataset:
    """Read every file of every class folder (hidden files excepted) into one Dataset.

    A class folder with no files, or none readable (``skip_bad``), is refused: its class would
    still count in the labels while no image of it is trained on (or tested)."""
    files: list[tuple[Path, int]] = []
    for label, folder in enumerate(folders):
        class_dir = split_root / folder
        if not class_dir.is_dir():
            raise FileNotFoundError(f"{class_dir}: class folder missing from this split")
        files += [(p, label) for p in class_files(class_dir)]
    images = np.empty((len(files), 3, size, size), dtype=np.uint8)
    labels = np.empty(len(files), dtype=np.int64)
    kept, skipped = 0, []
    for path, label in tqdm(files, desc=f"reading {split_root.name}", leave=False):
        try:
            images[kept] = read_image(path, size)
        except ValueError:
            if not skip_bad:
                raise
            skipped.append(path)
            continue
        labels[kept] = label
        kept += 1
    if skipped:
        warnings.warn(
            f"{split_root}: skipped {len(skipped)} unreadable files (first: {skipped[0]})",
            stacklevel=2,
        )
        counts = np.bincount(labels[:kept], minlength=len(folders))
        if counts.min() == 0:
            lost = split_root / folders[int(counts.argmin())]
            raise ValueError(f"{lost}: no readable image in this class folder (all skipped)")
    return Dataset(images[:kept], labels[:kept], classes, split_root.name)


def load_image_folder(
    root: str | Path,
    size: int = 256,
    *,
    test_fraction: float = 0.2,
    skip_bad: bool = False,
) -> tuple[Dataset, Dataset]:
    """A folder of class folders of JPEG/PNG images as (train, test) at ``size``.

    With ``root/train`` and ``root/val`` (or ``root/test``) present, those are the splits
    (Imagenette, ImageNet); otherwise ``root``'s class folders are split with a stratified,
    fixed ``test_fraction``. Classes are the sorted folder names of the training split,
    renamed by an optional ``root/classes.txt``.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root}: is a file, not an image folder (root/<class>/<image>)")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: image folder not found")
    train_dir, test_dir = root, None
    if (root / "train").is_dir():
        train_dir = root / "train"
        test_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
        if test_dir is None:
            raise FileNotFoundError(f"{root}: has train/ but neither val/ nor test/")
    folders = class_folders(train_dir)
    if not folders:
        raise ValueError(f"{train_dir}: no class folders (expected {train_dir}/<class>/<image>)")
    if len(folders) == 1:
        raise ValueError(
            f"{train_dir}: only one class folder ({folders[0]}); a classifier needs at least 2"
        )
    if test_dir is not None:
        unknown = sorted(set(class_folders(test_dir)) - set(folders))
        if unknown:
            raise ValueError(
                f"{test_dir / unknown[0]}: class folder that {train_dir} lacks (the classes are "
                f"the training split's folders)"
            )
    classes = read_class_names(root, folders)
    train = load_folder_split(train_dir, folders, classes, size, skip_bad)
    if test_dir is None:
        rest, test = split_off(train, test_fraction, seed=0)
        return replace(rest, name=f"{root.name}-train"), replace(test, name=f"{root.name}-test")
    return train, load_folder_split(test_dir, folders, classes, size, skip_bad)


def load_dataset(
    name: str, root: str | Path | None = None, size: int = 37, *, skip_bad: bool = False
) -> tuple[Dataset, Dataset]:
    """(train, test) of dataset ``name`` (one of ``DATASETS``), images stored at ``size``."""
    if name == "digits":
        return load_digits(size)
    if name not in DATASETS:
        raise ValueError(f"load_dataset: name must be one of {DATASETS}, got {name!r}")
    if root is None:
        raise ValueError(f"load_dataset: dataset {name!r} needs a data folder (--data PATH)")
    if name == "cifar10":
        return load_cifar10(root, size)
    return load_image_folder(root, size, skip_bad=skip_bad)
