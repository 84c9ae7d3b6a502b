"""The allowed values of every ``TrainConfig`` option, as one table (``option_checks``).

``TrainConfig.check`` goes through it when a config is made, so a bad value — ``--seed -1``,
``--pca-sigma -1``, ``--val-fraction 1.5``, ``--image-size`` below the net's input — is
refused before anything runs, by the option's CLI name, with what is expected and what was
given, for the CLI and Python users alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .data import DATASETS
from .layers.base import is_finite_number, is_int
from .model import ENGINES, VARIANTS, input_size
from .optim import INITS

if TYPE_CHECKING:
    from .train import TrainConfig


def option(name: str) -> str:
    """A config field as the CLI spells it: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def option_checks(c: TrainConfig) -> list[tuple[str, Callable[[Any], bool], str]]:
    """(field, test, what is expected) for every option with a restricted value."""
    choices = lambda options: (lambda v: v in options, f"one of {tuple(options)}")  # noqa: E731
    positive_int = (lambda v: is_int(v) and v >= 1, "an integer >= 1")
    fraction = (lambda v: is_finite_number(v) and 0 < v < 1, "a number strictly between 0 and 1")
    in_size = input_size(c.variant) if c.variant in VARIANTS else 1
    optional_str = (lambda v: v is None or isinstance(v, str), "a path or None")
    flag = (lambda v: isinstance(v, bool), "True or False")
    table: dict[str, tuple[Callable[[Any], bool], str]] = {
        "dataset": choices(DATASETS),
        "data": optional_str,
        "variant": choices(VARIANTS),
        "epochs": positive_int,
        "batch_size": positive_int,
        "lr": (lambda v: is_finite_number(v) and v > 0, "a number > 0"),
        "momentum": (lambda v: is_finite_number(v) and 0 <= v < 1, "a number in [0, 1)"),
        "weight_decay": (lambda v: is_finite_number(v) and v >= 0, "a number >= 0"),
        "init": choices(INITS),
        "seed": (lambda v: is_int(v) and 0 <= v < 2**63, "an integer >= 0"),
        "image_size": (
            lambda v: v is None or (is_int(v) and v >= in_size),
            f"an integer >= {in_size} (the {c.variant} net's input size; it crops from the "
            f"stored images)",
        ),
        "mean": choices(("pixel", "channel")),
        "random_crop": flag,
        "flip": flag,
        "pca": flag,
        "pca_sigma": (lambda v: is_finite_number(v) and v >= 0, "a number >= 0"),
        "val_fraction": fraction,
        "patience": positive_int,
        "max_lr_drops": (lambda v: is_int(v) and v >= 0, "an integer >= 0"),
        "ten_view": flag,
        "out": optional_str,
        "backend": choices(("cpu", "cuda")),
        "engine": choices(ENGINES),
        "skip_bad": flag,
        "activation": (lambda v: isinstance(v, str), "an activation name"),
        "lrn": (lambda v: v is None or isinstance(v, bool), "True, False or None"),
        "pool": (
            lambda v: isinstance(v, tuple) and len(v) == 2 and all(is_int(k) and k > 0 for k in v),
            "two integers > 0 (size, stride)",
        ),
        "dropout": (lambda v: is_finite_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    }
    return [(name, ok, expected) for name, (ok, expected) in table.items()]
