"""The trainer of a model-parallel run (``mpiexec -n 2 python -m minialexnet train --variant
paper --model-parallel``): the paper's two-GPU split, with one-process checkpoints.

Each rank's ``ModelParallelNet`` holds half of every layer's parameters, and the optimizer the
velocities of that half. A checkpoint is nevertheless the one-process net's: ``gather_full``
stacks both halves on rank 0, which writes it, so the run resumes in one process or on two
ranks, and ``evaluate``/``predict`` read its checkpoint like any other; on resume
``scatter_full`` cuts the saved arrays in two again. Both are collectives, so every rank saves
and restores together: every rank is given ``out``, and rank 0 alone writes.

A stop asked on either rank (Ctrl-C, SIGTERM) stops both after the same step (``Comm.any``).
Nothing else needs exchanging: the batch order and augmentation (the Trainer's generator,
seeded alike), the dropout masks (each rank draws the one-process mask: ``model_parallel``'s
docstring) and the loss (computed on both ranks from the same gathered logits) are the same on
both ranks, so the learning-rate schedule and every counter evolve alike; validation and the
final test run the split net on both ranks together, as a training step does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..checkpoint import CHECKPOINT_FILE, RunState
from ..trainer import Trainer
from .model_parallel import ModelParallelNet


@dataclass
class ModelParallelTrainer(Trainer):
    """A ``Trainer`` whose ``model`` is a ``ModelParallelNet``; checkpoints hold the whole net.
    ``step_bytes``: what this rank sent per exchange in the last training step."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.step_bytes: dict[str, int] = {}
        step = self.step

        def counted_step(x, y):  # (an evaluation's forward would overwrite bytes_sent)
            result = step(x, y)
            self.step_bytes = self.model.bytes_sent
            return result

        self.step = counted_step
        # a stop (Ctrl-C, SIGTERM) asked on either rank stops both after the same step: one
        # gathering a checkpoint while the other starts a step would mismatch collectives
        self.agree_to_stop = lambda asked: self.model.comm.any(asked, "the stop check")

    def state(self) -> RunState | None:  # type: ignore[override]
        """The run as one process would have it, on rank 0; None on the other rank (every rank
        must call it: the halves are gathered)."""
        state = super().state()
        net: ModelParallelNet = self.model  # type: ignore[assignment]
        params, velocities = net.gather_full(state.params), net.gather_full(state.velocities)
        return None if params is None else replace(state, params=params, velocities=velocities)

    def save(self) -> Path | None:  # type: ignore[override]
        """Write ``<out>/checkpoint.npz`` on rank 0 (the path; None on the other rank)."""
        state = self.state()
        return None if state is None else state.save(self.out / CHECKPOINT_FILE)

    def write_history(self, test: dict[str, float] | None = None) -> None:
        if self.model.comm.is_root:
            super().write_history(test)

    def restore(self, state: RunState) -> None:
        """Put a whole-net run back, each rank its halves of rank 0's copy (every rank calls it;
        a checkpoint that does not fit the net is refused by rank 0, and every rank stops)."""
        net: ModelParallelNet = self.model  # type: ignore[assignment]
        root = net.comm.is_root
        params = net.scatter_full(state.params if root else None)
        velocities = net.scatter_full(state.velocities if root else None)
        super().restore(replace(state, params=params, velocities=velocities))

    def traffic(self) -> str:
        """One line: the bytes this rank sent per exchange in the last step, and their sum."""
        sent = self.step_bytes
        parts = ", ".join(f"{into} {n / 1e6:.2f}" for into, n in sent.items())
        return (
            f"model parallel: MB rank {self.model.comm.rank} sent in the last step, per "
            f"exchange: {parts}; total {sum(sent.values()) / 1e6:.2f}"
        )
