"""Reading a PyTorch ``state_dict`` file (``.pth``) with NumPy alone, never running its pickle.

``torch.save`` writes Python's pickle, and unpickling calls whatever functions the file names:
a downloaded ``.pth`` can run ``os.system``. This reader follows the format as torch's own
source writes and reads it (``torch/serialization.py``: ``_save``, ``_legacy_save``, ``_load``,
``_legacy_load``; ``torch/_utils.py``: ``_rebuild_tensor_v2``; ``torch/storage.py``: the
storage type names) and admits only the globals a plain state_dict needs, each mapped to a
stand-in of ours; any other global is refused (``UnsafePickleError``) before it is called.

The two formats:

- **zip** (the default since torch 1.6): a zip archive with one top folder (``archive/`` or the
  file's stem) holding ``data.pkl`` (the pickled dict), ``data/<key>`` (each storage's raw
  bytes), ``byteorder`` (``little``/``big``; absent in older files, which are little-endian)
  and ``version``. A storage is pickled as the persistent id
  ``('storage', torch.<Type>Storage, key, location, numel)``.
- **legacy** (``_use_new_zipfile_serialization=False``, and torch < 1.6): five pickles in a
  row (a magic number, the protocol version 1001, a dict of system facts, the object, the list
  of storage keys), then per key in that order the element count (int64) and the storage's
  bytes, both little-endian on any machine (``writeFileRaw``, torch/csrc/generic/serialization.cpp).
  The persistent id has a sixth field, a storage view, which torch >= 0.4 leaves ``None``.

A tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, backward_hooks)`` (before torch 0.4, ``_rebuild_tensor`` without the last
two); offsets and strides count elements. bfloat16, which NumPy lacks, is returned as float32
(exact: a bfloat16 is the top half of a float32).

Memory is bounded by the file, whatever it claims. Every pickle is first scanned opcode by
opcode (``pickletools.genops``): at most ``MAX_PICKLE_BYTES`` and ``MAX_OPCODES`` opcodes
(``pth_pickle``; each can make one object, and a state_dict's pickle has a few hundred),
and a length or a memo index larger than the pickle is refused before the unpickler
allocates for it. Zip members must be
stored uncompressed, as torch writes them (``PyTorchStreamWriter`` in
caffe2/serialize/inline_container.cc stores every record; checked on torch 2.13's files), so no
small file inflates. Every storage's size is checked against the bytes really present before
an array is allocated. Tensors that are the same window of one storage (tied weights: torch
saves them once) come back as one array; the other tensors together may hold at most
``MAX_COPIES`` times the elements of the storages, plus ``SLACK`` (views that overlap a
little, as real files have, pass; a file naming one storage under hundreds of keys does not):
the arrays returned take at most about twice the file's size (+ 8 MB) in memory.
Each failure is one ``ValueError`` naming the file (and the key or storage where known).
"""

from __future__ import annotations

import math
import mmap
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

from minialexnet.pth_pickle import (
    ADMITTED,
    MAX_PICKLE_BYTES,
    StorageRef,
    TensorRef,
    UnsafePickleError,
    persistent_loader,
    scan_pickle,
    short,
    unpickle,
)

__all__ = ["UnsafePickleError", "read_state_dict"]

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch/serialization.py, the legacy format's first pickle
LEGACY_PROTOCOL_VERSION = 1001
MAX_DIMENSIONS = 32  # NumPy 1's limit (NumPy 2 allows 64); torch state_dicts use a few
CHUNK = 1 << 20  # bytes read from a zip member at a time
# the distinct tensors may hold MAX_COPIES times the storages' elements, plus SLACK (8 MB of
# float64) so that small files of overlapping views pass: see the module's docstring
MAX_COPIES, SLACK = 2, 1 << 20
NOT_TORCH = (
    "not a PyTorch checkpoint (or a damaged one): no zip archive, nor torch's legacy pickles"
)

# ---- the two formats -----------------------------------------------------------------------


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a PyTorch state_dict file (``torch.save`` of a dict/OrderedDict of
    tensors), by key, in file order, as C-contiguous NumPy arrays of the stored dtype
    (bfloat16 as float32). Both formats: the zip format (torch >= 1.6 default) and the older
    plain-pickle ("legacy") format. Never runs pickled code. Keys holding the same window of
    one storage (tied weights) are given the same array object, as torch gives them one
    storage.

    Raises ``UnsafePickleError`` for a pickle naming any other global, ``ValueError`` naming
    the file for anything else wrong with it (a folder included), ``FileNotFoundError`` when
    there is no file.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a PyTorch checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not a PyTorch checkpoint")
    with open(path, "rb") as file:
        head = file.read(4)
    try:
        if head in (b"PK\x03\x04", b"PK\x05\x06"):
            return _read_zip(path, size)
        return _read_legacy(path)
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}", error.global_name) from None
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    except OSError:  # the file system's own (permissions, a vanished file): not the content's
        raise
    except Exception as error:  # MemoryError, RecursionError...: a crafted file's, in one line
        raise ValueError(f"{path}: not readable ({type(error).__name__}: {error})") from None


def _read_zip(path: Path, size: int) -> dict[str, np.ndarray]:
    try:
        archive = zipfile.ZipFile(path)
    except Exception as error:  # zipfile on a damaged directory: BadZipFile and others
        raise ValueError(f"a damaged or truncated zip archive ({error}; {size} bytes)") from None
    with archive:
        names = archive.namelist()
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(
                    f"{info.filename} is compressed (method {info.compress_type}); torch.save "
                    f"stores every record uncompressed"
                )
        pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pickles) != 1:
            kind = (
                "TorchScript (torch.jit.save) " if any("constants.pkl" in n for n in names) else ""
            )
            raise ValueError(
                f"a {kind}zip archive without exactly one <folder>/data.pkl "
                f"({len(pickles)} found): not a torch.save state_dict file"
            )
        prefix = pickles[0].removesuffix("data.pkl")
        byteorder = "little"
        if f"{prefix}byteorder" in names:
            byteorder = _member_bytes(archive, f"{prefix}byteorder", size).decode(errors="replace")
            if byteorder not in ("little", "big"):
                raise ValueError(f"{prefix}byteorder says {short(byteorder)}, not little or big")
        data = _member_bytes(archive, pickles[0], size)
        scan_pickle(data, 0, pickles[0])
        refs = _state_refs(
            unpickle(data, pickles[0], ADMITTED, persistent_loader({}, legacy=False))
        )

        def read_storage(ref: StorageRef) -> np.ndarray:
            dtype = ref.kind.dtype.newbyteorder("<" if byteorder == "little" else ">")
            return _read_member_array(archive, f"{prefix}data/{ref.key}", ref, dtype, size)

        return _materialize(refs, read_storage)


def _member_bytes(archive: zipfile.ZipFile, name: str, file_size: int) -> bytes:
    info = archive.getinfo(name)
    _check_declared_size(info, file_size)
    if info.file_size > MAX_PICKLE_BYTES:
        raise ValueError(f"{name} claims {info.file_size} bytes, more than a state_dict needs")
    try:
        return archive.read(info)
    except Exception as error:  # zipfile/zlib on a damaged member
        raise ValueError(f"{name} is damaged ({type(error).__name__}: {error})") from None


def _check_declared_size(info: zipfile.ZipInfo, file_size: int) -> None:
    """A stored member cannot hold more than the file does."""
    if info.file_size > min(info.compress_size, file_size):
        raise ValueError(f"{info.filename} claims {info.file_size} bytes, more than the file holds")


def _read_member_array(
    archive: zipfile.ZipFile, name: str, ref: StorageRef, dtype: np.dtype, file_size: int
) -> np.ndarray:
    """Storage ``ref`` from member ``name``, read once, in chunks, into a fresh array."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ValueError(f"storage {ref.key!r}: the record {name} is missing") from None
    nbytes = ref.numel * dtype.itemsize
    if info.file_size != nbytes:
        raise ValueError(
            f"storage {ref.key!r}: {name} holds {info.file_size} bytes, but {ref.numel} "
            f"elements of {ref.kind.name} need {nbytes}"
        )
    _check_declared_size(info, file_size)
    out = np.empty(ref.numel, dtype)
    view = memoryview(out).cast("B")
    try:
        with archive.open(info) as member:
            done = 0
            while done < nbytes:
                chunk = member.read(min(CHUNK, nbytes - done))
                if not chunk:
                    raise EOFError(f"ends after {done} of {nbytes} bytes")
                view[done : done + len(chunk)] = chunk
                done += len(chunk)
            member.read(1)  # at the end: lets zipfile check the CRC
    except Exception as error:
        raise ValueError(f"storage {ref.key!r}: {name} is damaged ({error})") from None
    return out


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        position, header = 0, []
        try:
            for what in ("the magic number", "the protocol version", "the system info"):
                end = scan_pickle(mm, position, f"{what} pickle")
                header.append(unpickle(mm[position:end], f"{what} pickle", {}))
                position = end
        except UnsafePickleError:
            raise
        except ValueError as error:
            raise ValueError(f"{NOT_TORCH} ({error})") from None
        if header[:2] != [MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION]:
            raise ValueError(f"{NOT_TORCH} (its first pickles hold {short(header[:2])})")
        seen: dict[str, StorageRef] = {}
        end = scan_pickle(mm, position, "the object pickle")
        load = persistent_loader(seen, legacy=True)
        refs = _state_refs(unpickle(mm[position:end], "the object pickle", ADMITTED, load))
        position = end
        end = scan_pickle(mm, position, "the storage key list")
        keys = unpickle(mm[position:end], "the storage key list", {})
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)) or sorted(
            keys
        ) != sorted(seen):
            raise ValueError(
                f"the storage key list {short(keys)} does not match the tensors' storages"
            )
        offsets = _legacy_records(mm, end, keys, seen)

        def read_storage(ref: StorageRef) -> np.ndarray:
            out = np.empty(ref.numel, ref.kind.dtype)
            file.seek(offsets[ref.key])
            view, done = memoryview(out).cast("B"), 0
            while done < len(view):
                got = file.readinto(view[done:])
                if not got:  # measured above, so only a file cut while being read
                    raise ValueError(f"storage {ref.key!r}: the file ended while being read")
                done += got
            return out

        return _materialize(refs, read_storage)


def _legacy_records(mm: mmap.mmap, position: int, keys: list[str], seen: dict) -> dict[str, int]:
    """Where each storage's bytes start: after its int64 element count (little-endian), which
    must agree with the pickle's; checked against the file's size before anything is read."""
    offsets = {}
    for key in keys:
        ref = seen[key]
        start = position + 8
        if start > len(mm):
            raise ValueError(f"storage {key!r}: the file ends before its record (truncated)")
        count = int.from_bytes(mm[position:start], "little", signed=True)
        if count != ref.numel:
            raise ValueError(
                f"storage {key!r}: its record says {count} elements, the pickle {ref.numel}"
            )
        position = start + ref.numel * ref.kind.dtype.itemsize
        if position > len(mm):
            raise ValueError(
                f"storage {key!r}: its record needs {position - start} bytes, the file has "
                f"{len(mm) - start} left (truncated)"
            )
        offsets[key] = start
    return offsets


# ---- from storages and windows to arrays ---------------------------------------------------


def _state_refs(state) -> dict[str, TensorRef]:
    """Check that the unpickled object is a dict of tensors; return it as a plain dict.

    The pickle may have set attributes on an OrderedDict (BUILD): ``nn.Module.state_dict()``
    sets ``_metadata`` (per-module version numbers, not needed here, dropped), and nothing else
    is admitted, as an attribute could hide the dict's own methods (``items``). The entries
    are read with ``dict``'s methods for the same reason."""
    if type(state) not in (dict, OrderedDict):
        what = "a single tensor" if type(state) is TensorRef else f"a {type(state).__name__}"
        raise ValueError(
            f"this file holds {what}, not a state_dict (a dict of tensors); save model.state_dict()"
        )
    attributes = sorted(set(vars(state)) - {"_metadata"}) if type(state) is OrderedDict else []
    if attributes:
        raise ValueError(
            f"the pickle sets attributes {short(attributes)} on the state_dict (only "
            f"_metadata is admitted)"
        )
    for key, value in dict.items(state):
        if type(key) is not str:
            raise ValueError(f"state_dict key {short(key)} is not a string")
        if type(value) is not TensorRef or type(value.storage) is not StorageRef:
            raise ValueError(
                f"key {key!r} holds an object of type {type(value).__name__}, not a tensor "
                f"(a checkpoint holding more than a state_dict? save model.state_dict() alone)"
            )
    return dict(dict.items(state))


def _materialize(
    refs: dict[str, TensorRef], read_storage: Callable[[StorageRef], np.ndarray]
) -> dict[str, np.ndarray]:
    """Read each storage once (``read_storage`` gives a fresh array of its elements in the
    file's byte order), cut every tensor on it out, then let it go: at most one storage is
    held beside the results. Keys that are the same window of a storage share one array;
    the distinct windows may hold ``MAX_COPIES`` times the storages' elements (+ ``SLACK``)."""
    by_storage: dict[str, tuple[StorageRef, dict[tuple, list[str]]]] = {}
    for key, ref in refs.items():
        storage, windows = by_storage.setdefault(ref.storage.key, (ref.storage, {}))
        if ref.storage is not storage:  # the unpickler gives one object per key: a forgery
            raise ValueError(f"key {key!r}: storage {storage.key!r} is named twice")
        _check_window(key, ref, storage.numel)
        windows.setdefault((ref.offset, ref.size, ref.stride), []).append(key)
    stored = sum(storage.numel for storage, _ in by_storage.values())
    held = sum(math.prod(w[1]) for _, windows in by_storage.values() for w in windows)
    if held > MAX_COPIES * stored + SLACK:
        raise ValueError(
            f"its {len(refs)} tensors hold {held:,} elements, more than {MAX_COPIES} times the "
            f"{stored:,} of their storages (+{SLACK:,}): one storage cut into many "
            f"overlapping tensors"
        )
    arrays: dict[str, np.ndarray] = {}
    for storage, windows in by_storage.values():
        elements = read_storage(storage)
        if elements.size != storage.numel:
            raise ValueError(f"storage {storage.key!r}: {elements.size} elements read")
        if storage.kind.name == "BoolStorage" and np.any(elements > 1):
            raise ValueError(f"storage {storage.key!r}: a bool storage holds bytes other than 0/1")
        native = elements.dtype.newbyteorder("=")
        if elements.dtype != native:
            elements = elements.byteswap(inplace=True).view(native)
        for keys in windows.values():
            array = _cut(elements, refs[keys[0]], reuse=len(windows) == 1)
            arrays |= dict.fromkeys(keys, array)
        del elements
    return {key: arrays[key] for key in refs}


def _check_window(key: str, ref: TensorRef, numel: int) -> None:
    """The tensor must lie inside its storage of ``numel`` elements, and no two of its
    elements may share one storage element (so it holds at most as many as the storage)."""
    where = (
        f"key {key!r} (storage {ref.storage.key!r}, offset {ref.offset}, size {ref.size}, "
        f"stride {ref.stride})"
    )
    if ref.offset < 0 or any(n < 0 for n in ref.size) or any(s < 0 for s in ref.stride):
        raise ValueError(f"{where}: negative offset, size or stride")
    if len(ref.size) > MAX_DIMENSIONS or math.prod(n for n in ref.size if n) >= 2**63:
        raise ValueError(f"{where}: more dimensions or elements than NumPy can hold")
    if 0 in ref.size:
        return
    span = 1  # elements covered by the dimensions checked so far
    for stride, n in sorted((s, n) for n, s in zip(ref.size, ref.stride, strict=True) if n > 1):
        if stride < span:
            raise ValueError(
                f"{where}: its elements overlap (an expanded or self-overlapping view)"
            )
        span += stride * (n - 1)
    if ref.offset + span > numel:
        raise ValueError(
            f"{where}: reaches element {ref.offset + span - 1} of a storage of {numel}"
        )


def _cut(elements: np.ndarray, ref: TensorRef, reuse: bool) -> np.ndarray:
    """The tensor ``ref`` as a fresh C-contiguous array: ``elements`` itself when no other
    tensor uses it (``reuse``) and the tensor is all of it in order, else a copy; bfloat16
    widened to float32."""
    count = math.prod(ref.size)
    in_order = all(
        n == 1 or s == math.prod(ref.size[i + 1 :])
        for i, (n, s) in enumerate(zip(ref.size, ref.stride, strict=True))
    )
    if reuse and in_order and ref.offset == 0 and count == elements.size:
        array = elements.reshape(ref.size)
    elif count == 0:
        array = np.empty(ref.size, elements.dtype)
    else:
        window = as_strided(
            elements[ref.offset :], ref.size, [s * elements.itemsize for s in ref.stride]
        )
        array = np.array(window, order="C")
    if ref.storage.kind.name == "BFloat16Storage":
        return (array.astype(np.uint32) << 16).view(np.float32)
    if ref.storage.kind.name == "BoolStorage":
        return array.view(np.bool_)
    return array
