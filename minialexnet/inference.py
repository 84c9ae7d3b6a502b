"""Using a trained network: class probabilities, top-1/top-5 evaluation, and checkpoints back
into a model for ``python -m minialexnet evaluate`` and ``predict``.

Test-time views [P §4.1]: the centre crop, or the paper's ten views (four corners and the centre,
and their mirror images) with their softmax outputs averaged.

A checkpoint runs on either engine (``engine="reference"|"fast"``): the engines share the
parameters' names and shapes, so the one a network was trained with does not matter here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import RunState, copy_into
from .data import (
    Dataset,
    Preprocessor,
    batch_slices,
    load_dataset,
    read_drawn_digit,
    read_image,
    split_off,
)
from .layers import softmax
from .model import Sequential, default_engine, model_from_config


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
    loss = top1 = top5 = 0.0
    for idx in batch_slices(np.arange(len(dataset)), batch_size):
        prob = predict_proba(model, pre, dataset.images[idx], ten_view=ten_view)
        y = dataset.labels[idx]
        loss -= float(np.log(np.maximum(prob[np.arange(len(y)), y], 1e-12)).sum())
        top1 += topk_misses(prob, y, 1)
        top5 += topk_misses(prob, y, 5)
    n = len(dataset)
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
    """A network with the parameters of a checkpoint and the preprocessing it was trained with."""

    model: Sequential
    pre: Preprocessor
    classes: tuple[str, ...]
    config: dict[str, Any]


def load_trained(path: str | Path, *, engine: str | None = None) -> Trained:
    """The checkpoint's network on ``engine``'s layers (None: ``model.default_engine()``, not
    the training run's: a student copy, without the fast engine, still runs a fast-trained
    checkpoint)."""
    state = RunState.load(path)
    classes = tuple(state.classes)
    model = model_from_config(state.config, len(classes), engine=engine or default_engine())
    try:
        copy_into(model.params(), state.params, "parameters")
    except ValueError as error:  # arrays that do not fit the network: name the file
        raise ValueError(f"{path}: {error}") from None
    pre = Preprocessor.from_saved(state.preprocess_arrays, state.preprocess)
    return Trained(model.eval(), pre, classes, state.config)


def evaluate_checkpoint(
    path: str | Path,
    *,
    dataset: str | None = None,
    data: str | None = None,
    split: str = "test",
    ten_view: bool = False,
    engine: str | None = None,
) -> dict[str, float]:
    """Top-1/top-5 of a checkpoint on a dataset split ("test", or "val": the validation images
    carved from the training split exactly as the run did). Dataset defaults to the run's."""
    trained = load_trained(path, engine=engine)
    config = trained.config
    name = dataset or config["dataset"]
    root = data or (config["data"] if name == config["dataset"] else None)
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
    split: str = "test",
    ten_view: bool = False,
    engine: str | None = None,
) -> int:
    """``python -m minialexnet evaluate``: print top-1 and top-5 accuracy of a checkpoint."""
    try:
        result = evaluate_checkpoint(
            checkpoint, dataset=dataset, data=data, split=split, ten_view=ten_view, engine=engine
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    views = "multi-view" if ten_view else "centre crop"
    print(
        f"{split} ({views}): top-1 accuracy {1 - result['top1_error']:.2%}, "
        f"top-5 accuracy {1 - result['top5_error']:.2%}, loss {result['loss']:.4f}"
    )
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
