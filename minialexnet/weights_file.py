"""Weights-only checkpoints: a network's parameters and what is needed to use it, no training.

A training run's checkpoint (``checkpoint.RunState``) holds everything needed to continue the
run; weights converted from elsewhere (torchvision's ImageNet AlexNet: ``pretrained``) have no
run to continue: no velocities, epoch, schedule or generator states. They are the same
``.npz`` layout (``checkpoint.save_checkpoint``) with meta's ``kind`` = ``"weights"`` and

    param/<name>       each parameter, e.g. ``param/conv1.W``
    data/<name>        the preprocessor's arrays: ``mean``, ``std``
    meta               config    the fields that rebuild the network (``WEIGHTS_CONFIG``)
                       classes   the readable class names, in output order
                       wnids     each class's WordNet id (the folder names ``evaluate`` reads)
                       preprocess  ``Preprocessor.settings()``
                       source    {"file": the converted file's name, "sha256": its digest}

Reads are as strict as a run's: a missing, extra or wrong-typed field is a ``ValueError``
naming the file and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import (
    CONFIG_CHECKS,
    META_CHECKS,
    PREPROCESS_CHECKS,
    Checkpoint,
    check_fields,
    check_preprocess_arrays,
    has_fields,
    load_checkpoint,
    save_checkpoint,
)

# The config fields ``model.model_from_config`` rebuilds the network from, and the dataset's
# name (what the weights were trained on; no dataset of ``data.DATASETS``)
WEIGHTS_CONFIG = ("dataset", "variant", "seed", "dropout", "activation", "lrn", "pool")
PREPROCESS_ARRAYS = ("mean", "std")
WNID = re.compile(r"n\d{8}")


WEIGHTS_META_CHECKS = {
    "config": lambda v: (
        isinstance(v, dict)
        and set(v) == set(WEIGHTS_CONFIG)
        and all(CONFIG_CHECKS[k](v[k]) for k in WEIGHTS_CONFIG)
    ),
    "classes": META_CHECKS["classes"],  # a non-empty list of strings, as a run's
    "wnids": lambda v: (
        META_CHECKS["classes"](v) and all(WNID.fullmatch(w) for w in v) and len(set(v)) == len(v)
    ),
    "preprocess": lambda v: has_fields(v, PREPROCESS_CHECKS),
    "source": lambda v: (
        isinstance(v, dict)
        and set(v) == {"file", "sha256"}
        and isinstance(v["file"], str)
        and isinstance(v["sha256"], str)
        and re.fullmatch(r"[0-9a-f]{64}", v["sha256"]) is not None
    ),
}


@dataclass
class WeightsState:
    """A network's parameters with its classes and preprocessing, as a weights file holds them."""

    params: dict[str, np.ndarray]
    config: dict[str, Any]  # the WEIGHTS_CONFIG fields
    classes: list[str]
    wnids: list[str]  # one WordNet id per class
    preprocess: dict[str, Any]  # Preprocessor.settings()
    preprocess_arrays: dict[str, np.ndarray]  # Preprocessor.arrays(): mean, std
    source: dict[str, str]  # {"file", "sha256"} of the file the weights were converted from

    def save(self, path: str | Path) -> Path:
        """Write the weights to ``path`` atomically."""
        meta = {
            "kind": "weights",
            "config": self.config,
            "classes": self.classes,
            "wnids": self.wnids,
            "preprocess": self.preprocess,
            "source": self.source,
        }
        data = dict(self.preprocess_arrays)
        return save_checkpoint(path, Checkpoint(self.params, {}, data, meta))

    @classmethod
    def load(cls, path: str | Path) -> WeightsState:
        """Read what ``save`` wrote; anything missing, extra or wrong is a ValueError naming
        the file and the field."""
        return cls.from_checkpoint(load_checkpoint(path), path)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, path: str | Path) -> WeightsState:
        """The weights held by ``ckpt``, read from ``path`` (named in errors)."""
        meta = dict(ckpt.meta)
        meta.pop("format")
        if meta.pop("kind", "run") != "weights":
            raise ValueError(f"{path}: a training run's checkpoint, not a weights file")
        problem = check_weights_meta(meta, ckpt.data)
        if problem:
            raise ValueError(f"{path}: not a valid weights file ({problem})")
        return cls(ckpt.params, preprocess_arrays=dict(ckpt.data), **meta)


def check_weights_meta(meta: dict[str, Any], data: dict[str, np.ndarray]) -> str | None:
    """What is wrong with a weights file's fields and arrays (None: nothing), in words."""
    problem = check_fields(meta, WEIGHTS_META_CHECKS)
    if problem:
        return problem
    if len(meta["wnids"]) != len(meta["classes"]):
        return f"{len(meta['wnids'])} WordNet ids for {len(meta['classes'])} classes"
    unexpected = sorted(set(data) - set(PREPROCESS_ARRAYS))
    if unexpected:
        return f"unexpected arrays {['data/' + k for k in unexpected]}"
    return check_preprocess_arrays(data, meta["preprocess"])
