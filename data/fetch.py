"""Download a dataset too large to ship, verify it, and unpack it safely.

    python data/fetch.py cifar10              # -> data/cifar-10-batches-bin/
    python data/fetch.py imagenette           # -> data/imagenette2-160/ (+ classes.txt)
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
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.request
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
    parser.add_argument("dataset", choices=sorted(SOURCES))
    parser.add_argument(
        "--dest", type=Path, default=Path(__file__).resolve().parent, help="default: data/"
    )
    args = parser.parse_args(argv)
    try:
        fetch(args.dataset, args.dest)
    except (OSError, ValueError, tarfile.TarError) as error:
        print(f"fetch {args.dataset}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
