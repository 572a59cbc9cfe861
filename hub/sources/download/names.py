"""File names from ``Content-Disposition`` (RFC 6266 and the broken forms servers send) and from URLs, sanitised so a
hostile name can neither leave the target folder nor collide with a reserved Windows name.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote, urlsplit

_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
_UNSAFE_CHARS = re.compile(r'[<>:"|?*\x00-\x1f\x7f]')


def sanitize_filename(name: str, fallback: str = "download.bin", max_bytes: int = 240) -> str:
    """A name that is safe as one path component on every OS: no separators, ``..``, control or reserved names.

    Servers (and attackers) control ``Content-Disposition``; ``../../x`` must land as ``x`` inside
    the store, never outside it.
    """
    name = unicodedata.normalize("NFC", name or "")
    # Keep only the last component of either separator style.
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE_CHARS.sub("_", name)
    name = name.strip().strip(".").strip()
    if not name or name in (".", ".."):
        name = fallback
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if stem.split(".")[0].lower() in _WINDOWS_RESERVED:
        name = "_" + name
    encoded = name.encode("utf-8")
    if len(encoded) > max_bytes:
        ext_part = ("." + ext) if dot and len(ext) <= 16 else ""
        room = max_bytes - len(ext_part.encode("utf-8"))
        stem_bytes = name[: len(name) - len(ext_part)].encode("utf-8")[:room]
        name = stem_bytes.decode("utf-8", "ignore").rstrip(". ") + ext_part
    return name


def _fix_mojibake(value: str) -> str:
    """Undo UTF-8 bytes that were decoded as ISO-8859-1 (what http.client does with raw UTF-8 headers)."""
    try:
        fixed = value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value
    return fixed


def _cd_params(header: str) -> dict[str, str]:
    """Parameters of a Content-Disposition header, honouring quoted strings with escapes and ';' inside."""
    params: dict[str, str] = {}
    i, n = header.find(";"), len(header)
    if i < 0:
        return params
    while i < n:
        i += 1
        while i < n and header[i] in " \t":
            i += 1
        eq = header.find("=", i)
        if eq < 0:
            break
        key = header[i:eq].strip().lower()
        i = eq + 1
        while i < n and header[i] in " \t":
            i += 1
        if i < n and header[i] == '"':
            i += 1
            buf = []
            while i < n and header[i] != '"':
                if header[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(header[i])
                i += 1
            value = "".join(buf)
            semi = header.find(";", i)
            i = n if semi < 0 else semi
        else:
            semi = header.find(";", i)
            end = n if semi < 0 else semi
            value = header[i:end].strip()
            i = end
        if key and key not in params:
            params[key] = value
    return params


def filename_from_content_disposition(header: str | None) -> str | None:
    """The (unsanitised) file name of an RFC 6266 header: ``filename*`` (RFC 5987) wins over ``filename``."""
    if not header:
        return None
    params = _cd_params(header)
    extended = params.get("filename*")
    if extended:
        charset, _, rest = extended.partition("'")
        _lang, _, encoded = rest.partition("'")
        if encoded or rest:
            try:
                return unquote(encoded if _ else rest, encoding=charset or "utf-8", errors="strict")
            except (LookupError, UnicodeDecodeError):
                pass
    plain = params.get("filename")
    if plain:
        if "%" in plain and re.search(r"%[0-9A-Fa-f]{2}", plain):
            try:
                decoded = unquote(plain, errors="strict")
                plain = decoded
            except UnicodeDecodeError:
                pass
        return _fix_mojibake(plain)
    return None


def filename_from_url(url: str) -> str | None:
    path = urlsplit(url).path
    last = unquote(path.rsplit("/", 1)[-1]) if path else ""
    return last or None
