"""The training loop: ``Trainer`` runs epochs of steps, validates, schedules, checkpoints.

It shuffles the training split every epoch, augments each batch, shows a progress bar (loss,
accuracy, images/s), evaluates on the validation split after every epoch, divides the learning
rate by 10 on plateaus, and — given an output folder — writes a checkpoint, ``history.json``
and ``curves.png`` after every epoch. Ctrl-C (SIGINT) or SIGTERM (what ``kill``, a batch
scheduler or a shutting-down machine sends) finishes the current step, saves a checkpoint and
stops; a second one aborts at once. ``state()`` is the whole run as a ``RunState`` (what a
checkpoint holds) and ``restore`` puts one back, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .checkpoint import CHECKPOINT_FILE, RunState, atomic_write_text, copy_into
from .data import Dataset, Preprocessor, batch_slices, num_batches
from .inference import evaluate
from .model import Sequential
from .optim import SGD, PlateauSchedule
from .step import StepFn, train_step


@dataclass
class EpochTotals:
    """Running sums over the steps of one epoch (saved, so a resumed epoch reports them whole)."""

    loss: float = 0.0
    errors: int = 0
    seen: int = 0

    def add(self, mean_loss: float, errors: int, n: int) -> None:
        self.loss += mean_loss * n
        self.errors += errors
        self.seen += n


@dataclass
class Trainer:
    """Trains ``model`` on ``train_set``, validating on ``val_set`` after every epoch.

    ``step`` defaults to ``step.train_step``; the CUDA backend passes its own, with ``sync``
    copying parameters and velocities back to the host before evaluation or a checkpoint.
    A data-parallel rank (``distributed.data_parallel``) passes its ``step``, its ``validate``
    (its rows of the split, the sums all-reduced) and ``agree_to_stop`` (a stop asked on any
    rank stops every rank after the same step), and ``out`` on rank 0 alone; a model-parallel
    run uses the subclass ``distributed.model_parallel_trainer.ModelParallelTrainer``.
    With ``out`` set, every epoch writes ``checkpoint.npz``, ``history.json``, ``curves.png``.
    ``step_log`` keeps (loss, error) of every step; ``history`` one record per epoch.
    """

    model: Sequential
    optimizer: SGD
    pre: Preprocessor
    train_set: Dataset
    val_set: Dataset
    batch_size: int = 128
    seed: int = 0
    schedule: PlateauSchedule | None = None
    step: StepFn | None = None
    sync: Callable[[], None] | None = None
    out: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    validate: Callable[..., dict[str, float]] = evaluate  # (model, pre, dataset, **options)
    agree_to_stop: Callable[[bool], bool] | None = None

    def __post_init__(self) -> None:
        if self.out is not None and not self.config:  # its checkpoints could not be read back
            raise ValueError(
                "Trainer: out needs config (the run's TrainConfig as a dict, as train.train "
                "passes it): a checkpoint records it, and one without it cannot be resumed"
            )
        self.rng = np.random.default_rng(self.seed)
        self.epoch, self.position = 0, 0  # epochs done; batches done in the current epoch
        self.order: np.ndarray | None = None
        self.totals = EpochTotals()
        self.history: list[dict[str, float]] = []
        self.step_log: list[tuple[float, float]] = []
        self.stop_requested = False
        self.stop_signal: int | None = None  # the signal that asked to stop (SIGINT, SIGTERM)
        # options changed on resume, as applied (the resume rule: train.py): part of the record
        self.changes: list[dict[str, Any]] = []
        self.images_per_s = 0.0  # speed over the last (part of an) epoch this process ran
        if self.step is None:
            self.step = lambda x, y: train_step(self.model, self.optimizer, x, y)

    def fit(self, epochs: int) -> bool:
        """Train until ``epochs`` epochs are done; False if stopped early by Ctrl-C."""
        with self._ctrl_c_stops():
            while self.epoch < epochs:
                if not self._run_epoch(epochs):
                    # (save gives None on a model-parallel rank that takes part but writes nothing)
                    if self.out is not None and (path := self.save()) is not None:
                        tqdm.write(f"stopped: saved {path} (resume with --resume {path})")
                    return False
                self._end_epoch()
        return True

    def _run_epoch(self, epochs: int) -> bool:
        n, bs = len(self.train_set), self.batch_size
        if self.position == 0:
            self.order = self.rng.permutation(n)
            self.totals = EpochTotals()
        bar = tqdm(
            total=num_batches(n, bs),
            initial=self.position,
            desc=f"epoch {self.epoch + 1}/{epochs}",
            disable=not self.progress,
            leave=False,
        )
        start, seen_now = time.perf_counter(), 0
        with bar:
            for idx in batch_slices(self.order, bs, self.position):
                y = self.train_set.labels[idx]
                x = self.pre.train_batch(self.train_set.images[idx], self.rng)
                loss, logits = self.step(x, y)
                if not np.isfinite(loss):
                    raise FloatingPointError(
                        f"the loss became {loss} at epoch {self.epoch + 1}, batch "
                        f"{self.position + 1} (lr {self.optimizer.lr:g}); try a smaller --lr"
                    )
                errors = int((logits.argmax(axis=1) != y).sum())
                t = self.totals
                t.add(loss, errors, len(y))
                self.step_log.append((loss, errors / len(y)))
                self.position += 1
                seen_now += len(y)
                bar.update()
                bar.set_postfix(
                    loss=f"{t.loss / t.seen:.3f}",
                    acc=f"{1 - t.errors / t.seen:.3f}",
                    img_s=f"{seen_now / (time.perf_counter() - start):.0f}",
                )
                if self.agree_to_stop is not None:
                    self.stop_requested = self.agree_to_stop(self.stop_requested)
                if self.stop_requested:
                    return False
        self.images_per_s = seen_now / max(time.perf_counter() - start, 1e-9)
        return True

    def _end_epoch(self) -> None:
        if self.sync is not None:
            self.sync()
        val = self.validate(self.model, self.pre, self.val_set)
        t = self.totals
        record = {
            "epoch": self.epoch + 1,
            "lr": self.optimizer.lr,
            "train_loss": t.loss / t.seen,
            "train_error": t.errors / t.seen,
            "val_loss": val["loss"],
            "val_error": val["top1_error"],
            "val_top5_error": val["top5_error"],
            "images_per_s": self.images_per_s,
        }
        self.history.append(record)
        dropped = self.schedule.step(val["top1_error"]) if self.schedule else False
        self.epoch, self.position, self.order = self.epoch + 1, 0, None
        if self.progress:
            tqdm.write(
                f"epoch {record['epoch']:3d}  lr {record['lr']:.0e}  "
                f"train loss {record['train_loss']:.3f} error {record['train_error']:6.2%}  "
                f"val error {record['val_error']:6.2%} (top-5 {record['val_top5_error']:6.2%})  "
                f"{record['images_per_s']:.0f} img/s" + ("  lr ÷10" if dropped else "")
            )
        if self.out is not None:
            self.save()
            self.write_history()

    # -- files ----------------------------------------------------------------------------
    def write_history(self, test: dict[str, float] | None = None) -> None:
        from .plots import plot_training_curves, save_figure

        record: dict[str, Any] = {
            "config": self.config,
            "changes": self.changes,
            "epochs": self.history,
        }
        if test is not None:
            record["test"] = test
        atomic_write_text(self.out / "history.json", json.dumps(record, indent=1))
        if self.history:
            save_figure(plot_training_curves(self.history), "curves", folder=self.out)

    def save(self) -> Path:
        """Write ``<out>/checkpoint.npz`` with the complete state of the run."""
        return self.state().save(self.out / CHECKPOINT_FILE)

    def state(self) -> RunState:
        """The run as it stands (on the host: the GPU's copy is synced first)."""
        if self.sync is not None:
            self.sync()
        return RunState(
            params=self.model.params(),
            velocities=self.optimizer.velocities,
            config=self.config,
            classes=list(self.train_set.classes),
            preprocess=self.pre.settings(),
            preprocess_arrays=self.pre.arrays(),
            epoch=self.epoch,
            position=self.position,
            order=self.order,
            lr=self.optimizer.lr,
            schedule=self.schedule.state() if self.schedule else None,
            rng=self.rng.bit_generator.state,
            dropout_rngs=generator_states(self.model),
            totals=asdict(self.totals),
            history=self.history,
            changes=self.changes,
        )

    def restore(self, state: RunState) -> None:
        """Put the run back in the state ``state`` was saved in."""
        copy_into(self.model.params(), state.params, "parameters")
        copy_into(self.optimizer.velocities, state.velocities, "velocities")
        self.epoch, self.position, self.order = state.epoch, state.position, state.order
        self.optimizer.lr = state.lr
        if self.schedule is not None and state.schedule is not None:
            self.schedule.load_state(state.schedule)
        self.rng.bit_generator.state = state.rng
        if set(state.dropout_rngs) != set(generator_states(self.model)):
            raise ValueError(
                f"checkpoint dropout generators {sorted(state.dropout_rngs)} do not match the "
                f"model's dropout layers {sorted(generator_states(self.model))}"
            )
        for name, saved in state.dropout_rngs.items():
            self.model.layers[name].rng.bit_generator.state = saved
        self.totals = EpochTotals(**state.totals)
        self.history = list(state.history)
        self.changes = list(state.changes)

    @contextlib.contextmanager
    def _ctrl_c_stops(self) -> Iterator[None]:
        """First Ctrl-C or SIGTERM: finish this step, checkpoint, stop. Second: abort
        (KeyboardInterrupt), without saving."""
        names = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}

        def handler(signum: int, frame: object) -> None:
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested, self.stop_signal = True, signum
            tqdm.write(
                f"{names.get(signum, signum)}: stopping after this step (press Ctrl-C again "
                f"to abort without saving)"
            )

        previous = {}
        try:
            for signum in names:
                previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread: signals cannot be caught here
            for signum, old in previous.items():
                signal.signal(signum, old)
            yield
            return
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)


def generator_states(model: Sequential) -> dict[str, dict[str, Any]]:
    """The generator state of every layer that draws from its own (the dropout layers, in
    either engine), by layer name: part of a run's state, or a resumed run would draw new
    masks."""
    return {
        name: layer.rng.bit_generator.state
        for name, layer in model.layers.items()
        if isinstance(getattr(layer, "rng", None), np.random.Generator)
    }
