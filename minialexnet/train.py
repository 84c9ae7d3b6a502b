"""A training run from a config: what ``python -m minialexnet train`` does.

``train(config)`` builds everything a ``TrainConfig`` describes — data splits, network,
optimizer, preprocessing, schedule — and hands them to the loop (``trainer.Trainer``), then
tests the result. A resumed run continues from its checkpoint's exact state (``RunState``:
parameters, velocities, position in the epoch, and every random generator), so it ends with
the same parameters, bit for bit, as a run that was never interrupted; the checkpoint file is
read once.

Option values are checked when a ``TrainConfig`` is made (``TrainConfig.check``), so Python
users and the CLI get the same one-line ``ValueError`` naming the option. Before anything
trains, ``train`` also checks (``preflight``): ``--out`` is a folder it can write to (made,
and a probe file written atomically) that holds no other run (unless ``--overwrite``), with
disk space for a checkpoint; the stored dataset fits in the available memory; the validation
and training splits are both non-empty. Stale temporary files of a killed save are removed.

The resume rule, for options that differ from the saved run (this table is its one statement;
``FIXED_ON_RESUME`` and ``resume_changes`` carry it out). The saved config is always what is
used, and every applied change is recorded in the checkpoint's and history.json's
``changes``: from which epoch and batch (``position``), the old and the new value:

    =========================================  =================================================
    options                                    on --resume with a different value
    =========================================  =================================================
    dataset, data, variant, init, seed,        refused, by name: they define the data, the
    image_size, mean, val_fraction,            train/val split or the network, so changing
    activation, lrn, pool, dropout             them would silently make it another run
    epochs, patience, max_lr_drops, ten_view,  applied: they steer the run, not what it learns
    out, backend, engine, skip_bad             from (out: the run continues in the new folder)
    lr, momentum, weight_decay                 applied from the resumed point (lr replaces the
                                               scheduled rate; later drops divide the new one)
    random_crop, flip, pca, pca_sigma          applied from the resumed point (pca on: the
                                               basis is computed on the run's training split)
    batch_size                                 applied between epochs; refused mid-epoch (the
                                               position in the epoch is counted in batches)
    --distributed, --model-parallel,           free: not options of the config but of how it
    --mpi-timeout, the number of ranks         runs (the checkpoint is a one-process one)
    =========================================  =================================================
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import preflight
from .checkpoint import CHECKPOINT_FILE, RunState
from .data import Dataset, Preprocessor, load_dataset, num_batches, rgb_pca, split_off
from .data.datasets import stored_size
from .distributed.comm import Comm, DistributedError, report_failure, world_if_asked
from .distributed.ranks import RunRanks
from .model import (
    Sequential,
    cuda_unavailable_reason,
    default_engine,
    input_size,
    model_from_config,
)
from .optim import SGD, PlateauSchedule, initialize
from .step import StepFn
from .train_options import option, option_checks
from .trainer import Trainer

# Flips and colour shifts keep a photo's class; they would not keep a digit's (a mirrored 2 is
# not a 2, and the digits are grey), so each dataset has its own defaults for the two switches.
AUGMENT_DEFAULTS = {"digits": (False, False), "cifar10": (True, True), "folder": (True, True)}

# The resume rule (the table in the module docstring): what defines the run is refused when
# it changes; everything else is applied from the resumed point and recorded.
FIXED_ON_RESUME = (
    *("dataset", "data", "variant", "init", "seed", "image_size", "mean", "val_fraction"),
    *("activation", "lrn", "pool", "dropout"),
)


class BackendUnavailableError(RuntimeError):
    """``--backend cuda`` was asked for on a machine that cannot run it."""


# What a run refuses in one line (an option, a file, the backend, a rank gone): run_train's
RUN_ERRORS = (BackendUnavailableError, ValueError, FileNotFoundError, DistributedError)


@dataclass
class TrainConfig:
    """Everything that defines a run; saved (as JSON) in every checkpoint."""

    dataset: str = "digits"
    data: str | None = None  # folder of the dataset (not needed for digits)
    variant: str = "mini"
    # The defaults train `mini` on digits: 97.8% test accuracy in 2.4 minutes on 2 cores
    # (97.8-98.6% over seeds 0-3). How they were chosen (test accuracy over seeds 0-2): batch
    # 64 at lr 0.02 (20 steps an epoch) gave 96.1-97.5%, the lr never divided in 30 epochs;
    # batch 32 at lr 0.01 (twice the steps for the same images) 97.2-97.5%, but with a patience
    # of 5 the lr was divided while the error was still falling: one validation image is 0.7%,
    # so noise alone can look like a plateau. Patience 8 over 40 epochs: 97.5-98.1%; and with
    # the digits padded rather than stretched (see load_digits) 97.8-98.6%.
    epochs: int = 40
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    init: str = "he"
    seed: int = 0
    image_size: int | None = None  # stored size; None: the input size × 256/224
    mean: str = "pixel"
    random_crop: bool = True
    flip: bool | None = None  # None: the dataset's default (AUGMENT_DEFAULTS)
    pca: bool | None = None
    pca_sigma: float = 0.1
    val_fraction: float = 0.1
    patience: int = 8  # epochs without a better validation error before lr ÷ 10
    max_lr_drops: int = 3
    ten_view: bool = False  # final test with the paper's ten views
    out: str | None = None
    backend: str = "cpu"
    # the CPU layers' implementation (model.ENGINES; None: model.default_engine()). With the
    # cuda backend the GPU trains and the CPU layers evaluate between epochs.
    engine: str | None = None
    skip_bad: bool = False
    # model switches (see build_alexnet), for the lessons that take one design choice out
    activation: str = "relu"
    lrn: bool | None = None
    pool: tuple[int, int] = (3, 2)
    dropout: float = 0.5

    def __post_init__(self) -> None:
        self.pool = tuple(self.pool) if isinstance(self.pool, (list, tuple)) else self.pool
        flip, pca = AUGMENT_DEFAULTS.get(self.dataset, (False, False))
        self.flip = flip if self.flip is None else self.flip
        self.pca = pca if self.pca is None else self.pca
        self.engine = default_engine() if self.engine is None else self.engine
        self.check()
        if self.image_size is None:  # what is used is what is saved
            self.image_size = stored_size(input_size(self.variant))

    def check(self) -> None:
        """Raise ``ValueError`` naming the first option whose value is not allowed (as the
        CLI spells it, with what is expected and what was given), before anything runs."""
        for name, ok, expected in option_checks(self):
            if not ok(getattr(self, name)):
                value = getattr(self, name)
                raise ValueError(f"{option(name)}: expected {expected}, got {value!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a dict (a checkpoint's JSON); an unknown key is refused by name."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"TrainConfig: unknown options {unknown}")
        return cls(**values)


# ----------------------------------------------------------------------------------------
# A run from a config: what `python -m minialexnet train` does
# ----------------------------------------------------------------------------------------
@dataclass
class RunResult:
    completed: bool  # False: stopped by Ctrl-C or SIGTERM (a checkpoint was saved)
    history: list[dict[str, float]]
    test: dict[str, float] | None
    out: Path | None
    trainer: Trainer


def build_model(config: TrainConfig, num_classes: int) -> Sequential:
    """The network a config describes, initialized by ``config.init`` from ``config.seed``."""
    return initialize(model_from_config(asdict(config), num_classes), config.init, config.seed)


def check_backend(backend: str) -> None:
    """Raise ``BackendUnavailableError`` (one line, no traceback) if ``backend`` cannot run."""
    if backend == "cpu":
        return
    why = cuda_unavailable_reason()
    if why is not None:
        raise BackendUnavailableError(f"--backend cuda: {why}")
    try:
        from .cuda.backend import CudaTrainer  # noqa: F401  (fails here if the backend is broken)
    except Exception as error:  # an import error of any kind: report it in one line
        raise BackendUnavailableError(f"--backend cuda is not available: {error}") from None


def cuda_step(model: Sequential, optimizer: SGD) -> tuple[StepFn, Callable[[], None]]:
    """The GPU backend's (step, sync to host); ``check_backend("cuda")`` must have passed."""
    from .cuda.backend import CudaTrainer

    trainer = CudaTrainer(model, optimizer)
    return trainer.step, trainer.sync_to_host


def load_splits(config: TrainConfig, limit: int | None = None) -> tuple[Dataset, Dataset, Dataset]:
    """(train, val, test) for ``config``: val is a stratified ``val_fraction`` carved out of the
    training split, so the schedule never looks at the test images. ``limit`` keeps only the
    first ``limit`` images of each split (the lessons' quick mode)."""
    size = config.image_size  # TrainConfig always sets it (stored_size of the input)
    preflight.check_dataset_memory(config.dataset, config.data, size)
    train_full, test = load_dataset(config.dataset, config.data, size, skip_bad=config.skip_bad)
    splits = (*split_off(train_full, config.val_fraction, seed=config.seed), test)
    if limit is None:
        return splits
    return tuple(s.subset(np.arange(min(limit, len(s)))) for s in splits)


def saved_config(state: RunState, where: str) -> TrainConfig:
    """The config ``state`` was saved with, checked like any other; ``where`` names the
    checkpoint in the message when it is not valid."""
    try:
        return TrainConfig.from_dict(state.config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: its saved config is not valid ({error})") from None


def resume_changes(config: TrainConfig, state: RunState, where: str) -> dict[str, list[Any]]:
    """The options ``config`` changes from the run saved in ``state``, as {name: [old, new]},
    after refusing those that the resume rule (the module docstring) does not let change.
    ``where`` names the checkpoint in the messages."""
    saved = asdict(saved_config(state, where))
    now = asdict(config)
    changed = {k: [saved[k], now[k]] for k in now if now[k] != saved[k]}
    for name in FIXED_ON_RESUME:
        if name in changed:
            raise ValueError(
                f"{option(name)}: cannot change on --resume (it defines the run's data, split or "
                f"network); the run in {where} has {saved[name]!r}, got {now[name]!r}"
            )
    if "batch_size" in changed and state.position > 0:
        raise ValueError(
            f"--batch-size: cannot change in mid-epoch (the run in {where} stopped after batch "
            f"{state.position} of epoch {state.epoch + 1} at batch size {saved['batch_size']}); "
            f"finish the epoch first (--resume with --epochs {state.epoch + 1}), then resume "
            f"with the new --batch-size"
        )
    return changed


def apply_augmentation(pre: Preprocessor, config: TrainConfig, train_set: Dataset) -> None:
    """Switch a resumed run's preprocessor to ``config``'s augmentation (the resume rule)."""
    pre.random_crop, pre.flip, pre.pca_sigma = config.random_crop, config.flip, config.pca_sigma
    if not config.pca:
        pre.pca_eigvals = pre.pca_eigvecs = None
    elif pre.pca_eigvals is None:  # as Preprocessor.fit would have computed it
        pre.pca_eigvals, pre.pca_eigvecs = rgb_pca(train_set.images)


def train(
    config: TrainConfig,
    *,
    resume: RunState | str | Path | None = None,
    splits: tuple[Dataset, Dataset, Dataset] | None = None,
    progress: bool = True,
    overwrite: bool = False,
    resumed_from: str | Path | None = None,
    comm: Comm | None = None,
    model_parallel: bool = False,
) -> RunResult:
    """Train as ``config`` says (continuing ``resume``, a checkpoint or its path, if given);
    test at the end. ``splits`` (train, val, test) skips loading the dataset (the lessons pass
    subsets). ``config.out`` must not hold another run unless ``overwrite`` (then it is
    replaced). Options changed on resume follow the resume rule (the module docstring).
    ``resumed_from`` is the file a ``RunState`` passed as ``resume`` was read from. ``comm``
    (``distributed.comm.world()``), with or without ``model_parallel``: one rank of an MPI run
    (``distributed.ranks.RunRanks`` says what each kind changes).
    """
    check_backend(config.backend)
    ranks = RunRanks(comm, model_parallel)
    ranks.check_backend(config.backend)
    root, parts = ranks.root, ranks.parts
    if isinstance(resume, (str, Path)):
        resumed_from, resume = resume, RunState.load(resume)
    state, where = resume, str(resumed_from or "the checkpoint")
    changed = resume_changes(config, state, where) if state is not None else {}
    out = Path(config.out) if config.out else None
    if out is not None and root:
        here = Path(resumed_from).parent.resolve() if state and resumed_from else None
        preflight.prepare_out(out, fresh=here != out.resolve(), overwrite=overwrite)
    train_set, val_set, test_set = splits or load_splits(config)
    preflight.check_split_sizes(len(train_set), len(val_set), config.val_fraction)
    if state is not None:
        check_same_data(state, train_set, where)
    classes = len(train_set.classes)
    model = ranks.build_model(asdict(config), classes, lambda: build_model(config, classes))
    if out is not None and root:  # parameters and velocities, float32 or float64
        preflight.check_disk_space(out, 2 * parts * model.num_params() * model.dtype.itemsize)
    optimizer = SGD(model, config.lr, config.momentum, config.weight_decay)
    if state is not None:
        pre = Preprocessor.from_saved(state.preprocess_arrays, state.preprocess)
        apply_augmentation(pre, config, train_set)
    else:
        pre = Preprocessor.fit(
            train_set,
            model.input_shape[1],
            mean=config.mean,
            random_crop=config.random_crop,
            flip=config.flip,
            pca=config.pca,
            pca_sigma=config.pca_sigma,
        )
    trainer = ranks.trainer_class()(
        model,
        optimizer,
        pre,
        train_set,
        val_set,
        batch_size=config.batch_size,
        seed=config.seed,
        schedule=PlateauSchedule(
            optimizer, patience=config.patience, max_drops=config.max_lr_drops
        ),
        out=ranks.trainer_out(out),
        config=asdict(config),
        progress=progress and root,
    )
    if state is not None:
        try:
            trainer.restore(state)
        except ValueError as error:  # arrays that do not fit the network: name the file
            raise ValueError(f"{where}: {error}") from None
        if "lr" in changed:  # the new rate replaces the scheduled one from here on
            optimizer.lr = config.lr
        if changed:
            trainer.changes.append(
                {"epoch": state.epoch, "position": state.position, "changed": changed}
            )
    if config.backend == "cuda":  # after restore: the GPU copies the parameters it starts from
        trainer.step, trainer.sync = cuda_step(model, optimizer)
    ranks.attach(trainer)
    if progress and root:
        where = (f", writing to {out}" if out else "") + ranks.describe()
        print(
            f"training {config.variant} on {config.dataset}: {len(train_set)} train / "
            f"{len(val_set)} val / {len(test_set)} test images, {parts * model.num_params():,} "
            f"parameters, {config.backend} ({config.engine} layers){where}"
        )
        if changed:
            shown = (f"{option(k)} {a!r} -> {b!r}" for k, (a, b) in changed.items())
            print("changed on resume: " + ", ".join(shown))
    if not trainer.fit(config.epochs):
        return RunResult(False, trainer.history, None, out, trainer)
    if trainer.sync is not None:
        trainer.sync()
    test = trainer.validate(model, pre, test_set, ten_view=config.ten_view)
    if trainer.out is not None:  # (a model-parallel rank but 0 writes nothing)
        trainer.write_history(test)
    report = ranks.report(trainer)
    if report is not None and progress:
        print(report)
    return RunResult(True, trainer.history, test, out, trainer)


def check_same_data(state: RunState, train_set: Dataset, where: str) -> None:
    """A resumed run must see the data it was trained on: same classes and, mid-epoch, a
    training split as long as the saved batch order (else batches would index other images)."""
    if list(train_set.classes) != list(state.classes):
        raise ValueError(
            f"{where}: the run was trained on classes {state.classes}, the data now has "
            f"{list(train_set.classes)}"
        )
    order = state.order
    if state.position > 0 and (
        order is None or state.position >= num_batches(len(order), state.config["batch_size"])
    ):
        raise ValueError(f"{where}: position {state.position} is not inside its epoch's batches")
    if order is not None and (
        len(order) != len(train_set)
        or (len(order) and not 0 <= int(order.min()) <= int(order.max()) < len(train_set))
    ):
        raise ValueError(
            f"{where}: its epoch order covers {len(state.order)} images, the training split "
            f"now has {len(train_set)}; the data changed since the run was saved"
        )


def default_out(config: TrainConfig) -> str:
    """A fresh folder per run, so a second run never overwrites the first."""
    return f"runs/{config.dataset}-{config.variant}-{datetime.now():%Y%m%d-%H%M%S}"


def run_train(given: dict[str, Any]) -> int:
    """``python -m minialexnet train``: ``given`` holds only the options the user typed, so that
    ``--resume`` takes everything else from the checkpoint's own config."""
    resume = given.pop("resume", None)
    overwrite = bool(given.pop("overwrite", False))
    comm = None
    try:
        comm, model_parallel = world_if_asked(given)
        state = None
        if resume is not None:  # read once: its config here, the rest in train()
            state = RunState.load(resume)
            saved = {**state.config, "out": str(Path(resume).parent)}
            saved_config(state, resume)  # a damaged saved config: an error naming the file
            config = TrainConfig.from_dict({**saved, **given})
        else:
            config = TrainConfig(**given)
            config.out = config.out or default_out(config)
        result = train(
            config,
            resume=state,
            overwrite=overwrite,
            resumed_from=resume,
            comm=comm,
            model_parallel=model_parallel,
        )
    except RUN_ERRORS as error:
        report_failure(comm, "train", error)  # on one rank of several: ends them all
        return 2
    except KeyboardInterrupt:  # the second Ctrl-C: the user asked not to wait for a save
        if comm is not None and comm.size > 1:  # the other ranks would wait --mpi-timeout
            comm.abort(f"train: rank {comm.rank}: aborted without saving", 130)
        print("train: aborted without saving", file=sys.stderr)
        return 130
    if not result.completed:
        return 128 + (result.trainer.stop_signal or 2)  # the shell's code for "stopped by it"
    if comm is not None and not comm.is_root:
        return 0
    test = result.test
    views = "multi-view" if config.ten_view else "centre crop"
    print(
        f"test ({views}): top-1 accuracy {1 - test['top1_error']:.2%}, top-5 accuracy "
        f"{1 - test['top5_error']:.2%}  ({result.out / CHECKPOINT_FILE})"
    )
    return 0
