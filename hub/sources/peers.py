"""Peers (``SDHUB_PEERS=http://server:8765`` or ``[sources] peers``): a studio's ``sdhub serve``, asked before the internet.

For each install, each peer is asked ``GET /api/sdhub/v1/resolve?ref=…`` (its catalogue only). A peer that holds the
file becomes the plan: its bytes from ``/api/sdhub/v1/files/{sha256}/content`` through sdhub's own downloader (resume,
free-space check), then verified exactly like a download from the source: the SHA256 (the one in the reference when it
names one, else the peer's, which must also match every hash the original source published), identified and
registered with the peer's source links (so ``civitai:…``/``hf:…`` resolve locally afterwards).

A peer that is down, does not hold the file, or serves bytes that fail verification (quarantined as any mismatch) is
passed over with a warning; the internet sources come next, as without peers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from ..catalogue import SourceInfo
from ..errors import BadReferenceError
from .protocol import DownloadPlan, FetchedFile, SearchPage, SearchQuery, Source, SourceContext
from .refs import Ref

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Hub

_INFO_FIELDS = {f.name for f in dataclasses.fields(SourceInfo)}
ASK_TIMEOUT = (3.0, 10.0)


class PeerSource(Source):
    """The peer's bytes, fetched by our engine from the plan's URL (the content endpoint of the peer)."""

    name = "peer"
    description = "another machine's `sdhub serve` (SDHUB_PEERS)"

    def handles(self, ref: Ref) -> bool:
        return False  # never the owner of a reference: asked before the owner, by install

    def search(self, ctx: SourceContext, query: SearchQuery) -> SearchPage:
        return SearchPage(results=[])

    def plan(self, ctx: SourceContext, ref: Ref) -> DownloadPlan:
        raise BadReferenceError("peers are asked by install, not planned directly")

    def fetch(self, ctx: SourceContext, plan: DownloadPlan, dest_dir: Path) -> FetchedFile:
        fetched = super().fetch(ctx, plan, dest_dir)
        fetched.served_by = f"peer {plan.endpoint}"
        return fetched


def _source_info(entry: dict[str, Any]) -> SourceInfo | None:
    try:
        return SourceInfo(**{k: v for k, v in entry.items() if k in _INFO_FIELDS})
    except TypeError:
        return None


def plan_from_answer(peer: str, ref: Ref, data: dict[str, Any]) -> DownloadPlan | None:
    """A plan for the file a peer answered with; None when the answer is not a usable file."""
    sha = str((data.get("hashes") or {}).get("sha256") or "").lower()
    path = data.get("download_url")
    if len(sha) != 64 or not isinstance(path, str) or not path.startswith("/"):
        return None
    if ref.scheme == "hash" and ref.hash_kind == "sha256" and len(ref.hash_value or "") == 64:
        sha = (ref.hash_value or "").lower()  # the user's own hash decides, not the peer's word
    infos = [i for i in (_source_info(e) for e in data.get("source_infos") or [] if isinstance(e, dict)) if i]
    info = next((i for i in infos if i.source == ref.scheme), infos[0] if infos else None)
    name = str(data.get("name") or f"{sha[:16]}.safetensors")
    if info is None:
        info = SourceInfo(source="peer", model_id=peer, file_id=sha, original_filename=name)
    size = data.get("size") if isinstance(data.get("size"), int) else None
    return DownloadPlan(
        source=info.source, ref=ref.canonical(), url=peer + path, filename=info.original_filename or name, size=size,
        source_info=info, sha256=sha, published_hashes=dict(info.published_hashes),
        claimed_family=info.claimed_family, claimed_kind=info.claimed_kind, endpoint=peer,
        extra={"peer": peer, "size_exact": True},
    )


def ask_peers(hub: Hub, ref: Ref, ctx: SourceContext, notes: list[str]) -> Iterator[DownloadPlan]:
    """Plans from each peer that holds ``ref``, in the configured order; why others did not go into ``notes``."""
    for peer in hub.settings.peers:
        try:
            resp = ctx.http.session.get(f"{peer}/api/sdhub/v1/resolve", params={"ref": ref.canonical()},
                                        timeout=ASK_TIMEOUT, headers={"User-Agent": ctx.http.user_agent})
        except requests.RequestException as exc:
            notes.append(f"peer {peer}: not reachable ({type(exc).__name__})")
            continue
        with resp:
            if resp.status_code == 404:
                continue
            if resp.status_code != 200:
                notes.append(f"peer {peer}: answered HTTP {resp.status_code}")
                continue
            try:
                data = resp.json()
            except ValueError:
                notes.append(f"peer {peer}: answered something that is not sdhub's JSON")
                continue
        plan = plan_from_answer(peer, ref, data) if isinstance(data, dict) else None
        if plan is None:
            notes.append(f"peer {peer}: its answer names no file to fetch")
            continue
        yield plan
