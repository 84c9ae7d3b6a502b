"""data/fetch.py, offline: archives the test builds, served from a file or a loopback server."""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import io
import json
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

FETCH_PATH = Path(__file__).resolve().parents[1] / "data" / "fetch.py"
spec = importlib.util.spec_from_file_location("data_fetch", FETCH_PATH)
fetch_module = importlib.util.module_from_spec(spec)
sys.modules["data_fetch"] = fetch_module  # dataclasses look their module up by name
spec.loader.exec_module(fetch_module)
Source, fetch = fetch_module.Source, fetch_module.fetch


def make_archive(path: Path, members: dict[str, bytes]) -> str:
    """Write a .tar.gz holding ``members`` (name -> bytes); return its SHA-256."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


GOOD = {"toy-batches-bin/batches.meta.txt": b"cat\ndog\n", "toy-batches-bin/x.bin": b"\x01" * 10}


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path/served`` on 127.0.0.1 (a free port) for the length of one test."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_over_http_verifies_and_renames_into_place(server, tmp_path):
    root, url = server
    digest = make_archive(root / "toy.tar.gz", GOOD)
    dest = tmp_path / "data"
    source = Source(f"{url}/toy.tar.gz", "sha256", digest, "toy-batches-bin", {"n1": "one"})
    final = fetch("toy", dest, source=source)
    assert final == dest / "toy-batches-bin"
    assert (final / "batches.meta.txt").read_bytes() == b"cat\ndog\n"
    assert (final / "classes.txt").read_text() == "n1 one\n"
    assert [p.name for p in dest.iterdir()] == ["toy-batches-bin"]  # no temporary left
    # done, and marked so: a second fetch downloads nothing (this URL would fail)
    fetch(
        "toy", dest, source=Source("http://127.0.0.1:9/none", "sha256", digest, "toy-batches-bin")
    )


def test_fetch_from_a_local_file_url(tmp_path):
    archive = tmp_path / "toy.tar.gz"
    digest = make_archive(archive, GOOD)
    source = Source(archive.as_uri(), "sha256", digest, "toy-batches-bin")
    assert (fetch("toy", tmp_path / "data", source=source) / "x.bin").stat().st_size == 10


def test_a_wrong_checksum_keeps_nothing(tmp_path):
    archive = tmp_path / "toy.tar.gz"
    make_archive(archive, GOOD)
    dest = tmp_path / "data"
    source = Source(archive.as_uri(), "sha256", "0" * 64, "toy-batches-bin")
    with pytest.raises(ValueError, match=r"sha256 is [0-9a-f]{64}, expected 0{64}"):
        fetch("toy", dest, source=source)
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize(
    "member", ["../escaped.txt", "/tmp/absolute.txt", "toy-batches-bin/../../up.txt"]
)
def test_an_archive_reaching_outside_its_folder_is_refused(tmp_path, member):
    archive = tmp_path / "evil.tar.gz"
    digest = make_archive(archive, {**GOOD, member: b"gotcha"})
    dest = tmp_path / "deep" / "data"
    with pytest.raises(ValueError, match=r"refusing .* \(outside the folder\)"):
        fetch("evil", dest, source=Source(archive.as_uri(), "sha256", digest, "toy-batches-bin"))
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "deep" / "escaped.txt").exists()
    assert not Path("/tmp/absolute.txt").exists()


def test_links_in_an_archive_are_refused(tmp_path):
    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("toy-batches-bin/passwd")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    source = Source(archive.as_uri(), "sha256", digest, "toy-batches-bin")
    with pytest.raises(ValueError, match=r"refusing 'toy-batches-bin/passwd' \(not a file"):
        fetch("link", tmp_path / "data", source=source)


def test_the_published_sources_are_pinned():
    for name, source in fetch_module.SOURCES.items():
        assert source.url.startswith("https://"), name
        assert len(source.checksum) == {"sha256": 64, "md5": 32}[source.algorithm], name


def test_main_reports_failures_in_one_line(tmp_path, capsys, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(fetch_module, "download", unreachable)
    assert fetch_module.main(["cifar10", "--dest", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().endswith("fetch cifar10: network is unreachable")


def test_a_finished_fetch_is_marked_and_a_partial_folder_is_never_taken_for_done(tmp_path):
    archive = tmp_path / "toy.tar.gz"
    digest = make_archive(archive, GOOD)
    source = Source(archive.as_uri(), "sha256", digest, "toy-batches-bin")
    final = fetch("toy", tmp_path / "data", source=source)
    assert (final / fetch_module.MARKER).read_text().split()[:2] == ["sha256", digest]
    # a half-filled folder (a killed unpack by hand, an older fetch) was "nothing to do"
    partial = tmp_path / "other" / "toy-batches-bin"
    partial.mkdir(parents=True)
    (partial / "batches.meta.txt").write_bytes(b"cat\n")
    with pytest.raises(ValueError, match=r"toy-batches-bin has no \.complete marker.*rm -r"):
        fetch("toy", tmp_path / "other", source=source)
    assert [p.name for p in partial.iterdir()] == ["batches.meta.txt"]  # not deleted
    # a folder fetched from another archive is not taken for this one
    changed = Source(archive.as_uri(), "sha256", "f" * 64, "toy-batches-bin")
    with pytest.raises(ValueError, match=r"has a \.complete marker for another archive"):
        fetch("toy", tmp_path / "data", source=changed)


def test_the_leftovers_of_a_killed_fetch_are_removed(tmp_path):
    import subprocess

    dest = tmp_path / "data"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "stale": f".toy-{dead.pid}-ab12cd34",
            "legacy": ".toy-q1w2e3r4",  # before the pid was in the name
            "live": f".toy-{alive.pid}-zz99yy88",  # a fetch running now
            "other": f".cifar10-{dead.pid}-ab12cd34",  # another dataset's: not this fetch's
        }
        for name in names.values():
            (dest / name).mkdir(parents=True)
            (dest / name / "archive").write_bytes(b"half a download")
        archive = tmp_path / "toy.tar.gz"
        digest = make_archive(archive, GOOD)
        fetch("toy", dest, source=Source(archive.as_uri(), "sha256", digest, "toy-batches-bin"))
        left = {p.name for p in dest.iterdir()}
        assert left == {"toy-batches-bin", names["live"], names["other"]}
    finally:
        alive.kill()
        alive.wait()


# ---- the alexnet weights: one file, checked by the SHA-256 prefix in its name -------------


def weights_file(root: Path, content: bytes, prefix: str | None = None) -> str:
    """Write ``content`` as ``toy-<prefix>.pth`` in ``root`` (by default the true prefix of
    its SHA-256); return the file name."""
    prefix = prefix or hashlib.sha256(content).hexdigest()[:8]
    (root / f"toy-{prefix}.pth").write_bytes(content)
    return f"toy-{prefix}.pth"


def write_converted(npz: Path, sha256: str) -> None:
    """A stand-in converted checkpoint: only its meta, recording the source's digest."""
    meta = {"format": 1, "kind": "weights", "source": {"file": "x.pth", "sha256": sha256}}
    np.savez(npz, meta=np.array(json.dumps(meta)))


@pytest.fixture
def conversions(monkeypatch):
    """Replace the convert step (a child process of the package) by one that records its
    arguments and writes a stand-in checkpoint."""
    calls = []

    def convert(pth, npz):
        calls.append((pth, npz))
        write_converted(npz, hashlib.sha256(pth.read_bytes()).hexdigest())

    monkeypatch.setattr(fetch_module, "convert", convert)
    return calls


def test_weights_are_downloaded_checked_renamed_and_converted(server, tmp_path, conversions):
    root, url = server
    name = weights_file(root, b"\x80\x02weights" * 1000)
    dest = tmp_path / "data"
    weights = fetch_module.Weights(f"{url}/{name}", "toy.npz")
    assert fetch_module.fetch_weights("toy", dest, weights=weights) == dest / "toy.npz"
    assert (dest / name).read_bytes() == (root / name).read_bytes()
    assert conversions == [(dest / name, dest / "toy.npz")]
    assert sorted(p.name for p in dest.iterdir()) == [name, "toy.npz"]  # no temporary left
    # a good copy is not downloaded again (this URL would fail), but is converted again
    (dest / "toy.npz").unlink()
    gone = fetch_module.Weights(f"http://127.0.0.1:9/{name}", "toy.npz")
    fetch_module.fetch_weights("toy", dest, weights=gone)
    assert conversions[1] == (dest / name, dest / "toy.npz")
    fetch_module.fetch_weights("toy", dest, weights=gone)  # both there: nothing to do
    assert len(conversions) == 2


def test_an_existing_checkpoint_not_converted_from_the_weights_is_refused(tmp_path, conversions):
    name = weights_file(tmp_path, b"\x80\x02weights")
    weights = fetch_module.Weights((tmp_path / name).as_uri(), "toy.npz")
    dest = tmp_path / "data"
    dest.mkdir()
    for what, write in {
        "another source": lambda npz: write_converted(npz, "f" * 64),
        "no checkpoint": lambda npz: npz.write_bytes(b"converted"),
    }.items():
        write(dest / "toy.npz")
        with pytest.raises(ValueError, match=r"records no conversion of toy-.* \(rm "):
            fetch_module.fetch_weights("toy", dest, weights=weights)
        assert conversions == [], what
    assert fetch_module.recorded_sha256(dest / "toy.npz") is None
    write_converted(dest / "toy.npz", "ab" * 32)
    assert fetch_module.recorded_sha256(dest / "toy.npz") == "ab" * 32


def test_weights_whose_hash_does_not_match_their_name_are_not_kept(tmp_path, conversions):
    name = weights_file(tmp_path, b"some other file", prefix="0badf00d")
    dest = tmp_path / "data"
    weights = fetch_module.Weights((tmp_path / name).as_uri(), "toy.npz")
    with pytest.raises(ValueError, match=r"sha256 is [0-9a-f]{64}, which does not start with 0b"):
        fetch_module.fetch_weights("toy", dest, weights=weights)
    assert list(dest.iterdir()) == [] and conversions == []
    # a damaged copy already in place is refused, and left as it was
    (dest / name).write_bytes(b"half a download")
    with pytest.raises(ValueError, match=r"exists, but its sha256 .* remove it \(rm "):
        fetch_module.fetch_weights("toy", dest, weights=weights)
    assert (dest / name).read_bytes() == b"half a download"


def test_the_hash_prefix_is_the_eight_hex_digits_ending_the_name():
    assert fetch_module.hash_prefix(fetch_module.WEIGHTS["alexnet"].url) == "7be5be79"
    assert fetch_module.WEIGHTS["alexnet"].url.startswith("https://download.pytorch.org/")
    for url in [
        "x/alexnet.pth",
        "x/alexnet-7BE5BE79.pth",
        "x/alexnet-7be5be7.pth",
        "x/a-7be5be79.pt",
    ]:
        with pytest.raises(ValueError, match=r"does not end in -<8 hex digits>\.pth"):
            fetch_module.hash_prefix(url)


def test_a_failed_conversion_keeps_the_download_and_says_what_to_run(tmp_path):
    pth, npz = tmp_path / "toy-00000000.pth", tmp_path / "toy.npz"
    pth.write_bytes(b"not a checkpoint")
    command = f"python -m minialexnet convert {pth} {npz}"
    with pytest.raises(ValueError, match=rf"failed with exit code [1-9].*run: {command}$"):
        fetch_module.convert(pth, npz)  # the real child process, refusing this file
    assert pth.read_bytes() == b"not a checkpoint" and not npz.exists()


def test_main_fetches_alexnet_and_reports_failures_in_one_line(tmp_path, capsys, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(fetch_module, "download", unreachable)
    assert fetch_module.main(["alexnet", "--dest", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().endswith("fetch alexnet: network is unreachable")
    assert list(tmp_path.iterdir()) == []
