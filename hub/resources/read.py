"""Read the metadata text out of a file, then hand it to the infotext or ComfyUI parser.

PNG chunks are read by hand: each chunk's length is known before its data, so a 100 MB text chunk
is refused without reading it, image data is skipped with a seek, and a truncated or corrupt file
fails with one message instead of whatever the decoder raises.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

from . import comfyui, infotext
from .model import Resource, ResourceError, merge_resources

#: Largest metadata text read from one chunk or file; real infotexts and workflows are kilobytes.
MAX_TEXT_BYTES = 16 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_KEYS = ("parameters", "prompt", "workflow")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
SUFFIXES = IMAGE_SUFFIXES + (".txt", ".json")


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB"


def png_text(path: Path) -> dict[str, str]:
    """The tEXt/zTXt/iTXt chunks named ``parameters``, ``prompt``, ``workflow`` (others are skipped)."""
    out: dict[str, str] = {}
    try:
        with path.open("rb") as fh:
            if fh.read(8) != PNG_SIGNATURE:
                raise ResourceError(f"{path}: not a PNG file (bad signature)")
            while True:
                head = fh.read(8)
                if len(head) < 8:
                    raise ResourceError(f"{path}: corrupt PNG (truncated before IEND)")
                length, ctype = struct.unpack(">I4s", head)
                if ctype == b"IEND":
                    return out
                if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
                    fh.seek(length + 4, 1)
                    continue
                if length > MAX_TEXT_BYTES:
                    raise ResourceError(f"{path}: a {ctype.decode()} chunk of {_mb(length)} is over the "
                                        f"{_mb(MAX_TEXT_BYTES)} metadata cap; not read")
                data = fh.read(length)
                crc = fh.read(4)
                if len(data) < length or len(crc) < 4:
                    raise ResourceError(f"{path}: corrupt PNG (truncated {ctype.decode()} chunk)")
                if zlib.crc32(ctype + data) != struct.unpack(">I", crc)[0]:
                    raise ResourceError(f"{path}: corrupt PNG ({ctype.decode()} chunk fails its CRC)")
                key, text = _decode_text(path, ctype, data)
                if key in TEXT_KEYS and key not in out:
                    out[key] = text
    except OSError as exc:
        raise ResourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _decode_text(path: Path, ctype: bytes, data: bytes) -> tuple[str, str]:
    key, _, rest = data.partition(b"\0")
    name = key.decode("latin-1")
    if ctype == b"tEXt":
        return name, rest.decode("latin-1")
    if ctype == b"zTXt":
        return name, _inflate(path, rest[1:]).decode("latin-1")
    # iTXt: compression flag, method, language\0, translated keyword\0, text (UTF-8)
    flag, rest = rest[:1], rest[2:]
    _lang, _, rest = rest.partition(b"\0")
    _tkey, _, text = rest.partition(b"\0")
    raw = _inflate(path, text) if flag == b"\x01" else text
    return name, raw.decode("utf-8", "replace")


def _inflate(path: Path, data: bytes) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, MAX_TEXT_BYTES + 1)
    except zlib.error as exc:
        raise ResourceError(f"{path}: corrupt PNG (compressed text does not inflate: {exc})") from exc
    if len(out) > MAX_TEXT_BYTES:
        raise ResourceError(f"{path}: compressed text inflates past the {_mb(MAX_TEXT_BYTES)} metadata cap; not read")
    return out


def exif_user_comment(path: Path) -> str | None:
    """A1111's JPEG/WebP infotext: EXIF UserComment (``UNICODE\\0`` + UTF-16, or ``ASCII\\0\\0\\0``)."""
    if path.stat().st_size > 512 * 1024 * 1024:
        raise ResourceError(f"{path}: over 512 MB, not read as an image")
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # pragma: no cover - Pillow ships with the runtime extra
        raise ResourceError(f"{path}: reading JPEG/WebP metadata needs Pillow (pip install pillow)") from exc
    try:
        with Image.open(path) as img:
            raw = img.getexif().get_ifd(0x8769).get(0x9286)
            comment = img.info.get("comment")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ResourceError(f"{path}: corrupt or unreadable image ({exc})") from exc
    if isinstance(raw, bytes):
        return _user_comment(raw)
    if isinstance(raw, str) and raw.strip():
        return raw
    if isinstance(comment, bytes):
        return comment.decode("utf-8", "replace")
    return None


def _user_comment(raw: bytes) -> str:
    head, body = raw[:8], raw[8:]
    if head == b"UNICODE\0":
        be, le = body.decode("utf-16-be", "replace"), body.decode("utf-16-le", "replace")
        # piexif writes big-endian; some tools write little-endian: pick the one that reads as text.
        return min((be, le), key=lambda s: sum(1 for c in s if not (c.isprintable() or c in "\n\t")))
    if head.startswith(b"ASCII"):
        return body.decode("ascii", "replace")
    return raw.decode("utf-8", "replace").lstrip("\0")


def _json(path: Path, text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ResourceError(f"{path}: {what} is not JSON ({exc.msg} at line {exc.lineno})") from exc


def _graph(path: Path, data: Any, where: str) -> list[Resource]:
    if comfyui.is_ui_format(data):
        return comfyui.parse_ui(data, where)
    if comfyui.is_api_format(data):
        return comfyui.parse_api(data, where)
    if isinstance(data, dict) and isinstance(data.get("models"), list):
        return comfyui.parse_ui({"nodes": [], "models": data["models"]}, where)
    raise ResourceError(f"{path}: {where} is JSON but not a ComfyUI workflow (no nodes, no class_type entries)")


def read_resources(path: str | Path) -> list[Resource]:
    """The models ``path`` names, merged; raises :class:`ResourceError` with one clear line otherwise."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ResourceError(f"{path}: no such file")
    found: list[Resource] = []
    name = path.name
    if suffix == ".png" or (suffix not in SUFFIXES and _is_png(path)):
        chunks = png_text(path)
        if not chunks:
            raise ResourceError(f"{path}: no metadata (no parameters, prompt or workflow text chunk)")
        if "parameters" in chunks:
            found += infotext.parse_infotext(chunks["parameters"], f"{name} parameters")
        if "prompt" in chunks:
            found += _graph(path, _json(path, chunks["prompt"], "the prompt chunk"), f"{name} prompt")
        if "workflow" in chunks:
            found += _graph(path, _json(path, chunks["workflow"], "the workflow chunk"), f"{name} workflow")
    elif suffix in (".jpg", ".jpeg", ".webp"):
        text = exif_user_comment(path)
        if not text or not text.strip():
            raise ResourceError(f"{path}: no metadata (no EXIF UserComment infotext)")
        found += infotext.parse_infotext(text, f"{name} EXIF UserComment")
    else:
        text = _read_text(path)
        if suffix == ".json" or text.lstrip()[:1] in ("{", "["):
            found += _graph(path, _json(path, text, "the workflow"), name)
        elif infotext.looks_like_infotext(text):
            found += infotext.parse_infotext(text, name)
        else:
            raise ResourceError(f"{path}: neither an infotext (no Steps:/Model hash: fields) nor a workflow")
    for res in found:
        res.files = [str(path)]
    return merge_resources(found)


def _is_png(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(8) == PNG_SIGNATURE
    except OSError:
        return False


def _read_text(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise ResourceError(f"{path}: {_mb(size)} is over the {_mb(MAX_TEXT_BYTES)} metadata cap; not read")
    try:
        return path.read_bytes().decode("utf-8-sig", "replace")
    except OSError as exc:
        raise ResourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
