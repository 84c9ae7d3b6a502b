"""Checkpoints: one ``.npz`` holding everything needed to continue a run bit for bit.

``RunState`` is what a run saves and restores, field by field, and the one place that maps it
onto the file; ``Checkpoint`` with ``save_checkpoint`` / ``load_checkpoint`` is the file itself.

Layout (every entry a plain array; loaded with ``allow_pickle=False``, so a checkpoint can
never run code):

    param/<name>       each parameter, e.g. ``param/conv1.W``
    velocity/<name>    the SGD velocity of each parameter (a run's checkpoint only)
    data/<name>        the preprocessor's arrays (``mean``, PCA basis) and the epoch's batch order
    meta               one JSON string: format version, the run's config, class names, epoch and
                       position in it, the learning-rate schedule, the RNG states (data
                       generator and each dropout layer's), the history so far, and the
                       options changed on resume (``changes``)

Two kinds (meta's ``kind``): ``"run"``, a training run's whole state (``RunState``; files
written before the field was kept are runs), and ``"weights"``, a network's parameters with
what is needed to use it and no training state (``weights_file.WeightsState``: converted
ImageNet weights). ``train --resume`` takes only a run.

Writes are atomic: the archive goes to a temporary file in the same folder, is flushed to disk,
and ``os.replace`` renames it over the old one. A crash mid-save leaves the previous checkpoint
whole and at most a stray temporary file, named ``.<file>.<pid>.<random>.tmp`` after the
process that wrote it: ``remove_stale_temps`` (called when a run starts or resumes in a folder)
deletes those whose process is no longer alive, so a live writer's file is never touched. The
file gets the permissions ``open`` would have given it (``0o666`` less the umask), not
``mkstemp``'s private ``0o600``.

Reads never trust the file (``safe_npz.read_npz``): a truncated, zero-byte, bit-flipped or
hand-edited checkpoint — a damaged archive, an ``.npy`` header claiming more than the file
holds, meta JSON with missing, extra or wrong-typed fields — is one ``ValueError`` naming the
file and what is wrong, never a traceback or a 256 GiB allocation.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from .data.pipeline import std_problem
from .layers.base import is_finite_number, is_int
from .safe_npz import read_npz

# 2: the ``paper`` variant's LRN normalises each GPU's half of the maps apart (groups=2). Its
# format-1 checkpoints were trained with one LRN window across all maps, a different function,
# and are refused; format 1 of every other variant reads as before.
FORMAT = 2
CHECKPOINT_FILE = "checkpoint.npz"  # in a run's output folder
KINDS = ("run", "weights")  # a training run's whole state; weights only (no velocities)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    The temporary file's name carries this process's id (see ``remove_stale_temps``) and it is
    given ``0o666 & ~umask`` before the rename, as a plain ``open`` would have.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux's
    /proc/self/status): ``os.umask`` can only be read by setting it, which another thread
    creating a file at that moment would see."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # the safest value for the instant it is set
    os.umask(mask)
    return mask


# what atomic_write names its temporary files: .<name>.<pid>.<mkstemp's random part>.tmp
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
# ... and what it named them before the pid was part of the name (mkstemp: 8 characters)
LEGACY_TEMP_NAME = re.compile(r"^\.(?P<name>[^.].*)\.[a-z0-9_]{8}\.tmp$")


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete ``atomic_write``'s temporary files in ``folder`` whose writer is dead (a run
    killed mid-save leaves one, up to the checkpoint's size); return what was removed.

    Only files of our own naming pattern are touched, and only when the process id in the
    name is not alive: a run writing in the same folder right now keeps its file. (A dead id
    reused by an unrelated process keeps the file too: harmless, it is removed later.) Files
    of the older pattern, without a pid, are removed too: they can only be from an earlier
    version, and a run owns its folder.
    """
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = TEMP_NAME.match(entry.name)
        dead = not pid_alive(int(match["pid"])) if match else LEGACY_TEMP_NAME.match(entry.name)
        if dead and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` exists (signal 0 checks without sending anything)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # someone else's process; or not a pid at all
        return True
    return True


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
    kind = checkpoint.meta.get("kind", "run")
    if kind not in KINDS:
        raise ValueError(f"save_checkpoint: kind must be one of {KINDS}, got {kind!r}")
    if set(checkpoint.velocities) != (set(checkpoint.params) if kind == "run" else set()):
        raise ValueError(
            "save_checkpoint: a run's params and velocities must have the same names; a "
            "weights checkpoint has no velocities"
        )
    arrays = {f"param/{k}": v for k, v in checkpoint.params.items()}
    arrays |= {f"velocity/{k}": v for k, v in checkpoint.velocities.items()}
    arrays |= {f"data/{k}": v for k, v in checkpoint.data.items()}
    arrays["meta"] = np.array(json.dumps({"format": FORMAT, **checkpoint.meta}))
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``; any damage is a ``ValueError`` naming
    the file (see ``safe_npz``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    arrays = read_npz(path)
    if "meta" not in arrays:
        raise ValueError(f"{path}: no 'meta' entry; not a minialexnet checkpoint")
    meta_array = arrays.pop("meta")
    if meta_array.shape != () or meta_array.dtype.kind != "U":
        raise ValueError(f"{path}: 'meta' is {meta_array.dtype} {meta_array.shape}, not a string")
    try:
        meta = json.loads(str(meta_array))
    except ValueError as error:
        raise ValueError(f"{path}: 'meta' is not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: 'meta' is a JSON {type(meta).__name__}, expected an object")
    config = meta.get("config")
    if meta.get("format") == 1 and isinstance(config, dict) and config.get("variant") == "paper":
        raise ValueError(
            f"{path}: a 'paper' checkpoint of format 1, trained with one LRN window across both "
            f"GPUs' halves of the maps; the variant now normalises each half apart, as the "
            f"paper's GPUs did, so these weights would compute another function: retrain it"
        )
    if meta.get("format") not in (1, FORMAT):
        raise ValueError(f"{path}: checkpoint format {meta.get('format')}, expected {FORMAT}")
    kind = meta.get("kind", "run")
    if kind not in KINDS:
        raise ValueError(f"{path}: checkpoint kind {kind!r}, expected one of {KINDS}")
    groups: dict[str, dict[str, np.ndarray]] = {"param": {}, "velocity": {}, "data": {}}
    for name, array in arrays.items():
        group, _, key = name.partition("/")
        if group not in groups or not key:
            raise ValueError(f"{path}: unexpected entry {name!r}")
        groups[group][key] = array
    if kind == "weights" and groups["velocity"]:
        raise ValueError(f"{path}: a weights-only checkpoint holding velocities")
    if kind == "run" and set(groups["param"]) != set(groups["velocity"]):
        raise ValueError(f"{path}: parameters and velocities name different arrays")
    for key, velocity in groups["velocity"].items():
        param = groups["param"][key]
        if velocity.shape != param.shape or velocity.dtype != param.dtype:
            raise ValueError(
                f"{path}: velocity {key!r} is {velocity.dtype} {velocity.shape}, its parameter "
                f"{param.dtype} {param.shape}"
            )
    dtypes = sorted({str(a.dtype) for a in groups["param"].values()})
    if len(dtypes) > 1 or any(a.dtype.kind != "f" for a in groups["param"].values()):
        raise ValueError(f"{path}: parameters of dtypes {dtypes}, expected one float dtype")
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
    # options changed on --resume, as applied: [{"epoch", "position", "changed": {name: [old,
    # new]}}] (absent from checkpoints written before it was kept: none then)
    changes: list[dict[str, Any]] = field(default_factory=list)

    _ARRAYS = ("params", "velocities", "preprocess_arrays", "order")

    def save(self, path: str | Path) -> Path:
        """Write the state to ``path`` atomically."""
        data = dict(self.preprocess_arrays)
        if self.order is not None:
            data["order"] = self.order
        meta = {k: v for k, v in vars(self).items() if k not in self._ARRAYS}
        meta["kind"] = "run"
        return save_checkpoint(path, Checkpoint(self.params, self.velocities, data, meta))

    @classmethod
    def load(cls, path: str | Path) -> RunState:
        """Read the state a ``save`` wrote; anything missing, extra or of the wrong type is a
        ``ValueError`` naming the file and the field (``check_run_meta``)."""
        return cls.from_checkpoint(load_checkpoint(path), path)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, path: str | Path) -> RunState:
        """The state held by ``ckpt``, read from ``path`` (named in errors)."""
        data, meta = dict(ckpt.data), dict(ckpt.meta)
        if meta.pop("kind", "run") != "run":
            raise ValueError(
                f"{path}: weights only, not a run checkpoint (it holds no training state to "
                f"resume; evaluate and predict read it)"
            )
        order = data.pop("order", None)
        meta.pop("format")
        problem = check_run_meta(meta, data, order)
        if problem:
            raise ValueError(f"{path}: not a training run's checkpoint ({problem})")
        return cls(ckpt.params, ckpt.velocities, preprocess_arrays=data, order=order, **meta)


def _rng_state(v: Any) -> bool:
    """Whether ``v`` is a state a NumPy generator accepts (what every saved generator is)."""
    try:
        np.random.default_rng().bit_generator.state = v
    except (TypeError, ValueError, KeyError):
        return False
    return True


def has_fields(v: Any, checks: dict[str, Callable[[Any], bool]]) -> bool:
    """Whether ``v`` is a dict holding every field of ``checks``, each passing its check."""
    return isinstance(v, dict) and all(k in v and ok(v[k]) for k, ok in checks.items())


# what every epoch's record holds (Trainer._end_epoch; the curves are drawn from them)
HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_error", "val_loss", "val_error")

# The meta fields of a run, each with the test its value must pass. The config's entries are
# those every reader needs before TrainConfig checks the rest (the network and the data split:
# evaluate and predict rebuild the net from them).
CONFIG_CHECKS: dict[str, Callable[[Any], bool]] = {
    "dataset": lambda v: isinstance(v, str),
    "data": lambda v: v is None or isinstance(v, str),
    "variant": lambda v: isinstance(v, str),
    "seed": lambda v: is_int(v) and v >= 0,
    "val_fraction": lambda v: is_finite_number(v) and 0 < v < 1,
    "dropout": lambda v: is_finite_number(v) and 0 <= v < 1,
    "activation": lambda v: isinstance(v, str),
    "lrn": lambda v: v is None or isinstance(v, bool),
    "pool": lambda v: isinstance(v, list) and len(v) == 2 and all(is_int(k) and k > 0 for k in v),
}
# ``Preprocessor.settings()``, as both kinds of checkpoint save them
PREPROCESS_CHECKS: dict[str, Callable[[Any], bool]] = {
    "size": lambda k: is_int(k) and k > 0,
    "crop": lambda k: is_int(k) and k > 0,
    "random_crop": lambda k: isinstance(k, bool),
    "flip": lambda k: isinstance(k, bool),
    "pca_sigma": lambda k: is_finite_number(k) and k >= 0,
}
META_CHECKS: dict[str, Callable[[Any], bool]] = {
    "config": lambda v: has_fields(v, CONFIG_CHECKS),
    "classes": lambda v: isinstance(v, list) and v and all(isinstance(c, str) for c in v),
    "preprocess": lambda v: has_fields(v, PREPROCESS_CHECKS),
    "epoch": lambda v: is_int(v) and v >= 0,
    "position": lambda v: is_int(v) and v >= 0,
    "lr": lambda v: is_finite_number(v) and v > 0,
    "schedule": lambda v: (
        v is None
        or has_fields(
            v,
            {"best": lambda k: isinstance(k, (int, float)), "bad_epochs": is_int, "drops": is_int},
        )
    ),
    "rng": _rng_state,
    "dropout_rngs": lambda v: isinstance(v, dict) and all(map(_rng_state, v.values())),
    "totals": lambda v: has_fields(v, {"loss": is_finite_number, "errors": is_int, "seen": is_int}),
    "history": lambda v: (
        isinstance(v, list)
        and all(has_fields(h, dict.fromkeys(HISTORY_KEYS, is_finite_number)) for h in v)
    ),
    "changes": lambda v: isinstance(v, list) and all(isinstance(h, dict) for h in v),
}
OPTIONAL_META = {"changes"}


def check_run_meta(
    meta: dict[str, Any], data: dict[str, np.ndarray], order: np.ndarray | None
) -> str | None:
    """What is wrong with a run checkpoint's fields (None: nothing), in words."""
    problem = check_fields(meta, META_CHECKS, OPTIONAL_META)
    if problem:
        return problem
    if order is not None and (order.ndim != 1 or order.dtype.kind not in "iu"):
        return f"data/order is {order.dtype} {order.shape}, expected a 1-d integer array"
    return check_preprocess_arrays(data, meta["preprocess"])


def check_fields(
    meta: dict[str, Any],
    checks: dict[str, Callable[[Any], bool]],
    optional: frozenset[str] | set[str] = frozenset(),
) -> str | None:
    """What is wrong with ``meta`` for ``checks`` (None: nothing), in words: a field missing
    (unless ``optional``) or unexpected, or one failing its check."""
    missing = sorted(set(checks) - set(meta) - set(optional))
    extra = sorted(set(meta) - set(checks))
    if missing or extra:
        return f"missing fields {missing}, unexpected fields {extra}"
    for name, ok in checks.items():
        if name in meta and not ok(meta[name]):
            return f"field {name!r} has an invalid value {shown_value(meta[name])}"
    return None


def shown_value(value: Any) -> str:
    """A field's value as JSON, cut to 80 characters (an error message quotes it)."""
    shown = json.dumps(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def check_preprocess_arrays(data: dict[str, np.ndarray], preprocess: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's preprocessor arrays (``Preprocessor.arrays()``) for
    its checked ``preprocess`` settings (None: nothing), in words."""
    mean = data.get("mean")
    if mean is None or mean.ndim != 3 or mean.shape[0] != 3 or mean.dtype.kind != "f":
        what = "missing" if mean is None else f"{mean.dtype} {mean.shape}"
        return f"data/mean is {what}, expected float (3, S, S) or (3, 1, 1)"
    size, crop = preprocess["size"], preprocess["crop"]
    if mean.shape[1:] not in ((size, size), (1, 1)) or crop > size:
        return f"data/mean {mean.shape} and crop {crop} do not fit the stored size {size}"
    pca = (data.get("pca_eigvals"), data.get("pca_eigvecs"))
    if any(a is not None for a in pca) and not (
        all(a is not None and a.dtype.kind == "f" for a in pca)
        and pca[0].shape == (3,)
        and pca[1].shape == (3, 3)
    ):
        return "data/pca_eigvals and data/pca_eigvecs must be float (3,) and (3, 3), together"
    problem = std_problem(data.get("std"))  # absent from checkpoints before it was kept
    return f"data/std: expected {problem}" if problem else None
