"""torchvision's ImageNet-trained AlexNet in our ``torchvision`` variant: classes, preprocessing
and the conversion of its ``.pth`` weights into a weights checkpoint.

Every fact here is torchvision's (0.29.1, read in its source):

- the network: ``torchvision/models/alexnet.py``, ``AlexNet``: ``features`` = Conv2d(3, 64, 11,
  4, 2), ReLU, MaxPool(3, 2), Conv2d(64, 192, 5, padding 2), ReLU, MaxPool, Conv2d(192, 384, 3,
  padding 1), ReLU, Conv2d(384, 256, 3, padding 1), ReLU, Conv2d(256, 256, 3, padding 1), ReLU,
  MaxPool; ``avgpool`` = AdaptiveAvgPool2d(6, 6) (the identity at 224 input, left out here);
  ``classifier`` = Dropout, Linear(9216, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU,
  Linear(4096, 1000). So the state_dict's keys are ``features.{0,3,6,8,10}`` and
  ``classifier.{1,4,6}``, each ``.weight`` and ``.bias``, and the layouts are ours: conv
  weights (out, in, kh, kw), linear weights (out, in), flattening in C order;
- the weights: ``AlexNet_Weights.IMAGENET1K_V1`` (URL ``alexnet-owt-7be5be79.pth``, 61,100,840
  parameters, acc@1 56.522 / acc@5 79.066 on ImageNet-1K; ``data/fetch.py alexnet`` gets it);
- the preprocessing: its ``transforms`` = ``ImageClassification(crop_size=224)``
  (``transforms/_presets.py``): ``Resize(256)`` bilinear, antialiased (Pillow's resize for a
  PIL image), ``CenterCrop(224)``, ``pil_to_tensor`` + ``convert_image_dtype`` (x / 255),
  ``Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))``;
- the classes: its ``_IMAGENET_CATEGORIES`` (``models/_meta.py``) in output order, with the
  sorted ILSVRC-2012 WordNet ids (``imagenet_classes.txt`` says where they come from).

One difference is left on purpose: files are decoded by ``data.images.decode_image``, which
turns a JPEG as its EXIF orientation says and lays transparency over white, where
torchvision's default loader (``datasets.folder.pil_loader``: ``Image.open(f).convert("RGB")``)
does neither; so a rotated JPEG or an RGBA PNG reaches the network differently from there.

The file's name is not checked against its digest here: torch checks it only on downloads
(``torch.hub``'s ``check_hash``), not in ``torch.load``, and ``data/fetch.py alexnet`` verifies
its download the same way; ``convert`` records the SHA-256 of whatever it read.

``torchvision_check.py`` runs torchvision itself beside this code and prints how far apart the
two are.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from pathlib import Path

import numpy as np

from .data import Preprocessor
from .inference import Trained, load_trained
from .model import build_alexnet
from .pth import read_state_dict
from .weights_file import WNID, WeightsState

CLASSES_FILE = Path(__file__).with_name("imagenet_classes.txt")
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # per channel, RGB, in [0, 1] units
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE, CROP = 256, 224  # shorter side resized to 256, then the centre 224×224

# torchvision module -> our layer (model.build_alexnet("torchvision"))
TORCHVISION_LAYERS = {
    "features.0": "conv1",
    "features.3": "conv2",
    "features.6": "conv3",
    "features.8": "conv4",
    "features.10": "conv5",
    "classifier.1": "fc6",
    "classifier.4": "fc7",
    "classifier.6": "fc8",
}
TORCHVISION_KEYS = {
    f"{module}.{theirs}": f"{layer}.{ours}"
    for module, layer in TORCHVISION_LAYERS.items()
    for theirs, ours in (("weight", "W"), ("bias", "b"))
}
# the config a weights file rebuilds the network from (``model.model_from_config``): torchvision's
# dropout p = 0.5, inverted (the variant's own); the seed only fills weights overwritten at once
TORCHVISION_CONFIG = {
    "dataset": "imagenet",
    "variant": "torchvision",
    "seed": 0,
    "dropout": 0.5,
    "activation": "relu",
    "lrn": False,
    "pool": [3, 2],
}
# torchvision's published accuracy of these weights, centre crop, on the 50,000 ILSVRC-2012
# validation images (torchvision/models/alexnet.py, AlexNet_Weights.IMAGENET1K_V1: acc@1
# 56.522, acc@5 79.066)
TORCHVISION_TOP1, TORCHVISION_TOP5 = 0.56522, 0.79066


def read_classes(path: str | Path = CLASSES_FILE) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(WordNet ids, names) from a classes file: ``wnid<TAB>name`` lines, ``#`` comments."""
    path = Path(path)
    wnids, names = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        wnid, tab, name = line.partition("\t")
        if not tab or not WNID.fullmatch(wnid) or not name.strip():
            raise ValueError(f"{path}:{number}: expected 'n<8 digits><TAB>name', got {line!r}")
        wnids.append(wnid)
        names.append(name.strip())
    return tuple(wnids), tuple(names)


IMAGENET_WNIDS, IMAGENET_CLASSES = read_classes()


def imagenet_preprocessor() -> Preprocessor:
    """torchvision's test-time preprocessing of its ImageNet weights: images stored with the
    shorter side resized to 256 and the centre 256×256 kept (``data.read_image``), then the
    centre 224×224, x / 255, minus ``IMAGENET_MEAN``, divided by ``IMAGENET_STD``.

    Together that is ``AlexNet_Weights.IMAGENET1K_V1.transforms()`` on a PIL image: the same
    resize (Pillow's antialiased bilinear at torchvision's truncated long side), the same crop
    (``data.datasets.resize_center_crop``), the same arithmetic but for x · (1/255) in place
    of x / 255 (the networks trained here are fed that way): the two can differ in the last
    bit, which the division by std and float32 rounding carry to at most 7.2e-7 (measured
    by ``torchvision_check`` on its photos, where inputs reach 2.6); the logits of its
    randomly initialised net then agree to 6.3e-7 of their largest. ``flip`` serves the ten
    test views (``--ten-view``).
    """
    channels = (3, 1, 1)
    return Preprocessor(
        RESIZE,
        np.array(IMAGENET_MEAN, dtype=np.float32).reshape(channels),
        CROP,
        random_crop=False,
        flip=True,
        std=np.array(IMAGENET_STD, dtype=np.float32).reshape(channels),
    )


@functools.cache
def torchvision_shapes() -> dict[str, tuple[int, ...]]:
    """Our parameter name -> shape for the ``torchvision`` variant (built once: 1-2 s)."""
    return {
        k: v.shape for k, v in build_alexnet("torchvision", engine="reference").params().items()
    }


def torchvision_params(state: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """torchvision AlexNet's state_dict -> our parameters (float32), checked key by key.

    Every key of ``TORCHVISION_KEYS`` must be there and no other; each tensor must have our
    parameter's shape (the layouts agree, so nothing is transposed), a float dtype (converted
    to float32) and finite values. Errors are ValueErrors naming ``source`` and the key.
    """
    missing = sorted(set(TORCHVISION_KEYS) - set(state))
    unknown = sorted(set(state) - set(TORCHVISION_KEYS))
    if missing or unknown:
        raise ValueError(
            f"{source}: not torchvision's AlexNet state_dict: missing keys {missing}, "
            f"unknown keys {unknown}"
        )
    shapes = torchvision_shapes()
    params = {}
    for key, name in TORCHVISION_KEYS.items():
        tensor = state[key]
        if tensor.shape != shapes[name]:
            raise ValueError(
                f"{source}: {key} has shape {tensor.shape}, torchvision's AlexNet (our {name}) "
                f"has {shapes[name]}"
            )
        if tensor.dtype.kind != "f":
            raise ValueError(f"{source}: {key} is {tensor.dtype}, expected floating point")
        params[name] = np.ascontiguousarray(tensor, dtype=np.float32)
        if not np.isfinite(params[name]).all():
            raise ValueError(f"{source}: {key} holds NaN or infinite values")
    return params


def published_comparison() -> str:
    """The line ``evaluate`` prints after a weights file's accuracy."""
    return (
        f"for comparison, torchvision's published figures for its ImageNet weights (centre "
        f"crop, the 50,000 ILSVRC-2012 validation images): top-1 {TORCHVISION_TOP1:.3%}, "
        f"top-5 {TORCHVISION_TOP5:.3%}"
    )


def sha256_of(path: Path) -> str:
    """The file's SHA-256, hex (``data/fetch.py`` keeps a copy: it runs without the package)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_torchvision(pth: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Convert torchvision AlexNet weights (a ``.pth`` state_dict, read without running its
    pickle: ``pth.read_state_dict``) into a weights checkpoint at ``out``, written atomically.

    An existing ``out`` is refused unless ``overwrite`` (FileExistsError). The checkpoint
    records the file's name and SHA-256 (the name's digits are not checked: see above).
    """
    pth, out = Path(pth), Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass --overwrite to replace it)")
    if out.exists() and pth.exists() and out.samefile(pth):
        raise ValueError(f"{out}: is the input file itself; choose another output name")
    params = torchvision_params(read_state_dict(pth), str(pth))
    sha256 = sha256_of(pth)
    pre = imagenet_preprocessor()
    return WeightsState(
        params,
        dict(TORCHVISION_CONFIG),
        list(IMAGENET_CLASSES),
        list(IMAGENET_WNIDS),
        pre.settings(),
        pre.arrays(),
        {"file": pth.name, "sha256": sha256},
    ).save(out)


def run_convert(weights: str, out: str, *, overwrite: bool = False) -> int:
    """``python -m minialexnet convert``: ``convert_torchvision``, its errors in one line."""
    try:
        written = convert_torchvision(weights, out, overwrite=overwrite)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"convert: {error}", file=sys.stderr)
        return 2
    print(f"wrote {written}: torchvision's AlexNet weights, for predict and evaluate")
    return 0


def random_torchvision(seed: int = 0, *, engine: str | None = None) -> Trained:
    """The ``torchvision`` variant with He-normal weights from ``seed``, with ImageNet's
    classes and torchvision's preprocessing: what ``load_pretrained`` gives, untrained (the
    lessons run on it where the real weights are absent)."""
    config = dict(TORCHVISION_CONFIG, seed=seed)
    model = build_alexnet("torchvision", seed=seed, engine=engine).eval()
    return Trained(model, imagenet_preprocessor(), IMAGENET_CLASSES, config, IMAGENET_WNIDS)


def load_pretrained(path: str | Path, *, engine: str | None = None) -> Trained:
    """A converted weights file (``convert_torchvision``) as a ready network; a training run's
    checkpoint is refused (``inference.load_trained`` reads both kinds)."""
    trained = load_trained(path, engine=engine)
    if trained.wnids is None:
        raise ValueError(f"{path}: a training run's checkpoint, not converted ImageNet weights")
    return trained
