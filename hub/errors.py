"""Every error sdhub raises on purpose.

The CLI prints any :class:`SdhubError` as one line and exits non-zero; anything else is a bug and
gets a traceback. So raise these with a message a user can act on, naming the file, reference or
plugin concerned.
"""

from __future__ import annotations

import errno


class SdhubError(Exception):
    """Base class: the message is shown to the user as it is."""

    exit_code: int = 1


class ConfigError(SdhubError):
    """A setting (environment variable, config file) is malformed."""


class CatalogueError(SdhubError):
    """The catalogue database cannot be opened, is corrupt or locked."""


class SchemaTooNewError(CatalogueError):
    """The catalogue was written by a newer sdhub than this one."""


class NotInCatalogueError(SdhubError):
    """A reference or hash matched nothing in the local catalogue."""


class AmbiguousReferenceError(SdhubError):
    """A short hash or name matched several catalogue entries."""


class FileAccessError(SdhubError):
    """A path does not exist, is not readable, or vanished while in use."""


class FingerprintError(SdhubError):
    """Hashing a file failed."""


class FileChangedError(FingerprintError):
    """The file changed (size or mtime) while it was being hashed."""


class HeaderError(SdhubError):
    """A model file's header is invalid (not a valid safetensors / checkpoint file)."""


class UnsafePickleError(HeaderError):
    """A pickle-based checkpoint references something outside the allow-list."""

    def __init__(self, message: str, offending: str | None = None) -> None:
        super().__init__(message)
        self.offending = offending


class IncompatibleError(SdhubError):
    """Two models cannot be used together (e.g. an SD1.5 LoRA on an SDXL checkpoint)."""


class BadReferenceError(SdhubError):
    """A model reference string could not be parsed (not named ReferenceError: that is a builtin)."""


class SourceError(SdhubError):
    """A remote source answered with an error or could not be reached."""


class AuthRequiredError(SourceError):
    """The source requires a login / API token for this request."""


class AccessDeniedError(SourceError):
    """The token was refused, or the file is early-access / paid / exclusive."""


class RemoteNotFoundError(SourceError):
    """The model, version or file does not exist at the source."""


class RateLimitedError(SourceError):
    """The source keeps answering 429/503 even after backing off."""


class SourceTimeoutError(SourceError):
    """A source (often a plugin's) gave no answer within its time budget (``SDHUB_SOURCE_TIMEOUT``)."""


class DownloadError(SdhubError):
    """A transfer failed (network, disk space, interrupted)."""


class HashMismatchError(DownloadError):
    """A downloaded file does not match the hash the source published."""


class ServerError(SdhubError):
    """``sdhub serve`` cannot start: its extra is not installed, the address is taken, the token file is unusable."""


class PluginError(SdhubError):
    """A plugin misbehaved: bad registration, duplicate name, exception in a hook."""


class SamplerError(SdhubError):
    """A sampler name is unknown or does not fit the model family."""


class PipelineError(SdhubError):
    """No pipeline can run this model, or running it failed."""


class OutOfMemoryError(PipelineError):
    """The model or the image did not fit in the device's memory; the message names the options that would help."""


class RuntimeMissingError(PipelineError):
    """The optional runtime (torch, diffusers, transformers) is not installed."""


# --- identification: one class per way a model file can be unreadable (appended by the identify area) ---


class ModelFileError(HeaderError):
    """A model file sdhub cannot read; ``path`` and ``detail`` say which file and why."""

    reason: str = "invalid"

    def __init__(self, path: object, detail: str) -> None:
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{path}: {detail}")


class EmptyFileError(ModelFileError):
    """The file has no bytes at all (an interrupted copy or download)."""

    reason = "empty"


class TruncatedFileError(ModelFileError):
    """The file is shorter than its own header says (an interrupted download)."""

    reason = "truncated"


class HeaderTooLargeError(ModelFileError):
    """The declared header length is over the 100 MB limit (a hostile or corrupt file)."""

    reason = "header_too_large"


class InvalidHeaderError(ModelFileError):
    """The header is not valid JSON of the safetensors shape (dtype, shape, data_offsets, metadata)."""

    reason = "invalid_header"


class InvalidOffsetsError(ModelFileError):
    """Tensor data offsets overlap, leave holes, run out of the file, or disagree with dtype x shape."""

    reason = "invalid_offsets"


class NotSafetensorsError(ModelFileError):
    """The file has a .safetensors name but is something else (zip, pickle, HTML error page...)."""

    reason = "not_safetensors"


class NotACheckpointError(ModelFileError):
    """A zip or pickle that is not a PyTorch checkpoint (no data.pkl, no tensors)."""

    reason = "not_a_checkpoint"


class UnsupportedFormatError(ModelFileError):
    """A file or folder of a kind identification does not read."""

    reason = "unsupported"


# --- sources & downloads (appended by the sources area) ---


class LocalWriteError(DownloadError):
    """A download cannot be written here (disk full, no permission): another server would not help."""


class LinkError(SdhubError):
    """``sdhub link`` cannot use its target: not a UI install (without --force), not writable, unknown layout."""


# --- resource limits (what reading one file may cost; see hub.limits) ---


class LimitExceededError(ModelFileError):
    """Reading a file went past one of sdhub's safety limits (time, memory, pickle size or object count)."""

    reason = "limit_exceeded"


# --- a full disk, wherever sdhub writes (downloads, the catalogue, sidecars, plugins' commands) ---

FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})


def full_disk_reason(exc: BaseException) -> str | None:
    """What a write that failed for lack of room means to a user; None for any other failure."""
    number = getattr(exc, "errno", None)
    if number == errno.EFBIG:
        return "file too large for this file system or the file-size limit (`ulimit -f`)"
    if number == getattr(errno, "EDQUOT", None):
        return "disk quota exceeded"
    if number == errno.ENOSPC:
        return "disk full"
    return None
