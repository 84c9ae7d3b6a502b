"""Checkpoints: round trip without pickle, atomic writes, clear errors (minialexnet.checkpoint)."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from minialexnet import checkpoint as ckpt_module
from minialexnet.checkpoint import (
    Checkpoint,
    RunState,
    copy_into,
    load_checkpoint,
    save_checkpoint,
)
from minialexnet.data import Preprocessor
from minialexnet.safe_npz import read_npz
from minialexnet.train import TrainConfig
from minialexnet.weights_file import WeightsState


def small_checkpoint(value: float = 1.0) -> Checkpoint:
    rng = np.random.default_rng(0)
    params = {"conv1.W": rng.standard_normal((4, 3, 2, 2)).astype(np.float32) * value}
    params["conv1.b"] = np.full(4, value, dtype=np.float32)
    velocities = {k: np.full_like(p, -value) for k, p in params.items()}
    data = {"mean": np.full((3, 1, 1), 0.5, dtype=np.float32), "order": np.arange(5)[::-1]}
    meta = {"epoch": 3, "rng": {"state": 2**100 + 7}, "classes": ["a", "b"], "lr": 1e-3}
    return Checkpoint(params, velocities, data, meta)


def test_round_trip_keeps_every_array_and_the_metadata(tmp_path):
    original = small_checkpoint()
    path = save_checkpoint(tmp_path / "run" / "checkpoint.npz", original)
    loaded = load_checkpoint(path)
    for group in ("params", "velocities", "data"):
        a, b = getattr(original, group), getattr(loaded, group)
        assert set(a) == set(b)
        for k in a:
            assert b[k].dtype == a[k].dtype and np.array_equal(a[k], b[k]), (group, k)
    assert loaded.meta == {"format": ckpt_module.FORMAT, **original.meta}  # big ints survive


def test_the_file_is_plain_arrays_loadable_without_pickle(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", small_checkpoint())
    with np.load(path, allow_pickle=False) as archive:
        names = set(archive.files)
        for name in names:
            assert archive[name].dtype != object
    assert {"param/conv1.W", "velocity/conv1.b", "data/mean", "meta"} <= names


def test_a_crash_while_saving_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.npz", small_checkpoint(1.0))

    def savez_then_crash(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module.np, "savez", savez_then_crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, small_checkpoint(2.0))
    monkeypatch.undo()
    assert load_checkpoint(path).params["conv1.b"][0] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.npz: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"junk\.npz: not a readable \.npz checkpoint"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.zeros(2))
    with pytest.raises(ValueError, match=r"plain\.npz: no 'meta' entry"):
        load_checkpoint(plain)


def test_an_object_array_is_refused_not_unpickled(tmp_path):
    evil = tmp_path / "evil.npz"
    np.savez(evil, meta=np.array('{"format": 1}'), x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"evil\.npz: not a readable \.npz checkpoint"):
        load_checkpoint(evil)


def test_copy_into_checks_names_and_shapes():
    target = {"w": np.zeros((2, 3), dtype=np.float32)}
    copy_into(target, {"w": np.ones((2, 3), dtype=np.float32)}, "parameters")
    assert np.all(target["w"] == 1)
    with pytest.raises(ValueError, match=r"missing \['w'\], unexpected \['v'\]"):
        copy_into(target, {"v": np.ones((2, 3), dtype=np.float32)}, "parameters")
    with pytest.raises(ValueError, match=r"'w' is float32 \(3, 2\), the model's is float32"):
        copy_into(target, {"w": np.ones((3, 2), dtype=np.float32)}, "parameters")


def small_run_state() -> RunState:
    ckpt = small_checkpoint()
    return RunState(
        params=ckpt.params,
        velocities=ckpt.velocities,
        config=asdict(TrainConfig()),
        classes=["a", "b"],
        preprocess={"size": 37, "crop": 32, "random_crop": True, "flip": False, "pca_sigma": 0.1},
        preprocess_arrays={"mean": ckpt.data["mean"]},
        epoch=1,
        position=2,
        order=ckpt.data["order"],
        lr=1e-3,
        schedule={"best": 0.5, "bad_epochs": 1, "drops": 0},
        rng=np.random.default_rng(1).bit_generator.state,
        dropout_rngs={"drop6": np.random.default_rng(2).bit_generator.state},
        totals={"loss": 1.5, "errors": 2, "seen": 16},
        history=[
            {"epoch": 1, "lr": 1e-3, "train_loss": 2.0, "train_error": 0.5}
            | {"val_loss": 2.1, "val_error": 0.6, "val_top5_error": 0.1, "images_per_s": 9.0}
        ],
    )


def test_run_state_round_trip_keeps_every_field(tmp_path):
    state = small_run_state()
    loaded = RunState.load(state.save(tmp_path / "checkpoint.npz"))
    np.testing.assert_equal(vars(loaded), vars(state))  # dicts, lists and arrays, recursively


def test_run_state_between_epochs_has_no_order(tmp_path):
    state = small_run_state()
    state.order = None
    loaded = RunState.load(state.save(tmp_path / "checkpoint.npz"))
    assert loaded.order is None and set(loaded.preprocess_arrays) == {"mean"}


def test_a_checkpoint_that_is_not_a_run_is_refused_by_name(tmp_path):
    path = save_checkpoint(tmp_path / "other.npz", small_checkpoint())
    with pytest.raises(ValueError, match=r"other\.npz: not a training run's checkpoint"):
        RunState.load(path)


# ----------------------------------------------------------------------------------------
# Weights-only checkpoints (weights_file) and the preprocessor's std
# ----------------------------------------------------------------------------------------
def small_weights() -> WeightsState:
    params = small_checkpoint().params
    return WeightsState(
        params=params,
        config={
            "dataset": "imagenet",
            "variant": "torchvision",
            "seed": 0,
            "dropout": 0.5,
            "activation": "relu",
            "lrn": False,
            "pool": [3, 2],
        },
        classes=["tench", "goldfish"],
        wnids=["n01440764", "n01443537"],
        preprocess={"size": 8, "crop": 6, "random_crop": False, "flip": True, "pca_sigma": 0.1},
        preprocess_arrays={
            "mean": np.full((3, 1, 1), 0.5, dtype=np.float32),
            "std": np.full((3, 1, 1), 0.25, dtype=np.float32),
        },
        source={"file": "w.pth", "sha256": "ab" * 32},
    )


def test_a_weights_file_round_trips_without_velocities(tmp_path):
    weights = small_weights()
    path = weights.save(tmp_path / "w.npz")
    np.testing.assert_equal(vars(WeightsState.load(path)), vars(weights))
    with np.load(path, allow_pickle=False) as archive:
        assert not [name for name in archive.files if name.startswith("velocity/")]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda m, d: m.pop("wnids"), r"missing fields \['wnids'\]"),
        (lambda m, d: m.update(epoch=3), r"unexpected fields \['epoch'\]"),
        (lambda m, d: m.update(wnids=["n01440764", "tench"]), r"field 'wnids' has an invalid"),
        (lambda m, d: m.update(wnids=["n01440764"]), r"1 WordNet ids for 2 classes"),
        (lambda m, d: m["config"].pop("pool"), r"field 'config' has an invalid value"),
        (lambda m, d: m["source"].update(sha256="xyz"), r"field 'source' has an invalid"),
        (lambda m, d: d.update(order=np.arange(3)), r"unexpected arrays \['data/order'\]"),
        (
            lambda m, d: d.update(std=np.ones(3, np.float32)),
            r"data/std: expected positive finite float \(3, 1, 1\), got float32 \(3,\)",
        ),
    ],
)
def test_a_damaged_weights_file_is_refused_naming_the_file_and_field(tmp_path, damage, message):
    weights = small_weights()
    meta = {k: v for k, v in vars(weights).items() if k not in ("params", "preprocess_arrays")}
    data = dict(weights.preprocess_arrays)
    damage(meta, data)
    path = save_checkpoint(
        tmp_path / "w.npz", Checkpoint(weights.params, {}, data, {"kind": "weights", **meta})
    )
    with pytest.raises(ValueError, match=r"w\.npz: not a valid weights file \(.*" + message):
        WeightsState.load(path)


def test_the_two_kinds_refuse_each_other_and_old_runs_are_runs(tmp_path):
    run = small_run_state().save(tmp_path / "run.npz")
    with pytest.raises(ValueError, match=r"run\.npz: a training run's checkpoint, not a weights"):
        WeightsState.load(run)
    weights = small_weights().save(tmp_path / "weights.npz")
    with pytest.raises(ValueError, match=r"weights\.npz: weights only, not a run checkpoint"):
        RunState.load(weights)
    old = load_checkpoint(run)  # as written before the kind was kept: no "kind" field
    old.meta = {k: v for k, v in old.meta.items() if k not in ("format", "kind")}
    assert RunState.load(save_checkpoint(tmp_path / "old.npz", old)).epoch == 1
    odd = Checkpoint(old.params, {}, old.data, {**old.meta, "kind": "model"})
    with pytest.raises(ValueError, match=r"kind must be one of \('run', 'weights'\), got 'model'"):
        save_checkpoint(tmp_path / "odd.npz", odd)
    velocities = Checkpoint(old.params, old.velocities, {}, {"kind": "weights"})
    with pytest.raises(ValueError, match=r"a weights checkpoint has no velocities"):
        save_checkpoint(tmp_path / "odd.npz", velocities)


def test_the_preprocessor_std_is_saved_and_a_checkpoint_without_it_divides_by_nothing(tmp_path):
    state = small_run_state()
    images = np.full((1, 3, 37, 37), 51, dtype=np.uint8)  # 0.2 in [0, 1] units
    plain = Preprocessor.from_saved(
        RunState.load(state.save(tmp_path / "a.npz")).preprocess_arrays, state.preprocess
    )
    assert plain.std is None
    np.testing.assert_allclose(plain.test_batch(images), 0.2 - 0.5, atol=1e-6)
    state.preprocess_arrays["std"] = np.array([0.1, 0.2, 0.5], np.float32).reshape(3, 1, 1)
    loaded = RunState.load(state.save(tmp_path / "b.npz"))
    scaled = Preprocessor.from_saved(loaded.preprocess_arrays, loaded.preprocess)
    expected = np.array([-3.0, -1.5, -0.6]).reshape(1, 3, 1, 1)  # (0.2 - 0.5) / std
    np.testing.assert_allclose(
        scaled.test_batch(images), np.broadcast_to(expected, (1, 3, 32, 32)), atol=1e-5
    )


def rewritten_meta(source, target, **changes):
    """A copy of checkpoint ``source`` at ``target`` with meta fields changed (as an older
    version of the code would have written it)."""
    arrays = read_npz(source)
    meta = json.loads(str(arrays.pop("meta"))) | changes
    np.savez(target, meta=np.array(json.dumps(meta)), **arrays)
    return target


def test_format_1_reads_except_a_paper_net_trained_with_lrn_across_the_halves(tmp_path):
    run = small_run_state().save(tmp_path / "run.npz")
    assert RunState.load(rewritten_meta(run, tmp_path / "v1.npz", format=1)).epoch == 1
    config = {**load_checkpoint(run).meta["config"], "variant": "paper"}
    paper = rewritten_meta(run, tmp_path / "paper-v1.npz", format=1, config=config)
    with pytest.raises(ValueError, match=r"paper-v1\.npz: a 'paper' checkpoint of format 1"):
        RunState.load(paper)
    # the same config in the current format is read (it only fails later, on the shapes)
    assert load_checkpoint(rewritten_meta(run, tmp_path / "paper-v2.npz", config=config))
