"""The pickle half of reading a PyTorch checkpoint (``minialexnet.pth``): an unpickler that
admits only the globals a plain state_dict needs, mapped to stand-ins of ours, and a scan that
walks a pickle before it is unpickled.

The admitted globals are those torch writes for a dict of tensors (``torch/serialization.py``,
``torch/_utils.py``, ``torch/storage.py``): ``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2`` (``_rebuild_tensor`` before torch 0.4) and the typed
storage classes. Unpickling yields ``TensorRef`` windows on ``StorageRef`` storages; no
bytes of a storage are read here.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import reprlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Bounds on one pickle, far above a state_dict's (torchvision AlexNet's data.pkl: 1,111 bytes,
# 235 opcodes; a model of a thousand tensors: some 100 KB) and low enough that the objects a
# pickle can make (one per opcode, ~100 bytes each at most) stay within ~100 MB
MAX_PICKLE_BYTES = 4 << 20
MAX_OPCODES = 1 << 20

# torch/storage.py, _dtype_to_storage_type_map: the typed storages this reader maps to NumPy
# (little-endian here; a zip file's ``byteorder`` record may say big). bfloat16 is read as
# its raw 16 bits and widened to float32.
STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("u1"),  # checked to hold only 0 and 1, then viewed as bool
}


class UnsafePickleError(ValueError):
    """The file's pickle names a global this reader does not admit (``global_name``, e.g.
    ``"os.system"``); nothing it names was imported or called."""

    def __init__(self, message: str, global_name: str):
        super().__init__(message)
        self.global_name = global_name


# ---- the stand-ins the admitted globals unpickle to -------------------------------------
# Frozen, slotted, and with a __setstate__ that refuses: a pickle's BUILD opcode (which calls
# __setstate__, or else writes the attributes) cannot change them after they were checked.
# (A frozen slotted dataclass would otherwise get one that sets its fields.)


def _refuse_build(self, state) -> None:
    raise ValueError(f"the pickle sets attributes on a {type(self).__name__}: refused")


@dataclass(frozen=True, slots=True)
class StorageType:
    """What ``torch.FloatStorage`` (etc.) unpickles to: a name and a dtype, not callable."""

    __setstate__ = _refuse_build

    name: str
    dtype: np.dtype


@dataclass(frozen=True, slots=True)
class StorageRef:
    """A persistent id: storage ``key`` of ``numel`` elements of ``kind``."""

    __setstate__ = _refuse_build

    key: str
    kind: StorageType
    numel: int


@dataclass(frozen=True, slots=True)
class TensorRef:
    """A tensor as pickled: a window (offset, size, stride, in elements) on a storage."""

    __setstate__ = _refuse_build

    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride) -> TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor`` (files from torch < 0.4)."""
    if type(storage) is not StorageRef:
        raise ValueError(f"a tensor's storage is a {type(storage).__name__}, not a storage")
    where = f"tensor on storage {storage.key!r}"
    if type(storage_offset) is not int:
        raise ValueError(f"{where}: offset {short(storage_offset)} is not an integer")
    for name, value in (("size", size), ("stride", stride)):
        if not (isinstance(value, tuple) and all(type(v) is int for v in value)):
            raise ValueError(f"{where}: {name} {short(value)} is not a tuple of integers")
    if len(size) != len(stride):
        raise ValueError(f"{where}: size {size} and stride {stride} differ in length")
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None
) -> TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``. A state_dict's tensors are detached
    (``requires_grad`` False) without hooks or conj/neg metadata; anything else is refused."""
    tensor = _rebuild_tensor(storage, storage_offset, size, stride)
    if requires_grad is not False:
        raise ValueError(f"tensor on storage {storage.key!r}: requires_grad={short(requires_grad)}")
    if type(backward_hooks) not in (dict, OrderedDict) or backward_hooks:
        raise ValueError(
            f"tensor on storage {storage.key!r}: backward hooks {short(backward_hooks)}"
        )
    if metadata:
        raise ValueError(f"tensor on storage {storage.key!r}: tensor metadata {short(metadata)}")
    return tensor


ADMITTED = {
    "collections.OrderedDict": OrderedDict,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    **{f"torch.{name}": StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()},
}


# ---- the restricted unpickler ------------------------------------------------------------


class _Unpickler(pickle.Unpickler):
    """Admits ``admitted`` globals only; persistent ids go to ``storage`` (or are refused)."""

    def __init__(self, data: bytes, admitted: dict, storage: Callable | None):
        super().__init__(io.BytesIO(data))
        self.admitted, self.storage = admitted, storage

    def find_class(self, module: str, name: str):
        full = f"{module}.{name}"
        if full in self.admitted:
            return self.admitted[full]
        if self.admitted and module == "torch" and name.endswith("Storage"):
            raise ValueError(f"unsupported storage dtype {full} (supported: {_supported()})")
        hint = ""
        if module.split(".")[0] in ("torch", "__main__"):  # a model or nn.Parameters pickled
            hint = (
                "; a whole model or its nn.Parameters rather than a state_dict of tensors? "
                "save model.state_dict() instead"
            )
        raise UnsafePickleError(f"refusing to load the global {full}{hint}", full)

    def persistent_load(self, pid):
        if self.storage is None:
            raise ValueError(f"unexpected persistent id {short(pid)}")
        return self.storage(pid)


def short(value) -> str:
    """``repr(value)``, cut short: a hostile file's values can be megabytes long."""
    return reprlib.repr(value)


def _supported() -> str:
    return ", ".join(f"torch.{name}" for name in STORAGE_DTYPES)


def unpickle(data: bytes, what: str, admitted: dict, storage: Callable | None = None):
    """Unpickle ``data`` (already walked by ``scan_pickle``) with only ``admitted`` globals."""
    try:
        return _Unpickler(data, admitted, storage).load()
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{what}: {error}", error.global_name) from None
    except Exception as error:  # a hostile or damaged pickle can raise almost anything
        if type(error) is ValueError:  # raised by the stand-ins: it says what is wrong
            raise ValueError(f"{what}: {error}") from None
        why = f"{type(error).__name__}: {error}"
        raise ValueError(f"{what}: not a readable pickle ({why})") from None


def scan_pickle(buffer, start: int, what: str) -> int:
    """Walk the pickle at ``buffer[start:]`` opcode by opcode without running it; return
    where it ends. ``genops`` reads each counted argument with a bounded read, so a length
    claim longer than the data fails here; memo indices beyond the pickle's own size (which
    would make the unpickler grow its memo table to match) are refused, and so is a pickle
    longer than ``MAX_PICKLE_BYTES`` or of more than ``MAX_OPCODES`` opcodes."""
    stream = io.BytesIO(buffer) if isinstance(buffer, bytes) else buffer
    stream.seek(start)
    try:
        for count, (opcode, arg, _) in enumerate(pickletools.genops(stream), start=1):
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and arg > stream.tell() - start:
                raise ValueError(f"memo index {arg} beyond the pickle's size")
            if count > MAX_OPCODES or stream.tell() - start > MAX_PICKLE_BYTES:
                raise ValueError(
                    f"more than {MAX_OPCODES:,} opcodes or {MAX_PICKLE_BYTES:,} bytes: far more "
                    f"than a state_dict's pickle"
                )
            if opcode.name == "STOP":
                return stream.tell()
    except ValueError as error:
        raise ValueError(f"{what}: not a readable pickle ({error})") from None
    raise ValueError(f"{what}: not a readable pickle (it ends without a STOP)")


def persistent_loader(seen: dict[str, StorageRef], legacy: bool) -> Callable:
    """Persistent ids: ``('storage', type, key, location, numel)``, and in the legacy format a
    sixth field, a storage view, which torch >= 0.4 always leaves ``None``."""
    fields = 6 if legacy else 5

    def load(pid) -> StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == fields and pid[0] == "storage"):
            raise ValueError(f"persistent id {short(pid)} is not a storage's ({fields} fields)")
        if legacy and pid[5] is not None:
            raise ValueError(
                f"storage {short(pid[2])} is a storage view (torch < 0.4): not supported"
            )
        return _storage_ref(seen, *pid[1:5])

    return load


def _storage_ref(seen: dict[str, StorageRef], kind, key, location, numel) -> StorageRef:
    if not isinstance(kind, StorageType):
        raise ValueError(
            f"storage {short(key)}: its type is {short(kind)}, not a torch storage type"
        )
    if not (isinstance(key, str) and isinstance(location, str)):
        raise ValueError(f"storage key {short(key)} and location {short(location)} must be strings")
    if type(numel) is not int or numel < 0:
        raise ValueError(f"storage {key!r}: element count {short(numel)}")
    ref = seen.setdefault(key, StorageRef(key, kind, numel))
    if ref != StorageRef(key, kind, numel):
        raise ValueError(
            f"storage {key!r} is named as {ref.numel} x {ref.kind.name} "
            f"and as {numel} x {kind.name}"
        )
    return ref
