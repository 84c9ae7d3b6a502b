"""Damaged checkpoints (issue 10): truncated, zero bytes, flipped bits, hand-edited meta and
arrays, an .npy header claiming 256 GiB. Each is one clear error naming the file — from
``RunState.load`` and through ``train --resume``, ``evaluate`` and ``predict`` — or, where a
flipped bit lands in a byte nothing reads, the very same state: never a traceback, never a
silently different run (minialexnet.safe_npz, checkpoint)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy
from PIL import Image
from test_train import SPLITS, TINY

from minialexnet.checkpoint import RunState
from minialexnet.cli import main
from minialexnet.inference import load_trained
from minialexnet.train import TrainConfig, train


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A real checkpoint of a tiny run, stopped in mid-epoch (so it holds a batch order)."""
    out = tmp_path_factory.mktemp("run")
    result = train(TrainConfig(epochs=1, out=str(out), **TINY), splits=SPLITS, progress=False)
    state = result.trainer.state()
    state.position, state.order = 1, np.arange(len(SPLITS[0]))[::-1].copy()
    return state.save(out / "checkpoint.npz")


def arrays_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def edited(good: Path, tmp_path: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of ``good`` with ``edit`` applied to its arrays (the meta as a dict)."""
    arrays = arrays_of(good)
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = meta
    edit(arrays)
    arrays["meta"] = np.array(json.dumps(arrays["meta"]))
    path = tmp_path / "checkpoint.npz"
    np.savez(path, **arrays)
    return path


def same_state(a: RunState, b: RunState) -> None:
    np.testing.assert_equal(vars(a), vars(b))


def cut(fraction: float) -> Callable[[bytes], bytes]:
    return lambda data: data[: int(len(data) * fraction)]


def flip(at: float) -> Callable[[bytes], bytes]:
    def flipped(data: bytes) -> bytes:
        i = min(int(len(data) * at), len(data) - 1)
        return data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1 :]

    return flipped


BYTE_DAMAGE = {
    "truncated to 10%": cut(0.10),
    "truncated to 50%": cut(0.50),
    "truncated to 99%": cut(0.99),
    "zero bytes": cut(0.0),
    **{f"byte flipped at {at:.0%}": flip(at) for at in np.linspace(0, 1, 21)},
}


@pytest.mark.parametrize("damage", BYTE_DAMAGE)
def test_damaged_bytes_are_an_error_naming_the_file_or_the_same_state(good, tmp_path, damage):
    path = tmp_path / "damaged.npz"
    path.write_bytes(BYTE_DAMAGE[damage](good.read_bytes()))
    try:
        loaded = RunState.load(path)
    except ValueError as error:
        assert str(error).startswith(f"{path}: "), error
        return
    same_state(loaded, RunState.load(good))  # the flip hit a byte no reader uses


def set_meta(*keys: str, value: object) -> Callable[[dict], None]:
    def edit(arrays: dict) -> None:
        target = arrays["meta"]
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


def del_meta(*keys: str) -> Callable[[dict], None]:
    def edit(arrays: dict) -> None:
        target = arrays["meta"]
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return edit


def set_array(name: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict], None]:
    def edit(arrays: dict) -> None:
        arrays[name] = value(arrays[name])

    return edit


HAND_EDITS: dict[str, tuple[Callable[[dict], None], str]] = {
    "meta missing a field": (del_meta("epoch"), r"missing fields \['epoch'\]"),
    "meta with an extra field": (set_meta("colour", value=1), r"unexpected fields \['colour'\]"),
    "epoch a string": (set_meta("epoch", value="one"), r"field 'epoch' has an invalid value"),
    "lr negative": (set_meta("lr", value=-1), r"field 'lr'"),
    "rng not a state": (set_meta("rng", value={"bad": 1}), r"field 'rng'"),
    "classes a number": (set_meta("classes", value=5), r"field 'classes'"),
    "preprocess without crop": (del_meta("preprocess", "crop"), r"field 'preprocess'"),
    "config without variant": (del_meta("config", "variant"), r"field 'config'"),
    "config seed -1": (set_meta("config", "seed", value=-1), r"field 'config'"),
    "totals a list": (set_meta("totals", value=[1, 2]), r"field 'totals'"),
    "history record cut": (lambda a: a["meta"]["history"][0].pop("val_error"), r"'history'"),
    "format 3": (set_meta("format", value=3), r"checkpoint format 3, expected 2"),
    "meta not an object": (lambda a: a.__setitem__("meta", [1, 2]), r"a JSON list"),
    "velocity of another shape": (
        set_array("velocity/conv1.b", lambda v: v[:-1]),
        r"velocity 'conv1\.b' is float32 \(\d+,\)",
    ),
    "one parameter float64": (
        lambda a: [
            a.__setitem__(k, a[k].astype(np.float64)) for k in ("param/fc8.b", "velocity/fc8.b")
        ],
        r"parameters of dtypes \['float32', 'float64'\], expected one float dtype",
    ),
    "mean of another shape": (
        set_array("data/mean", lambda m: m[:, :5]),
        r"data/mean \(3, 5, 37\) and crop 32 do not fit the stored size 37",
    ),
    "mean as integers": (set_array("data/mean", lambda m: m.astype(np.int64)), r"data/mean"),
    "order 2-d": (set_array("data/order", lambda o: o.reshape(2, -1)), r"data/order"),
    "pca basis alone": (
        lambda a: a.pop("data/pca_eigvecs"),
        r"pca_eigvals and data/pca_eigvecs must be",
    ),
}


@pytest.mark.parametrize("edit", HAND_EDITS)
def test_a_hand_edited_checkpoint_is_refused_naming_the_file_and_the_field(good, tmp_path, edit):
    change, message = HAND_EDITS[edit]
    path = edited(good, tmp_path, change)
    with pytest.raises(ValueError, match=rf"^{path}: .*{message}"):
        RunState.load(path)


def test_an_npy_header_claiming_256_gib_is_refused_without_allocating(good, tmp_path):
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "param/conv1.b.npy":
                header = io.BytesIO()  # 2**36 float32: 256 GiB, over 64 bytes of data
                shape = {"descr": "<f4", "fortran_order": False, "shape": (1 << 36,)}
                npy.write_array_header_1_0(header, shape)
                data = header.getvalue() + b"\0" * 64
            target.writestr(info, data)
    with pytest.raises(ValueError, match=rf"^{path}: .*'param/conv1\.b\.npy'.*\(68719476736,\)"):
        RunState.load(path)


@pytest.mark.parametrize("change", ["all float64", "conv1.W transposed"])
def test_arrays_that_do_not_fit_the_network_are_refused_naming_the_file(good, tmp_path, change):
    def edit(arrays: dict) -> None:
        for name in [k for k in arrays if k.startswith(("param/", "velocity/"))]:
            a = arrays[name]
            if change == "all float64":
                arrays[name] = a.astype(np.float64)
            elif name.endswith("/conv1.W"):
                arrays[name] = a.T.copy()

    path = edited(good, tmp_path, edit)
    config = TrainConfig(epochs=2, out=str(path.parent), **TINY)
    with pytest.raises(ValueError, match=rf"^{path}: checkpoint parameters '[\w.]+' is"):
        train(config, resume=path, splits=SPLITS, progress=False)
    with pytest.raises(ValueError, match=rf"^{path}: checkpoint parameters '[\w.]+' is"):
        load_trained(path)  # what evaluate and predict read it with


# through the commands: one line on stderr naming the file, exit code 2, no traceback
COMMAND_DAMAGE = {
    "truncated to 50%": lambda good, tmp: damaged_bytes(good, tmp, cut(0.5)),
    "zero bytes": lambda good, tmp: damaged_bytes(good, tmp, cut(0.0)),
    "byte flipped in an array": lambda good, tmp: damaged_bytes(good, tmp, flip(0.5)),
    "meta missing a field": lambda good, tmp: edited(good, tmp, del_meta("rng")),
    "config without variant": lambda good, tmp: edited(good, tmp, del_meta("config", "variant")),
}


def damaged_bytes(good: Path, tmp_path: Path, damage: Callable[[bytes], bytes]) -> Path:
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(damage(good.read_bytes()))
    return path


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
@pytest.mark.parametrize("damage", COMMAND_DAMAGE)
def test_every_command_reports_a_damaged_checkpoint_in_one_line(
    good, tmp_path, capsys, command, damage
):
    path = COMMAND_DAMAGE[damage](good, tmp_path)
    image = tmp_path / "grey.png"
    Image.new("RGB", (40, 40), (128, 128, 128)).save(image)
    argv = {
        "train": ["train", "--resume", str(path), "--epochs", "2"],
        "evaluate": ["evaluate", str(path)],
        "predict": ["predict", str(path), str(image)],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{command}: {path}: "), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_saved_config_value_out_of_range_is_refused_on_resume_naming_the_file(
    good, tmp_path, capsys
):
    # readable, but a value TrainConfig refuses (lr must be > 0): the message names the file
    path = edited(good, tmp_path, set_meta("config", "lr", value=-1.0))
    assert main(["train", "--resume", str(path), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"train: {path}: its saved config is not valid (--lr: "), err
