"""List the tensors of a PyTorch pickle checkpoint (.ckpt/.pt/.pth/.bin) without executing it.

A pickle is a program: ``GLOBAL``/``STACK_GLOBAL`` fetch any importable callable and ``REDUCE``
calls it, which is how a malicious checkpoint runs code on ``torch.load(weights_only=False)``. This
scanner runs the pickle in Python's own unpickler but resolves every global through an allow-list
that maps the torch rebuild functions (and a few inert containers) to *our* stand-ins: the
stand-ins only record dtype and shape, so nothing outside this module is ever called and no
tensor data is read. Any other global stops the scan with :class:`hub.errors.UnsafePickleError`
naming it (``posix.system``, ``builtins.exec``...). The storages' dtypes come from the storage
type named in each persistent id; shapes from the ``_rebuild_tensor_v2`` arguments.

Formats: the zip archive torch has written since 1.6 (``<name>/data.pkl`` + ``<name>/data/<key>``),
and the legacy format (magic number, protocol, sys-info and object pickles in sequence).
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .errors import (
    FileAccessError,
    NotACheckpointError,
    TruncatedFileError,
    UnsafePickleError,
)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
MAX_PICKLE_BYTES = 256 * 1024 * 1024  # the object graph of a checkpoint is small; refuse pickle bombs

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



@dataclass(frozen=True)
class StorageRef:
    dtype: str
    key: str
    numel: int | None


@dataclass(frozen=True)
class TensorRef:
    """A tensor as the pickle describes it: never materialised."""

    dtype: str
    shape: tuple[int, ...]
    storage_key: str


@dataclass
class CheckpointScan:
    """What a pickle checkpoint holds: ``{name: TensorRef}`` and a little scalar metadata."""

    path: str
    format: str  # "torch-zip" or "torch-legacy"
    tensors: dict[str, TensorRef]
    metadata: dict[str, str] = field(default_factory=dict)
    globals_used: list[str] = field(default_factory=list)

    def as_header(self) -> dict[str, dict[str, Any]]:
        """The tensors in the safetensors-header shape identification reads (no data offsets)."""
        return {n: {"dtype": t.dtype, "shape": list(t.shape)} for n, t in self.tensors.items()}


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
    shape = tuple(int(s) for s in size) if isinstance(size, (tuple, list)) else ()
    return TensorRef(dtype, shape, storage.key)


def _rebuild_parameter(data: Any, *args: Any) -> Any:
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    # func was itself resolved through the allow-list, so calling it runs only our stand-ins
    if not callable(func) or not isinstance(args, tuple):
        raise TypeError("malformed _rebuild_from_type_v2 call")
    return func(*args)


def _codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    if not isinstance(obj, str) or encoding.lower() not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise ValueError("unexpected _codecs.encode call")
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
        ("torch.nn.modules.container", "ParameterDict"): dict,
        ("torch", "Size"): tuple,
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
        ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset,
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


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: str) -> None:
        super().__init__(file, encoding="latin1")
        self.path = path
        self.used: set[str] = set()

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
                or not isinstance(pid[1], _StorageType)):
            raise NotACheckpointError(self.path, f"unexpected persistent id in the pickle: {str(pid)[:80]}")
        numel = pid[4] if isinstance(pid[4], int) else None
        return StorageRef(pid[1].dtype, str(pid[2]), numel)


def _unpickle(data: Any, path: str) -> tuple[Any, set[str]]:
    unpickler = _RestrictedUnpickler(data, path)
    try:
        obj = unpickler.load()
    except (UnsafePickleError, NotACheckpointError):
        raise
    except RecursionError:
        raise NotACheckpointError(path, "the pickle is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - any malformed pickle: opcode errors, bad stand-in arguments...
        raise NotACheckpointError(path, f"not a readable PyTorch pickle: {type(exc).__name__}: {exc}") from None
    return obj, unpickler.used


def scan_checkpoint(path: str | os.PathLike[str]) -> CheckpointScan:
    """Tensor names, dtypes and shapes of a torch checkpoint, never executing its pickle."""
    p = os.fspath(path)
    try:
        size = os.path.getsize(p)
        with open(p, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise FileAccessError(f"{p}: no such file") from None
    except OSError as exc:
        raise FileAccessError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if size == 0:
        from .errors import EmptyFileError

        raise EmptyFileError(p, "empty file (0 bytes): not a checkpoint")
    if head.startswith(b"PK"):
        return _scan_zip(p)
    if head[:1] == b"\x80":
        return _scan_legacy(p)
    raise NotACheckpointError(p, "neither a zip archive nor a pickle: not a PyTorch checkpoint")


def _scan_zip(path: str) -> CheckpointScan:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise TruncatedFileError(path, f"damaged zip archive ({exc}): truncated download?") from None
    with archive:
        names = archive.namelist()
        pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if not pkl:
            raise NotACheckpointError(path, "a zip archive without data.pkl: not a PyTorch checkpoint")
        entry = min(pkl, key=len)
        info = archive.getinfo(entry)
        if info.file_size > MAX_PICKLE_BYTES:
            raise NotACheckpointError(path, f"data.pkl is {info.file_size:,} bytes: too large for a checkpoint's "
                                            "object graph")
        try:
            data = archive.read(entry)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise TruncatedFileError(path, f"cannot read {entry} from the archive: {exc}") from None
        root = entry[: -len("data.pkl")]
        obj, used = _unpickle(io.BytesIO(data), path)
        scan = _collect(path, "torch-zip", obj, used)
        present = {n[len(root) + len("data/"):]: archive.getinfo(n).file_size
                   for n in names if n.startswith(root + "data/")}
    missing = sorted({t.storage_key for t in scan.tensors.values()} - set(present))
    if missing:
        raise TruncatedFileError(path, f"{len(missing)} tensor storages referenced by data.pkl are missing from the "
                                       f"archive (e.g. data/{missing[0]})")
    return scan


def _scan_legacy(path: str) -> CheckpointScan:
    with open(path, "rb") as f:
        magic, _ = _unpickle(f, path)
        if magic != LEGACY_MAGIC:
            # a plain pickle (not torch.save's legacy layout): read it as the object itself
            if isinstance(magic, dict):
                return _collect(path, "pickle", magic, set())
            raise NotACheckpointError(path, "a pickle that is not a PyTorch checkpoint (no torch magic number)")
        _unpickle(f, path)  # protocol version
        _unpickle(f, path)  # sys info
        obj, used = _unpickle(f, path)
    return _collect(path, "torch-legacy", obj, used)


def _collect(path: str, fmt: str, obj: Any, used: set[str]) -> CheckpointScan:
    metadata: dict[str, str] = {}
    root = obj
    if isinstance(obj, dict):
        for key in ("global_step", "epoch", "step"):
            value = obj.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                metadata[key] = str(value)
        for key in ("state_dict", "model", "module", "params_ema", "params"):
            inner = obj.get(key)
            if isinstance(inner, dict) and _has_tensors(inner):
                root = inner
                break
    tensors: dict[str, TensorRef] = {}
    _flatten(root, "", tensors, depth=0)
    if not tensors:
        raise NotACheckpointError(path, "the pickle holds no tensors")
    return CheckpointScan(path=path, format=fmt, tensors=tensors, metadata=metadata, globals_used=sorted(used))


def _has_tensors(d: dict[Any, Any]) -> bool:
    return any(isinstance(v, TensorRef) for v in d.values())


def _flatten(obj: Any, prefix: str, out: dict[str, TensorRef], depth: int) -> None:
    if isinstance(obj, TensorRef):
        out[prefix.rstrip(".") or "tensor"] = obj
        return
    if depth > 4 or not isinstance(obj, dict):
        return
    for key, value in obj.items():
        if isinstance(value, (TensorRef, dict)):
            _flatten(value, f"{prefix}{key}.", out, depth + 1)


PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")


def is_pickle_name(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path).lower().endswith(PICKLE_SUFFIXES)


__all__ = ["ALLOWED_GLOBALS", "CheckpointScan", "TensorRef", "is_pickle_name", "scan_checkpoint"]
