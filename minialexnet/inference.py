"""Using a trained network: class probabilities, top-1/top-5 evaluation, and checkpoints back
into a model for ``python -m minialexnet evaluate`` and ``predict``.

Test-time views [P §4.1]: the centre crop, or the paper's ten views (four corners and the centre,
and their mirror images) with their softmax outputs averaged.

A checkpoint runs on either engine (``engine="reference"|"fast"``): the engines share the
parameters' names and shapes, so the one a network was trained with does not matter here.

Both kinds of checkpoint load here: a training run's (``checkpoint.RunState``) and a weights
file (``weights_file.WeightsState``: ImageNet weights converted by ``pretrained``). A weights
file carries its classes' WordNet ids, so ``evaluate`` reads an ImageNet-layout folder for it
(``evaluate_wnid_folder``), streamed in batches: ImageNet's 50,000 validation images would
need 9.8 GB as stored uint8 images.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .checkpoint import RunState, copy_into, load_checkpoint
from .data import (
    Dataset,
    Preprocessor,
    batch_slices,
    load_dataset,
    read_drawn_digit,
    read_image,
    split_off,
)
from .data.datasets import class_files, class_folders
from .layers import softmax
from .model import Sequential, default_engine, model_from_config
from .weights_file import WeightsState


def predict_proba(
    model: Sequential, pre: Preprocessor, images: np.ndarray, *, ten_view: bool = False
) -> np.ndarray:
    """Class probabilities (N, classes) for uint8 images (N, 3, S, S), in eval mode.

    With ``ten_view`` the softmax outputs of the ten views are averaged [P §4.1] (the five
    unmirrored ones for a net trained without flips: ``Preprocessor.test_views``).
    """
    was_training = next(iter(model.layers.values())).training
    model.eval()
    try:
        with model.no_grad():  # no backward follows: layers need keep nothing for one
            if not ten_view:
                return softmax(model.forward(pre.test_batch(images)))
            return np.mean([softmax(model.forward(v)) for v in pre.test_views(images)], axis=0)
    finally:
        if was_training:
            model.train()


def evaluate(
    model: Sequential,
    pre: Preprocessor,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    ten_view: bool = False,
) -> dict[str, float]:
    """Mean loss, top-1 and top-5 error of ``model`` on ``dataset`` (centre crop or ten views)."""
    batches = (
        (dataset.images[idx], dataset.labels[idx])
        for idx in batch_slices(np.arange(len(dataset)), batch_size)
    )
    return evaluate_batches(model, pre, batches, ten_view=ten_view)


def evaluate_batches(
    model: Sequential,
    pre: Preprocessor,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    ten_view: bool = False,
) -> dict[str, float]:
    """Mean loss, top-1 and top-5 error over (uint8 images (n, 3, S, S), labels (n,)) batches,
    taken one at a time (they may be read as they come: ``evaluate_wnid_folder``)."""
    loss = top1 = top5 = 0.0
    n = 0
    for images, y in batches:
        prob = predict_proba(model, pre, images, ten_view=ten_view)
        loss -= float(np.log(np.maximum(prob[np.arange(len(y)), y], 1e-12)).sum())
        top1 += topk_misses(prob, y, 1)
        top5 += topk_misses(prob, y, 5)
        n += len(y)
    if n == 0:
        raise ValueError("no images to evaluate")
    return {"loss": loss / n, "top1_error": top1 / n, "top5_error": top5 / n}


def topk_misses(scores: np.ndarray, labels: np.ndarray, k: int) -> int:
    """How many rows of ``scores`` (N, classes) do not have their label among the k highest.

    A label counts as in the top k when fewer than k classes score strictly higher (a tie
    goes in the label's favour); with fewer than k classes, nothing is missed.
    """
    true_score = scores[np.arange(len(labels)), labels]
    higher = (scores > true_score[:, None]).sum(axis=1)
    return int((higher >= k).sum())


# ----------------------------------------------------------------------------------------
# From a checkpoint
# ----------------------------------------------------------------------------------------
@dataclass
class Trained:
    """A network with the parameters of a checkpoint and the preprocessing it was trained with.

    ``wnids``: each class's WordNet id, for ImageNet weights (their evaluation folders are named
    by them); None for a training run's checkpoint."""

    model: Sequential
    pre: Preprocessor
    classes: tuple[str, ...]
    config: dict[str, Any]
    wnids: tuple[str, ...] | None = None


def load_trained(path: str | Path, *, engine: str | None = None) -> Trained:
    """The checkpoint's network on ``engine``'s layers (None: ``model.default_engine()``, not
    the training run's: a student copy, without the fast engine, still runs a fast-trained
    checkpoint). Either kind: a run's checkpoint or a weights file."""
    ckpt = load_checkpoint(path)
    weights = ckpt.meta.get("kind") == "weights"
    state = (WeightsState if weights else RunState).from_checkpoint(ckpt, path)
    classes = tuple(state.classes)
    model = model_from_config(state.config, len(classes), engine=engine or default_engine())
    try:
        copy_into(model.params(), state.params, "parameters")
    except ValueError as error:  # arrays that do not fit the network: name the file
        raise ValueError(f"{path}: {error}") from None
    pre = Preprocessor.from_saved(state.preprocess_arrays, state.preprocess)
    wnids = tuple(state.wnids) if weights else None
    return Trained(model.eval(), pre, classes, state.config, wnids)


def evaluate_checkpoint(
    path: str | Path,
    *,
    dataset: str | None = None,
    data: str | None = None,
    split: str | None = None,
    ten_view: bool = False,
    engine: str | None = None,
) -> dict[str, float]:
    """Top-1/top-5 of a checkpoint on a dataset split ("test", the default, or "val": the
    validation images carved from the training split exactly as the run did). Dataset
    defaults to the run's.

    A weights file (ImageNet weights) is evaluated on the ImageNet-layout folder ``data``
    (``evaluate_wnid_folder``); ``split`` is refused for it: the folder is the split."""
    trained = load_trained(path, engine=engine)
    if trained.wnids is not None:
        for option, value in (("--split", split), ("--dataset", dataset)):
            if value is not None:
                raise ValueError(
                    f"{path} holds ImageNet weights, which have no run's dataset or split: "
                    f"{option} {value} does not apply (give the ImageNet-layout folder with "
                    f"--data: it is the split)"
                )
        if data is None:
            raise ValueError(
                f"{path} holds ImageNet weights: --data DIR is needed, a folder of "
                f"WordNet-id folders (DIR/<wnid>/<image> or DIR/val/<wnid>/<image>)"
            )
        return evaluate_wnid_folder(trained, data, ten_view=ten_view)
    config = trained.config
    name = dataset or config["dataset"]
    root = data or (config["data"] if name == config["dataset"] else None)
    split = split or "test"
    if split not in ("test", "val"):
        raise ValueError(f"evaluate: split must be 'test' or 'val', got {split!r}")
    train_full, test = load_dataset(name, root, trained.pre.size)
    if split == "val":
        _, test = split_off(train_full, config["val_fraction"], seed=config["seed"])
    if test.classes != trained.classes:
        raise ValueError(
            f"evaluate: {path} was trained on classes {trained.classes}, the {name} dataset has "
            f"{test.classes}"
        )
    return evaluate(trained.model, trained.pre, test, ten_view=ten_view)


def wnid_folder_files(root: str | Path, wnids: tuple[str, ...]) -> tuple[list[Path], np.ndarray]:
    """The image files of an ImageNet-layout folder and their labels (indices into ``wnids``).

    ``root/<wnid>/<image>``, or ``root/val/<wnid>/<image>`` when ``root/val`` exists (as in
    Imagenette, whose ``train/`` is then left alone). Any subset of the WordNet ids may be
    present; a folder that is not one of them, an empty one, or no folder at all is refused,
    naming the folder. Hidden files and folders are skipped.
    """
    root = Path(root)
    if not root.is_dir():
        what = "is a file, not" if root.exists() else "not found; expected"
        raise FileNotFoundError(f"{root}: {what} an ImageNet-layout folder (DIR/<wnid>/<image>)")
    split = root / "val" if (root / "val").is_dir() else root
    folders = class_folders(split)
    if not folders:
        raise ValueError(f"{split}: no class folders (expected {split}/<wnid>/<image>)")
    index = {wnid: i for i, wnid in enumerate(wnids)}
    files: list[Path] = []
    labels: list[int] = []
    for folder in folders:
        if folder not in index:
            raise ValueError(
                f"{split / folder}: not one of the network's {len(wnids)} WordNet ids (class "
                f"folders are named by them, e.g. {wnids[0]}; DIR/<wnid>/<image> or "
                f"DIR/val/<wnid>/<image>)"
            )
        members = class_files(split / folder)
        files += members
        labels += [index[folder]] * len(members)
    return files, np.array(labels, dtype=np.int64)


def evaluate_wnid_folder(
    trained: Trained, root: str | Path, *, batch_size: int = 64, ten_view: bool = False
) -> dict[str, float]:
    """Top-1/top-5 of ImageNet weights on an ImageNet-layout folder (``wnid_folder_files``),
    reading ``batch_size`` images at a time (tqdm shows the progress).

    Every image is scored over all the network's outputs, whichever subset of classes the
    folder holds: on Imagenette's 10 classes a guess of any of the other 990 is a miss, as it
    would be on ImageNet. Also returns how many images and classes were read.
    """
    files, labels = wnid_folder_files(root, trained.wnids)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with tqdm(total=len(files), desc=f"evaluating {Path(root).name}", unit="image") as bar:
            for idx in batch_slices(np.arange(len(files)), batch_size):
                images = np.stack([read_image(files[i], trained.pre.size) for i in idx])
                yield images, labels[idx]
                bar.update(len(idx))

    result = evaluate_batches(trained.model, trained.pre, batches(), ten_view=ten_view)
    return result | {"images": len(files), "classes": len(np.unique(labels))}


def predict_files(
    path: str | Path,
    files: list[str | Path],
    *,
    top: int = 5,
    ten_view: bool = False,
    engine: str | None = None,
) -> list[list[tuple[str, float]]]:
    """For each image file, its ``top`` most probable classes with their probabilities (all
    classes when there are fewer than ``top``; ``top`` < 1 is a ValueError).

    Files are read as the checkpoint's training images were made: for a net trained on digits,
    ``data.drawn.digit_from_drawing`` (one digit on a plain background, either polarity,
    remade as the dataset's 8×8 digits); otherwise ``read_image`` (shorter side rescaled,
    centre crop), like the image-folder and CIFAR loaders.
    """
    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}")
    trained = load_trained(path, engine=engine)
    read = read_drawn_digit if trained.config.get("dataset") == "digits" else read_image
    images = np.stack([read(f, trained.pre.size) for f in files])
    prob = predict_proba(trained.model, trained.pre, images, ten_view=ten_view)
    best = np.argsort(-prob, axis=1, kind="stable")[:, :top]
    return [
        [(trained.classes[c], float(p[c])) for c in row] for p, row in zip(prob, best, strict=True)
    ]


def run_evaluate(
    checkpoint: str,
    *,
    dataset: str | None = None,
    data: str | None = None,
    split: str | None = None,
    ten_view: bool = False,
    engine: str | None = None,
    comparison: str | None = None,
) -> int:
    """``python -m minialexnet evaluate``: print top-1 and top-5 accuracy of a checkpoint
    (and, after a weights file's, the line ``comparison``: the published figures)."""
    try:
        result = evaluate_checkpoint(
            checkpoint, dataset=dataset, data=data, split=split, ten_view=ten_view, engine=engine
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    views = "multi-view" if ten_view else "centre crop"
    accuracy = (
        f"top-1 accuracy {1 - result['top1_error']:.2%}, "
        f"top-5 accuracy {1 - result['top5_error']:.2%}, loss {result['loss']:.4f}"
    )
    if "images" not in result:
        print(f"{split or 'test'} ({views}): {accuracy}")
        return 0
    print(
        f"{data}: {result['images']:,} images of {result['classes']} classes ({views}; over all "
        f"the network's outputs): {accuracy}"
    )
    if comparison:
        print(comparison)
    return 0


def run_predict(
    checkpoint: str,
    images: list[str],
    *,
    top: int = 5,
    ten_view: bool = False,
    engine: str | None = None,
) -> int:
    """``python -m minialexnet predict``: the ``top`` classes of each image file."""
    try:
        results = predict_files(checkpoint, images, top=top, ten_view=ten_view, engine=engine)
    except (ValueError, FileNotFoundError) as error:
        print(f"predict: {error}", file=sys.stderr)
        return 2
    for file, ranked in zip(images, results, strict=True):
        print(file)
        for name, p in ranked:
            print(f"  {p:7.2%}  {name}")
    return 0
