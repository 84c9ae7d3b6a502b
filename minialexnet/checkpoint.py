"""Checkpoints: one ``.npz`` holding everything needed to continue a run bit for bit.

``RunState`` is what a run saves and restores, field by field, and the one place that maps it
onto the file; ``Checkpoint`` with ``save_checkpoint`` / ``load_checkpoint`` is the file itself.

Layout (every entry a plain array; loaded with ``allow_pickle=False``, so a checkpoint can
never run code):

    param/<name>       each parameter, e.g. ``param/conv1.W``
    velocity/<name>    the SGD velocity of each parameter
    data/<name>        the preprocessor's arrays (``mean``, PCA basis) and the epoch's batch order
    meta               one JSON string: format version, the run's config, class names, epoch and
                       position in it, the learning-rate schedule, the RNG states (data
                       generator and each dropout layer's), the history so far

Writes are atomic: the archive goes to a temporary file in the same folder, is flushed to disk,
and ``os.replace`` renames it over the old one. A crash mid-save leaves the previous checkpoint
whole and at most a stray ``*.tmp`` file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

FORMAT = 1
CHECKPOINT_FILE = "checkpoint.npz"  # in a run's output folder


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


@dataclass
class Checkpoint:
    """What a checkpoint holds, as plain Python objects and arrays."""

    params: dict[str, np.ndarray]
    velocities: dict[str, np.ndarray]
    data: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``path`` atomically."""
    if set(checkpoint.params) != set(checkpoint.velocities):
        raise ValueError("save_checkpoint: params and velocities must have the same names")
    arrays = {f"param/{k}": v for k, v in checkpoint.params.items()}
    arrays |= {f"velocity/{k}": v for k, v in checkpoint.velocities.items()}
    arrays |= {f"data/{k}": v for k, v in checkpoint.data.items()}
    arrays["meta"] = np.array(json.dumps({"format": FORMAT, **checkpoint.meta}))
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npz checkpoint ({error})") from None
    if "meta" not in arrays:
        raise ValueError(f"{path}: no 'meta' entry; not a minialexnet checkpoint")
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: checkpoint format {meta.get('format')}, expected {FORMAT}")
    groups: dict[str, dict[str, np.ndarray]] = {"param": {}, "velocity": {}, "data": {}}
    for name, array in arrays.items():
        group, _, key = name.partition("/")
        if group not in groups:
            raise ValueError(f"{path}: unexpected entry {name!r}")
        groups[group][key] = array
    if set(groups["param"]) != set(groups["velocity"]):
        raise ValueError(f"{path}: parameters and velocities name different arrays")
    return Checkpoint(groups["param"], groups["velocity"], groups["data"], meta)


def copy_into(target: dict[str, np.ndarray], saved: dict[str, np.ndarray], what: str) -> None:
    """Copy saved arrays into existing ones in place (names, shapes and dtypes must match)."""
    if set(target) != set(saved):
        missing, extra = sorted(set(target) - set(saved)), sorted(set(saved) - set(target))
        raise ValueError(
            f"checkpoint {what} do not match the model: missing {missing}, unexpected {extra}"
        )
    for name, array in target.items():
        if saved[name].shape != array.shape or saved[name].dtype != array.dtype:
            raise ValueError(
                f"checkpoint {what} {name!r} is {saved[name].dtype} {saved[name].shape}, the "
                f"model's is {array.dtype} {array.shape}"
            )
        array[...] = saved[name]


@dataclass
class RunState:
    """The complete state of a training run, as saved in (and restored from) a checkpoint.

    The trainer fills one (``Trainer.state``) and puts one back (``Trainer.restore``); how the
    fields map onto the archive's groups and JSON is known only to ``save`` and ``load``.
    """

    params: dict[str, np.ndarray]
    velocities: dict[str, np.ndarray]
    config: dict[str, Any]  # the run's TrainConfig as a dict
    classes: list[str]
    preprocess: dict[str, Any]  # the preprocessor's settings (``Preprocessor.settings``)
    preprocess_arrays: dict[str, np.ndarray]  # its arrays: mean, PCA basis
    epoch: int  # epochs done
    position: int  # batches done in the current epoch
    order: np.ndarray | None  # the current epoch's batch order (None between epochs)
    lr: float
    schedule: dict[str, Any] | None  # PlateauSchedule.state()
    rng: dict[str, Any]  # the data generator's bit_generator.state
    dropout_rngs: dict[str, dict[str, Any]]  # each Dropout layer's, by layer name
    totals: dict[str, float]  # the current epoch's running sums so far
    history: list[dict[str, float]]

    _ARRAYS = ("params", "velocities", "preprocess_arrays", "order")

    def save(self, path: str | Path) -> Path:
        """Write the state to ``path`` atomically."""
        data = dict(self.preprocess_arrays)
        if self.order is not None:
            data["order"] = self.order
        meta = {k: v for k, v in vars(self).items() if k not in self._ARRAYS}
        return save_checkpoint(path, Checkpoint(self.params, self.velocities, data, meta))

    @classmethod
    def load(cls, path: str | Path) -> RunState:
        """Read the state a ``save`` wrote; errors name the file."""
        ckpt = load_checkpoint(path)
        data, meta = dict(ckpt.data), dict(ckpt.meta)
        order = data.pop("order", None)
        meta.pop("format")
        try:
            return cls(ckpt.params, ckpt.velocities, preprocess_arrays=data, order=order, **meta)
        except TypeError as error:  # a field missing or unknown: not a run's checkpoint
            raise ValueError(f"{path}: not a training run's checkpoint ({error})") from None
