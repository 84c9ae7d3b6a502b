"""Runs that are never lost or silently wrong (issue 10): --out onto another run, options
changed on --resume, pre-flight checks, option values, stale temporary files, SIGTERM, the
umask of what a run writes (minialexnet.train, trainer, preflight, checkpoint)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from datafiles import write_cifar
from test_train import SPLITS, TINY

from minialexnet import checkpoint as checkpoint_module
from minialexnet import preflight
from minialexnet import train as train_module
from minialexnet.checkpoint import RunState, atomic_write_text, current_umask, load_checkpoint
from minialexnet.cli import main
from minialexnet.data import Preprocessor
from minialexnet.train import FIXED_ON_RESUME, RunResult, TrainConfig, train

TINY_RUN = ["--dataset", "cifar10", "--batch-size", "8", "--val-fraction", "0.2"]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return write_cifar(tmp_path_factory.mktemp("data") / "cifar-10-batches-bin", per_file=6)


def run(out: Path, epochs: int = 1, resume: Path | None = None, **options) -> RunResult:
    """A tiny run on the random SPLITS of test_train (about a second an epoch)."""
    config = TrainConfig(**{**TINY, "epochs": epochs, "out": str(out), **options})
    return train(config, resume=resume, splits=SPLITS, progress=False)


@pytest.fixture
def one_epoch(tmp_path) -> Path:
    """A run folder with one epoch done; returns its checkpoint."""
    run(tmp_path / "run")
    return tmp_path / "run" / "checkpoint.npz"


def one_error_line(capsys, command: str = "train") -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"{command}: "), err
    return err


def no_training(monkeypatch) -> None:
    """Make any training fail the test: the checks must come before the first step."""

    def fit(self, epochs):
        raise AssertionError("training started before the check")

    monkeypatch.setattr(train_module.Trainer, "fit", fit)


# -- --out onto an existing run ---------------------------------------------------------
def test_out_onto_an_existing_run_is_refused_and_leaves_it_whole(cifar, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", *TINY_RUN, "--data", str(cifar), "--epochs", "1", "--out", str(out)]
    assert main(argv) == 0
    before = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert main(argv) == 2
    err = one_error_line(capsys)
    assert f"--out {out}: already holds a run" in err and "--resume" in err
    assert "--overwrite" in err
    assert (out / "checkpoint.npz").read_bytes() == before
    assert main([*argv, "--overwrite", "--seed", "3"]) == 0  # asked for: replaced
    assert load_checkpoint(out / "checkpoint.npz").meta["config"]["seed"] == 3


def test_resuming_into_another_runs_folder_is_refused(one_epoch, tmp_path):
    run(tmp_path / "other")
    with pytest.raises(ValueError, match=r"other: already holds a run"):
        run(tmp_path / "other", epochs=2, resume=one_epoch)


# -- options changed on --resume ----------------------------------------------------------
REFUSED = {
    "seed": 1,
    "val_fraction": 0.5,
    "mean": "channel",
    "init": "paper",
    "image_size": 40,
    "dropout": 0.2,
    "variant": "mini64",
    "dataset": "cifar10",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_an_option_that_defines_the_run_is_refused_on_resume(one_epoch, name, monkeypatch):
    assert name in FIXED_ON_RESUME
    no_training(monkeypatch)
    flag = "--" + name.replace("_", "-")
    with pytest.raises(ValueError, match=rf"^{flag}: cannot change on --resume .* got"):
        run(one_epoch.parent, epochs=2, resume=one_epoch, **{name: REFUSED[name]})


def mid_epoch(checkpoint: Path) -> Path:
    """The checkpoint as a stop after the first batch of its next epoch would have left it."""
    state = RunState.load(checkpoint)
    state.position, state.order = 1, np.random.default_rng(5).permutation(len(SPLITS[0]))
    state.save(checkpoint)
    return checkpoint


def test_val_fraction_and_seed_in_mid_epoch_are_refused_by_name_through_the_cli(one_epoch, capsys):
    # these were an IndexError traceback and a reshuffled train/val split
    checkpoint = str(mid_epoch(one_epoch))
    for argv, named in (
        (["--val-fraction", "0.5"], "--val-fraction"),
        (["--seed", "1"], "--seed"),
    ):
        assert main(["train", "--resume", checkpoint, "--epochs", "3", *argv]) == 2
        assert one_error_line(capsys).startswith(f"train: {named}: cannot change on --resume")


def test_batch_size_is_refused_mid_epoch_and_applied_between_epochs(one_epoch):
    result = run(one_epoch.parent, epochs=2, resume=one_epoch, batch_size=4)
    assert len(result.trainer.step_log) == 5  # 20 images in batches of 4, not of 8
    assert result.trainer.changes[-1]["changed"]["batch_size"] == [8, 4]
    mid_epoch(one_epoch)
    with pytest.raises(ValueError, match=r"--batch-size: cannot change in mid-epoch"):
        run(one_epoch.parent, epochs=3, resume=one_epoch, batch_size=2)


def test_lr_is_applied_from_the_resumed_epoch_and_recorded(one_epoch):
    result = run(one_epoch.parent, epochs=3, resume=one_epoch, lr=0.02, momentum=0.5)
    assert [h["lr"] for h in result.history] == [0.01, 0.02, 0.02]  # what the steps used
    assert result.trainer.optimizer.momentum == 0.5
    saved = RunState.load(one_epoch)
    assert saved.config["lr"] == 0.02 and saved.config["momentum"] == 0.5
    assert saved.changes == [
        {
            "epoch": 1,
            "position": 0,
            "changed": {"epochs": [1, 3], "lr": [0.01, 0.02], "momentum": [0.9, 0.5]},
        }
    ]


def test_augmentation_switches_are_applied_on_resume(one_epoch, tmp_path):
    result = run(one_epoch.parent, epochs=2, resume=one_epoch, flip=False, pca=False)
    assert result.trainer.pre.flip is False and result.trainer.pre.pca_eigvals is None
    # and back on: the PCA basis is the one a fresh run with pca on computes
    again = run(one_epoch.parent, epochs=3, resume=one_epoch, flip=True, pca=True, pca_sigma=0.5)
    fresh = Preprocessor.fit(SPLITS[0], 32, flip=True, pca=True, pca_sigma=0.5)
    pre = again.trainer.pre
    assert pre.flip is True and pre.pca_sigma == 0.5
    np.testing.assert_array_equal(pre.pca_eigvals, fresh.pca_eigvals)
    np.testing.assert_array_equal(pre.pca_eigvecs, fresh.pca_eigvecs)


def test_run_control_options_apply_and_the_saved_config_is_what_was_used(one_epoch):
    result = run(one_epoch.parent, epochs=2, resume=one_epoch, patience=2, max_lr_drops=1)
    assert result.trainer.schedule.patience == 2 and result.trainer.schedule.max_drops == 1
    options = {**TINY, "epochs": 2, "out": str(one_epoch.parent), "patience": 2}
    used = json.loads(json.dumps(asdict(TrainConfig(**options, max_lr_drops=1))))  # as saved
    assert RunState.load(one_epoch).config == used
    history = json.loads((one_epoch.parent / "history.json").read_text())
    assert history["config"] == used
    assert history["changes"][-1]["changed"]["patience"] == [8, 2]


def test_an_unchanged_resume_records_no_change_and_stays_bit_exact(one_epoch, tmp_path):
    straight = run(tmp_path / "straight", epochs=2)
    resumed = run(one_epoch.parent, epochs=2, resume=one_epoch)
    assert resumed.trainer.changes == [{"epoch": 1, "position": 0, "changed": {"epochs": [1, 2]}}]
    for name, p in straight.trainer.model.params().items():
        assert np.array_equal(p, resumed.trainer.model.params()[name]), name


# -- option values ------------------------------------------------------------------------
BAD_OPTIONS = [
    (["--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
    (["--pca-sigma", "-1"], "--pca-sigma: expected a number >= 0, got -1.0"),
    (["--image-size", "-5"], "--image-size: expected an integer >= 32"),
    (["--image-size", "20"], "--image-size: expected an integer >= 32"),
    (["--max-lr-drops", "-1"], "--max-lr-drops: expected an integer >= 0, got -1"),
    (["--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
    (["--epochs", "-3"], "--epochs: expected an integer >= 1, got -3"),
    (["--batch-size", "0"], "--batch-size: expected an integer >= 1, got 0"),
    (["--lr", "0"], "--lr: expected a number > 0, got 0.0"),
    (["--lr", "nan"], "--lr: expected a number > 0, got nan"),
    (["--momentum", "1.5"], "--momentum: expected a number in [0, 1), got 1.5"),
    (["--weight-decay", "-1"], "--weight-decay: expected a number >= 0, got -1.0"),
    (["--val-fraction", "0"], "--val-fraction: expected a number strictly between 0 and 1"),
    (["--val-fraction", "1"], "--val-fraction: expected a number strictly between 0 and 1"),
    (["--val-fraction", "1.5"], "--val-fraction: expected a number strictly between 0 and 1"),
    (["--patience", "0"], "--patience: expected an integer >= 1, got 0"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_OPTIONS, ids=lambda v: " ".join(v)[:30])
def test_a_bad_option_value_is_one_line_naming_it_before_anything_runs(
    argv, message, capsys, monkeypatch
):
    monkeypatch.setattr(train_module, "load_dataset", lambda *a, **k: pytest.fail("loaded"))
    assert main(["train", *argv]) == 2
    assert one_error_line(capsys).startswith(f"train: {message}")


def test_python_users_get_the_same_checks():
    with pytest.raises(ValueError, match=r"^--seed: expected an integer >= 0, got -1$"):
        TrainConfig(seed=-1)
    with pytest.raises(ValueError, match=r"^--batch-size: expected an integer >= 1, got 2.5$"):
        TrainConfig(batch_size=2.5)


# -- pre-flight ---------------------------------------------------------------------------
def test_out_naming_a_file_is_refused_before_loading_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train_module, "load_dataset", lambda *a, **k: pytest.fail("loaded"))
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["train", "--out", str(tmp_path / "notes.txt")]) == 2
    assert "notes.txt: is a file, expected a folder" in one_error_line(capsys)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_unwritable_out_is_refused_before_training(tmp_path, monkeypatch):
    no_training(monkeypatch)

    def no_space(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module.os, "replace", no_space)
    with pytest.raises(ValueError, match=r"out: cannot write there \(No space left on device\)"):
        run(tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # the probe's temporary file is gone


def test_an_out_below_a_file_is_refused_before_training(tmp_path, monkeypatch):
    no_training(monkeypatch)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"notes\.txt/run: cannot write there \(Not a directory"):
        run(tmp_path / "notes.txt" / "run")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_refused_before_training(tmp_path, monkeypatch):
    no_training(monkeypatch)
    (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(ValueError, match=r"ro: cannot write there"):
        run(tmp_path / "ro")


def test_a_disk_without_room_for_a_checkpoint_is_refused_before_training(tmp_path, monkeypatch):
    no_training(monkeypatch)
    usage = preflight.shutil.disk_usage(tmp_path)._replace(free=1000)
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage)
    with pytest.raises(ValueError, match=r"a checkpoint needs about 4\.5 MiB .* has 1000\.0 B"):
        run(tmp_path / "out")


def test_a_validation_split_left_empty_is_refused(cifar, tmp_path, capsys, monkeypatch):
    no_training(monkeypatch)  # it was a ZeroDivisionError after the first epoch
    argv = ["train", "--dataset", "cifar10", "--data", str(cifar), "--out", str(tmp_path / "r")]
    assert main([*argv, "--val-fraction", "0.01"]) == 2
    assert "--val-fraction 0.01: leaves 0 validation and 30 training" in one_error_line(capsys)


def test_an_image_size_that_cannot_fit_in_memory_is_refused_before_loading(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(train_module, "load_dataset", lambda *a, **k: pytest.fail("loaded"))
    assert main(["train", "--image-size", "100000", "--out", str(tmp_path / "r")]) == 2
    err = one_error_line(capsys)
    assert "--image-size 100000: the digits images stored at 100000x100000 need" in err
    assert "49.0 TiB of memory" in err  # 1797 images x 3 x 100000^2 bytes


# -- stale temporary files ------------------------------------------------------------------
def test_a_run_removes_the_temporary_files_of_dead_writers_only(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = out / f".checkpoint.npz.{dead.pid}.k2j4h5g6.tmp"
        live = out / f".checkpoint.npz.{alive.pid}.a1b2c3d4.tmp"
        legacy = out / ".checkpoint.npz.q1w2e3r4.tmp"  # written before the pid was named
        other = out / ".checkpoint.npz.notes.tmp"  # not our pattern: not ours to remove
        for path in (stale, live, legacy, other):
            path.write_bytes(b"half a checkpoint")
        run(out)
        assert not stale.exists() and not legacy.exists()
        assert live.exists() and other.exists()
    finally:
        alive.kill()
        alive.wait()


def test_temporary_files_carry_the_writers_pid(tmp_path):
    seen = []
    atomic_write_text(tmp_path / "h.json", "{}")  # warm: nothing left behind
    checkpoint_module.atomic_write(
        tmp_path / "c.npz", lambda f: seen.extend(p.name for p in tmp_path.glob(".c.npz.*"))
    )
    assert len(seen) == 1 and checkpoint_module.TEMP_NAME.match(seen[0])["pid"] == str(os.getpid())


# -- permissions ----------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_respect_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        assert current_umask() == umask and current_umask() == umask  # read, not changed
        path = atomic_write_text(tmp_path / "history.json", "{}")
        open(tmp_path / "plain", "w").close()  # what the umask gives a plain file
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert path.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777


def test_a_runs_checkpoint_and_history_are_not_private_under_umask_022(tmp_path):
    previous = os.umask(0o022)
    try:
        run(tmp_path / "run")
    finally:
        os.umask(previous)
    for name in ("checkpoint.npz", "history.json"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


def test_a_figure_cut_short_leaves_the_previous_png_whole(tmp_path):
    import matplotlib.pyplot as plt

    from minialexnet.plots import save_figure

    fig, _ = plt.subplots()
    path = save_figure(fig, "curves", folder=tmp_path)
    before = path.read_bytes()
    assert before.startswith(b"\x89PNG")

    def dies_half_way(file, **kwargs):
        file.write(b"\x89PNG half of it")
        raise KeyboardInterrupt  # the run stopped while drawing

    fig, _ = plt.subplots()
    fig.savefig = dies_half_way
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, "curves", folder=tmp_path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary file left
