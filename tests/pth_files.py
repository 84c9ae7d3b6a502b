"""PyTorch checkpoint files written byte by byte, without torch, for the reader's tests.

``write_pth(path, state)`` writes ``state`` (key -> NumPy array) as ``torch.save(state)``
would, in either format (see ``minialexnet/pth.py`` for the layout). The pickle is written
opcode by opcode (``pickle_bytes``): the standard pickler cannot write torch's globals without
importing torch. NumPy views are kept as views: arrays that are views of one base array are
written as tensors sharing one storage, with their offsets and strides, as torch does for
tensor views. The pieces (``Global``, ``Reduced``, ``PersistentId``, ``tensor``, ``write_zip``,
``write_legacy``) are public so that tests can write files that are wrong in one place.

``write_malicious_pth(path, kind, marker)`` writes a state_dict one of whose values, when
unpickled by ``pickle``/``torch.load``, creates the file ``marker``.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch/serialization.py
SYS_INFO = {  # what torch 2.13's _legacy_save writes on Linux
    "protocol_version": 1001,
    "little_endian": True,
    "type_sizes": {"short": 2, "int": 4, "long": 4},
}
STORAGE_NAMES = {  # NumPy dtype -> torch's storage type (torch/storage.py)
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.int16): "ShortStorage",
    np.dtype(np.int8): "CharStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
}


@dataclass(frozen=True)
class Global:
    """The pickle opcode GLOBAL ``module name``."""

    module: str
    name: str


@dataclass(frozen=True)
class Reduced:
    """``func(*args)`` (REDUCE), then ``items`` set on it (SETITEMS), then ``state`` (BUILD)."""

    func: Any
    args: tuple = ()
    items: dict = field(default_factory=dict)
    state: Any = None


@dataclass(frozen=True)
class PersistentId:
    """BINPERSID: what the unpickler's ``persistent_load`` is given."""

    pid: tuple


def ordered_dict(items: Mapping | None = None, state: Any = None) -> Reduced:
    return Reduced(Global("collections", "OrderedDict"), (), dict(items or {}), state)


def pickle_bytes(obj: Any) -> bytes:
    """``obj`` as a protocol-2 pickle; each Global is written once and then fetched from the
    memo, as the standard pickler does."""
    out = bytearray(b"\x80\x02")
    memo: dict[Global, int] = {}

    def emit(value: Any) -> None:
        if value is None:
            out.extend(b"N")
        elif value is True or value is False:
            out.extend(b"\x88" if value else b"\x89")
        elif isinstance(value, int):
            if 0 <= value < 256:
                out.extend(b"K" + bytes([value]))
            elif -(2**31) <= value < 2**31:
                out.extend(b"J" + struct.pack("<i", value))
            else:
                data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
                out.extend(b"\x8a" + bytes([len(data)]) + data)
        elif isinstance(value, str):
            data = value.encode()
            out.extend(b"X" + struct.pack("<I", len(data)) + data)
        elif isinstance(value, tuple):
            out.extend(b"(")
            for item in value:
                emit(item)
            out.extend(b"t")
        elif isinstance(value, list):
            out.extend(b"]")
            if value:
                out.extend(b"(")
                for item in value:
                    emit(item)
                out.extend(b"e")
        elif isinstance(value, dict):
            out.extend(b"}")
            set_items(value)
        elif isinstance(value, Global):
            if value in memo:
                out.extend(b"h" + bytes([memo[value]]))
            else:
                memo[value] = len(memo)
                out.extend(
                    f"c{value.module}\n{value.name}\n".encode() + b"q" + bytes([memo[value]])
                )
        elif isinstance(value, Reduced):
            emit(value.func)
            emit(tuple(value.args))
            out.extend(b"R")
            set_items(value.items)
            if value.state is not None:
                emit(value.state)
                out.extend(b"b")
        elif isinstance(value, PersistentId):
            emit(value.pid)
            out.extend(b"Q")
        else:
            raise TypeError(f"pickle_bytes: cannot write a {type(value).__name__}")

    def set_items(items: dict) -> None:
        if items:
            out.extend(b"(")
            for key, item in items.items():
                emit(key)
                emit(item)
            out.extend(b"u")

    emit(obj)
    return bytes(out + b".")


def tensor(
    pid: tuple, offset: int, size: tuple, stride: tuple, *, rebuild: str = "_rebuild_tensor_v2"
) -> Reduced:
    """A tensor on the storage ``pid`` as torch pickles it (``_rebuild_tensor_v2`` with
    requires_grad False and no hooks; ``_rebuild_tensor``, as before torch 0.4, without)."""
    args: tuple = (PersistentId(pid), offset, tuple(size), tuple(stride))
    if rebuild == "_rebuild_tensor_v2":
        args += (False, ordered_dict())
    return Reduced(Global("torch._utils", rebuild), args)


def storage_pid(dtype: np.dtype | str, key: str, numel: int, *, legacy: bool) -> tuple:
    """``('storage', torch.<Type>Storage, key, 'cpu', numel)`` (+ ``None`` view if legacy)."""
    name = dtype if isinstance(dtype, str) else STORAGE_NAMES[np.dtype(dtype)]
    pid = ("storage", Global("torch", name), key, "cpu", numel)
    return (*pid, None) if legacy else pid


def write_zip(
    path: str | Path,
    data_pkl: bytes,
    storages: Mapping[str, bytes],
    *,
    prefix: str = "archive",
    byteorder: str | None = "little",
) -> Path:
    """The zip format: ``<prefix>/data.pkl``, ``byteorder`` (left out when None, as older
    torch versions did), ``data/<key>`` per storage, ``version``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}/data.pkl", data_pkl)
        if byteorder is not None:
            archive.writestr(f"{prefix}/byteorder", byteorder)
        for key, data in storages.items():
            archive.writestr(f"{prefix}/data/{key}", data)
        archive.writestr(f"{prefix}/version", "3\n")
    return Path(path)


def write_legacy(
    path: str | Path, object_pkl: bytes, storages: Mapping[str, tuple[int, bytes]]
) -> Path:
    """The legacy format: magic number, protocol version, system info, the object, the sorted
    storage keys, then per key its element count (int64, little-endian) and bytes."""
    with open(path, "wb") as out:
        for header in (MAGIC_NUMBER, 1001, SYS_INFO):
            out.write(pickle.dumps(header, protocol=2))
        out.write(object_pkl)
        keys = sorted(storages)
        out.write(pickle.dumps(keys, protocol=2))
        for key in keys:
            count, data = storages[key]
            out.write(struct.pack("<q", count) + data)
    return Path(path)


def write_pth(
    path: str | Path,
    state: Mapping[str, np.ndarray],
    *,
    zip_format: bool = True,
    byteorder: str | None = "little",
    prefix: str = "archive",
    rebuild: str = "_rebuild_tensor_v2",
    metadata: bool = True,
) -> Path:
    """Write ``state`` as ``torch.save(state)`` would, in the zip format (``byteorder``
    "little", "big" or None for no record) or the legacy one (always little-endian).

    Arrays that are views of one base array share a storage (their offsets and strides are
    kept); other arrays get a storage each. ``rebuild`` "_rebuild_tensor" writes tensors as
    torch < 0.4 did; ``prefix`` is the zip's top folder. The dict is an OrderedDict carrying the
    ``_metadata`` attribute that ``nn.Module.state_dict()`` sets (unless ``metadata`` False).
    """
    if not zip_format and byteorder != "little":
        raise ValueError("write_pth: the legacy format is always little-endian")
    order = ">" if byteorder == "big" else "<"
    storages: dict[int, tuple[str, np.ndarray]] = {}  # id(base) -> (key, base)
    items = {}
    for name, array in state.items():
        base = array
        while isinstance(base.base, np.ndarray):
            base = base.base
        if not base.flags.c_contiguous or base.dtype != array.dtype:
            raise ValueError(f"write_pth: {name!r} is not a view of a contiguous array")
        if id(base) not in storages:  # legacy keys sort apart from first use, as torch's do
            key = str(len(storages)) if zip_format else str(9_000_000 - 7 * len(storages))
            storages[id(base)] = (key, base)
        key = storages[id(base)][0]
        start = array.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        if any(s < 0 for s in array.strides):
            raise ValueError(f"write_pth: {name!r} has negative strides (torch has none)")
        stride = tuple(s // array.itemsize for s in array.strides)
        pid = storage_pid(array.dtype, key, base.size, legacy=not zip_format)
        items[name] = tensor(pid, start // array.itemsize, array.shape, stride, rebuild=rebuild)
    meta = {"_metadata": ordered_dict({"": {"version": 1}})} if metadata else None
    pkl = pickle_bytes(ordered_dict(items, meta))
    raw = {
        key: base.astype(base.dtype.newbyteorder(order)).tobytes()
        for key, base in storages.values()
    }
    if zip_format:
        return write_zip(path, pkl, raw, prefix=prefix, byteorder=byteorder)
    return write_legacy(path, pkl, {k: (b.size, raw[k]) for k, b in storages.values()})


class TouchMarker:
    """An object whose unpickling runs ``os.system("touch <marker>")``: the standard pickler
    writes it as the global ``posix.system`` (os.system's home) called on the command."""

    def __init__(self, marker: Path):
        self.command = f"touch {marker}"

    def __reduce__(self):
        return (os.system, (self.command,))


MALICIOUS_KINDS = ("os.system", "builtins.eval", "reduce")


def write_malicious_pth(
    path: str | Path, kind: str, marker: str | Path, *, zip_format: bool = True
) -> Path:
    """A state_dict with one good tensor and, as the value of key ``"evil"``, a payload that
    creates ``marker`` when unpickled: ``kind`` "os.system" (the global os.system called on
    ``touch``), "builtins.eval" (eval of code that opens the file), or "reduce" (an object
    with a ``__reduce__``, pickled by the standard pickler, whose pickle ends the file's)."""
    good = tensor(storage_pid(np.float32, "0", 1, legacy=not zip_format), 0, (1,), (1,))
    marker = Path(marker)
    if kind == "os.system":
        payload = Reduced(Global("os", "system"), (f"touch {marker}",))
    elif kind == "builtins.eval":
        payload = Reduced(Global("builtins", "eval"), (f"open({str(marker)!r}, 'w').close()",))
    elif kind != "reduce":
        raise ValueError(f"write_malicious_pth: kind {kind!r}, expected one of {MALICIOUS_KINDS}")
    if kind == "reduce":  # the dict as the standard pickler writes it, torch's tensor spliced in
        head = pickle_bytes(ordered_dict({"good": good}))[:-2]  # without SETITEMS and STOP
        tail = pickle.dumps(TouchMarker(marker), protocol=2)[2:-1]  # without PROTO and STOP
        pkl = head + pickle_bytes("evil")[2:-1] + tail + b"u."
    else:
        pkl = pickle_bytes(ordered_dict({"good": good, "evil": payload}))
    one = np.ones(1, np.float32).tobytes()
    if zip_format:
        return write_zip(path, pkl, {"0": one})
    return write_legacy(path, pkl, {"0": (1, one)})
