"""Download a dataset too large to ship, verify it, and unpack it safely.

    python data/fetch.py cifar10              # -> data/cifar-10-batches-bin/
    python data/fetch.py imagenette           # -> data/imagenette2-160/ (+ classes.txt)
    python data/fetch.py alexnet              # -> data/alexnet-torchvision.npz (see below)
    python data/fetch.py cifar10 --dest DIR

Each step leaves nothing half-done behind:
1. download to a temporary file beside the destination, hashing as it arrives;
2. compare the checksum with the published one (a mismatch deletes the download);
3. extract into a temporary folder, refusing absolute paths, ``..``, links and devices;
4. write a ``.complete`` marker (the algorithm, checksum and URL) into the finished folder,
   last, then rename the folder into place (a single ``os.replace``).
A dataset already in place with the marker of the same checksum is left alone. A folder there
without it (an interrupted or hand-made unpack) is never taken for done: it is refused with a
message saying how to fix it (it is not deleted: it may hold someone's files). The work folders
of a fetch that was killed (``.<name>-<pid>-*``, holding a partial download) are removed when
the process that made them is gone. Only the standard library is used (the script runs
before the package is installed).

``alexnet`` downloads torchvision's ImageNet weights for its AlexNet (a ~233 MB ``.pth``) the
same way, checks them as torch's own loader does (the file name's 8 hex digits are the start
of its SHA-256), renames the file into place and converts it with the installed package
(``python -m minialexnet convert``) to the project's checkpoint for the ``torchvision``
variant. A ``.pth`` already there with the right hash is not downloaded again; one with
another hash is refused, not replaced.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20
MARKER = ".complete"  # written last into a finished dataset folder


@dataclass(frozen=True)
class Source:
    url: str
    algorithm: str  # hashlib name of the published checksum
    checksum: str
    folder: str  # the top-level folder inside the archive
    classes: dict[str, str] | None = None  # written as classes.txt (folder -> readable name)


SOURCES = {
    # The CIFAR page publishes MD5 c32a1d4ab5d03f1284b67883e8d87530 for this file (170,052,171
    # bytes); this is the SHA-256 of the same file.
    "cifar10": Source(
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        "sha256",
        "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
        "cifar-10-batches-bin",
    ),
    # Imagenette publishes no SHA-256; this MD5 is the one torchvision pins for the same file.
    "imagenette": Source(
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",
        "md5",
        "e793b78cc4c9e9a4ccc0c1155377a412",
        "imagenette2-160",
        {
            "n01440764": "tench",
            "n02102040": "English springer",
            "n02979186": "cassette player",
            "n03000684": "chain saw",
            "n03028079": "church",
            "n03394916": "French horn",
            "n03417042": "garbage truck",
            "n03425413": "gas pump",
            "n03445777": "golf ball",
            "n03888257": "parachute",
        },
    ),
}


@dataclass(frozen=True)
class Weights:
    url: str  # its file name ends in -<the first 8 hex digits of its SHA-256>.pth
    converted: str  # the .npz checkpoint written beside the download


WEIGHTS = {
    # torchvision/models/alexnet.py, AlexNet_Weights.IMAGENET1K_V1 (torchvision 0.29)
    "alexnet": Weights(
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "alexnet-torchvision.npz"
    ),
}


def download(url: str, target: Path, algorithm: str, timeout: float = 60) -> str:
    """Stream ``url`` into ``target``; return the hex digest of what arrived."""
    digest = hashlib.new(algorithm)
    with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        done = 0
        while chunk := response.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if total:
                print(f"\r  {done / 1e6:8.1f} of {total / 1e6:.1f} MB", end="", file=sys.stderr)
    if total:
        print(file=sys.stderr)
    return digest.hexdigest()


def safe_extract(archive: Path, into: Path) -> None:
    """Extract a tar archive, refusing any member that would land outside ``into``."""
    root = into.resolve()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if not (member.isfile() or member.isdir()):
                raise ValueError(f"{archive}: refusing {member.name!r} (not a file or folder)")
            target = (root / member.name).resolve()
            if target != root and root not in target.parents:
                raise ValueError(f"{archive}: refusing {member.name!r} (outside the folder)")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: a second guard
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)  # every member was checked above


def fetch(name: str, dest: Path, *, source: Source | None = None) -> Path:
    """Fetch dataset ``name`` into ``dest``/<folder>; return that folder.

    ``source`` overrides the entry in ``SOURCES`` (the tests serve a small archive locally).
    """
    source = source or SOURCES[name]
    final = dest / source.folder
    remove_stale_work(dest, name)
    stamp = f"{source.algorithm} {source.checksum} {source.url}\n"
    if final.exists():
        marker = final / MARKER
        done = marker.is_file() and marker.read_text().split()[:2] == stamp.split()[:2]
        if done:
            print(f"{final} already exists; nothing to do")
            return final
        why = (
            f"has a {MARKER} marker for another archive ({marker.read_text().strip()})"
            if marker.is_file()
            else f"has no {MARKER} marker, so it may be a partial download or unpack"
        )
        raise ValueError(f"{final} {why}; remove it (rm -r {final}) and run this again")
    dest.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-{os.getpid()}-", dir=dest))
    try:
        archive = work / "archive"
        print(f"downloading {source.url}", file=sys.stderr)
        got = download(source.url, archive, source.algorithm)
        if got != source.checksum:
            raise ValueError(
                f"{source.url}: {source.algorithm} is {got}, expected {source.checksum}; "
                f"the download is damaged or the file has changed (nothing was kept)"
            )
        unpacked = work / "unpacked"
        safe_extract(archive, unpacked)
        folder = unpacked / source.folder
        if not folder.is_dir():
            raise ValueError(f"{source.url}: the archive has no top-level {source.folder}/")
        if source.classes:
            lines = [f"{k} {v}" for k, v in sorted(source.classes.items())]
            (folder / "classes.txt").write_text("\n".join(lines) + "\n")
        (folder / MARKER).write_text(stamp)  # last: the folder is complete
        os.replace(folder, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"ready: {final}")
    return final


def hash_prefix(url: str) -> str:
    """The 8 hex digits that end a weights file's name (``name-<digits>.pth``): the start of
    its SHA-256, the convention torch.hub's ``check_hash`` relies on (torch/hub.py,
    ``HASH_REGEX`` and ``download_url_to_file``). Only URLs pinned in this script are passed
    here, so a name without them is a mistake in the script."""
    match = re.search(r"-([0-9a-f]{8})\.pth$", url)
    if match is None:
        raise ValueError(f"{url}: the file name does not end in -<8 hex digits>.pth")
    return match[1]


def sha256_of(path: Path) -> str:
    """The file's SHA-256, hex. The package has the same function
    (``minialexnet.pretrained.sha256_of``); this script runs without the package."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_weights(name: str, dest: Path, *, weights: Weights | None = None) -> Path:
    """Download weights ``name`` into ``dest`` (checked, then renamed into place) unless a
    good copy is there; convert them; return the converted checkpoint's path.

    ``weights`` overrides the entry in ``WEIGHTS`` (the tests serve a small file locally).
    """
    weights = weights or WEIGHTS[name]
    prefix = hash_prefix(weights.url)
    pth = dest / weights.url.rsplit("/", 1)[1]
    remove_stale_work(dest, name)
    if pth.exists():
        got = sha256_of(pth)
        if not got.startswith(prefix):
            raise ValueError(
                f"{pth} exists, but its sha256 is {got}, which does not start with {prefix}: "
                f"a damaged download or another file; remove it (rm {pth}) and run this again"
            )
        print(f"{pth} already exists (its sha256 starts with {prefix}); not downloading")
    else:
        dest.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{name}-{os.getpid()}-", dir=dest))
        try:
            print(f"downloading {weights.url}", file=sys.stderr)
            got = download(weights.url, work / pth.name, "sha256")
            if not got.startswith(prefix):
                raise ValueError(
                    f"{weights.url}: sha256 is {got}, which does not start with {prefix}; "
                    f"the download is damaged or the file has changed (nothing was kept)"
                )
            # a concurrent fetch may have put its copy there meanwhile: replacing it is
            # harmless, as both were checked against the same digest
            os.replace(work / pth.name, pth)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    npz = dest / weights.converted
    if npz.exists():
        recorded = recorded_sha256(npz)
        if not (recorded or "").startswith(prefix):
            raise ValueError(
                f"{npz} exists, but it records no conversion of {pth.name} (source sha256: "
                f"{recorded}); remove it (rm {npz}) and run this again"
            )
        print(f"{npz} already exists, converted from {pth.name}; not converting again")
    else:
        convert(pth, npz)
        print(f"ready: {npz}")
    return npz


def recorded_sha256(npz: Path) -> str | None:
    """The ``source`` SHA-256 a converted checkpoint records (None: not such a checkpoint).

    Read with the standard library (this script runs without the package or NumPy): the
    ``meta`` entry is one ``.npy`` string, a JSON object in UTF-32 (``checkpoint.py``)."""
    try:
        with zipfile.ZipFile(npz) as archive:
            raw = archive.read("meta.npy")
        if raw[:6] != b"\x93NUMPY":
            return None
        length_bytes = 2 if raw[6] == 1 else 4
        start = 8 + length_bytes
        start += int.from_bytes(raw[8:start], "little")
        header = raw[8 + length_bytes : start].decode("latin1")
        if "'<U" not in header:
            return None
        meta = json.loads(raw[start:].decode("utf-32-le").rstrip("\0"))
        return meta["source"]["sha256"]
    except (OSError, zipfile.BadZipFile, KeyError, TypeError, ValueError):
        return None


def convert(pth: Path, npz: Path) -> None:
    """Convert ``pth`` to the project's checkpoint ``npz`` with the installed package, in a
    child process (this script itself must run without the package: where it is missing,
    the child says so)."""
    command = ["python", "-m", "minialexnet", "convert", str(pth), str(npz)]
    result = subprocess.run([sys.executable, *command[1:]], check=False)
    if result.returncode != 0:
        raise ValueError(
            f"converting {pth} (kept) failed with exit code {result.returncode}; fix what it "
            f"said above (No module named minialexnet: pip install -e .) and run: "
            f"{shlex.join(command)}"
        )


def remove_stale_work(dest: Path, name: str) -> list[Path]:
    """Delete the work folders (``.<name>-<pid>-<random>``: a partial download, a half
    unpacked archive) that a killed fetch of ``name`` left in ``dest``, when that process is
    gone; a fetch still running keeps its own. (Folders of the older form, without the pid,
    ``.<name>-<8 random characters>``, are removed too: only this script makes them.)"""
    pattern = re.compile(rf"^\.{re.escape(name)}-(?:(?P<pid>\d+)-[a-z0-9_]+|[a-z0-9_]{{8}})$")
    removed = []
    for entry in dest.iterdir() if dest.is_dir() else ():
        match = pattern.match(entry.name)
        if match and entry.is_dir() and not (match["pid"] and pid_alive(int(match["pid"]))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0 sends nothing). The package has the same
    check (``minialexnet.checkpoint.pid_alive``); this script runs without the package."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=sorted(SOURCES) + sorted(WEIGHTS))
    parser.add_argument(
        "--dest", type=Path, default=Path(__file__).resolve().parent, help="default: data/"
    )
    args = parser.parse_args(argv)
    try:
        if args.dataset in WEIGHTS:
            fetch_weights(args.dataset, args.dest)
        else:
            fetch(args.dataset, args.dest)
    except (OSError, ValueError, tarfile.TarError) as error:
        print(f"fetch {args.dataset}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
