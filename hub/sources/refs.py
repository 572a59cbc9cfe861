"""One syntax for every model reference: parse what users type or paste into a :class:`Ref`.

Users copy references from many places (a Civitai page, an AIR from a generation's metadata, a
Hugging Face "blob" link, a LiblibAI page, a short hash from an A1111 infotext). Every entry point
(``sdhub install``, ``hub.resolve``) goes through :func:`parse`, so they all accept the same forms,
and a bad reference gets one message that lists them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from ..errors import BadReferenceError

ACCEPTED_FORMS = """accepted reference forms:
  civitai:<modelId>[@<versionId>][/<file name or file id>]   e.g. civitai:4201@130072
  civitai:@<versionId>                                        a version without its model id
  urn:air:<ecosystem>:<type>:civitai:<modelId>[@<versionId>][+<fileId>]  a Civitai AIR
                                                              (air:… and bare <ecosystem>:<type>:civitai:… too)
  https://civitai.com/models/<id>[?modelVersionId=<id>]       a pasted Civitai page or download URL
  hf:<org>/<repo>[/<path in repo>][@<revision>]               e.g. hf:stabilityai/sdxl-vae/sdxl_vae.safetensors
  hf:<root repo>[/<file>]                                     legacy root repos, e.g. hf:gpt2/README.md
  https://huggingface.co/<org>/<repo>/blob|resolve/<rev>/<path>  (hf-mirror.com too)
  liblib:<modelUuid>[@<versionUuid>]                          32-character LiblibAI ids
  https://www.liblib.art/modelinfo/<uuid>[?versionUuid=<uuid>]
  sha256:<hex>  autov1:<8 hex>  autov2:<10 hex>  autov3:<12 hex>  blake3:<hex>  crc32:<8 hex>
  <8, 10, 12 or 64 hex digits>                                a short or full hash (any kind)"""

HASH_KINDS = ("sha256", "autov1", "autov2", "autov3", "blake3", "crc32")
# How long a hash of each kind is when complete; a shorter value is a prefix.
HASH_WIDTHS = {"sha256": 64, "autov1": 8, "autov2": 10, "autov3": 64, "blake3": 64, "crc32": 8}
BARE_HASH_LENGTHS = (8, 10, 12, 64)

CIVITAI_HOSTS = ("civitai.com", "www.civitai.com", "civitai.red", "civitai.green")
HF_HOSTS = ("huggingface.co", "www.huggingface.co", "hf.co", "hf-mirror.com", "www.hf-mirror.com")
LIBLIB_HOSTS = ("www.liblib.art", "liblib.art", "www.liblibai.com", "liblibai.com", "www.liblib.ai", "liblib.ai")

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_DIGITS = re.compile(r"^[0-9]+$")
_LIBLIB_UUID = re.compile(r"^[A-Za-z0-9]{32}$")
_HF_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CIVITAI_SELECTORS = ("type", "format", "size", "fp", "quantType", "fileId")


@dataclass(frozen=True)
class Ref:
    """A parsed reference. ``scheme`` says which source owns it ("hash" for hash lookups).

    Field meaning per scheme:
    - civitai: ``model_id`` / ``version_id`` are Civitai's numeric ids (as strings), ``file`` a file
      name or numeric file id, ``selectors`` the download URL's ``type/format/size/fp/fileId``.
    - hf: ``model_id`` is the repo id ("org/repo"), ``file`` the path in the repo, ``version_id``
      the revision (None = main).
    - liblib: ``model_id`` / ``version_id`` are the 32-character UUIDs.
    - hash: ``hash_kind`` (None = any kind) and ``hash_value`` (lowercase hex, maybe a prefix).
    """

    scheme: str
    text: str = field(default="", compare=False)
    model_id: str | None = None
    version_id: str | None = None
    file: str | None = None
    hash_kind: str | None = None
    hash_value: str | None = None
    selectors: tuple[tuple[str, str], ...] = ()
    air_ecosystem: str | None = None
    air_type: str | None = None
    # Things to tell the user about the text itself (an AIR ecosystem or type we do not know yet).
    warnings: tuple[str, ...] = field(default=(), compare=False)

    # Friendlier names for Hugging Face references.
    @property
    def repo_id(self) -> str | None:
        return self.model_id if self.scheme == "hf" else None

    @property
    def revision(self) -> str | None:
        return self.version_id if self.scheme == "hf" else None

    @property
    def path_in_repo(self) -> str | None:
        return self.file if self.scheme == "hf" else None

    def canonical(self) -> str:
        """The reference in its shortest standard form (what ``sdhub search`` prints).

        ``parse(ref.canonical()) == ref`` for every form (tests/test_refs.py checks it): an AIR stays
        an AIR (its ecosystem and type are part of it), selectors and odd file names are quoted.
        """
        if self.scheme == "hash":
            return f"{self.hash_kind or 'hash'}:{self.hash_value}"
        if self.air_ecosystem and self.air_type and self.scheme in ("civitai", "hf", "liblib"):
            air = self._air_id()
            if air is not None:
                return f"urn:air:{self.air_ecosystem}:{self.air_type}:{air}"
        if self.scheme == "hf":
            if "/" not in (self.model_id or "") and self.file and not _root_repo_file(self.file):
                # a legacy root repo (gpt2) with a nested or extension-less path: only the URL form is unambiguous
                return (f"https://huggingface.co/{self.model_id}/resolve/{quote(self.version_id or 'main', safe='')}/"
                        f"{quote(self.file)}")
            text = f"hf:{self.model_id}"
            if self.file:
                text += f"/{self.file}"
            if self.version_id:
                text += f"@{self.version_id}"
            return text
        text = f"{self.scheme}:{self.model_id or ''}"
        if self.version_id:
            text += f"@{self.version_id}"
        if self.file:
            text += "/" + (quote(self.file, safe=" ()[]+,=~!'") if self.scheme == "civitai" else self.file)
        if self.selectors:
            text += "?" + urlencode(list(self.selectors), quote_via=quote)
        return text

    def _air_id(self) -> str | None:
        """The ``<source>:<id>`` tail of this reference as an AIR, or None when an AIR cannot say it."""
        if self.scheme == "civitai" and self.model_id and not self.selectors:
            if self.file and not (self.version_id and _DIGITS.match(self.file)):
                return None
            tail = f"civitai:{self.model_id}" + (f"@{self.version_id}" if self.version_id else "")
            return tail + (f"+{self.file}" if self.file else "")
        if self.scheme == "liblib" and self.model_id:
            return f"liblib:{self.model_id}" + (f"@{self.version_id}" if self.version_id else "")
        if self.scheme == "hf" and self.model_id and "/" in self.model_id and ":" not in (self.file or "") + (
                self.version_id or ""):
            return f"huggingface:{self.model_id}" + (f"/{self.file}" if self.file else "") + (
                f"@{self.version_id}" if self.version_id else "")
        return None

    def with_ids(self, **changes: Any) -> Ref:
        """A copy with some ids filled in (e.g. the version a model reference resolved to)."""
        values = {
            "scheme": self.scheme,
            "text": self.text,
            "model_id": self.model_id,
            "version_id": self.version_id,
            "file": self.file,
            "hash_kind": self.hash_kind,
            "hash_value": self.hash_value,
            "selectors": self.selectors,
            "air_ecosystem": self.air_ecosystem,
            "air_type": self.air_type,
            "warnings": self.warnings,
        }
        values.update(changes)
        return Ref(**values)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return self.canonical()


FORMS_HINT = "`sdhub install --help` lists the accepted forms"


def _bad(text: str, why: str) -> BadReferenceError:
    """One line: what is wrong and where the forms are (the 14-line list lives in ``--help``, not in every error)."""
    return BadReferenceError(f"cannot understand reference {text!r}: {why} ({FORMS_HINT})")


_PLUGIN_SCHEME = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")


def parse(text: str | Ref, *, hosts: Mapping[str, str] | None = None) -> Ref:
    """Parse any accepted form into a :class:`Ref`; raise a one-line :class:`BadReferenceError` saying why.

    ``hosts`` maps extra host names (``"127.0.0.1:8080"``) to a scheme, so pasted URLs of configured
    endpoints (self-hosted mirrors, test servers) are recognised like the public ones.
    """
    if isinstance(text, Ref):
        return text
    if not isinstance(text, str):
        raise _bad(repr(text), "a reference is a string")
    raw = text
    text = text.strip().strip("<>\"'").strip()
    if not text:
        raise _bad(raw, "it is empty")
    lower = text.lower()
    if text.startswith("#") or lower.startswith("id:"):
        raise _catalogue_id_error(raw, text)
    if lower.startswith("urn:air:"):
        return _parse_air(raw, text)
    if lower.startswith("air:"):  # the AIR guide: "urn:" is optional
        return _parse_air(raw, "urn:" + text)
    bare = lower.split(":")
    if len(bare) >= 4 and bare[2] in AIR_SOURCES and bare[0] not in ("civitai", "hf", "huggingface", "liblib", "liblibai"):
        return _parse_air(raw, "urn:air:" + text)  # bare <ecosystem>:<type>:<source>:<id>, also from the guide
    if lower.startswith(("http://", "https://")):
        return _parse_url(raw, text, hosts or {})
    scheme, sep, rest = text.partition(":")
    if sep:
        key = scheme.strip().lower()
        if key == "civitai":
            return _parse_civitai(raw, rest.strip())
        if key in ("hf", "huggingface"):
            return _parse_hf(raw, rest.strip())
        if key in ("liblib", "liblibai"):
            return _parse_liblib(raw, rest.strip())
        if key in HASH_KINDS or key == "hash":
            return _parse_hash(raw, None if key == "hash" else key, rest.strip())
        if "/" in scheme or "\\" in scheme or len(scheme) == 1:
            raise _bad(raw, "this looks like a file path; use `sdhub scan` / `sdhub add` for local files")
        if _PLUGIN_SCHEME.match(key):
            return _parse_plugin(raw, key, rest.strip())
        raise _bad(raw, f"unknown scheme {scheme!r}")
    if _HEX.match(text) and len(text) in BARE_HASH_LENGTHS:
        return Ref(scheme="hash", text=raw, hash_kind=None, hash_value=text.lower())
    if _HEX.match(text):
        raise _bad(raw, f"a bare hash must have 8, 10, 12 or 64 hex digits, this one has {len(text)}")
    raise _bad(raw, "no scheme (civitai:, hf:, liblib:, sha256:…) and not a URL or hash")


def _catalogue_id_error(raw: str, text: str) -> BadReferenceError:
    """``#12`` / ``id:12`` name a catalogued file, never a source: ``id`` is not a plugin scheme."""
    digits = text[1:] if text.startswith("#") else text[3:]
    if not _DIGITS.match(digits.strip()):
        return BadReferenceError(f"cannot understand reference {raw!r}: catalogue ids are numbers, e.g. #12 or id:12 "
                                 f"(`sdhub list` shows the ids)")
    return BadReferenceError(f"{raw!r} is a catalogue id, not a source reference (`sdhub list` shows the ids)")


def _parse_plugin(raw: str, scheme: str, rest: str) -> Ref:
    """``<scheme>:<model id>[@<version id>][/<file>]`` for sources that plugins add.

    Whether a source owns the scheme is decided when the reference is used (``sources.source_for``),
    which names the installed sources when none does; parsing stays free of the plugin manager.
    """
    ids, _, file_part = rest.partition("/")
    model_id, _, version_id = ids.partition("@")
    if not model_id.strip():
        raise _bad(raw, f"{scheme}: needs a model id, e.g. {scheme}:<id>[@<version>]")
    return Ref(scheme=scheme, text=raw, model_id=model_id.strip(), version_id=version_id.strip() or None,
               file=file_part.strip() or None)


def _parse_hash(raw: str, kind: str | None, value: str) -> Ref:
    value = value.strip()
    if not value or not _HEX.match(value):
        raise _bad(raw, "a hash is hexadecimal digits")
    width = HASH_WIDTHS[kind] if kind else 64
    if len(value) > width:
        raise _bad(raw, f"a {kind or 'hash'} has at most {width} hex digits, this one has {len(value)}")
    if len(value) < 8:
        raise _bad(raw, "a hash prefix needs at least 8 hex digits to be meaningful")
    return Ref(scheme="hash", text=raw, hash_kind=kind, hash_value=value.lower())


def _parse_civitai(raw: str, rest: str, selectors: tuple[tuple[str, str], ...] = ()) -> Ref:
    if not rest:
        raise _bad(raw, "civitai: needs a model id, e.g. civitai:4201")
    rest, qmark, query = rest.partition("?")
    if qmark:  # civitai:@<version>?type=VAE&format=SafeTensor, as canonical() writes download-link selectors
        pairs = parse_qs(query, keep_blank_values=True)
        unknown = [k for k in pairs if k not in _CIVITAI_SELECTORS]
        if unknown:
            raise _bad(raw, f"unknown file selector {unknown[0]!r} (known: {', '.join(_CIVITAI_SELECTORS)})")
        selectors = selectors + tuple((k, pairs[k][0]) for k in _CIVITAI_SELECTORS if pairs.get(k))
    ids, slash, file_part = rest.partition("/")
    model_id, at, version_id = ids.partition("@")
    model_id, version_id = model_id.strip(), version_id.strip()
    if model_id and not _DIGITS.match(model_id):
        raise _bad(raw, f"Civitai model ids are numbers, got {model_id!r}")
    if at and not version_id:
        raise _bad(raw, "nothing after '@' (expected a version id)")
    if version_id and not _DIGITS.match(version_id):
        raise _bad(raw, f"Civitai version ids are numbers, got {version_id!r}")
    if not model_id and not version_id:
        raise _bad(raw, "civitai: needs a model id or @versionId")
    file_part = unquote(file_part.strip()) if slash else ""
    if slash and not file_part:
        raise _bad(raw, "nothing after '/' (expected a file name or file id)")
    return Ref(
        scheme="civitai",
        text=raw,
        model_id=model_id or None,
        version_id=version_id or None,
        file=file_part or None,
        selectors=selectors,
    )


# File name endings that make hf:<name>/<x> a file of a legacy root repo rather than <org>/<repo>.
_ROOT_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx", ".json", ".md", ".txt",
                       ".yaml", ".yml", ".msgpack", ".h5", ".model", ".npz", ".png", ".jpg")


def _root_repo_file(name: str) -> bool:
    """Whether ``name`` (no '/') is plainly a file name, as in ``hf:gpt2/README.md``."""
    return "/" not in name and name.lower().endswith(_ROOT_FILE_SUFFIXES)


def _parse_hf(raw: str, rest: str, root: bool = False) -> Ref:
    if not rest:
        raise _bad(raw, "hf: needs a repository, e.g. hf:org/repo/file.safetensors")
    revision = None
    if "@" in rest:
        rest, revision = rest.rsplit("@", 1)
        revision = revision.strip()
        if not revision:
            raise _bad(raw, "nothing after '@' (expected a revision: branch, tag or commit)")
    parts = [p for p in rest.strip().strip("/").split("/") if p]
    if not parts:
        raise _bad(raw, "Hugging Face repositories are <org>/<repo> (or a legacy root repo such as gpt2)")
    if root or len(parts) == 1 or (len(parts) == 2 and _root_repo_file(parts[1])):
        # Legacy root repos (gpt2, bert-base-uncased): hf:gpt2, hf:gpt2/README.md (a file name, not a repo)
        names, path_parts = [parts[0]], parts[1:]
    else:
        names, path_parts = parts[:2], parts[2:]
    for part in names:
        if not _HF_PART.match(part) or ".." in part:
            raise _bad(raw, f"{part!r} is not a valid Hugging Face name")
    if any(p in (".", "..") for p in path_parts):
        raise _bad(raw, "a path in a repository cannot contain '.' or '..' parts")
    path = "/".join(path_parts) or None
    return Ref(scheme="hf", text=raw, model_id="/".join(names), version_id=revision, file=path)


def _parse_liblib(raw: str, rest: str) -> Ref:
    model_uuid, _, version_uuid = rest.partition("@")
    model_uuid, version_uuid = model_uuid.strip(), version_uuid.strip()
    if not _LIBLIB_UUID.match(model_uuid):
        raise _bad(raw, "LiblibAI model ids are 32 letters/digits (the part after /modelinfo/ in the page URL)")
    if version_uuid and not _LIBLIB_UUID.match(version_uuid):
        raise _bad(raw, "LiblibAI version ids are 32 letters/digits (versionUuid= in the page URL)")
    # LiblibAI's uuids are hex and case-insensitive: lower case, so LIBLIB:ABC… and liblib:abc… are one model.
    return Ref(scheme="liblib", text=raw, model_id=model_uuid.lower(), version_id=version_uuid.lower() or None)


# AIR parts known from Civitai's AIR guide and its live "air" fields; new ones appear every month,
# so an unknown ecosystem or type is a warning, not an error.
AIR_ECOSYSTEMS = frozenset({
    "sd1", "sd2", "sd3", "sdxl", "sdxl-turbo", "pony", "illustrious", "noobai", "flux1", "flux", "flux2", "sc",
    "hunyuan", "hunyuanvideo", "ltxv", "mochi", "wan", "wanvideo", "hidream", "cogvideox", "kolors", "lumina",
    "auraflow", "pixart", "chroma", "qwen", "odor", "gpt", "imagen4", "veo3", "seedream", "other",
})
AIR_TYPES = frozenset({
    "model", "checkpoint", "lora", "lycoris", "locon", "dora", "embedding", "textualinversion", "hypernet",
    "hypernetwork", "aestheticgradient", "controlnet", "upscaler", "motion", "motionmodule", "vae", "poses",
    "wildcards", "workflows", "workflow", "detection", "other", "image", "gallery", "post", "tag", "article",
    "question", "answer", "user",
})
AIR_SOURCES = ("civitai", "huggingface", "hf", "liblib", "liblibai", "openai", "leonardo")
_AIR_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _parse_air(raw: str, text: str) -> Ref:
    """``urn:air:{ecosystem}:{type}:{source}:{id}[@{version}][+{fileId}][:{layer}][.{format}]``.

    Each malformed part is named in the error; an unknown (but well-formed) ecosystem or type is
    kept and noted in ``Ref.warnings``, because Civitai adds ecosystems faster than we release.
    """
    shape = "an AIR is urn:air:<ecosystem>:<type>:<source>:<id>[@<version>][+<fileId>]"
    parts = text.split(":")
    if len(parts) < 6:
        missing = ("ecosystem", "type", "source", "id")[max(0, len(parts) - 2):]
        raise _bad(raw, f"{shape}; this one has {max(0, len(parts) - 2)} of its 4 parts: the AIR"
                        f" {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    ecosystem, kind, source = parts[2].strip().lower(), parts[3].strip().lower(), parts[4].strip().lower()
    for label, value in (("ecosystem", ecosystem), ("type", kind), ("source", source)):
        if not value:
            raise _bad(raw, f"the AIR {label} is empty ({shape})")
        if not _AIR_NAME.match(value):
            raise _bad(raw, f"the AIR {label} {value!r} is not a name (letters, digits, '.', '-', '_')")
    warnings = []
    if ecosystem not in AIR_ECOSYSTEMS:
        warnings.append(f"AIR ecosystem {ecosystem!r} is not one sdhub knows; using the reference anyway")
    if kind not in AIR_TYPES:
        warnings.append(f"AIR type {kind!r} is not one sdhub knows; using the reference anyway")
    id_part = parts[5].strip()
    id_part = re.sub(r"\.[A-Za-z][A-Za-z0-9]*$", "", id_part)  # optional .format suffix
    if not id_part:
        raise _bad(raw, f"the AIR id is missing ({shape})")
    extra = {"air_ecosystem": ecosystem, "air_type": kind, "warnings": tuple(warnings)}
    if source == "civitai":
        ids, plus, file_id = id_part.partition("+")
        model_id, at, version_id = ids.partition("@")
        if not model_id:
            raise _bad(raw, "the AIR id (model id) is empty")
        if not _DIGITS.match(model_id):
            raise _bad(raw, f"the AIR id {model_id!r} is not a Civitai model id (a number)")
        if at and not version_id:
            raise _bad(raw, "the AIR version (after '@') is empty")
        if at and not _DIGITS.match(version_id):
            raise _bad(raw, f"the AIR version {version_id!r} is not a Civitai version id (a number)")
        if plus and not _DIGITS.match(file_id):
            raise _bad(raw, f"the AIR file id {file_id!r} (after '+') is not a Civitai file id (a number)")
        if plus and not at:
            raise _bad(raw, "an AIR file id (+<fileId>) needs a version (<id>@<version>+<fileId>)")
        return _parse_civitai(raw, ids + (f"/{file_id}" if plus else "")).with_ids(**extra)
    if source in ("huggingface", "hf"):
        return _parse_hf(raw, ":".join(parts[5:])).with_ids(**extra)
    if source in ("liblib", "liblibai"):
        return _parse_liblib(raw, id_part).with_ids(**extra)
    raise _bad(raw, f"AIR source {source!r} is not supported (civitai, huggingface, liblib are)")


def _host_scheme(netloc: str, hosts: Mapping[str, str]) -> str | None:
    netloc = netloc.lower()
    host_only = netloc.split("@")[-1]
    for name, scheme in hosts.items():
        if host_only == name.lower() or host_only.split(":")[0] == name.lower():
            return scheme
    bare = host_only.split(":")[0]
    if bare in CIVITAI_HOSTS:
        return "civitai"
    if bare in HF_HOSTS:
        return "hf"
    if bare in LIBLIB_HOSTS:
        return "liblib"
    return None


def _parse_url(raw: str, text: str, hosts: Mapping[str, str]) -> Ref:
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise _bad(raw, f"not a valid URL ({exc})") from None
    scheme = _host_scheme(parts.netloc, hosts)
    query = parse_qs(parts.query)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if scheme == "civitai":
        return _civitai_url(raw, segments, query)
    if scheme == "hf":
        return _hf_url(raw, segments)
    if scheme == "liblib":
        if len(segments) >= 2 and segments[0].lower() == "modelinfo":
            version = (query.get("versionUuid") or [""])[0]
            return _parse_liblib(raw, f"{segments[1]}@{version}" if version else segments[1])
        raise _bad(raw, "LiblibAI links are https://www.liblib.art/modelinfo/<uuid>[?versionUuid=<uuid>]")
    raise _bad(raw, f"{parts.netloc!r} is not a known source host (civitai.com, huggingface.co, hf-mirror.com, liblib.art)")


def _civitai_url(raw: str, segs: list[str], query: dict[str, list[str]]) -> Ref:
    low = [s.lower() for s in segs]
    version_q = (query.get("modelVersionId") or [""])[0]
    if len(segs) >= 2 and low[0] == "models":
        model = segs[1]
        return _parse_civitai(raw, f"{model}@{version_q}" if version_q else model)
    if len(segs) >= 2 and low[0] == "model-versions":
        return _parse_civitai(raw, f"@{segs[1]}")
    if low[:3] == ["api", "download", "models"] and len(segs) >= 4:
        selectors = tuple((k, query[k][0]) for k in _CIVITAI_SELECTORS if query.get(k))
        return _parse_civitai(raw, f"@{segs[3]}", selectors)
    if low[:3] == ["api", "v1", "models"] and len(segs) >= 4:
        return _parse_civitai(raw, segs[3])
    if low[:3] == ["api", "v1", "model-versions"] and len(segs) >= 4 and segs[3] != "by-hash":
        return _parse_civitai(raw, f"@{segs[3]}")
    raise _bad(raw, "not a Civitai model page (/models/<id>) or download link (/api/download/models/<versionId>)")


def _hf_url(raw: str, segs: list[str]) -> Ref:
    if segs and segs[0] in ("datasets", "spaces"):
        raise _bad(raw, "Hugging Face datasets and spaces are not model repositories")
    if segs and segs[0] == "api" and len(segs) >= 4 and segs[1] == "models":
        segs = segs[2:]
    if len(segs) == 1 or (len(segs) >= 2 and segs[1] in ("blob", "resolve", "tree")):
        # a legacy root repo: https://huggingface.co/gpt2[/resolve/main/…]
        if len(segs) == 1:
            return _parse_hf(raw, segs[0], root=True)
        if len(segs) >= 4 and segs[1] in ("blob", "resolve"):
            rev_part = "" if segs[2] == "main" else f"@{segs[2]}"
            return _parse_hf(raw, f"{segs[0]}/{'/'.join(segs[3:])}{rev_part}", root=True)
        if len(segs) >= 3 and segs[1] == "tree":
            rest = "/".join(segs[3:])
            rev_part = "" if segs[2] == "main" else f"@{segs[2]}"
            return _parse_hf(raw, f"{segs[0]}/{rest}{rev_part}" if rest else f"{segs[0]}{rev_part}", root=True)
    if len(segs) < 2:
        raise _bad(raw, "a Hugging Face link names <org>/<repo>")
    repo = f"{segs[0]}/{segs[1]}"
    if len(segs) == 2:
        return _parse_hf(raw, repo)
    if len(segs) >= 5 and segs[2] in ("blob", "resolve"):
        revision, path = segs[3], "/".join(segs[4:])
        rev_part = "" if revision == "main" else f"@{revision}"
        return _parse_hf(raw, f"{repo}/{path}{rev_part}")
    if len(segs) >= 4 and segs[2] == "tree":
        rest = "/".join(segs[4:])
        rev_part = "" if segs[3] == "main" else f"@{segs[3]}"
        return _parse_hf(raw, f"{repo}/{rest}{rev_part}" if rest else f"{repo}{rev_part}")
    raise _bad(raw, "Hugging Face file links are /<org>/<repo>/blob|resolve/<revision>/<path>")


def catalogue_id(ref: str) -> int | None:
    """The id in ``#12`` / ``id:12`` (catalogue ids, not source references); None for anything else."""
    ref = ref.strip()
    for prefix in ("#", "id:"):
        if ref[:len(prefix)].lower() == prefix and _DIGITS.match(ref[len(prefix):]):
            return int(ref[len(prefix):])
    return None


def looks_like_reference(text: str) -> bool:
    """True when ``text`` parses as a reference (pasted URLs of the public hosts only: no configured endpoints)."""
    try:
        parse(text)
    except BadReferenceError:
        return False
    return True
