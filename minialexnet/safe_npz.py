"""Reading an ``.npz`` archive that may be truncated, bit-flipped or hand-edited, safely.

``numpy.load`` trusts the file: a truncated archive raises ``BadZipFile`` or ``EOFError``, an
``.npy`` header that claims a 256 GiB array makes it try to allocate 256 GiB, and a flipped
byte inside an array is only noticed if the member happens to be read to its very end. Here
every member is checked before anything is allocated:

1. the zip directory must be readable (``zipfile`` raises on a truncated or zero-byte file);
2. each member's ``.npy`` header must parse, name a plain dtype (no Python objects: nothing
   is ever unpickled) and a shape whose bytes fit in what the member holds;
3. the data is read to the member's end, so zipfile's CRC-32 catches any flipped bit.

Every failure is one ``ValueError`` naming the file and what is wrong with it.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy

# Deflate cannot compress by more than about 1032:1, so a compressed member claiming more is a
# zip bomb or a damaged directory; np.savez (what we write) stores members uncompressed.
MAX_DEFLATE_RATIO = 1100

# what a damaged file can make zipfile, zlib or numpy's header parser raise
READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, struct.error)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, by name (without ``.npy``), each verified.

    Raises ``ValueError("<path>: not a readable .npz checkpoint (<why>)")`` for any damage.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return {
                info.filename.removesuffix(".npy"): _read_member(archive, info)
                for info in archive.infolist()
            }
    except READ_ERRORS as error:
        size = path.stat().st_size if path.is_file() else 0
        raise ValueError(
            f"{path}: not a readable .npz checkpoint ({error}; the file has {size} bytes: "
            f"truncated, damaged or not a checkpoint)"
        ) from None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    name = info.filename
    if not name.endswith(".npy"):
        raise ValueError(f"member {name!r} is not an .npy array")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.compress_type != zipfile.ZIP_STORED and ratio > MAX_DEFLATE_RATIO:
        raise ValueError(f"member {name!r} claims {info.file_size} bytes unpacked")
    with archive.open(info) as member:
        shape, fortran, dtype, header_bytes = _read_header(member, name)
        count = int(np.prod(shape, dtype=object))  # Python ints: a huge shape cannot overflow
        nbytes = count * dtype.itemsize
        if header_bytes + nbytes != info.file_size:
            raise ValueError(
                f"member {name!r}: its header says {dtype} {shape} ({nbytes} bytes), the member "
                f"holds {info.file_size - header_bytes} bytes of data"
            )
        buffer = bytearray(nbytes)
        if member.readinto(buffer) != nbytes or member.read(1):  # read to the end: CRC checked
            raise ValueError(f"member {name!r} is shorter or longer than its header says")
    array = np.frombuffer(buffer, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C")


def _read_header(member: IO[bytes], name: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran order, dtype, header length in bytes) of an ``.npy`` member."""
    counted = _Counting(member)
    version = npy.read_magic(counted)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(counted)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = npy.read_array_header_2_0(counted)
    else:
        raise ValueError(f"member {name!r}: unsupported .npy version {version}")
    if dtype.hasobject:
        raise ValueError(f"member {name!r} holds Python objects (refused: never unpickled)")
    return shape, fortran, dtype, counted.count


class _Counting:
    """A read-only stream wrapper that counts the bytes read (the header's length)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.count = stream, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        return data
