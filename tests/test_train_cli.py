"""``python -m minialexnet train / evaluate / predict`` end to end, on tiny CIFAR-format files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from datafiles import write_cifar
from PIL import Image

from minialexnet import checkpoint as checkpoint_module
from minialexnet.checkpoint import load_checkpoint
from minialexnet.cli import main
from minialexnet.train import TrainConfig

TINY_RUN = ["--dataset", "cifar10", "--batch-size", "8", "--val-fraction", "0.2"]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return write_cifar(tmp_path_factory.mktemp("data") / "cifar-10-batches-bin", per_file=6)


@pytest.fixture(scope="module")
def trained(cifar, tmp_path_factory):
    """One epoch of training through the CLI: (its output folder, what it printed)."""
    out = tmp_path_factory.mktemp("run")
    argv = ["train", *TINY_RUN, "--data", str(cifar), "--epochs", "1", "--out", str(out)]
    code = main(argv)
    assert code == 0
    return out


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: python -m minialexnet " + command in capsys.readouterr().out


def test_train_with_no_options_means_the_mini_net_on_digits():
    config = TrainConfig()
    assert (config.dataset, config.variant, config.backend) == ("digits", "mini", "cpu")


def test_train_prints_test_accuracy_and_writes_its_files(cifar, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_RUN, "--data", str(cifar), "--epochs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "training mini on cifar10: 24 train / 6 val / 6 test images" in printed
    assert "test (centre crop): top-1 accuracy" in printed
    assert {p.name for p in out.iterdir()} == {"checkpoint.npz", "history.json", "curves.png"}


def test_resume_continues_the_run_in_its_folder(trained, capsys):
    checkpoint = trained / "checkpoint.npz"
    assert main(["train", "--resume", str(checkpoint), "--epochs", "2"]) == 0
    history = json.loads((trained / "history.json").read_text())
    assert [h["epoch"] for h in history["epochs"]] == [1, 2]
    assert history["config"]["dataset"] == "cifar10"  # from the checkpoint, not the defaults
    assert load_checkpoint(checkpoint).meta["epoch"] == 2


def test_resume_reads_its_checkpoint_once(cifar, tmp_path, monkeypatch):
    # run_train needs the saved config before train() restores the rest: one read serves both
    out = tmp_path / "run"
    assert main(["train", *TINY_RUN, "--data", str(cifar), "--epochs", "1", "--out", str(out)]) == 0
    checkpoint, reads, real_read = out / "checkpoint.npz", [], checkpoint_module.read_npz

    def counting_read(file, *args, **kwargs):
        if Path(file) == checkpoint:
            reads.append(file)
        return real_read(file, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "read_npz", counting_read)
    assert main(["train", "--resume", str(checkpoint), "--epochs", "2"]) == 0
    assert len(reads) == 1
    assert load_checkpoint(checkpoint).meta["epoch"] == 2


def test_evaluate_prints_top1_and_top5(trained, capsys):
    assert main(["evaluate", str(trained / "checkpoint.npz")]) == 0
    assert capsys.readouterr().out.startswith("test (centre crop): top-1 accuracy ")
    assert main(["evaluate", str(trained / "checkpoint.npz"), "--ten-view", "--split", "val"]) == 0
    assert capsys.readouterr().out.startswith("val (multi-view): top-1 accuracy ")


def test_evaluate_and_predict_take_an_engine(trained, tmp_path, capsys):
    # the reference engine is there in every copy; a checkpoint runs on it whatever trained it
    checkpoint = str(trained / "checkpoint.npz")
    assert main(["evaluate", checkpoint, "--engine", "reference"]) == 0
    assert capsys.readouterr().out.startswith("test (centre crop): top-1 accuracy ")
    Image.new("RGB", (40, 40), (20, 200, 20)).save(tmp_path / "green.png")
    assert main(["predict", checkpoint, str(tmp_path / "green.png"), "--engine", "reference"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 6
    with pytest.raises(SystemExit):
        main(["evaluate", checkpoint, "--engine", "turbo"])


def test_predict_lists_five_classes_with_probabilities(trained, tmp_path, capsys):
    files = []
    for name, colour in (("red.png", (220, 20, 20)), ("sky.jpg", (90, 140, 230))):
        Image.new("RGB", (50, 40), colour).save(tmp_path / name)
        files.append(str(tmp_path / name))
    assert main(["predict", str(trained / "checkpoint.npz"), *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == files[0] and lines[6] == files[1] and len(lines) == 12
    probabilities = [float(line.split("%")[0]) / 100 for line in lines[1:6]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-6
    assert all(
        line.split("%  ")[1] in write_cifar.__globals__["CIFAR_CLASSES"] for line in lines[1:6]
    )


def test_bad_input_is_one_line_naming_the_file(trained, tmp_path, capsys):
    assert main(["train", "--dataset", "cifar10", "--data", str(tmp_path / "none")]) == 2
    assert "train: " in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["predict", str(trained / "checkpoint.npz"), str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("predict: ") and "notes.txt: not an image" in err
    assert main(["evaluate", str(tmp_path / "nothing.npz")]) == 2
    assert "nothing.npz: checkpoint not found" in capsys.readouterr().err


def test_cuda_backend_without_a_gpu_is_one_clear_line_and_exit_code_2():
    # a machine as it is (no CUDA simulator), with every GPU hidden
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    result = subprocess.run(
        [sys.executable, "-m", "minialexnet", "train", "--backend", "cuda"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("train: --backend cuda")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "signum, name", [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")], ids=["int", "term"]
)
def test_ctrl_c_or_sigterm_saves_a_resumable_checkpoint_and_exits_cleanly(
    cifar, tmp_path, signum, name
):
    # SIGTERM is what a job scheduler or `kill` sends: it must save like the first Ctrl-C
    out = tmp_path / "run"
    argv = ["train", *TINY_RUN, "--data", str(cifar), "--epochs", "1000", "--out", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-m", "minialexnet", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoint.npz").exists():  # the first epoch is done
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.05)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, stderr  # 130 for Ctrl-C, 143 for SIGTERM
    assert "Traceback" not in stderr and f"{name}: stopping after this step" in stdout
    assert "stopped: saved" in stdout
    saved = load_checkpoint(out / "checkpoint.npz")
    assert 1 <= saved.meta["epoch"] < 1000
    assert np.isfinite(saved.params["conv1.W"]).all()
    epochs = saved.meta["epoch"] + 1
    assert main(["train", "--resume", str(out / "checkpoint.npz"), "--epochs", str(epochs)]) == 0
    assert load_checkpoint(out / "checkpoint.npz").meta["epoch"] == epochs
