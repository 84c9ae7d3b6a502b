"""The training step, evaluation, the loop, and resuming bit for bit (minialexnet.step,
``trainer`` and ``train``)."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from minialexnet import build_alexnet
from minialexnet.checkpoint import RunState, load_checkpoint
from minialexnet.data import Dataset, Preprocessor
from minialexnet.inference import evaluate, load_trained, predict_proba, topk_misses
from minialexnet.layers import softmax_cross_entropy
from minialexnet.model import ENGINES, default_engine
from minialexnet.optim import SGD, sgd_update
from minialexnet.step import train_step
from minialexnet.train import TrainConfig, Trainer, build_model, train


def random_split(n: int, seed: int, size: int = 37, classes: int = 3) -> Dataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    return Dataset(images, np.arange(n) % classes, tuple("abc"[:classes]), f"random-{seed}")


SPLITS = (random_split(20, 0), random_split(6, 1), random_split(6, 2))
# every random draw switched on: crops, flips, colour shifts, dropout
TINY = {"batch_size": 8, "flip": True, "pca": True, "pca_sigma": 1.0, "lr": 0.01}


def test_train_step_is_forward_backward_and_the_paper_update():
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = np.array([0, 1, 2, 1])
    model = build_alexnet("mini", num_classes=3, dropout=0)
    reference = build_alexnet("mini", num_classes=3, dropout=0)
    optimizer = SGD(model, lr=0.01)
    loss, logits = train_step(model, optimizer, x, y)

    ref_logits = reference.forward(x)
    ref_loss, dlogits = softmax_cross_entropy(ref_logits, y)
    reference.backward(dlogits)
    for name, p in reference.params().items():
        sgd_update(p, np.zeros_like(p), reference.grads()[name], lr=0.01)
    assert loss == ref_loss and np.array_equal(logits, ref_logits)
    for name, p in model.params().items():
        assert np.array_equal(p, reference.params()[name]), name


def test_repeated_steps_on_one_batch_drive_its_loss_down():
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    y = np.arange(8) % 4
    model = build_alexnet("mini", num_classes=4, dropout=0)
    optimizer = SGD(model, lr=0.01)
    losses = [train_step(model, optimizer, x, y)[0] for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0]


def test_topk_misses_counts_labels_outside_the_k_best():
    scores = np.array([[0.1, 0.5, 0.2, 0.2], [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    labels = np.array([2, 0, 3])
    # row 0: label 2 has one higher score (0.5) -> top-1 miss, top-2 hit (tie with 0.2 counts)
    # row 1: label 0 is the best -> hit; row 2: all tied -> hit
    assert topk_misses(scores, labels, 1) == 1
    assert topk_misses(scores, labels, 2) == 0
    assert topk_misses(np.array([[0.9, 0.1]]), np.array([1]), 5) == 0  # k > classes: never


def test_evaluate_reports_the_error_of_a_known_model():
    # A "model" that answers class 0 for every image: error = share of labels that are not 0.
    model = build_alexnet("mini", num_classes=3, dropout=0)
    model.params()["fc8.W"][...] = 0
    model.params()["fc8.b"][...] = [5.0, 0.0, -5.0]
    data = random_split(9, 3)  # labels 0, 1, 2, 0, 1, 2, ...
    pre = Preprocessor.fit(data, crop=32)
    result = evaluate(model, pre, data)
    assert result["top1_error"] == pytest.approx(6 / 9)
    assert result["top5_error"] == 0
    # Every image has the logits (5, 0, -5); the labels 0, 1, 2 come equally often, so the mean
    # loss is log(e^5 + e^0 + e^-5) - mean(5, 0, -5) = 5 + log(1 + e^-5 + e^-10) = 5.0067607.
    assert result["loss"] == pytest.approx(5.0067607, rel=1e-5)
    assert evaluate(model, pre, data, ten_view=True)["top1_error"] == pytest.approx(6 / 9)


def test_train_writes_history_curves_and_a_checkpoint(tmp_path):
    result = train(TrainConfig(epochs=2, out=str(tmp_path), **TINY), splits=SPLITS, progress=False)
    assert result.completed and len(result.history) == 2
    assert set(result.test) == {"loss", "top1_error", "top5_error"}
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["config"]["epochs"] == 2 and history["test"] == result.test
    assert [h["epoch"] for h in history["epochs"]] == [1, 2]
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.meta["epoch"] == 2 and ckpt.meta["position"] == 0
    assert ckpt.meta["classes"] == ["a", "b", "c"]


def params_and_velocities(trainer: Trainer) -> dict[str, np.ndarray]:
    out = {f"p/{k}": v for k, v in trainer.model.params().items()}
    return out | {f"v/{k}": v for k, v in trainer.optimizer.velocities.items()}


def assert_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert set(a) == set(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), f"{name} differs after resuming"


def test_resuming_after_an_epoch_gives_bit_identical_parameters(tmp_path):
    straight = train(TrainConfig(epochs=3, **TINY), splits=SPLITS, progress=False)
    first = train(TrainConfig(epochs=1, out=str(tmp_path), **TINY), splits=SPLITS, progress=False)
    assert not np.array_equal(
        first.trainer.model.params()["conv1.W"], straight.trainer.model.params()["conv1.W"]
    )
    resumed = train(
        TrainConfig(epochs=3, out=str(tmp_path), **TINY),
        resume=tmp_path / "checkpoint.npz",
        splits=SPLITS,
        progress=False,
    )
    assert_identical(
        params_and_velocities(straight.trainer), params_and_velocities(resumed.trainer)
    )
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert {k: v for k, v in a.items() if k != "images_per_s"} == {
            k: v for k, v in b.items() if k != "images_per_s"
        }


def make_trainer(out=None) -> Trainer:
    config = TrainConfig(**TINY)
    model = build_model(config, 3)
    optimizer = SGD(model, lr=config.lr)
    pre = Preprocessor.fit(SPLITS[0], 32, flip=True, pca=True, pca_sigma=1.0)
    return Trainer(
        model,
        optimizer,
        pre,
        SPLITS[0],
        SPLITS[1],
        batch_size=8,
        out=out,
        config=asdict(config),  # what a checkpoint must hold to be read back
        progress=False,
    )


def test_a_trainer_that_writes_checkpoints_needs_the_runs_config(tmp_path):
    # without it, every checkpoint it wrote would be refused when read back: a run lost
    trainer = make_trainer()
    with pytest.raises(ValueError, match="Trainer: out needs config"):
        Trainer(trainer.model, trainer.optimizer, trainer.pre, SPLITS[0], SPLITS[1], out=tmp_path)


def test_a_stop_in_mid_epoch_saves_and_resumes_exactly(tmp_path):
    straight = make_trainer()
    assert straight.fit(2)

    stopped = make_trainer(out=tmp_path)
    plain_step = stopped.step

    def step_then_ask_to_stop(x, y):
        out = plain_step(x, y)
        if stopped.epoch == 1 and stopped.position == 0:  # the 2nd epoch's first batch
            stopped.stop_requested = True  # what the Ctrl-C handler does
        return out

    stopped.step = step_then_ask_to_stop
    assert stopped.fit(2) is False
    saved = RunState.load(tmp_path / "checkpoint.npz")
    assert (saved.epoch, saved.position) == (1, 1)
    assert saved.order is not None

    resumed = make_trainer(out=tmp_path)
    resumed.restore(saved)
    assert resumed.fit(2)
    assert_identical(params_and_velocities(straight), params_and_velocities(resumed))
    assert resumed.history[-1]["train_loss"] == straight.history[-1]["train_loss"]


def test_keyboard_interrupt_handler_stops_after_the_current_step(tmp_path):
    trainer = make_trainer(out=tmp_path)
    plain_step, steps = trainer.step, []

    def step_and_press_ctrl_c(x, y):
        steps.append(1)
        if len(steps) == 2:
            import signal

            signal.raise_signal(signal.SIGINT)  # delivered to the handler fit() installed
        return plain_step(x, y)

    trainer.step = step_and_press_ctrl_c
    assert trainer.fit(5) is False
    assert len(steps) == 2  # the second step finished, no third began
    assert load_checkpoint(tmp_path / "checkpoint.npz").meta["position"] == 2


def test_a_diverging_run_says_so():
    trainer = make_trainer()
    trainer.step = lambda x, y: (float("nan"), np.zeros((len(y), 3), dtype=np.float32))
    with pytest.raises(FloatingPointError, match=r"the loss became nan at epoch 1, batch 1"):
        trainer.fit(1)


def test_config_defaults_follow_the_dataset():
    assert (TrainConfig().flip, TrainConfig().pca) == (False, False)  # digits: no mirror, grey
    assert (TrainConfig(dataset="cifar10").flip, TrainConfig(dataset="folder").pca) == (True, True)
    assert TrainConfig(dataset="cifar10", flip=False).flip is False
    with pytest.raises(
        ValueError, match=r"--backend: expected one of \('cpu', 'cuda'\), got 'tpu'"
    ):
        TrainConfig(backend="tpu")


def test_config_engine_defaults_and_checks():
    assert TrainConfig().engine == TrainConfig(backend="cuda").engine == default_engine()
    with pytest.raises(
        ValueError, match=r"--engine: expected one of \('reference', 'fast'\), got 'turbo'"
    ):
        TrainConfig(engine="turbo")


def test_a_checkpoint_gives_the_same_predictions_on_either_engine(tmp_path):
    # The engine is how the layers compute, not what they hold: a net trained on one engine
    # evaluates on the other (a student copy, without the fast engine, runs a fast-trained run).
    pytest.importorskip("minialexnet.fast")
    train(
        TrainConfig(epochs=1, out=str(tmp_path), engine="fast", **TINY),
        splits=SPLITS,
        progress=False,
    )
    images = SPLITS[2].images
    prob = {}
    for engine in ("reference", "fast"):
        trained = load_trained(tmp_path / "checkpoint.npz", engine=engine)
        assert type(trained.model.layers["conv1"]).__module__.startswith(ENGINES[engine])
        prob[engine] = predict_proba(trained.model, trained.pre, images, ten_view=True)
    assert prob["fast"].dtype == np.float32
    np.testing.assert_allclose(prob["fast"], prob["reference"], rtol=1e-4, atol=1e-6)
