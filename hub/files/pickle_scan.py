"""List the tensors of a PyTorch pickle checkpoint (.ckpt/.pt/.pth/.bin) without executing it.

A pickle is a program: ``GLOBAL``/``STACK_GLOBAL`` fetch any importable callable and ``REDUCE``
calls it, which is how a malicious checkpoint runs code on ``torch.load(weights_only=False)``. This
scanner runs the pickle in an unpickler of its own (Python's pure-Python one, restricted) that
resolves every global through an allow-list mapping the torch rebuild functions (and a few inert
containers) to *our* stand-ins: the stand-ins only record dtype and shape, so nothing outside this
module is ever called and no tensor data is read. Any other global stops the scan with
:class:`hub.errors.UnsafePickleError` naming it (``posix.system``, ``builtins.exec``...). The
storages' dtypes come from the storage type named in each persistent id; shapes from the
``_rebuild_tensor_v2`` arguments.

A pickle can also be made to cost far more than its size without calling anything: shared
references make a "billion laughs" graph (a 1.7 KB dict of dicts of itself), a tuple built from
itself twice per level hashes in 2**depth steps when used as a dict key, a deflate bomb inflates a
100-byte ``data.pkl`` to gigabytes. So every cost is bounded (:mod:`hub.limits`): the bytes of
pickle actually inflated or read, the cost of each dict key and set element before it is hashed,
the arguments copied per call, which objects BUILD may write to, the dict entries the tensor walk
looks at (each container once, however often it is referenced); and the time and memory of the
whole read are checked every thousand opcodes. Past any of them the file fails with
:class:`hub.errors.LimitExceededError`.

Formats: the zip archive torch has written since 1.6 (``<name>/data.pkl`` + ``<name>/data/<key>``),
the legacy format (magic number, protocol, sys-info and object pickles in sequence) in any pickle
protocol (torch 1.x wrote protocol 2; protocol 1 loads too), and a plain pickled state dict.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import pickletools
import reprlib
import struct
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .. import limits
from ..errors import (
    EmptyFileError,
    FileAccessError,
    LimitExceededError,
    NotACheckpointError,
    SdhubError,
    TruncatedFileError,
    UnsafePickleError,
)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch storage classes -> safetensors dtype names
STORAGE_DTYPES = {
    "FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16", "DoubleStorage": "F64",
    "LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
    "ByteStorage": "U8", "BoolStorage": "BOOL", "ComplexFloatStorage": "C64", "UntypedStorage": "U8",
    "Float8_e4m3fnStorage": "F8_E4M3", "Float8_e5m2Storage": "F8_E5M2",
}
# torch.<dtype> objects (used by _rebuild_tensor_v3 and in metadata) -> safetensors dtype names
TORCH_DTYPES = {
    "float32": "F32", "float": "F32", "float16": "F16", "half": "F16", "bfloat16": "BF16", "float64": "F64",
    "double": "F64", "int64": "I64", "long": "I64", "int32": "I32", "int": "I32", "int16": "I16", "int8": "I8",
    "uint8": "U8", "bool": "BOOL", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "complex64": "C64",
}
# The opcodes a protocol 0/1 pickle can open with (protocol 2 and later open with PROTO, 0x80).
_OLD_PROTOCOL_OPENERS = frozenset(b"(}])LIJKMNcSVXUTFGP")
_ZIP_READ_CHUNK = 1024 * 1024
_I32, _U32, _U64 = struct.Struct("<i").unpack, struct.Struct("<I").unpack, struct.Struct("<Q").unpack


@dataclass(frozen=True, slots=True)
class StorageRef:
    dtype: str
    key: str
    numel: int | None


@dataclass(frozen=True, slots=True)
class TensorRef:
    """A tensor as the pickle describes it: never materialised."""

    dtype: str
    shape: tuple[int, ...]
    storage_key: str


@dataclass
class CheckpointScan:
    """What a pickle checkpoint holds: ``{name: TensorRef}`` and a little scalar metadata."""

    path: str
    format: str  # "torch-zip", "torch-legacy" or "pickle"
    tensors: dict[str, TensorRef]
    metadata: dict[str, str] = field(default_factory=dict)
    globals_used: list[str] = field(default_factory=list)

    def as_header(self) -> dict[str, dict[str, Any]]:
        """The tensors in the safetensors-header shape identification reads (no data offsets)."""
        return {n: {"dtype": t.dtype, "shape": list(t.shape)} for n, t in self.tensors.items()}


# -- what the unpickler may hash, copy and write to -------------------------------------------------
_HASH_CHEAP = frozenset({str, bytes, int, float, bool, complex, type(None), frozenset})
_current = threading.local()  # the unpickler running in this thread, for the stand-ins to charge


def _check_key(key: Any) -> None:
    """Refuse a dict key or set element whose hash would walk more than MAX_KEY_NODES objects.

    A tuple's hash is not cached: a tuple holding the same tuple twice, 60 levels deep, is 200
    bytes of pickle and 2**60 steps to hash. frozensets cache theirs (their elements were checked).
    """
    if type(key) in _HASH_CHEAP or type(key) is not tuple:
        return
    budget = limits.MAX_KEY_NODES
    stack = [key]
    while stack:
        item = stack.pop()
        budget -= 1
        if budget < 0:
            raise LimitExceededError(getattr(_current, "path", "?"), f"a dict key or set element in the pickle is made of "
                                                              f"more than {limits.MAX_KEY_NODES:,} objects (hashing it "
                                                              "could take forever): not a checkpoint")
        if type(item) is tuple:
            stack.extend(item)


def _check_keys(keys: Any) -> None:
    cheap = _HASH_CHEAP
    for key in keys:
        if type(key) not in cheap:
            _check_key(key)


def _spend(n: int) -> None:
    """Charge a stand-in's copy of ``n`` items to the running unpickler (it checks its budget)."""
    unpickler = getattr(_current, "unpickler", None)
    if unpickler is not None:
        unpickler.spend(n)


def _as_items(arg: Any) -> list[Any]:
    if isinstance(arg, dict):
        items = list(arg.items())
    elif isinstance(arg, (list, tuple, set, frozenset)):
        items = list(arg)
    else:
        raise TypeError(f"unexpected {type(arg).__name__} argument")
    _spend(len(items))
    return items


class _SafeDict(dict):  # type: ignore[type-arg]
    """``dict``/``OrderedDict`` built from checked keys (SETITEM(S) check the ones added later)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > 1:
            raise TypeError("dict expected at most 1 argument")
        pairs = _as_items(args[0]) if args else []
        if args and not isinstance(args[0], dict):
            for pair in pairs:
                if type(pair) not in (tuple, list) or len(pair) != 2:
                    raise TypeError("dict built from something that is not a list of pairs")
        _check_keys(p[0] for p in pairs)
        super().__init__(pairs, **kwargs)


class _SafeOrderedDict(OrderedDict):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:  # torch writes OrderedDict() and fills it with SETITEMS
            super().__init__(_SafeDict(*args, **kwargs))


class _SafeSet(set):  # type: ignore[type-arg]
    def __init__(self, *args: Any) -> None:
        items = _as_items(args[0]) if args else []
        _check_keys(items)
        super().__init__(items)


class _SafeFrozenset(frozenset):  # type: ignore[type-arg]
    def __new__(cls, *args: Any) -> _SafeFrozenset:
        items = _as_items(args[0]) if args else []
        _check_keys(items)
        return super().__new__(cls, items)


def _size(arg: Any = ()) -> tuple[Any, ...]:
    """torch.Size: a tuple."""
    return tuple(_as_items(arg))


# -- the stand-ins the allow-list maps to ---------------------------------------------------------
class _Inert:
    """Stands for an allowed class whose instances we never need (ModelCheckpoint, argparse.Namespace)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _StorageType:
    __slots__ = ("dtype",)

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        # BUILD on a stand-in would rewrite it (e.g. FloatStorage's dtype): a checkpoint never does that
        raise TypeError("a torch storage type takes no state")


class _DType:
    __slots__ = ("dtype",)

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        raise TypeError("a torch dtype takes no state")


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any = None, *rest: Any) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise TypeError("tensor rebuilt from something that is not a storage")
    dtype = storage.dtype
    # _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, backward_hooks, dtype, metadata)
    if len(rest) >= 3 and isinstance(rest[2], _DType):
        dtype = rest[2].dtype
    if isinstance(size, (tuple, list)):
        if len(size) > limits.MAX_TENSOR_DIMS:
            raise TypeError(f"a tensor with {len(size):,} dimensions")
        shape = tuple(int(s) for s in size)
    else:
        shape = ()
    return TensorRef(dtype, shape, storage.key)


def _rebuild_parameter(data: Any, *args: Any) -> Any:
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    # func was itself resolved through the allow-list, so calling it runs only our stand-ins
    if not callable(func) or not isinstance(args, tuple):
        raise TypeError("malformed _rebuild_from_type_v2 call")
    _spend(len(args))
    return func(*args)


def _codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    if (not isinstance(obj, str) or not isinstance(encoding, str)
            or encoding.lower() not in ("latin1", "latin-1", "utf-8", "utf8", "ascii")):
        raise ValueError("unexpected _codecs.encode call")
    _spend(len(obj))
    return codecs.encode(obj, encoding, errors)


def _allowed() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch.nn.parameter", "Parameter"): _Inert,
        ("torch.nn.modules.container", "ParameterDict"): _SafeDict,
        ("torch", "Size"): _size,
        ("collections", "OrderedDict"): _SafeOrderedDict,
        ("builtins", "set"): _SafeSet, ("builtins", "frozenset"): _SafeFrozenset,
        ("__builtin__", "set"): _SafeSet, ("__builtin__", "frozenset"): _SafeFrozenset,
        ("_codecs", "encode"): _codecs_encode,
        ("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"): _Inert,
        ("lightning.pytorch.callbacks.model_checkpoint", "ModelCheckpoint"): _Inert,
        ("argparse", "Namespace"): _Inert,
        ("numpy.core.multiarray", "scalar"): _Inert, ("numpy._core.multiarray", "scalar"): _Inert,
        ("numpy.core.multiarray", "_reconstruct"): _Inert, ("numpy._core.multiarray", "_reconstruct"): _Inert,
        ("numpy", "dtype"): _Inert, ("numpy", "ndarray"): _Inert,
    }
    for name, dtype in STORAGE_DTYPES.items():
        table[("torch", name)] = _StorageType(dtype)
    table[("torch.storage", "UntypedStorage")] = _StorageType("U8")
    for name, dtype in TORCH_DTYPES.items():
        table[("torch", name)] = _DType(dtype)
    return table


ALLOWED_GLOBALS = _allowed()
# BUILD (setting an object's state) is allowed on these only: never on a stand-in class or function,
# which would carry what one pickle wrote into the next file's scan.
_BUILD_TARGETS = (_Inert, _StorageType, _DType, _SafeDict, _SafeOrderedDict, _SafeSet)
_short = reprlib.Repr()
_short.maxlevel, _short.maxstring, _short.maxother = 2, 40, 40


class _RestrictedUnpickler(pickle._Unpickler):  # the pure-Python one: every opcode below is ours to bound
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: Any, path: str, budget: limits.Budget) -> None:
        super().__init__(file, encoding="latin1")
        self._file = file
        self.path = path
        self.budget = budget
        # The file is read directly (a Python wrapper per read would double the cost), so the byte
        # cap holds through its position: checked by every opcode that reads a length it was told,
        # by readline, and every 1,024 opcodes (the others read at most 9 bytes each).
        self.limit = limits.MAX_PICKLE_BYTES
        self.tell = file.tell
        self.used: set[str] = set()
        self.pending = 0
        self.copies = 0

    def spend(self, n: int) -> None:
        self.pending += n
        if self.pending >= 65536:
            self.copies += self.pending
            self.pending = 0
            if self.copies > limits.MAX_PICKLE_COPIES:
                raise LimitExceededError(self.path, f"the pickle's calls copy more than {limits.MAX_PICKLE_COPIES:,} "
                                                    "items (the same large arguments over and over): refused")
            self.budget.check()

    def too_large(self) -> LimitExceededError:
        return LimitExceededError(self.path, f"the pickle is larger than {limits.human_bytes(self.limit)} (the limit "
                                             "for a checkpoint's object graph; tensor data is stored apart): refused")

    def claim(self, n: int) -> int:
        """Refuse a read of ``n`` bytes that would take the pickle past its cap."""
        if n < 0 or self.tell() + n > self.limit:
            raise self.too_large() if n >= 0 else TypeError("negative length")
        return n

    def _readline(self) -> bytes:
        line = self._file.readline(max(self.limit - self.tell(), 0) + 1)
        if self.tell() > self.limit:
            raise self.too_large()
        return line

    def load(self) -> Any:
        # pickle._Unpickler.load, reading the file directly (FRAME is a buffering hint: load_frame
        # skips it) and checking the budget every 1,024 opcodes
        self.read = self._file.read
        self.readinto = self._file.readinto
        self.readline = self._readline
        self.metastack: list[Any] = []
        self.stack: list[Any] = []
        self.append = self.stack.append
        self.proto = 0
        read, dispatch, check = self.read, self.dispatch, self.budget.check
        ops = 0
        previous = getattr(_current, "unpickler", None), getattr(_current, "path", None)
        _current.unpickler, _current.path = self, self.path
        try:
            while True:
                key = read(1)
                if not key:
                    raise EOFError
                dispatch[key[0]](self)
                ops += 1
                if ops & 0x3FF == 0:
                    check()
                    if self.tell() > self.limit:
                        raise self.too_large()
        except pickle._Stop as stop:  # type: ignore[attr-defined]
            return stop.value
        finally:
            _current.unpickler, _current.path = previous

    def find_class(self, module: str, name: str) -> Any:
        stand_in = ALLOWED_GLOBALS.get((module, name))
        if stand_in is None:
            raise UnsafePickleError(
                f"{self.path}: unsafe pickle: it references {module}.{name}, which is not a torch tensor "
                "rebuild function; refusing to load it (it could run code)", offending=f"{module}.{name}")
        self.used.add(f"{module}.{name}")
        if isinstance(stand_in, (_StorageType, _DType)):
            # a copy per file: whatever one pickle does to it cannot change how the next file reads
            return type(stand_in)(stand_in.dtype)
        return stand_in

    def persistent_load(self, pid: Any) -> StorageRef:
        # zip: ('storage', storage_type, key, location, numel); legacy adds view_metadata
        if (not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType) or type(pid[2]) not in (str, int)):
            if isinstance(pid, str) and pid.startswith("('storage'"):
                raise NotACheckpointError(self.path, "a protocol-0 pickle: its tensor storages are named in text, "
                                                     "which torch itself cannot load; not a usable checkpoint")
            raise NotACheckpointError(self.path, f"unexpected persistent id in the pickle: {_short.repr(pid)}")
        numel = pid[4] if type(pid[4]) is int else None
        return StorageRef(pid[1].dtype, str(pid[2]), numel)

    # -- the opcodes whose cost does not follow from the bytes they take ----------------------------
    def load_dict(self) -> None:
        items = self.pop_mark()
        _check_keys(items[0::2])
        self.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})

    def load_setitem(self) -> None:
        stack = self.stack
        value = stack.pop()
        key = stack.pop()
        if type(key) not in _HASH_CHEAP:
            _check_key(key)
        stack[-1][key] = value

    def load_setitems(self) -> None:
        items = self.pop_mark()
        _check_keys(items[0::2])
        target = self.stack[-1]
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def load_additems(self) -> None:
        items = self.pop_mark()
        _check_keys(items)
        target = self.stack[-1]
        if not isinstance(target, set):
            raise TypeError(f"ADDITEMS on a {type(target).__name__}")
        target.update(items)

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        _check_keys(items)
        self.append(frozenset(items))

    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        if type(args) is not tuple:
            raise TypeError("REDUCE arguments are not a tuple")
        self.spend(len(args))
        stack[-1] = stack[-1](*args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        if type(args) is not tuple or not isinstance(cls, type):
            raise TypeError("malformed NEWOBJ")
        self.spend(len(args))
        self.append(cls.__new__(cls, *args))

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        if type(args) is not tuple or type(kwargs) is not dict or not isinstance(cls, type):
            raise TypeError("malformed NEWOBJ_EX")
        self.spend(len(args) + len(kwargs))
        self.append(cls.__new__(cls, *args, **kwargs))

    def _instantiate(self, klass: Any, args: Any) -> None:
        self.spend(len(args))
        super()._instantiate(klass, args)  # type: ignore[misc]

    def load_build(self) -> None:
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        if type(inst) is type or not isinstance(inst, _BUILD_TARGETS):
            raise TypeError(f"the pickle sets the state of a {type(inst).__name__}")
        setstate = getattr(inst, "__setstate__", None)
        if setstate is not None:
            setstate(state)
            return
        if not isinstance(state, dict) or not all(type(k) is str for k in state):
            raise TypeError("malformed object state")
        self.spend(len(state))
        inst.__dict__.update(state)

    def load_frame(self) -> None:
        self.read(8)

    def load_binstring(self) -> None:
        self.append(self._decode_string(self.read(self.claim(_I32(self.read(4))[0]))))  # type: ignore[attr-defined]

    def load_binbytes(self) -> None:
        self.append(self.read(self.claim(_U32(self.read(4))[0])))

    def load_binbytes8(self) -> None:
        self.append(self.read(self.claim(_U64(self.read(8))[0])))

    def load_binunicode(self) -> None:
        self.append(str(self.read(self.claim(_U32(self.read(4))[0])), "utf-8", "surrogatepass"))

    def load_binunicode8(self) -> None:
        self.append(str(self.read(self.claim(_U64(self.read(8))[0])), "utf-8", "surrogatepass"))

    def load_long4(self) -> None:
        self.append(pickle.decode_long(self.read(self.claim(_I32(self.read(4))[0]))))

    def load_bytearray8(self) -> None:
        buf = bytearray(self.claim(_U64(self.read(8))[0]))
        self.readinto(buf)
        self.append(buf)

    dispatch[pickle.DICT[0]] = load_dict
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.ADDITEMS[0]] = load_additems
    dispatch[pickle.FROZENSET[0]] = load_frozenset
    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8
    dispatch[pickle.BINSTRING[0]] = load_binstring
    dispatch[pickle.BINBYTES[0]] = load_binbytes
    dispatch[pickle.BINBYTES8[0]] = load_binbytes8
    dispatch[pickle.BINUNICODE[0]] = load_binunicode
    dispatch[pickle.BINUNICODE8[0]] = load_binunicode8
    dispatch[pickle.LONG4[0]] = load_long4
    dispatch[pickle.FRAME[0]] = load_frame


def _unpickle(data: Any, path: str, budget: limits.Budget) -> tuple[Any, set[str]]:
    unpickler = _RestrictedUnpickler(data, path, budget)
    try:
        return unpickler.load(), unpickler.used
    except SdhubError:
        raise
    except RecursionError:
        raise NotACheckpointError(path, "the pickle is nested too deeply") from None
    except MemoryError:
        raise LimitExceededError(path, "the pickle asked for more memory than there is: refused") from None
    except Exception as exc:  # noqa: BLE001 - any malformed pickle: opcode errors, bad stand-in arguments...
        raise NotACheckpointError(path, f"not a readable PyTorch pickle: {type(exc).__name__}: "
                                        f"{str(exc)[:200]}") from None
    finally:
        # The memo holds every intermediate object (an OrderedDict per tensor...) and the unpickler
        # is in a cycle through its bound methods: let them go now, not at the next collection.
        unpickler.memo.clear()
        unpickler.__dict__.clear()


def sniff(head: bytes) -> str | None:
    """What the first bytes of a file say it is: ``"zip"``, ``"pickle"`` (protocol 2 or later),
    ``"old-pickle"`` (protocol 0 or 1, which has no opening marker: the first opcodes must decode)
    or None."""
    if head.startswith(b"PK"):
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    if not head or head[0] not in _OLD_PROTOCOL_OPENERS:
        return None
    try:
        for i, (op, _arg, _pos) in enumerate(pickletools.genops(io.BytesIO(head))):
            if i >= 2 or op.name == "STOP":
                return "old-pickle"
            if op.proto > 1:
                return None
    except Exception:  # noqa: BLE001 - bytes that do not decode as pickle opcodes, or the head ended
        return None
    return None


def scan_checkpoint(path: str | os.PathLike[str], *, budget: limits.Budget | None = None) -> CheckpointScan:
    """Tensor names, dtypes and shapes of a torch checkpoint, never executing its pickle.

    ``budget`` bounds the time and memory of the read (default: ``hub.limits.IDENTIFY_SECONDS`` and
    ``IDENTIFY_MEMORY_BYTES``).
    """
    from .regular import open_regular

    p = os.fspath(path)
    with os.fdopen(open_regular(p), "rb") as f:  # one descriptor throughout; never blocks on a FIFO
        try:
            size = os.fstat(f.fileno()).st_size
            head = f.read(4096)
            f.seek(0)
        except OSError as exc:
            raise FileAccessError(f"{p}: cannot read: {exc.strerror or exc}") from None
        if size == 0:
            raise EmptyFileError(p, "empty file (0 bytes): not a checkpoint")
        if budget is None:
            budget = limits.Budget(p, "reading the pickle", limits.IDENTIFY_SECONDS, limits.IDENTIFY_MEMORY_BYTES)
        kind = sniff(head)
        if kind == "zip":
            return _scan_zip(p, f, budget)
        if kind == "pickle":
            return _scan_legacy(p, f, budget)
        if kind == "old-pickle":
            try:
                return _scan_legacy(p, f, budget)
            except NotACheckpointError as exc:
                if exc.detail.startswith("a protocol-0 pickle"):
                    raise
                raise NotACheckpointError(p, f"an old-protocol (0 or 1) pickle: {exc.detail}") from None
    raise NotACheckpointError(p, "neither a zip archive nor a pickle: not a PyTorch checkpoint")


def _check_zip_directory(path: str, f: Any) -> None:
    """Refuse a central directory too large to parse before zipfile parses it (an object per entry)."""
    try:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return
    if not end:
        return
    entries, cd_size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if entries > limits.MAX_ZIP_ENTRIES or cd_size > limits.MAX_PICKLE_BYTES:
        raise LimitExceededError(path, f"the zip archive lists {entries:,} entries in a {cd_size:,}-byte directory "
                                       f"(more than the {limits.MAX_ZIP_ENTRIES:,} a checkpoint may have): refused")


def _read_member(archive: zipfile.ZipFile, entry: str, path: str, budget: limits.Budget) -> io.BytesIO:
    """Inflate ``entry`` a chunk at a time, stopping at MAX_PICKLE_BYTES whatever its header claims."""
    limit = limits.MAX_PICKLE_BYTES
    out = io.BytesIO()
    try:
        with archive.open(entry) as member:
            while True:
                chunk = member.read(_ZIP_READ_CHUNK)
                if not chunk:
                    break
                if out.tell() + len(chunk) > limit:
                    raise LimitExceededError(path, f"{entry} inflates to more than {limits.human_bytes(limit)} (its "
                                                   f"header says {archive.getinfo(entry).file_size:,} bytes): a zip "
                                                   "bomb or not a checkpoint; refused")
                out.write(chunk)
                budget.check()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise TruncatedFileError(path, f"cannot read {entry} from the archive: {exc}") from None
    out.seek(0)
    return out


def _scan_zip(path: str, f: Any, budget: limits.Budget) -> CheckpointScan:
    _check_zip_directory(path, f)
    try:
        archive = zipfile.ZipFile(f)
    except zipfile.BadZipFile as exc:
        raise TruncatedFileError(path, f"damaged zip archive ({exc}): truncated download?") from None
    with archive:
        budget.check()  # parsing the directory is the one step the budget cannot watch from inside
        names = archive.namelist()
        pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if not pkl:
            raise NotACheckpointError(path, "a zip archive without data.pkl: not a PyTorch checkpoint")
        entry = min(pkl, key=len)
        info = archive.getinfo(entry)
        if info.file_size > limits.MAX_PICKLE_BYTES:
            raise LimitExceededError(path, f"data.pkl is {info.file_size:,} bytes: more than the "
                                           f"{limits.human_bytes(limits.MAX_PICKLE_BYTES)} a checkpoint's object graph "
                                           "may take; refused")
        data = _read_member(archive, entry, path, budget)
        root = entry[: -len("data.pkl")]
        obj, used = _unpickle(data, path, budget)
        del data
        scan = _collect(path, "torch-zip", obj, used, budget)
        present = {n[len(root) + len("data/"):] for n in names if n.startswith(root + "data/")}
    missing = sorted({t.storage_key for t in scan.tensors.values()} - present)
    if missing:
        raise TruncatedFileError(path, f"{len(missing)} tensor storages referenced by data.pkl are missing from the "
                                       f"archive (e.g. data/{missing[0]})")
    return scan


def _scan_legacy(path: str, f: Any, budget: limits.Budget) -> CheckpointScan:
    # f is at offset 0, where the first of the four pickles starts: the byte cap holds for all four together
    magic, _ = _unpickle(f, path, budget)
    if magic != LEGACY_MAGIC:
        # a plain pickle (not torch.save's legacy layout): read it as the object itself
        if isinstance(magic, dict):
            return _collect(path, "pickle", magic, set(), budget)
        raise NotACheckpointError(path, "a pickle that is not a PyTorch checkpoint (no torch magic number)")
    _unpickle(f, path, budget)  # protocol version
    _unpickle(f, path, budget)  # sys info
    obj, used = _unpickle(f, path, budget)
    return _collect(path, "torch-legacy", obj, used, budget)


def _collect(path: str, fmt: str, obj: Any, used: set[str], budget: limits.Budget) -> CheckpointScan:
    metadata: dict[str, str] = {}
    root = obj
    if isinstance(obj, dict):
        for key in ("global_step", "epoch", "step"):
            value = obj.get(key)
            if type(value) is int and -(10**18) < value < 10**18:
                metadata[key] = str(value)
        for key in ("state_dict", "model", "module", "params_ema", "params"):
            inner = obj.get(key)
            if isinstance(inner, dict) and _has_tensors(inner, path):
                root = inner
                break
    tensors: dict[str, TensorRef] = {}
    if isinstance(root, TensorRef):
        tensors["tensor"] = root
    else:
        _Walk(path, budget).flatten(root, "", tensors, depth=0)
    if not tensors:
        raise NotACheckpointError(path, "the pickle holds no tensors")
    return CheckpointScan(path=path, format=fmt, tensors=tensors, metadata=metadata, globals_used=sorted(used))


def _has_tensors(d: dict[Any, Any], path: str) -> bool:
    if len(d) > limits.MAX_WALK_ENTRIES:
        raise LimitExceededError(path, f"a dict of {len(d):,} entries in the pickle: more than the "
                                       f"{limits.MAX_WALK_ENTRIES:,} a checkpoint may hold; refused")
    return any(isinstance(v, TensorRef) for v in d.values())


class _Walk:
    """The tensors under nested dicts (at most five levels): each dict once, every entry counted."""

    def __init__(self, path: str, budget: limits.Budget) -> None:
        self.path, self.budget = path, budget
        self.seen: set[int] = set()
        self.entries = 0
        self.next_check = 4096

    def _too_many(self) -> LimitExceededError:
        return LimitExceededError(self.path, f"the pickle's dicts hold more than {limits.MAX_WALK_ENTRIES:,} entries "
                                             "(a pickle of shared references, a \"billion laughs\"?): refused")

    def flatten(self, obj: Any, prefix: str, out: dict[str, TensorRef], depth: int) -> None:
        if depth > 4 or not isinstance(obj, dict) or id(obj) in self.seen:
            return  # a dict seen before was listed where it first appeared
        self.seen.add(id(obj))
        self.entries += len(obj)
        if self.entries > limits.MAX_WALK_ENTRIES:
            raise self._too_many()
        if self.entries >= self.next_check:
            self.next_check = self.entries + 4096
            self.budget.check()
        for key, value in obj.items():
            if isinstance(value, TensorRef):
                name = f"{prefix}{_key_text(key)}".rstrip(".")
                if len(name) > limits.MAX_NAME_CHARS:
                    raise LimitExceededError(self.path, f"a tensor name of {len(name):,} characters (more than "
                                                        f"{limits.MAX_NAME_CHARS:,}): not a checkpoint")
                out[name or "tensor"] = value
            elif isinstance(value, dict):
                text = _key_text(key)
                if len(prefix) + len(text) < limits.MAX_NAME_CHARS:
                    self.flatten(value, f"{prefix}{text}.", out, depth + 1)


def _key_text(key: Any) -> str:
    if type(key) is str:
        return key
    if type(key) is int and -(10**18) < key < 10**18 or type(key) in (float, bool, type(None)):
        return str(key)
    return _short.repr(key)


PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")


def is_pickle_name(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path).lower().endswith(PICKLE_SUFFIXES)


__all__ = ["ALLOWED_GLOBALS", "CheckpointScan", "TensorRef", "is_pickle_name", "scan_checkpoint", "sniff"]
