"""torchvision's ImageNet AlexNet weights: the classes file, the preprocessing, the conversion
of a ``.pth`` (in both of torch's formats, written here without torch, and by ``torch.save``
where torch is importable), and ``predict`` / ``evaluate`` on the converted checkpoint.

The weights are a seeded random stand-in with torchvision's keys and shapes (61.1M values):
the real file cannot be downloaded here. What the converted network computes is checked
against a plain NumPy forward pass of torchvision's AlexNet written out below, float64.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from pth_files import write_pth

from minialexnet.checkpoint import load_checkpoint
from minialexnet.cli import main
from minialexnet.data import read_image
from minialexnet.inference import load_trained, wnid_folder_files
from minialexnet.pretrained import (
    IMAGENET_CLASSES,
    IMAGENET_WNIDS,
    TORCHVISION_KEYS,
    convert_torchvision,
    imagenet_preprocessor,
    load_pretrained,
    random_torchvision,
    torchvision_params,
)
from minialexnet.weights_file import WeightsState

# torchvision/models/alexnet.py: (module, out channels, in channels, kernel, stride, padding)
CONVS = [
    ("features.0", 64, 3, 11, 4, 2),
    ("features.3", 192, 64, 5, 1, 2),
    ("features.6", 384, 192, 3, 1, 1),
    ("features.8", 256, 384, 3, 1, 1),
    ("features.10", 256, 256, 3, 1, 1),
]
LINEARS = [("classifier.1", 4096, 256 * 6 * 6), ("classifier.4", 4096, 4096)]
LINEARS += [("classifier.6", 1000, 4096)]
POOL_AFTER = {"features.0", "features.3", "features.10"}  # MaxPool2d(3, 2)
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])  # torchvision's


def torchvision_shapes() -> dict[str, tuple[int, ...]]:
    """torchvision AlexNet's state_dict keys and shapes, from its layers above."""
    shapes: dict[str, tuple[int, ...]] = {}
    for module, out, inp, k, _, _ in CONVS:
        shapes |= {f"{module}.weight": (out, inp, k, k), f"{module}.bias": (out,)}
    for module, out, inp in LINEARS:
        shapes |= {f"{module}.weight": (out, inp), f"{module}.bias": (out,)}
    return shapes


def fake_torchvision_state(seed: int = 0) -> dict[str, np.ndarray]:
    """torchvision AlexNet's keys and shapes with seeded values: He-scaled weights, biases
    N(0, 0.1) (not zero: a bias put in the wrong place must show)."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in torchvision_shapes().items():
        if key.endswith(".weight"):
            scale = np.float32(np.sqrt(2 / np.prod(shape[1:])))
            state[key] = rng.standard_normal(shape, dtype=np.float32) * scale
        else:
            state[key] = rng.normal(0, 0.1, shape).astype(np.float32)
    return state


def zero_views() -> dict[str, np.ndarray]:
    """torchvision's keys and shapes as zero-stride views of one zero (no memory)."""
    return {k: np.broadcast_to(np.float32(0), v) for k, v in torchvision_shapes().items()}


def reference_logits(state: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """torchvision AlexNet's eval forward in float64 NumPy: (N, 3, 224, 224) -> (N, 1000)."""
    x = x.astype(np.float64)
    for module, _, _, k, stride, pad in CONVS:
        w, b = state[f"{module}.weight"].astype(np.float64), state[f"{module}.bias"]
        padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        windows = sliding_window_view(padded, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
        x = np.einsum("nchwij,ocij->nohw", windows, w, optimize=True) + b[:, None, None]
        x = np.maximum(x, 0)
        if module in POOL_AFTER:
            x = sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::2, ::2].max(axis=(4, 5))
    x = x.reshape(len(x), -1)
    for i, (module, _, _) in enumerate(LINEARS):
        x = x @ state[f"{module}.weight"].T.astype(np.float64) + state[f"{module}.bias"]
        x = np.maximum(x, 0) if i < 2 else x
    return x


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """The stand-in weights, written as a zip-format .pth and converted once."""
    folder = tmp_path_factory.mktemp("weights")
    state = fake_torchvision_state()
    pth = write_pth(folder / "alexnet-fake.pth", state)
    return state, pth, convert_torchvision(pth, folder / "alexnet.npz")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 320×213 colour photo-like JPEG (not square: the resize and crop matter)."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:213, 0:320]
    pixels = np.stack([xx * 255 / 319, yy * 255 / 212, (xx + yy) % 256], axis=2)
    pixels = np.clip(pixels + rng.normal(0, 20, pixels.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("photos") / "photo.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    return path


# ----------------------------------------------------------------------------------------
# Classes and preprocessing
# ----------------------------------------------------------------------------------------
def test_the_classes_are_the_1000_sorted_wordnet_ids_with_torchvision_names():
    assert len(IMAGENET_WNIDS) == len(set(IMAGENET_WNIDS)) == 1000
    assert list(IMAGENET_WNIDS) == sorted(IMAGENET_WNIDS)
    assert all(re.fullmatch(r"n\d{8}", w) for w in IMAGENET_WNIDS)
    assert len(IMAGENET_CLASSES) == len(set(IMAGENET_CLASSES)) == 1000
    # anchors from the ILSVRC-2012 synset list (synset_words.txt) and torchvision's names
    anchors = {
        0: ("n01440764", "tench"),
        1: ("n01443537", "goldfish"),
        207: ("n02099601", "golden retriever"),
        281: ("n02123045", "tabby"),
        517: ("n03126707", "crane"),
        999: ("n15075141", "toilet tissue"),
    }
    for index, pair in anchors.items():
        assert (IMAGENET_WNIDS[index], IMAGENET_CLASSES[index]) == pair


def test_the_classes_are_torchvision_own_list_where_it_is_installed():
    meta = pytest.importorskip("torchvision.models._meta")
    assert tuple(meta._IMAGENET_CATEGORIES) == IMAGENET_CLASSES


def test_the_preprocessing_is_resize_256_centre_224_then_normalize(tmp_path):
    # torchvision's Resize(256) on a 259×256 image keeps it; CenterCrop(224)'s left offset is
    # int(round((259 - 224) / 2)) = round(17.5) = 18 (half to even), top 16
    pixels = np.random.default_rng(1).integers(0, 256, (256, 259, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "p.png")
    pre = imagenet_preprocessor()
    x = pre.test_batch(read_image(tmp_path / "p.png", pre.size)[None])[0]
    expected = (pixels[16:240, 18:242].transpose(2, 0, 1) / 255 - MEAN[:, None, None]) / STD[
        :, None, None
    ]
    assert x.dtype == np.float32 and x.shape == (3, 224, 224)
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [(640, 427), (300, 201), (213, 320)])
def test_the_resize_truncates_the_longer_side_as_torchvision_does(tmp_path, size):
    # 640×427 -> 256 · 640 / 427 = 383.7: torchvision's int() makes it 383 wide, not 384
    pixels = np.random.default_rng(2).integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "p.png")
    w, h = size
    new = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
    resized = np.asarray(Image.fromarray(pixels).resize(new, Image.Resampling.BILINEAR))
    top, left = (round((n - 224) / 2) for n in resized.shape[:2])  # half to even
    pre = imagenet_preprocessor()
    stored = read_image(tmp_path / "p.png", pre.size)
    ours = np.asarray(pre.test_batch(stored[None])[0] * STD[:, None, None] + MEAN[:, None, None])
    crop = resized[top : top + 224, left : left + 224].transpose(2, 0, 1) / 255
    np.testing.assert_allclose(ours, crop, rtol=0, atol=1e-6)


def test_a_bad_std_is_refused_naming_it():
    pre = imagenet_preprocessor()
    with pytest.raises(ValueError, match=r"Preprocessor: std must be .* got float32 \(3,\)"):
        type(pre)(pre.size, pre.mean, pre.crop, std=np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"std must be None or positive"):
        type(pre)(pre.size, pre.mean, pre.crop, std=np.zeros((3, 1, 1), dtype=np.float32))


# ----------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------
def test_the_converted_network_computes_torchvision_alexnet(fake, photo):
    state, pth, npz = fake
    trained = load_trained(npz)
    assert trained.model.num_params() == sum(a.size for a in state.values())
    assert trained.model.num_params() == 61_100_840  # torchvision's num_params
    x = trained.pre.test_batch(read_image(photo, trained.pre.size)[None])
    logits = trained.model.forward(x)
    expected = reference_logits(state, x)
    # float32 against float64: a 224×224 forward through 8 layers keeps ~1e-5 of the scale
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    saved = WeightsState.load(npz)
    assert saved.source == {
        "file": pth.name,
        "sha256": hashlib.sha256(pth.read_bytes()).hexdigest(),
    }


def write_with_torch(path, state, *, zip_format):
    """``torch.save`` of ``state`` as tensors (the test is skipped where torch is absent)."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional check)")
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    torch.save(tensors, path, _use_new_zipfile_serialization=zip_format)
    return path


@pytest.mark.parametrize(
    "write",
    [
        lambda path, state: write_pth(path, state, zip_format=False),
        lambda path, state: write_with_torch(path, state, zip_format=True),
        lambda path, state: write_with_torch(path, state, zip_format=False),
    ],
    ids=["legacy", "torch.save zip", "torch.save legacy"],
)
def test_every_format_converts_to_the_same_weights(fake, tmp_path, write):
    state, _, npz = fake
    params = load_checkpoint(
        convert_torchvision(write(tmp_path / "w.pth", state), tmp_path / "w.npz")
    ).params
    reference = load_checkpoint(npz).params
    assert params.keys() == reference.keys()
    assert all(np.array_equal(params[k], reference[k]) for k in params)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("classifier.4.bias"), r"missing keys \['classifier\.4\.bias'\]"),
        (lambda s: s.update(extra=np.zeros(1)), r"unknown keys \['extra'\]"),
        (
            lambda s: s.update({"classifier.6.weight": np.zeros((10, 4096), np.float32)}),
            r"classifier\.6\.weight has shape \(10, 4096\), .*\(1000, 4096\)",
        ),
        (
            lambda s: s.update({"features.0.bias": np.zeros(64, np.int64)}),
            r"features\.0\.bias is int64, expected floating point",
        ),
        (
            lambda s: s.update({"features.3.bias": np.full(192, np.nan, np.float32)}),
            r"features\.3\.bias holds NaN",
        ),
    ],
    ids=["missing", "unknown", "shape", "dtype", "nan"],
)
def test_a_state_dict_that_is_not_torchvision_alexnet_is_refused_naming_key(change, message):
    state = zero_views()
    change(state)
    with pytest.raises(ValueError, match=r"^weights\.pth: .*" + message):
        torchvision_params(state, "weights.pth")


def test_damaged_or_wrong_files_are_one_line_errors_naming_the_file(fake, tmp_path, capsys):
    _, pth, _ = fake
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(pth.read_bytes()[:100_000])
    few = write_pth(tmp_path / "few.pth", {"features.0.weight": np.zeros((64, 3, 11, 11))})
    for path, message in [
        (truncated, r"cut\.pth: "),
        (few, r"few\.pth: not torchvision's AlexNet state_dict: missing keys \['classifier"),
    ]:
        assert main(["convert", str(path), str(tmp_path / "out.npz")]) == 2
        err = capsys.readouterr().err
        assert re.match(r"convert: .*" + message, err) and err.count("\n") == 1, err
        assert not (tmp_path / "out.npz").exists()


def test_an_existing_output_is_refused_unless_overwrite(fake, tmp_path, capsys):
    _, pth, npz = fake
    out = tmp_path / "out.npz"
    out.write_bytes(b"keep me")
    assert main(["convert", str(pth), str(out)]) == 2
    assert "out.npz: already exists (pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["convert", str(pth), str(out), "--overwrite"]) == 0
    with pytest.raises(ValueError, match=r"is the input file itself"):
        convert_torchvision(pth, pth, overwrite=True)
    assert load_checkpoint(out).params.keys() == load_checkpoint(npz).params.keys()


@pytest.mark.parametrize("name", ["alexnet-finetuned-20240131.pth", "net-00000090.pth"])
def test_a_name_ending_in_digits_is_no_digest_and_the_real_digest_is_recorded(fake, tmp_path, name):
    """torch checks a name's digits only on hub downloads (fetch.py does too), never on load."""
    _, pth, _ = fake
    renamed = shutil.copy(pth, tmp_path / name)
    source = WeightsState.load(convert_torchvision(renamed, tmp_path / "out.npz")).source
    assert source == {"file": name, "sha256": hashlib.sha256(pth.read_bytes()).hexdigest()}


def test_a_folder_given_as_the_weights_is_called_a_folder(tmp_path, capsys):
    assert main(["convert", str(tmp_path), str(tmp_path / "out.npz")]) == 2
    assert (
        f"convert: {tmp_path}: is a folder, not a PyTorch checkpoint file"
        in capsys.readouterr().err
    )


def test_train_resume_on_a_weights_file_says_it_is_not_a_run(fake, capsys):
    _, _, npz = fake
    assert main(["train", "--resume", str(npz)]) == 2
    assert "weights only, not a run checkpoint" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------
# predict and evaluate
# ----------------------------------------------------------------------------------------
def test_predict_prints_the_top_5_imagenet_classes(fake, photo, capsys):
    state, _, npz = fake
    assert main(["predict", str(npz), str(photo)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(photo) and len(lines) == 6
    shown = [re.fullmatch(r"\s+([\d.]+)%  (.+)", line).groups() for line in lines[1:]]
    pre = imagenet_preprocessor()
    logits = reference_logits(state, pre.test_batch(read_image(photo, 256)[None]))[0]
    expected = [IMAGENET_CLASSES[c] for c in np.argsort(-logits)[:5]]
    assert [name for _, name in shown] == expected
    prob = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(
        [float(p) for p, _ in shown], np.sort(prob)[::-1][:5] * 100, atol=0.006
    )


def test_evaluate_counts_hits_over_all_1000_outputs(fake, photo, tmp_path, capsys):
    # three images, each filed under the class it ranks 1st, 3rd and last: top-1 1/3, top-5 2/3
    state, _, npz = fake
    pre = imagenet_preprocessor()
    pixels = np.asarray(Image.open(photo))
    images = [pixels, pixels[:, ::-1], pixels[::-1]]
    stored = []
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
        stored.append(read_image(tmp_path / f"{i}.png", 256))
    logits = reference_logits(state, pre.test_batch(np.stack(stored)))
    ranked = np.argsort(-logits, axis=1)
    margins = np.sort(logits, axis=1)[:, ::-1]
    assert np.all(np.abs(np.diff(margins[:, :6], axis=1)) > 1e-3)  # no near-ties to misorder
    for i, rank in enumerate((0, 2, 999)):
        folder = tmp_path / "imagenet" / "val" / IMAGENET_WNIDS[ranked[i, rank]]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.move(tmp_path / f"{i}.png", folder / f"{i}.png")
    (tmp_path / "imagenet" / "train" / "not-read").mkdir(parents=True)  # val/ is the split
    assert main(["evaluate", str(npz), "--data", str(tmp_path / "imagenet")]) == 0
    out = capsys.readouterr().out
    assert "3 images of 3 classes" in out
    assert "top-1 accuracy 33.33%, top-5 accuracy 66.67%" in out
    assert "top-1 56.522%, top-5 79.066%" in out  # torchvision's published figures, for scale


def test_evaluate_refuses_a_folder_that_is_not_a_wordnet_id(fake, tmp_path, capsys):
    _, _, npz = fake
    (tmp_path / "n01440764").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "n01440764" / "a.png")
    (tmp_path / "cats").mkdir()
    assert main(["evaluate", str(npz), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert re.match(r"evaluate: .*cats: not one of the network's 1000 WordNet ids", err)
    assert main(["evaluate", str(npz)]) == 2
    assert "--data DIR is needed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option", [["--split", "val"], ["--split", "test"], ["--dataset", "imagenet"]]
)
def test_evaluate_refuses_a_run_option_for_imagenet_weights_naming_it(
    fake, tmp_path, capsys, option
):
    _, _, npz = fake
    (tmp_path / "n01440764").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "n01440764" / "a.png")
    assert main(["evaluate", str(npz), "--data", str(tmp_path), *option]) == 2
    err = capsys.readouterr().err
    assert f"{option[0]} {option[1]} does not apply (give the ImageNet-layout folder" in err


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory):
    """A training run's checkpoint (a tiny run), which is not ImageNet weights."""
    from test_train import SPLITS, TINY

    from minialexnet.train import TrainConfig, train

    out = tmp_path_factory.mktemp("run")
    result = train(TrainConfig(epochs=1, out=str(out), **TINY), splits=SPLITS, progress=False)
    return result.trainer.state().save(out / "run.npz")


def test_load_pretrained_refuses_a_run_checkpoint_and_reads_a_weights_file(fake, run_checkpoint):
    with pytest.raises(ValueError, match=r"run\.npz: a training run's checkpoint, not converted"):
        load_pretrained(run_checkpoint)
    assert load_pretrained(fake[2]).wnids == IMAGENET_WNIDS


def test_lesson_10_refuses_a_run_checkpoint_before_labelling_anything(run_checkpoint, tmp_path):
    """Once it read any checkpoint, named its outputs with ImageNet's classes, then failed
    with an IndexError."""
    lesson = Path(__file__).resolve().parent.parent / "lessons" / "10_the_real_alexnet.py"
    env = {
        **os.environ,
        "MINIALEXNET_ALEXNET_WEIGHTS": str(run_checkpoint),
        "MINIALEXNET_QUICK": "1",
        "MINIALEXNET_FIGURES": str(tmp_path),
        "MPLBACKEND": "Agg",
    }
    result = subprocess.run(
        [sys.executable, str(lesson)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"ValueError: {run_checkpoint}: a training run's checkpoint, not converted ImageNet weights"
    )
    assert not list(tmp_path.glob("*.png"))


def test_the_wordnet_folders_may_be_any_subset_and_nothing_else(tmp_path):
    for name in ("val/n01443537/b.png", "val/n01443537/a.png", "val/n15075141/c.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "val" / ".cache").mkdir()  # hidden: skipped
    (tmp_path / "train" / "anything").mkdir(parents=True)  # val/ is the split: not read
    files, labels = wnid_folder_files(tmp_path, IMAGENET_WNIDS)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "val/n01443537/a.png",
        "val/n01443537/b.png",
        "val/n15075141/c.png",
    ]
    assert labels.tolist() == [1, 1, 999]
    (tmp_path / "val" / "n01440764").mkdir()
    with pytest.raises(ValueError, match=r"val/n01440764: empty class folder"):
        wnid_folder_files(tmp_path, IMAGENET_WNIDS)
    with pytest.raises(FileNotFoundError, match=r"nowhere: not found; expected an ImageNet"):
        wnid_folder_files(tmp_path / "nowhere", IMAGENET_WNIDS)


def test_random_torchvision_is_the_same_network_with_imagenet_classes():
    trained = random_torchvision(seed=3)
    assert trained.classes == IMAGENET_CLASSES and trained.wnids == IMAGENET_WNIDS
    ours = {k: v.shape for k, v in trained.model.params().items()}
    assert ours == {TORCHVISION_KEYS[k]: v for k, v in torchvision_shapes().items()}
    assert sum(np.prod(s) for s in ours.values()) == 61_100_840  # torchvision's num_params
    assert trained.pre.size == 256 and trained.pre.crop == 224
