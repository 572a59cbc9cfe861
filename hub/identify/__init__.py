"""Identification: what every model file is, from its header alone.

    from hub.identify import identify_path, check_compatible
    ident = identify_path("sd_xl_base_1.0.safetensors", families=table)  # reads ~300 KB of header, never the weights
    ident.family, ident.kind, ident.variant              # "sdxl", "checkpoint", None
    ident.to_dict()                                      # what the catalogue stores

Supported inputs: ``.safetensors`` (header validated as strictly as the safetensors library),
PyTorch pickles ``.ckpt/.pt/.pth/.bin`` (tensor list read without executing the pickle), GGUF
(``.gguf``: metadata and tensor infos, ``hub.files.gguf_header``), and diffusers folders (``model_index.json`` + component configs). The family table is an argument: this
room never reaches into the plugin manager. ``hub.identify_path`` (the public API) passes the registered
families (``register_families`` hook; the built-ins are ``hub_plugins.families``) when none are given. Unknown is a fine answer; a wrong one is not: matchers only claim a family
when its decisive shapes are all there, and every decision carries its evidence.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import FileAccessError, UnsupportedFormatError
from .compat import check_compatible
from .family import (
    DiffusersConfigs,
    Family,
    FamilyMatch,
    base_model_claims,
    in_channels_variant,
    prediction_from_metadata,
    shape_evidence,
)
from .lora import LoraModule, LoraView
from .model import (
    IDENTIFY_VERSION,
    KINDS,
    UNKNOWN,
    Compatibility,
    Evidence,
    Identification,
    LoraInfo,
)
from .view import HeaderView

__all__ = [
    "IDENTIFY_VERSION",
    "KINDS",
    "UNKNOWN",
    "Compatibility",
    "DiffusersConfigs",
    "Evidence",
    "Family",
    "FamilyMatch",
    "HeaderView",
    "Identification",
    "LoraInfo",
    "LoraModule",
    "LoraView",
    "base_model_claims",
    "check_compatible",
    "identify_header",
    "identify_path",
    "in_channels_variant",
    "prediction_from_metadata",
    "shape_evidence",
]

OTHER_MODEL_SUFFIXES = {".onnx": "ONNX", ".engine": "TensorRT engine", ".pb": "TensorFlow"}


def identify_path(path: str | os.PathLike[str], *, families: Iterable[Family]) -> Identification:
    """Identify the model file or diffusers folder at ``path`` from its header/configs.

    Raises a :class:`hub.errors.HeaderError` subclass (naming the file and the reason) for files
    that are not valid safetensors/checkpoints, :class:`hub.errors.UnsafePickleError` for pickles
    referencing anything but torch's tensor rebuild functions, and
    :class:`hub.errors.FileAccessError` when the path cannot be read.
    """
    p = Path(path)
    fams = list(families)
    if p.is_dir():
        from .diffusers_folder import identify_folder

        return identify_folder(p, fams)
    if not p.exists():
        raise FileAccessError(f"{p}: no such file or directory")
    from ..files.regular import require_regular_file

    require_regular_file(p)  # a FIFO or device would block the first open forever
    from ..files.pickle_scan import is_pickle_name
    from ..files.safetensors_header import is_safetensors_name

    name = p.name.lower()
    if is_safetensors_name(name):
        return _identify_safetensors(p, fams)
    if is_pickle_name(name):
        # Hugging Face repos and converters sometimes write safetensors bytes under a .bin/.pt name.
        if _looks_like_safetensors(_head(p)):
            ident = _identify_safetensors(p, fams)
            ident.details["container"] = "safetensors (under a PyTorch file name)"
            return ident
        return _identify_pickle(p, fams)
    if name.endswith(".gguf"):
        return _identify_gguf(p, fams)
    for suffix, what in OTHER_MODEL_SUFFIXES.items():
        if name.endswith(suffix):
            raise UnsupportedFormatError(p, f"{what} files are not identified (safetensors, .ckpt/.pt/.bin, GGUF "
                                            "and diffusers folders are)")
    return _identify_by_content(p, fams)


def _head(p: Path) -> bytes:
    from ..files.regular import open_regular

    fd = open_regular(p)
    try:
        return os.pread(fd, 9, 0)
    except OSError as exc:
        raise FileAccessError(f"{p}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _looks_like_safetensors(head: bytes) -> bool:
    """An 8-byte little-endian header length followed by the JSON header's opening brace."""
    return len(head) == 9 and head[8:9] == b"{" and not head.startswith(b"PK")


def _identify_by_content(p: Path, fams: Sequence[Family]) -> Identification:
    """No telling extension: look at the first bytes."""
    head = _head(p)
    if head.startswith(b"PK") or head[:1] == b"\x80":
        return _identify_pickle(p, fams)
    if _looks_like_safetensors(head):
        return _identify_safetensors(p, fams)
    if head.startswith(b"GGUF"):
        return _identify_gguf(p, fams)
    raise UnsupportedFormatError(p, "not a model file sdhub reads (safetensors, PyTorch checkpoint, GGUF or "
                                    "diffusers folder)")


def _identify_gguf(p: Path, fams: Sequence[Family]) -> Identification:
    from .gguf import identify_gguf

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return identify_gguf(p, fams)
    finally:
        if was_enabled:
            gc.enable()


def _identify_safetensors(p: Path, fams: Sequence[Family]) -> Identification:
    from ..files.safetensors_header import read_header
    from .classify import identify_view

    # Parsing and classifying allocate thousands of small acyclic objects that are freed before we
    # return: with the cyclic GC paused they are never traversed (a measurable share of the time).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        header = read_header(p)
        ident = identify_view(HeaderView(header.raw, header.metadata), fams, fmt="safetensors")
        ident.details.setdefault("header_bytes", header.header_size)
        del header
        return ident
    finally:
        if was_enabled:
            gc.enable()


def _identify_pickle(p: Path, fams: Sequence[Family]) -> Identification:
    from ..files.pickle_scan import scan_checkpoint
    from .classify import identify_view

    scan = scan_checkpoint(p)
    ident = identify_view(HeaderView(scan.as_header(), scan.metadata), fams, fmt="ckpt")
    ident.details["container"] = scan.format
    for key, value in scan.metadata.items():
        ident.metadata.setdefault(key, value)
    return ident


def identify_header(raw: dict, metadata: dict[str, str] | None = None, *, families: Iterable[Family],
                    fmt: str = "safetensors") -> Identification:
    """Identify an already-parsed header (``{name: {"dtype", "shape", ...}}``), e.g. from a remote range read."""
    from .classify import identify_view

    fams = list(families)
    return identify_view(HeaderView(raw, metadata or {}), fams, fmt=fmt)
