"""How one ``train`` run is spread over processes: what ``train.train`` asks of it and nowhere
else, so that the one-process path reads as it did before MPI came in.

``RunRanks(comm, model_parallel)``: no ``comm`` is one process; a ``comm`` alone is a
data-parallel rank (``data_parallel``: the whole net on its rows of each batch, rank 0 alone
writes); with ``model_parallel`` a rank of the paper's split (``model_parallel``: half of every
layer; every rank saves, the halves gathered, and rank 0 writes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..model import Sequential
from ..trainer import Trainer
from . import data_parallel
from .comm import Comm
from .model_parallel import ModelParallelNet
from .model_parallel_trainer import ModelParallelTrainer


@dataclass(frozen=True)
class RunRanks:
    comm: Comm | None = None
    model_parallel: bool = False

    @property
    def root(self) -> bool:
        """This process shows progress and writes the run's files (rank 0, or the only one)."""
        return self.comm is None or self.comm.is_root

    @property
    def parts(self) -> int:
        """Into how many processes the net's parameters are cut (the split: one per rank)."""
        return self.comm.size if self.comm is not None and self.model_parallel else 1

    def check_backend(self, backend: str) -> None:
        """MPI runs use the CPU backend only (the CUDA step is one process's)."""
        if self.comm is not None and backend != "cpu":
            flag = "--model-parallel" if self.model_parallel else "--distributed"
            raise ValueError(f"{flag}: runs the cpu backend, got --backend {backend}")

    def build_model(
        self,
        config: Mapping[str, Any],
        num_classes: int,
        one_process: Callable[[], Sequential],
    ) -> Any:
        """This rank's half of the net (the split) or ``one_process()``'s whole net."""
        if self.model_parallel:
            return ModelParallelNet.from_config(self.comm, config, num_classes)
        return one_process()

    def trainer_class(self) -> type[Trainer]:
        return ModelParallelTrainer if self.model_parallel else Trainer

    def trainer_out(self, out: Path | None) -> Path | None:
        """Where this rank's Trainer saves: rank 0's ``out``; every rank of the split gets it
        (each takes part in gathering a checkpoint, rank 0 alone writes)."""
        return out if self.root or self.model_parallel else None

    def attach(self, trainer: Trainer) -> None:
        """A data-parallel rank's step, validation and stop decision (``data_parallel.attach``);
        the split's are its Trainer's own."""
        if self.comm is not None and not self.model_parallel:
            data_parallel.attach(trainer, self.comm)

    def describe(self) -> str:
        """For the run's first line: ", data parallel on 2 ranks" (empty for one process)."""
        if self.comm is None:
            return ""
        kind = "model" if self.model_parallel else "data"
        return f", {kind} parallel on {self.comm.size} ranks"

    def report(self, trainer: Trainer) -> str | None:
        """What rank 0 prints at the end beyond the test: the split's traffic per exchange."""
        if self.model_parallel and self.root:
            return trainer.traffic()  # type: ignore[attr-defined]
        return None
