"""Proof, with torchvision itself, that converted weights compute what torchvision computes.

Not part of the test run: it needs torch and torchvision, which minialexnet never depends on.
In an environment that has them (and minialexnet installed):

    python -m minialexnet.torchvision_check [--seed 0] [--images PHOTO ...]

It builds ``torchvision.models.alexnet()`` with random weights (``torch.manual_seed``), saves
its state_dict with ``torch.save`` in both formats (zip, and the legacy one), converts each
with our reader and converter (``pretrained.convert_torchvision``), and for real photos
(scikit-learn's sample images, and crops of them at odd sizes, where the resize and crop
arithmetic can differ by a pixel) prints, per format, engine and photo:

    (a) end to end   torchvision's logits on its own transforms
                     (``AlexNet_Weights.IMAGENET1K_V1.transforms()``) vs ours on our
                     preprocessing (``data.read_image`` + ``Preprocessor.test_batch``)
    (b) network      both networks on the SAME input tensor (torchvision's): the network alone
    (c) input        max |torchvision's transformed tensor - our preprocessed input|

(a) and (b) are max |difference| / max |torchvision's logit|; both should be float32 rounding,
under ``LOGIT_RTOL``; (c) under ``INPUT_ATOL`` (x · (1/255) vs torchvision's x / 255). Then
``python -m minialexnet predict`` on the converted checkpoint must list torchvision's top 5.
Exit status 0 when every figure is within its tolerance.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .data import read_image
from .inference import load_trained
from .pretrained import IMAGENET_CLASSES, convert_torchvision

LOGIT_RTOL = 1e-5  # float32 through 8 layers, two summation orders: ~1e-6
# x · (1/255) against torchvision's x / 255: a last-bit difference, divided by std (>= 0.224),
# then rounded at magnitudes up to 2.64 (float32 spacing 2.4e-7 there): a few of those
INPUT_ATOL = 2e-6
ODD_CROPS = ((333, 257), (500, 301))  # (width, height): resized, with odd offsets to round


def sample_photos(folder: Path) -> list[Path]:
    """scikit-learn's sample photos, and crops of them at ``ODD_CROPS`` saved losslessly."""
    import sklearn.datasets

    photos = sorted((Path(sklearn.datasets.__file__).parent / "images").glob("*.jpg"))
    crops = []
    for photo in photos:
        with Image.open(photo) as image:
            for width, height in ODD_CROPS:
                crops.append(folder / f"{photo.stem}-{width}x{height}.png")
                image.crop((0, 0, width, height)).save(crops[-1])
    return photos + crops


def relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def compare(pth: Path, npz: Path, net, transforms, photos: list[Path], engine: str) -> bool:
    """Print one table row per photo for the converted ``npz``; True if all within tolerance."""
    import torch

    trained = load_trained(npz, engine=engine)
    ok = True
    for photo in photos:
        with Image.open(photo) as image:
            theirs_in = transforms(image.convert("RGB"))[None]
        ours_in = trained.pre.test_batch(read_image(photo, trained.pre.size)[None])
        with torch.no_grad():
            theirs = net(theirs_in).numpy()
        end_to_end = relative(trained.model.forward(ours_in), theirs)
        network = relative(trained.model.forward(theirs_in.numpy()), theirs)
        inputs = float(np.abs(ours_in - theirs_in.numpy()).max())
        good = max(end_to_end, network) <= LOGIT_RTOL and inputs <= INPUT_ATOL
        ok &= good
        print(
            f"{pth.name:<22} {engine:<9} {photo.name:<22} {end_to_end:10.2e} {network:10.2e} "
            f"{inputs:10.2e}  {'ok' if good else 'OUT OF TOLERANCE'}"
        )
    return ok


def predict_agrees(npz: Path, net, transforms, photo: Path) -> bool:
    """``python -m minialexnet predict`` on ``npz`` lists torchvision's top 5 for ``photo``."""
    import torch

    result = subprocess.run(
        [sys.executable, "-m", "minialexnet", "predict", str(npz), str(photo)],
        capture_output=True,
        text=True,
        check=False,
    )
    shown = [line.split("%  ", 1)[1] for line in result.stdout.splitlines()[1:]]
    with Image.open(photo) as image, torch.no_grad():
        logits = net(transforms(image.convert("RGB"))[None])[0].numpy()
    expected = [IMAGENET_CLASSES[i] for i in np.argsort(-logits)[:5]]
    print(f"predict {photo.name}: {shown}")
    print(f"torchvision top 5:  {expected}")
    return result.returncode == 0 and shown == expected


def main(argv: Sequence[str] | None = None) -> int:
    import torch
    import torchvision
    from torchvision.models import AlexNet_Weights, alexnet

    parser = argparse.ArgumentParser(prog="python -m minialexnet.torchvision_check")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed for the weights")
    parser.add_argument("--images", nargs="*", type=Path, help="photos (default: sklearn's)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    net = alexnet(weights=None).eval()  # torchvision's own init, random
    transforms = AlexNet_Weights.IMAGENET1K_V1.transforms()
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, seed {args.seed}")
    print(f"tolerances: logits (a), (b) <= {LOGIT_RTOL:g} relative; input (c) <= {INPUT_ATOL:g}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photos = args.images or sample_photos(folder)
        header = f"{'file':<22} {'engine':<9} {'photo':<22} {'(a) e2e':>10} {'(b) net':>10}"
        print(f"{header} {'(c) input':>10}")
        for zip_format in (True, False):
            pth = folder / f"alexnet-{'zip' if zip_format else 'legacy'}.pth"
            torch.save(net.state_dict(), pth, _use_new_zipfile_serialization=zip_format)
            npz = convert_torchvision(pth, pth.with_suffix(".npz"))
            for engine in ("fast", "reference"):
                ok &= compare(pth, npz, net, transforms, photos, engine)
        ok &= predict_agrees(npz, net, transforms, photos[0])
    print("all within tolerance" if ok else "SOME FIGURES OUT OF TOLERANCE")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
