"""Sources: reference forms, the Source protocol, the download engine, and installing from them.

``refs`` parses what users type, ``protocol`` is what a source plugin implements (re-exported here, as plugin
authors import ``hub.sources.Source``), ``download`` fetches bytes resumably and verifies them, ``install`` turns a
reference into a catalogued file. The protocol names load on first use so that parsing a reference stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Source", "SourceContext", "SearchQuery", "SearchResult", "SearchPage", "DownloadPlan", "RemoteFile",
    "FetchedFile", "SourceInfo", "KIND_NAMES", "FAMILY_NAMES", "WEIGHT_SUFFIXES",
    "get_sources", "get_source", "source_for", "url_hosts", "first_value", "tag_names",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import protocol

        return getattr(protocol, name)
    raise AttributeError(f"module 'hub.sources' has no attribute {name!r}")
