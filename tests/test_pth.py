"""minialexnet.pth: PyTorch state_dict files read with NumPy alone, safely.

The files are written by tests/pth_files.py byte by byte (no torch needed); where torch is
installed, files written by torch.save itself are read too and compared tensor by tensor.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pth_files import (
    MALICIOUS_KINDS,
    Global,
    PersistentId,
    Reduced,
    TouchMarker,
    ordered_dict,
    pickle_bytes,
    storage_pid,
    tensor,
    write_legacy,
    write_malicious_pth,
    write_pth,
    write_zip,
)

from minialexnet.pth import UnsafePickleError, read_state_dict

FORMATS = {"zip": {"zip_format": True}, "legacy": {"zip_format": False}}


def every_dtype() -> dict[str, np.ndarray]:
    """One tensor of each mapped dtype, with values that are not all alike."""
    rng = np.random.default_rng(0)
    return {
        "conv.weight": rng.standard_normal((4, 3, 2, 2)).astype(np.float32),
        "double": rng.standard_normal((3, 5)),
        "half": np.array([0.5, -1.25, 1024.0], np.float16),
        "steps": np.array(7, np.int64),  # 0-d, like BatchNorm's num_batches_tracked
        "int32": np.array([-(2**31), 2**31 - 1, 5], np.int32),
        "int16": np.array([-3, 300], np.int16),
        "int8": np.array([-128, 127], np.int8),
        "uint8": np.array([0, 200, 255], np.uint8),
        "mask": np.array([[True, False], [False, True]]),
        "empty": np.zeros((0, 3), np.float32),
    }


def assert_same(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert list(got) == list(expected)  # file order
    for key, want in expected.items():
        assert got[key].dtype == want.dtype and got[key].dtype.isnative, key
        assert got[key].shape == want.shape, key
        assert got[key].flags.c_contiguous, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)


def refused(path: Path, match: str, error: type = ValueError) -> pytest.ExceptionInfo:
    """read_state_dict(path) raises ``error`` matching ``match`` and naming the file."""
    with pytest.raises(error, match=match) as info:
        read_state_dict(path)
    assert str(path) in str(info.value)
    return info


# ---- files that are right --------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"zip_format": True},
        {"zip_format": True, "byteorder": None, "prefix": "alexnet-owt", "metadata": False},
        {"zip_format": False},
    ],
    ids=["zip", "zip-without-byteorder-record", "legacy"],
)
def test_every_dtype_comes_back_in_file_order(tmp_path, options):
    state = every_dtype()
    path = write_pth(tmp_path / "m.pth", state, **options)
    assert_same(read_state_dict(path), state)


def test_a_big_endian_file_is_byteswapped(tmp_path):
    state = every_dtype()
    path = write_pth(tmp_path / "big.pth", state, byteorder="big")
    with zipfile.ZipFile(path) as archive:  # the writer really wrote big-endian bytes
        raw = archive.read("archive/data/0")
    assert raw == state["conv.weight"].astype(">f4").tobytes() != state["conv.weight"].tobytes()
    assert_same(read_state_dict(path), state)


@pytest.mark.parametrize("fmt", FORMATS)
def test_views_offsets_and_shared_storages(tmp_path, fmt):
    base = np.arange(24, dtype=np.float64) * 1.5
    matrix = base.reshape(4, 6)
    state = {
        "matrix": matrix,
        "transposed": matrix.T,  # strides (1, 6)
        "odd_tail": base[5:11:2],  # offset 5, stride 2
        "column": matrix[:, 2],  # offset 2, stride 6
        "block": matrix[1:3, 2:5],
        "scalar": base[7:8].reshape(()),
        "own": np.array([1.0, 2.0]),  # a storage of its own
    }
    path = write_pth(tmp_path / "views.pth", state, **FORMATS[fmt])
    got = read_state_dict(path)
    assert_same(got, {key: np.array(value, order="C") for key, value in state.items()})
    keys = list(got)
    for i, a in enumerate(keys):  # fresh arrays: changing one changes no other
        for b in keys[i + 1 :]:
            assert not np.shares_memory(got[a], got[b]), (a, b)


def test_bfloat16_is_widened_to_float32_exactly(tmp_path):
    values = [1.0, -2.5, 0.15625, 65536.0, 2.0**-10, -0.0]  # each exact in bfloat16
    top_halves = [struct.unpack("<I", struct.pack("<f", v))[0] >> 16 for v in values]
    raw = struct.pack(f"<{len(values)}H", *top_halves)
    pid = storage_pid("BFloat16Storage", "0", len(values), legacy=False)
    pkl = pickle_bytes(ordered_dict({"w": tensor(pid, 0, (2, 3), (3, 1))}))
    got = read_state_dict(write_zip(tmp_path / "bf16.pth", pkl, {"0": raw}))
    assert got["w"].dtype == np.float32
    np.testing.assert_array_equal(got["w"].ravel(), np.array(values, np.float32))


def test_files_from_before_torch_0_4_rebuild_with_rebuild_tensor(tmp_path):
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(2)}
    path = write_pth(tmp_path / "old.pth", state, zip_format=False, rebuild="_rebuild_tensor")
    assert_same(read_state_dict(path), state)


# ---- files written by torch itself -------------------------------------------------------


@pytest.fixture(scope="module")
def torch_state():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(4, 2)
    )
    state = model.state_dict()  # an OrderedDict with _metadata; BatchNorm adds an int64 0-d
    weight = state["3.weight"]
    state["transposed"] = weight.t()  # shares weight's storage
    state["slice"] = state["0.weight"].flatten()[5:17:3]  # offset and stride
    state["double"] = torch.randn(3, 2, dtype=torch.float64)
    state["half"] = torch.randn(5).half()
    state["bfloat16"] = torch.randn(2, 2).bfloat16()
    state["int32"] = torch.arange(-3, 3, dtype=torch.int32)
    state["bool"] = torch.tensor([True, False, True])
    state["uint8"] = torch.arange(250, 256, dtype=torch.uint8)
    return torch, state


@pytest.mark.parametrize("new_zipfile", [True, False], ids=["zip", "legacy"])
def test_files_written_by_torch_save_agree_tensor_by_tensor(tmp_path, torch_state, new_zipfile):
    torch, state = torch_state
    path = tmp_path / "torch.pth"
    torch.save(state, path, _use_new_zipfile_serialization=new_zipfile)
    got = read_state_dict(path)
    assert list(got) == list(state)
    for key, value in state.items():
        want = value.float().numpy() if value.dtype == torch.bfloat16 else value.numpy()
        assert got[key].dtype == want.dtype and got[key].shape == want.shape, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)


@pytest.mark.parametrize("new_zipfile", [True, False], ids=["zip", "legacy"])
def test_tied_weights_saved_by_torch_come_back_as_one_array(tmp_path, torch, new_zipfile):
    embedding = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight  # tied, as language models tie them
    state = torch.nn.Sequential(embedding, head, torch.nn.Linear(10, 3)).state_dict()
    torch.save(state, tmp_path / "tied.pth", _use_new_zipfile_serialization=new_zipfile)
    got = read_state_dict(tmp_path / "tied.pth")
    assert got["0.weight"] is got["1.weight"] and got["2.weight"] is not got["2.bias"]
    for key, value in state.items():
        np.testing.assert_array_equal(got[key], value.numpy(), err_msg=key)


def test_a_whole_model_or_a_bare_tensor_saved_by_torch_is_refused(tmp_path, torch_state):
    torch, _ = torch_state
    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pth")
    info = refused(tmp_path / "model.pth", r"torch\.nn\..*Linear.*save model\.state_dict\(\)")
    assert info.type is UnsafePickleError
    torch.save({"w": torch.nn.Parameter(torch.ones(2))}, tmp_path / "parameters.pth")
    info = refused(tmp_path / "parameters.pth", r"_rebuild_parameter.*save model\.state_dict")
    assert info.type is UnsafePickleError
    torch.save(torch.ones(3), tmp_path / "tensor.pth")
    refused(tmp_path / "tensor.pth", r"holds a single tensor, not a state_dict")


# ---- files that must not run -------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "kind, global_name",
    [("os.system", "os.system"), ("builtins.eval", "builtins.eval"), ("reduce", "posix.system")],
)
def test_a_malicious_pickle_is_refused_and_nothing_runs(tmp_path, fmt, kind, global_name):
    marker = tmp_path / "pwned"
    path = write_malicious_pth(tmp_path / "evil.pth", kind, marker, **FORMATS[fmt])
    info = refused(path, rf"refusing to load the global {global_name}\b", UnsafePickleError)
    assert info.value.global_name == global_name
    assert not marker.exists()


@pytest.mark.parametrize("kind", MALICIOUS_KINDS)
def test_the_payloads_are_live_under_a_trusting_unpickler(tmp_path, kind):
    """The control for the test above: an unpickler that only fakes torch's names (as
    torch.load(weights_only=False) would resolve them) does run each payload."""
    marker = tmp_path / "pwned"
    path = write_malicious_pth(tmp_path / "evil.pth", kind, marker)

    class Trusting(pickle.Unpickler):
        def find_class(self, module, name):
            if module.startswith("torch"):
                return lambda *args, **kwargs: None
            return super().find_class(module, name)

        def persistent_load(self, pid):
            return None

    with zipfile.ZipFile(path) as archive, archive.open("archive/data.pkl") as data:
        Trusting(data).load()
    assert marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        tensor(storage_pid(np.float32, "0", 1, legacy=False), 0, (1,), (1,)).args[0].pid[:4],
        ("module", "x", "y", "z", 1),
        "0",
    ],
    ids=["four-fields", "not-a-storage", "a-string"],
)
def test_persistent_ids_of_another_shape_are_refused(tmp_path, payload):
    rebuild = Global("torch._utils", "_rebuild_tensor_v2")
    w = Reduced(rebuild, (PersistentId(payload), 0, (1,), (1,), False, {}))
    pkl = pickle_bytes(ordered_dict({"w": w}))
    path = write_zip(tmp_path / "pid.pth", pkl, {"0": bytes(4)})
    refused(path, r"persistent id .* is not a storage's \(5 fields\)")


def test_a_legacy_storage_view_is_refused(tmp_path):
    pid = (*storage_pid(np.float32, "1", 4, legacy=False), ("2", 1, 2))
    pkl = pickle_bytes(ordered_dict({"w": tensor(pid, 0, (2,), (1,))}))
    path = write_legacy(tmp_path / "view.pth", pkl, {"1": (4, bytes(16))})
    refused(path, r"storage '1' is a storage view")


@pytest.mark.parametrize(
    "requires_grad, hooks, match",
    [(True, {}, "requires_grad=True"), (False, {"1": 2}, "backward hooks")],
)
def test_tensors_with_grad_or_hooks_are_refused(tmp_path, requires_grad, hooks, match):
    args = (PersistentId(storage_pid(np.float32, "0", 1, legacy=False)), 0, (1,), (1,))
    w = Reduced(Global("torch._utils", "_rebuild_tensor_v2"), (*args, requires_grad, hooks))
    path = write_zip(tmp_path / "grad.pth", pickle_bytes(ordered_dict({"w": w})), {"0": bytes(4)})
    refused(path, match)


def test_length_and_memo_claims_are_refused_before_any_allocation(tmp_path):
    huge_bytes = b"\x80\x02\x8e" + struct.pack("<Q", 2**60) + b"xx."  # BINBYTES8 of 2**60
    huge_memo = b"\x80\x02}r" + struct.pack("<I", 2**31) + b"."  # LONG_BINPUT 2**31
    for name, pkl in {"bytes": huge_bytes, "memo": huge_memo}.items():
        path = write_zip(tmp_path / f"{name}.pth", pkl, {})
        refused(path, r"data\.pkl: not a readable pickle")


# ---- files that are damaged or are something else ----------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_cut_anywhere_is_refused(tmp_path, fmt):
    """Every cut of a legacy file (each lands in another part of it); a zip loses its
    directory, at the end, to any cut, so 60 cuts spread over it and the last bytes do."""
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(2)}
    full = write_pth(tmp_path / "full.pth", state, **FORMATS[fmt]).read_bytes()
    ends = range(1, len(full))
    if fmt == "zip":
        ends = sorted(
            {*np.linspace(1, len(full) - 1, 60).astype(int), *range(len(full) - 30, len(full))}
        )
    cut = tmp_path / "cut.pth"
    for end in ends:
        cut.write_bytes(full[:end])
        with pytest.raises(ValueError) as info:
            read_state_dict(cut)
        assert str(cut) in str(info.value), end


def test_an_empty_file_random_bytes_and_a_damaged_zip(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    refused(empty, r"empty file \(0 bytes\)")
    noise = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    (tmp_path / "noise.pth").write_bytes(b"\x00" + noise)
    refused(tmp_path / "noise.pth", r"not a PyTorch checkpoint")
    (tmp_path / "zipish.pth").write_bytes(b"PK\x03\x04" + noise)
    refused(tmp_path / "zipish.pth", r"a damaged or truncated zip archive")


def test_a_zip_that_is_not_a_checkpoint(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.pth", "w") as archive:
        archive.writestr("model/constants.pkl", b"")
    refused(tmp_path / "other.pth", r"TorchScript .* without exactly one <folder>/data\.pkl")
    np.savez(tmp_path / "arrays.npz", a=np.ones(2))
    refused(tmp_path / "arrays.npz", r"without exactly one <folder>/data\.pkl \(0 found\)")


def zip_with_one_tensor(path: Path, raw: bytes, numel: int = 6, **records) -> Path:
    pid = storage_pid(np.float32, "0", numel, legacy=False)
    pkl = pickle_bytes(ordered_dict({"w": tensor(pid, 0, (numel,), (1,))}))
    return write_zip(path, pkl, {"0": raw} if raw is not None else {}, **records)


def test_a_storage_record_missing_short_or_absurd_is_refused(tmp_path):
    refused(zip_with_one_tensor(tmp_path / "none.pth", None), r"storage '0'.* is missing")
    short = zip_with_one_tensor(tmp_path / "short.pth", bytes(20))
    refused(short, r"storage '0': archive/data/0 holds 20 bytes, but 6 elements .* need 24")
    # 2**40 floats would be 4 TiB: refused from the record's size, nothing allocated
    refused(zip_with_one_tensor(tmp_path / "huge.pth", bytes(4), 2**40), r"holds 4 bytes")
    state = {"w": np.arange(6, dtype=np.float32)}
    legacy = write_pth(tmp_path / "legacy.pth", state, zip_format=False).read_bytes()
    count_at = legacy.rindex(struct.pack("<q", 6))
    lying = legacy[:count_at] + struct.pack("<q", 7) + legacy[count_at + 8 :]
    (tmp_path / "lying.pth").write_bytes(lying)
    refused(tmp_path / "lying.pth", r"its record says 7 elements, the pickle 6")


def test_an_unknown_byteorder_or_dtype_is_refused(tmp_path):
    odd = zip_with_one_tensor(tmp_path / "order.pth", bytes(24), byteorder="middle")
    refused(odd, r"byteorder says 'middle'")
    pid = storage_pid("ComplexFloatStorage", "0", 1, legacy=False)
    pkl = pickle_bytes(ordered_dict({"w": tensor(pid, 0, (1,), (1,))}))
    info = refused(write_zip(tmp_path / "c.pth", pkl, {"0": bytes(8)}), r"unsupported storage")
    assert "torch.ComplexFloatStorage" in str(info.value) and info.type is ValueError


def test_a_bool_storage_must_hold_only_zeros_and_ones(tmp_path):
    pid = storage_pid(np.bool_, "0", 3, legacy=False)
    pkl = pickle_bytes(ordered_dict({"m": tensor(pid, 0, (3,), (1,))}))
    refused(write_zip(tmp_path / "b.pth", pkl, {"0": b"\x00\x01\x02"}), r"bytes other than 0/1")


@pytest.mark.parametrize(
    "offset, size, stride, match",
    [
        (3, (2, 2), (2, 1), r"reaches element 6 of a storage of 6"),
        (0, (7,), (1,), r"reaches element 6 of a storage of 6"),
        (0, (2,), (-1,), r"negative offset, size or stride"),
        (-1, (2,), (1,), r"negative offset, size or stride"),
        (0, (10**6, 10**6), (0, 0), r"overlap"),  # an expanded view: 10**12 copies of one
        (0, (3, 3), (1, 1), r"overlap"),
    ],
)
def test_a_tensor_outside_its_storage_or_overlapping_itself_is_refused(
    tmp_path, offset, size, stride, match
):
    pid = storage_pid(np.float32, "0", 6, legacy=False)
    pkl = pickle_bytes(ordered_dict({"w": tensor(pid, offset, size, stride)}))
    info = refused(write_zip(tmp_path / "w.pth", pkl, {"0": bytes(24)}), match)
    assert "key 'w'" in str(info.value)


def test_one_storage_named_with_two_dtypes_is_refused(tmp_path):
    a = tensor(storage_pid(np.float32, "0", 2, legacy=False), 0, (2,), (1,))
    b = tensor(storage_pid(np.int32, "0", 2, legacy=False), 0, (2,), (1,))
    pkl = pickle_bytes(ordered_dict({"a": a, "b": b}))
    refused(write_zip(tmp_path / "two.pth", pkl, {"0": bytes(8)}), r"storage '0' is named as")


@pytest.mark.parametrize(
    "obj, match",
    [
        ([1, 2], r"holds a list, not a state_dict"),
        ({"w": 3}, r"key 'w' holds an object of type int, not a tensor"),
        ({"model": {}}, r"key 'model' holds an object of type dict, not a tensor .*dict\(\) alone"),
        ({1: 2}, r"key 1 is not a string"),
    ],
)
def test_a_pickle_that_is_not_a_dict_of_tensors_is_refused(tmp_path, obj, match):
    refused(write_zip(tmp_path / "x.pth", pickle_bytes(obj), {}), match)


def test_pickle_bytes_writes_what_pickle_reads():
    value = {"a": (1, -5, 300, 2**40, -(2**70)), "b": [None, True, False, "é"], "c": {}}
    assert pickle.loads(pickle_bytes(value)) == value


def test_a_protocol_4_pickle_and_a_build_on_a_stand_in_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    stack_global = pickle.dumps({"evil": TouchMarker(marker)}, protocol=4)  # STACK_GLOBAL
    info = refused(write_zip(tmp_path / "p4.pth", stack_global, {}), r"posix\.system")
    assert info.type is UnsafePickleError and not marker.exists()
    # BUILD sets attributes after construction: on the frozen stand-ins it cannot
    w = tensor(storage_pid(np.float32, "0", 1, legacy=False), 0, (1,), (1,))
    for state in ({"offset": -5}, (None, {"offset": -5})):
        built = Reduced(w.func, w.args, state=state)
        pkl = pickle_bytes(ordered_dict({"w": built}))
        refused(
            write_zip(tmp_path / "build.pth", pkl, {"0": bytes(4)}),
            r"sets attributes on a TensorRef",
        )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_flipped_bytes_give_the_arrays_or_a_value_error_never_another_error(tmp_path, data):
    fmt = data.draw(st.sampled_from(sorted(FORMATS)))
    good = tmp_path / f"good-{fmt}.pth"
    if not good.exists():
        write_pth(good, every_dtype(), **FORMATS[fmt])
    raw = bytearray(good.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    (tmp_path / "flipped.pth").write_bytes(raw)
    try:
        read_state_dict(tmp_path / "flipped.pth")
    except ValueError as error:
        assert str(tmp_path / "flipped.pth") in str(error)


# ---- crafted files the review found (attributes set by BUILD, shared storages, sizes) -------


def fake_ref(fields: dict) -> Reduced:
    """An OrderedDict whose attributes (set by BUILD) are ``fields``: it looks like a
    TensorRef or StorageRef to code that reads attributes, but is neither."""
    return ordered_dict(state=fields)


def forged_tensor(numel: int, size: int) -> Reduced:
    """A stand-in tensor of ``size`` elements on a forged storage said to hold ``numel``."""
    storage = fake_ref(
        {"key": "0", "kind": Global("torch", "FloatStorage"), "numel": numel, "offset": 0}
    )
    return fake_ref({"storage": storage, "offset": 0, "size": (size,), "stride": (1,)})


def write_format(path: Path, fmt: str, pkl: bytes, storages: dict[str, bytes]) -> Path:
    if fmt == "zip":
        return write_zip(path, pkl, storages)
    return write_legacy(path, pkl, {k: (len(v) // 4, v) for k, v in storages.items()})


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("hidden", ["items", "keys", "values", "__class__"])
def test_attributes_set_on_the_state_dict_itself_are_refused(tmp_path, fmt, hidden):
    """BUILD on the OrderedDict: an instance attribute ``items`` once hid the real entries
    from the checks, so a forged tensor of 4096 elements on a 4-byte storage read heap memory."""
    good = tensor(storage_pid(np.float32, "0", 1, legacy=fmt == "legacy"), 0, (1,), (1,))
    state = ordered_dict(
        {"good": good, "evil": forged_tensor(10**12, 4096)},
        state={hidden: Global("collections", "OrderedDict")},
    )
    path = write_format(tmp_path / "hide.pth", fmt, pickle_bytes(state), {"0": bytes(4)})
    refused(path, rf"sets attributes \['{hidden}'\] on the state_dict")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_forged_tensor_or_a_list_is_refused_as_not_a_tensor(tmp_path, fmt):
    good = tensor(storage_pid(np.float32, "0", 1, legacy=fmt == "legacy"), 0, (1,), (1,))
    for name, value in {"OrderedDict": forged_tensor(2**40, 2**40), "list": []}.items():
        pkl = pickle_bytes(ordered_dict({"good": good, "evil": value}))
        path = write_format(tmp_path / f"{name}.pth", fmt, pkl, {"0": bytes(4)})
        refused(path, rf"key 'evil' holds an object of type {name}, not a tensor")


def test_metadata_is_the_one_attribute_admitted_and_is_dropped(tmp_path):
    """nn.Module.state_dict() sets ``_metadata``; whatever it holds is neither read nor kept."""
    pid = storage_pid(np.float32, "0", 2, legacy=False)
    meta = {"_metadata": ordered_dict({"": {"version": 1}, "x": forged_tensor(10**9, 10**9)})}
    pkl = pickle_bytes(ordered_dict({"w": tensor(pid, 0, (2,), (1,))}, state=meta))
    got = read_state_dict(write_zip(tmp_path / "m.pth", pkl, {"0": np.ones(2, "<f4").tobytes()}))
    assert list(got) == ["w"] and type(got) is dict
    np.testing.assert_array_equal(got["w"], [1.0, 1.0])


def test_tensors_naming_one_storage_key_must_share_its_one_storage_object():
    """Each window is checked against the storage really read, never against another
    object of the same key (once, a 1-element storage was read as a 10**6-element one)."""
    from minialexnet import pth
    from minialexnet.pth_pickle import ADMITTED, StorageRef, TensorRef

    kind = ADMITTED["torch.FloatStorage"]
    real, claimed = StorageRef("0", kind, 1), StorageRef("0", kind, 10**6)
    refs = {"a": TensorRef(real, 0, (1,), (1,)), "b": TensorRef(claimed, 0, (10**6,), (1,))}
    read = []

    def read_storage(ref):
        read.append(ref)
        return np.ones(ref.numel, np.float32)

    with pytest.raises(ValueError, match=r"key 'b': storage '0' is named twice"):
        pth._materialize(refs, read_storage)
    assert read == []  # refused before anything was read


@pytest.mark.parametrize("fmt", FORMATS)
def test_tied_weights_share_one_array_and_many_overlapping_keys_are_refused(tmp_path, fmt):
    """Keys on the same window of one storage (tied weights) cost one array, however many;
    distinct overlapping windows may hold at most MAX_COPIES x the storages (+ SLACK)."""
    from minialexnet.pth import MAX_COPIES, SLACK

    n = 4096
    pid = storage_pid(np.float32, "0", n, legacy=fmt == "legacy")
    data = {"0": np.arange(n, dtype="<f4").tobytes()}
    tied = {f"k{i}": tensor(pid, 0, (n,), (1,)) for i in range(300)}
    got = read_state_dict(
        write_format(tmp_path / "tied.pth", fmt, pickle_bytes(ordered_dict(tied)), data)
    )
    assert len(got) == 300 and all(got[k] is got["k0"] for k in got)
    np.testing.assert_array_equal(got["k0"], np.arange(n))
    keys = (MAX_COPIES * n + SLACK) // (n - 400) + 1  # just over the bound
    shifted = {f"k{i}": tensor(pid, i, (n - 400,), (1,)) for i in range(keys)}
    path = write_format(tmp_path / "many.pth", fmt, pickle_bytes(ordered_dict(shifted)), data)
    refused(path, rf"its {keys} tensors hold [\d,]+ elements, more than {MAX_COPIES} times")
    fewer = dict(list(shifted.items())[: keys - 1])
    path = write_format(tmp_path / "fewer.pth", fmt, pickle_bytes(ordered_dict(fewer)), data)
    got = read_state_dict(path)
    np.testing.assert_array_equal(got[f"k{keys - 2}"], np.arange(keys - 2, keys - 2 + n - 400))


def test_a_compressed_zip_member_is_refused(tmp_path):
    """torch.save stores every record; a deflated data.pkl of 8 KB once unpickled 8 MB of
    lists (672 MB of memory)."""
    pkl = b"\x80\x02(" + b"]" * 100_000 + b"l."
    path = tmp_path / "deflated.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pkl)
    refused(path, r"archive/data\.pkl is compressed \(method 8\)")
    good = write_pth(tmp_path / "good.pth", {"w": np.ones(3, np.float32)})
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            method = zipfile.ZIP_DEFLATED if "data/0" in info.filename else zipfile.ZIP_STORED
            out.writestr(info.filename, src.read(info), method)
    refused(path, r"archive/data/0 is compressed")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_pickle_of_too_many_opcodes_or_bytes_is_refused(tmp_path, fmt):
    from minialexnet.pth_pickle import MAX_OPCODES, MAX_PICKLE_BYTES

    lists = b"\x80\x02(" + b"]" * MAX_OPCODES + b"l."
    text = b"\x80\x02X" + struct.pack("<I", MAX_PICKLE_BYTES) + b"x" * MAX_PICKLE_BYTES + b"."
    bound = rf"more than {MAX_OPCODES:,} opcodes or {MAX_PICKLE_BYTES:,} bytes"
    refused(write_format(tmp_path / "lists.pth", fmt, lists, {}), bound)
    if fmt == "zip":  # the member's declared size is refused before it is read
        bound = rf"data\.pkl claims {len(text)} bytes, more than a state_dict needs"
    refused(write_format(tmp_path / "text.pth", fmt, text, {}), bound)


@pytest.mark.parametrize("error", [MemoryError, RecursionError, AttributeError, OverflowError])
def test_any_other_error_while_reading_is_a_value_error_naming_the_file(
    tmp_path, monkeypatch, error
):
    from minialexnet import pth

    def fail(*args):
        raise error("deep inside")

    path = write_pth(tmp_path / "w.pth", {"w": np.ones(2, np.float32)})
    monkeypatch.setattr(pth, "_materialize", fail)
    refused(path, rf"not readable \({error.__name__}: deep inside\)")


def test_a_folder_and_an_empty_tensor_of_huge_dimensions(tmp_path):
    with pytest.raises(ValueError, match=r"is a folder, not a PyTorch checkpoint file"):
        read_state_dict(tmp_path)
    pid = storage_pid(np.float32, "0", 1, legacy=False)
    pkl = pickle_bytes(ordered_dict({"w": tensor(pid, 0, (0, 2**62, 2**62), (1, 1, 1))}))
    refused(write_zip(tmp_path / "zero.pth", pkl, {"0": bytes(4)}), r"more dimensions or elements")
