"""Writes the small torch.save checkpoints that tests/core/{torch_checkpoint,weights}_test.cpp read.

Run from anywhere with the project's virtual environment:
    .venv/bin/python tests/data/checkpoints/make_checkpoints.py
Every value is deterministic; expected.safetensors holds contiguous copies of every tensor the tests
compare, named "<file stem>/<flattened key>".
"""

import collections
import io
import os
import pickle
import struct
import zipfile
import zlib

import json

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED = {}


def path(name):
    return os.path.join(HERE, name)


def remember(stem, prefix, value):
    """Records every tensor under `value` (dicts, lists) with its flattened, dotted key."""
    if isinstance(value, torch.Tensor):
        EXPECTED[f"{stem}/{prefix}"] = value.detach().clone().contiguous()
    elif isinstance(value, dict):
        for k, v in value.items():
            remember(stem, f"{prefix}.{k}" if prefix else str(k), v)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            remember(stem, f"{prefix}.{i}" if prefix else str(i), v)


def save(name, obj, **kwargs):
    torch.save(obj, path(name), **kwargs)
    remember(os.path.splitext(name)[0], "", obj)


def write_safetensors(file_name, tensors):
    """Minimal safetensors writer (the safetensors package is not a dependency of qvg)."""
    names = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
             torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
             torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}
    header, blobs, offset = {}, [], 0
    # Empty tensors go last so that their zero-length range does not start inside another's.
    for key in sorted(tensors, key=lambda k: (tensors[k].numel() == 0, k)):
        t = tensors[key].contiguous()
        blob = bytes(t.untyped_storage())[: t.numel() * t.element_size()]
        header[key] = {"dtype": names[t.dtype], "shape": list(t.shape),
                       "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(file_name, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def ramp(shape, dtype, start=0.0, step=0.25):
    n = 1
    for d in shape:
        n *= d
    return (torch.arange(n, dtype=torch.float64) * step + start).reshape(shape).to(dtype)


class TinyBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)


class TinyModel(torch.nn.Module):
    """Module names follow Wan so that the state dict has a realistic shape and _metadata."""

    def __init__(self):
        super().__init__()
        self.patch_embedding = torch.nn.Conv1d(2, 4, 1)
        self.blocks = torch.nn.ModuleList([TinyBlock(), TinyBlock()])
        self.register_buffer("freqs", torch.arange(6, dtype=torch.int64))


def tiny_state_dict(seed):
    torch.manual_seed(seed)
    return TinyModel().state_dict()  # an OrderedDict carrying a _metadata attribute


def prefixed(sd, prefix_of):
    out = collections.OrderedDict()
    for k, v in sd.items():
        out[prefix_of(k)] = v
    return out


def make_plain():
    save("plain.pt", tiny_state_dict(1), _use_new_zipfile_serialization=True)


def make_nested():
    ema = prefixed(tiny_state_dict(2), lambda k: "model." + k)
    # FSDP-wrapped EMA copies carry the wrapper name at the start and inside block names.
    gen = prefixed(
        tiny_state_dict(3),
        lambda k: "_fsdp_wrapped_module.model."
        + k.replace("blocks.0.", "blocks.0._fsdp_wrapped_module.").replace(
            "blocks.1.", "_orig_mod.blocks.1."
        ),
    )
    critic = prefixed(tiny_state_dict(4), lambda k: "module.model." + k)
    save(
        "nested.pt",
        {
            "generator_ema": ema,
            "generator": gen,
            "critic": critic,
            "step": 1234,
            "big": 2**40 + 7,
            "negative": -300,
            "lr": 2.5e-4,
            "name": "self-forcing",
            "flags": [True, False, None],
            "shape": (1, 2, 3),
            "dtype": torch.bfloat16,
        },
    )
    save("generator_only.pt", {"generator": prefixed(tiny_state_dict(5), lambda k: "model." + k)})


def make_dtypes():
    save(
        "dtypes.pt",
        collections.OrderedDict(
            [
                ("f32", ramp([2, 3], torch.float32, -1.0)),
                ("f16", ramp([5], torch.float16, 0.5)),
                ("bf16", ramp([3, 2], torch.bfloat16, -2.0, 0.5)),
                ("f64", ramp([4], torch.float64, 1e10, 1e-3)),
                ("i64", torch.tensor([-(2**40), -1, 0, 2**50], dtype=torch.int64)),
                ("i32", torch.tensor([-7, 8, 2**31 - 1], dtype=torch.int32)),
                ("i16", torch.tensor([-32768, 5], dtype=torch.int16)),
                ("i8", torch.tensor([-128, 127, 3], dtype=torch.int8)),
                ("u8", torch.tensor([0, 200, 255], dtype=torch.uint8)),
                ("bool", torch.tensor([True, False, True, True])),
                ("scalar", torch.tensor(3.5)),
                ("empty", torch.empty(0, 3)),
                # nn.Parameter pickles through torch._utils._rebuild_parameter.
                ("param", torch.nn.Parameter(ramp([2, 2], torch.float32, 7.0))),
            ]
        ),
    )


def make_views():
    base = ramp([6, 10], torch.float32)
    save(
        "views.pt",
        {
            "base": base,
            "slice": base[1:4, 2:7],  # storage_offset 12, strides (10, 1)
            "transposed": base.t(),
            "column": base[:, 3],
            "stepped": base[::2, ::3],
            "alias": base.view(3, 20),  # shares the storage with base
            "half_slice": ramp([8], torch.float16)[3:],
        },
    )


class RawTensor:
    """Pickles as _rebuild_tensor_v2 over `t`'s storage with any offset/size/stride, so that a
    checkpoint can describe a view that does not fit its storage."""

    def __init__(self, t, offset, size, stride):
        self.t, self.offset, self.size, self.stride = t, offset, size, stride

    def __reduce_ex__(self, protocol):
        storage = torch.storage.TypedStorage(
            wrap_storage=self.t.untyped_storage(), dtype=self.t.dtype, _internal=True
        )
        return (
            torch._utils._rebuild_tensor_v2,
            (storage, self.offset, self.size, self.stride, False, collections.OrderedDict()),
        )


def make_bad_view():
    t = ramp([10], torch.float32)
    torch.save({"ok": t, "bad": RawTensor(t, 4, (3, 3), (3, 1))}, path("bad_view.pt"))


def zip_entries(name):
    with zipfile.ZipFile(path(name)) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip64(out_name, entries, align):
    """A stored zip in which every local header, central directory entry and the end record use
    ZIP64 fields. align=1 leaves the data unaligned (odd offsets) on purpose."""
    out = io.BytesIO()
    central = []
    for name, data in entries:
        raw = name.encode()
        offset = out.tell()
        crc = zlib.crc32(data) & 0xFFFFFFFF
        zip64 = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        data_start = offset + 30 + len(raw) + len(zip64)
        pad = next(p for p in [0] + list(range(4, 4 + 2 * align + 2))
                   if ((data_start + p) % align == 0 if align > 1 else (data_start + p) % 2 == 1))
        extra = zip64 + (struct.pack("<HH", 0x4642, pad - 4) + b"Z" * (pad - 4) if pad else b"")
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc,
                              0xFFFFFFFF, 0xFFFFFFFF, len(raw), len(extra)))
        out.write(raw + extra)
        out.write(data)
        central.append((raw, crc, len(data), offset))
    cd_offset = out.tell()
    for raw, crc, size, offset in central:
        extra = struct.pack("<HHQQQ", 1, 24, size, size, offset)
        out.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc,
                              0xFFFFFFFF, 0xFFFFFFFF, len(raw), len(extra), 0, 0, 0, 0,
                              0xFFFFFFFF))
        out.write(raw + extra)
    cd_size = out.tell() - cd_offset
    eocd64 = out.tell()
    out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(central),
                          len(central), cd_size, cd_offset))
    out.write(struct.pack("<IIQI", 0x07064B50, 0, eocd64, 1))
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                          0xFFFFFFFF, 0))
    with open(path(out_name), "wb") as f:
        f.write(out.getvalue())
    with zipfile.ZipFile(path(out_name)) as z:  # the standard reader must agree
        assert z.testzip() is None
        assert [i.filename for i in z.infolist()] == [n for n, _ in entries]


def make_zip64():
    sd = collections.OrderedDict(
        [("weight", ramp([3, 5], torch.float32, 0.125)), ("bias", ramp([7], torch.bfloat16, 1.0))]
    )
    torch.save(sd, path("zip64_source.pt"))
    entries = [(n.replace("zip64_source/", "zip64/"), d) for n, d in zip_entries("zip64_source.pt")]
    os.remove(path("zip64_source.pt"))
    write_zip64("zip64.pt", entries, align=64)
    write_zip64("zip64_unaligned.pt", entries, align=1)
    remember("zip64", "", sd)
    remember("zip64_unaligned", "", sd)


def make_compressed():
    src = path("compressed_source.pt")
    torch.save({"x": ramp([64], torch.float32)}, src)
    entries = zip_entries("compressed_source.pt")
    os.remove(src)
    with zipfile.ZipFile(path("compressed.pt"), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(name.replace("compressed_source/", "compressed/"), data)


def torch_like_zip(name, pickle_bytes, extra=()):
    """A zip laid out like torch.save's (archive/data.pkl, archive/version, ...)."""
    stem = os.path.splitext(name)[0]
    with zipfile.ZipFile(path(name), "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{stem}/data.pkl", pickle_bytes)
        z.writestr(f"{stem}/byteorder", "little")
        for entry, data in extra:
            z.writestr(f"{stem}/{entry}", data)
        z.writestr(f"{stem}/version", "3\n")


class SystemCall:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/qvg-pwned",))


class EvalCall:
    def __reduce__(self):
        return (eval, ("__import__('os').system('echo pwned')",))


def make_hostile():
    # pickle spells os.system as posix.system; the hand-written variants use the 'os' module name.
    torch_like_zip("hostile_posix_system.pt", pickle.dumps({"x": SystemCall()}, protocol=2))
    # Protocol 2 spells builtins as Python 2's __builtin__; protocol 4 keeps builtins.
    torch_like_zip("hostile_eval.pt", pickle.dumps({"x": EvalCall()}, protocol=2))
    torch_like_zip("hostile_builtins_eval.pt", pickle.dumps({"x": EvalCall()}, protocol=4))
    os_system = b"\x80\x02}q\x00X\x01\x00\x00\x00xcos\nsystem\nX\x0a\x00\x00\x00echo pwned\x85R\x8a\x01\x01s."
    torch_like_zip("hostile_os_system.pt", os_system)
    # Protocol 4 STACK_GLOBAL after a harmless tensor-free entry, so the check cannot be a prefix scan.
    stack_global = (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94K\x01"
                    b"\x8c\x01b\x94\x8c\nsubprocess\x94\x8c\x05Popen\x94\x93\x94"
                    b"\x8c\x02ls\x94\x85\x94R\x94u.")
    torch_like_zip("hostile_stack_global.pt", stack_global)
    for name in ["hostile_posix_system.pt", "hostile_eval.pt", "hostile_builtins_eval.pt",
                 "hostile_os_system.pt", "hostile_stack_global.pt"]:
        with zipfile.ZipFile(path(name)) as z:
            pickle_bytes = z.read(os.path.splitext(name)[0] + "/data.pkl")
        # Guard the fixtures themselves: they must name the global the tests look for.
        assert b"system" in pickle_bytes or b"eval" in pickle_bytes or b"Popen" in pickle_bytes


def make_bad_pickles():
    cyclic = []
    cyclic.append(cyclic)
    torch_like_zip("cyclic.pt", pickle.dumps({"x": cyclic}, protocol=2))
    good = pickle.dumps({"a": 1, "b": [1.5, "text"]}, protocol=2)
    torch_like_zip("truncated_pickle.pt", good[: len(good) // 2])
    torch_like_zip("unknown_opcode.pt", b"\x80\x02N\x81.")  # NEWOBJ: builds arbitrary classes


def make_no_generator():
    save("no_generator.pt", {"critic": tiny_state_dict(6), "step": 3})


def make_missing_storage():
    """A checkpoint whose pickle names storage key 0 while the archive has no data/0 record."""
    src = "missing_storage.pt"
    torch.save({"x": ramp([4], torch.float32)}, path(src))
    entries = [(n, d) for n, d in zip_entries(src) if not n.endswith("/data/0")]
    with zipfile.ZipFile(path(src), "w", zipfile.ZIP_STORED) as z:
        for n, d in entries:
            z.writestr(n, d)


def make_short_storage():
    """The data record is shorter than the storage the pickle describes."""
    src = "short_storage.pt"
    torch.save({"x": ramp([4], torch.float32)}, path(src))
    entries = [(n, d[:8] if n.endswith("/data/0") else d) for n, d in zip_entries(src)]
    with zipfile.ZipFile(path(src), "w", zipfile.ZIP_STORED) as z:
        for n, d in entries:
            z.writestr(n, d)


def make_legacy():
    torch.save({"x": torch.ones(2)}, path("legacy.pt"), _use_new_zipfile_serialization=False)


def main():
    make_plain()
    make_nested()
    make_dtypes()
    make_views()
    make_bad_view()
    make_zip64()
    make_compressed()
    make_hostile()
    make_bad_pickles()
    make_no_generator()
    make_missing_storage()
    make_short_storage()
    make_legacy()
    write_safetensors(path("expected.safetensors"), EXPECTED)
    for name in ["plain.pt", "nested.pt", "dtypes.pt", "views.pt", "zip64.pt", "zip64_unaligned.pt"]:
        check_round_trip(name)


def check_round_trip(name):
    """torch.load must read every fixture back to the values recorded in EXPECTED."""
    stem = os.path.splitext(name)[0]
    recorded = {k: v for k, v in EXPECTED.items() if k.startswith(stem + "/")}
    for k in recorded:
        del EXPECTED[k]
    remember(stem, "", torch.load(path(name), weights_only=True))
    assert sorted(recorded) == sorted(k for k in EXPECTED if k.startswith(stem + "/")), name
    for k, v in recorded.items():
        assert torch.equal(v, EXPECTED[k]), k


if __name__ == "__main__":
    main()
