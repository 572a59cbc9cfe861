"""Hostile and old-style pickle checkpoints, written opcode by opcode (no torch needed).

Used by ``tests/adversarial/test_hostile_pickles.py`` and ``bench/bench_memory.py``. Each builder
writes one file and returns its path. The opcodes are those of protocols 0/1 unless a builder says
otherwise, so that :func:`pickle_bytes` with ``protocol=2`` only adds the PROTO header.

    p = billion_laughs_zip(tmp / "laughs.ckpt")         # 1.7 KB; walking it naively never ends
    p = tensor_zip(tmp / "good.ckpt", {"a.weight": (4, 4)})
"""

from __future__ import annotations

import pickle
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

MARK, STOP, TUPLE, DICT, SETITEMS, REDUCE, EMPTY_DICT = b"(", b".", b"t", b"d", b"u", b"R", b"}"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def unicode(s: str) -> bytes:
    data = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data


def integer(n: int) -> bytes:
    return b"J" + struct.pack("<i", n) if -(2**31) <= n < 2**31 else b"L%dL\n" % n


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def tup(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def put(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)  # LONG_BINPUT


def get(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)  # LONG_BINGET


def tensor(key: str, shape: Iterable[int], storage: str = "FloatStorage") -> bytes:
    """``torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())``."""
    shape = tuple(shape)
    numel = 1
    for s in shape:
        numel *= s
    stride, acc = [], 1
    for s in reversed(shape):
        stride.insert(0, acc)
        acc *= s
    pid = tup(unicode("storage"), glob("torch", storage), unicode(key), unicode("cpu"), integer(numel)) + b"Q"
    args = tup(pid, integer(0), tup(*map(integer, shape)), tup(*map(integer, stride)), b"I00\n",
               glob("collections", "OrderedDict") + tup() + REDUCE)
    return glob("torch._utils", "_rebuild_tensor_v2") + args + REDUCE


def state_dict(tensors: Mapping[str, Iterable[int]]) -> bytes:
    body = b"".join(unicode(name) + tensor(str(i), shape) for i, (name, shape) in enumerate(tensors.items()))
    return EMPTY_DICT + MARK + body + SETITEMS


def pickle_bytes(ops: bytes, protocol: int = 2) -> bytes:
    return (b"\x80" + bytes([protocol]) if protocol >= 2 else b"") + ops + STOP


def write_torch_zip(path: Path, data_pkl: bytes, storages: Iterable[str] = (), root: str = "archive") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{root}/data.pkl", data_pkl)
        z.writestr(f"{root}/version", "3\n")
        for key in storages:
            z.writestr(f"{root}/data/{key}", b"\0" * 4)
    return path


def tensor_zip(path: Path, tensors: Mapping[str, Iterable[int]]) -> Path:
    """A well-formed checkpoint (zip) with these float32 tensors (four-byte storages: shapes are declared only)."""
    return write_torch_zip(path, pickle_bytes(state_dict(tensors)), [str(i) for i in range(len(tensors))])


def legacy_pickle(path: Path, ops: bytes, protocol: int = 2) -> Path:
    """torch's pre-1.6 layout: magic number, protocol version, sys info, the object, then storage keys."""
    sys_info = EMPTY_DICT + MARK + unicode("little_endian") + b"I01\n" + SETITEMS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(pickle_bytes(p, protocol) for p in (integer(LEGACY_MAGIC), integer(1001), sys_info, ops))
                     + pickle.dumps([], protocol=max(protocol, 0)))
    return path


# -- the attacks ---------------------------------------------------------------------------------
def billion_laughs_zip(path: Path, width: int = 100) -> Path:
    """``{"state_dict": d}`` where ``d`` maps ``width`` keys to ``d`` itself: a 1.7 KB file.

    A walk five levels deep that does not remember what it saw looks at width**5 entries.
    """
    body = EMPTY_DICT + put(0) + MARK + b"".join(unicode(f"k{i}") + get(0) for i in range(width)) + SETITEMS
    return write_torch_zip(path, pickle_bytes(EMPTY_DICT + MARK + unicode("state_dict") + body + SETITEMS))


def shared_dag_zip(path: Path, levels: int = 40, width: int = 2) -> Path:
    """Level i is a dict holding level i-1 ``width`` times; level 0 holds one real tensor (width**levels paths)."""
    ops = EMPTY_DICT + MARK + unicode("weight") + tensor("0", (4, 4)) + SETITEMS + put(0)
    for level in range(1, levels + 1):
        ops += b"0" + EMPTY_DICT + MARK + b"".join(unicode(f"l{level}_{i}") + get(level - 1) for i in range(width))
        ops += SETITEMS + put(level)
    ops += b"0" + EMPTY_DICT + MARK + unicode("state_dict") + get(levels) + SETITEMS
    return write_torch_zip(path, pickle_bytes(ops), ["0"])


def tuple_hash_zip(path: Path, depth: int = 64) -> Path:
    """A dict keyed by t_depth, where t_i = (t_{i-1}, t_{i-1}): 400 bytes, 2**depth steps to hash."""
    ops = b")" + put(0) + b"0"
    for i in range(1, depth + 1):
        ops += get(i - 1) + get(i - 1) + b"\x86" + put(i) + b"0"  # TUPLE2 (protocol 2)
    ops += EMPTY_DICT + get(depth) + integer(1) + b"s"
    return write_torch_zip(path, pickle_bytes(ops))


def deflate_bomb_zip(path: Path, inflated: int = 1 << 30, claimed: int | None = 100) -> Path:
    """``archive/data.pkl`` deflated from ``inflated`` zero bytes; its headers claim ``claimed`` bytes
    (None: the truth). 1 GiB of zeros deflates to about 1 MB."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"\0" * (1 << 24)
    parts, crc, left = [], 0, inflated
    while left:
        piece = chunk[: min(left, len(chunk))]
        parts.append(comp.compress(piece))
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    parts.append(comp.flush())
    data = b"".join(parts)
    size = inflated if claimed is None else claimed
    name = b"archive/data.pkl"
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), size, len(name), 0) + name
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(data), size,
                          len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(local + data + central + end)
    return path


def huge_bytes_legacy(path: Path, size: int) -> Path:
    """A legacy pickle whose object is one BINBYTES8 of ``size`` bytes (sparse: the bytes are a hole)."""
    header = b"".join(pickle_bytes(p) for p in (integer(LEGACY_MAGIC), integer(1001), EMPTY_DICT))
    with open(path, "wb") as f:
        f.write(header + b"\x80\x02\x8e" + struct.pack("<Q", size))
        f.truncate(len(header) + 11 + size)
        f.seek(0, 2)
        f.write(STOP)
    return path


def many_dicts_pickle(path: Path, count: int) -> Path:
    """``count`` EMPTY_DICT opcodes left on the stack: one byte of pickle per 64-byte dict."""
    return legacy_pickle(path, EMPTY_DICT * count + MARK + b"1" + EMPTY_DICT)  # POP_MARK drops nothing


def args_copy_zip(path: Path, n_args: int = 100_000, calls: int = 100_000) -> Path:
    """One tuple of ``n_args`` items passed to ``argparse.Namespace`` ``calls`` times: each call copies it."""
    ops = MARK + integer(0) * n_args + TUPLE + put(0) + b"0"
    ops += (glob("argparse", "Namespace") + put(1) + b"0") + (get(1) + get(0) + REDUCE + b"0") * calls
    return write_torch_zip(path, pickle_bytes(ops + EMPTY_DICT))


def build_on_stand_in_zip(path: Path) -> Path:
    """BUILD with slot state on the rebuild function itself: would change how every later file reads."""
    ops = glob("torch._utils", "_rebuild_tensor_v2") + tup(b"N", EMPTY_DICT + MARK + unicode("__defaults__")
                                                            + tup(integer(1)) + SETITEMS) + b"b" + b"0"
    return write_torch_zip(path, pickle_bytes(ops + state_dict({"w": (2, 2)})), ["0"])


def long_name_zip(path: Path, chars: int = 100_000) -> Path:
    return tensor_zip(path, {"x" * chars: (2, 2)})


def traversal_zip(path: Path) -> Path:
    """A checkpoint whose members are named ``../../evil/...``: nothing may be written anywhere."""
    return write_torch_zip(path, pickle_bytes(state_dict({"w": (2, 2)})), ["0"], root="../../evil")


def many_entries_zip(path: Path, entries: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle_bytes(state_dict({"w": (2, 2)})))
        for i in range(entries):
            z.writestr(f"archive/data/{i}", b"")
    return path


def old_protocol_legacy(path: Path, tensors: Mapping[str, Iterable[int]], protocol: int = 1) -> Path:
    """A legacy checkpoint in protocol 1 (binary opcodes, no PROTO header), or in protocol 0 where,
    as ``torch.save(pickle_protocol=0)`` writes it, each storage is named by the text of its tuple."""
    if protocol == 1:
        return legacy_pickle(path, state_dict(tensors), protocol=1)
    body = b"(dp0\n"
    for i, (name, shape) in enumerate(tensors.items()):
        shape = tuple(shape)
        pid = f"('storage', <class 'torch.FloatStorage'>, '{i}', 'cpu', {max(1, len(shape))})".encode()
        body += b"V" + name.encode() + b"\n" + glob("torch._utils", "_rebuild_tensor_v2") + b"(P" + pid + b"\n"
        body += b"I0\n(" + b"".join(b"I%d\n" % d for d in shape) + b"t(" + b"I1\n" * len(shape) + b"tI00\n"
        body += glob("collections", "OrderedDict") + b"(tRtRs"
    header = b"".join(p + STOP for p in (b"L%dL\n" % LEGACY_MAGIC, b"I1001\n", b"(dVlittle_endian\nI01\ns"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + body + STOP + b"(l.")
    return path
