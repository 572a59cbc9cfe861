"""What models an image or a workflow names: parsing only (no catalogue, no network, nothing executed).

:func:`read_resources` turns one file (PNG text chunks, JPEG/WebP EXIF UserComment, a ``.txt``
infotext, a ComfyUI workflow ``.json``) into :class:`Resource` records. :mod:`hub.resources.classify`
then says which of them the catalogue has, which a source can fetch and which are only names.
"""

from __future__ import annotations

from .model import KIND_FOLDERS, Resource, ResourceError, merge_resources
from .read import MAX_TEXT_BYTES, read_resources

__all__ = ["KIND_FOLDERS", "MAX_TEXT_BYTES", "Resource", "ResourceError", "merge_resources", "read_resources"]
