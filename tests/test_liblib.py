"""The LiblibAI source against a fake liblib.art (website API, signed Open API, CDN)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from hub.errors import AccessDeniedError, RemoteNotFoundError, SourceError
from hub.sources.refs import parse
from hub.sources.protocol import SearchQuery
from hub_plugins.liblib import LiblibSource, claimed_family, sign
from tests.fake_liblib import LModel, LVersion, fake_liblib  # noqa: F401
from tests.source_helpers import env_for, make_ctx, sdxl_lora_bytes

M1, V1, V2 = "a" * 32, "b" * 32, "c" * 32
M2, V3 = "d" * 32, "e" * 32
SRC = LiblibSource()


@pytest.fixture
def lib(fake_liblib, tmp_path):
    fake_liblib.add(LModel(M1, "水墨风格 Ink LoRA", 5, versions=[
        LVersion(V1, "v2.0", sdxl_lora_bytes(tmp_path, 3), filename="ink_v2.safetensors", trigger=["ink", "水墨"]),
        LVersion(V2, "v1.0 VIP", None, vip=True),
    ]))
    fake_liblib.add(LModel(M2, "Flux Thing", 1, versions=[
        LVersion(V3, "F1", b"flux-bytes" * 50, base_type=19, base_type_name="F.1", filename="flux.safetensors",
                 trigger="a, b"),
    ]))
    return fake_liblib


@pytest.fixture
def ctx(lib):
    return make_ctx(**env_for(liblib=lib))


def test_plan_by_uuid_uses_attachment_and_hash(ctx, lib):
    plan = SRC.plan(ctx, parse(f"liblib:{M1}"))
    v = lib.models[M1].versions[0]
    assert plan.url.startswith(lib.cdn.url + "/web/model/")
    assert plan.sha256 == hashlib.sha256(v.data).hexdigest()
    assert (plan.filename, plan.size, plan.claimed_family, plan.claimed_kind) == (
        "ink_v2.safetensors", len(v.data), "sdxl", "lora")
    info = plan.source_info
    assert info.trained_words == ["ink", "水墨"] and info.tags == ["插画"] and info.creator == "作者"
    assert info.page_url == f"{lib.site.url}/modelinfo/{M1}?versionUuid={V1}"
    assert info.license is None  # no Open API keys configured: no signed call made
    assert lib.openapi.requests() == []
    req = lib.site.requests(f"/api/www/model/getByUuid/{M1}")[0]
    assert req.method == "POST" and req.query["timestamp"][0].isdigit() and len(req.query["timestamp"][0]) == 13


def test_pasted_page_url_with_version(ctx):
    plan = SRC.plan(ctx, parse(f"https://www.liblib.art/modelinfo/{M2}?versionUuid={V3}"))
    assert plan.filename == "flux.safetensors" and plan.claimed_family == "flux"
    assert plan.source_info.trained_words == ["a", "b"]


def test_vip_version_is_reported_not_downloadable(ctx):
    with pytest.raises(AccessDeniedError, match="VIP-only version without a public download"):
        SRC.plan(ctx, parse(f"liblib:{M1}@{V2}"))


def test_unknown_model_and_version(ctx):
    with pytest.raises(RemoteNotFoundError, match="LiblibAI has no model"):
        SRC.plan(ctx, parse(f"liblib:{'f' * 32}"))
    with pytest.raises(RemoteNotFoundError, match="has no version"):
        SRC.plan(ctx, parse(f"liblib:{M1}@{'9' * 32}"))


def test_download_from_cdn_verifies(ctx, lib, tmp_path):
    plan = SRC.plan(ctx, parse(f"liblib:{M1}"))
    got = SRC.fetch(ctx, plan, tmp_path / "in")
    assert got.sha256 == plan.sha256 and got.filename == "ink_v2.safetensors"
    assert got.served_by == f"127.0.0.1:{lib.cdn.port}"


def test_lookup_by_sha256_hit_and_miss(ctx, lib):
    sha = hashlib.sha256(lib.models[M2].versions[0].data).hexdigest()
    found = SRC.lookup_hashes(ctx, [sha, "0" * 64])
    assert list(found) == [sha]
    assert (found[sha].model_id, found[sha].version_id, found[sha].claimed_family) == (M2, V3, "flux")
    assert SRC.plan_for_hash(ctx, "0" * 64) is None
    assert SRC.plan_for_hash(ctx, sha).ref == f"liblib:{M2}@{V3}"


def test_search_sends_type_and_base_codes(ctx, lib):
    page = SRC.search(ctx, SearchQuery(text="ink", types=["lora"], base=["sdxl"], limit=10))
    assert [r.ref for r in page.results] == [f"liblib:{M1}"]
    body = __import__("json").loads(lib.site.requests("/api/www/model/search")[-1].body)
    assert body["models"] == [5, 6] and body["types"] == [3] and body["page"] == 1
    assert SRC.search(ctx, SearchQuery(types=["checkpoint"])).results[0].claimed_family == "flux"


def test_search_shows_base_codes_by_name_and_maps_names_to_codes(ctx, lib, run_cli, monkeypatch):
    page = SRC.search(ctx, SearchQuery(text="ink", base=["SD XL"], limit=10))
    assert [r.base_model for r in page.results] == ["SDXL"] and page.warnings == []
    body = __import__("json").loads(lib.site.requests("/api/www/model/search")[-1].body)
    assert body["types"] == [3]
    SRC.search(ctx, SearchQuery(base=["sd 1.5", "flux.1"], limit=10))
    assert __import__("json").loads(lib.site.requests("/api/www/model/search")[-1].body)["types"] == [1, 19]
    assert "no base model 'pony'" in SRC.search(ctx, SearchQuery(base=["pony"])).warnings[0]
    for k, v in env_for(liblib=lib).items():
        monkeypatch.setenv(k, v)
    result = run_cli("search", "ink", "--source", "liblib")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("liblib"))
    assert " SDXL " in row and " 3 " not in row


def test_search_pages_by_cursor_and_refuses_a_foreign_cursor(ctx, lib):
    first = SRC.search(ctx, SearchQuery(limit=1))
    assert first.next_cursor == "2"
    second = SRC.search(ctx, SearchQuery(limit=1, cursor=first.next_cursor))
    assert second.next_cursor is None and {r.ref for r in first.results + second.results} == {f"liblib:{M1}",
                                                                                            f"liblib:{M2}"}
    with pytest.raises(SourceError, match="cursors are page numbers"):
        SRC.search(ctx, SearchQuery(cursor="75363|932023|257749"))  # a Civitai cursor


def test_signed_open_api_lookup_when_keys_configured(lib):
    ctx = make_ctx(LIBLIB_ACCESS_KEY="ak-test", LIBLIB_SECRET_KEY="sk-test", **env_for(liblib=lib))
    plan = SRC.plan(ctx, parse(f"liblib:{M2}"))
    assert lib.signature_failures == []
    assert plan.source_info.license == {"commercialUse": True}
    assert plan.source_info.extra["openapi"]["modelName"] == "Flux Thing"
    q = {k: v[0] for k, v in lib.openapi.requests("/api/model/version/get")[0].query.items()}
    assert set(q) == {"AccessKey", "Signature", "Timestamp", "SignatureNonce"}
    assert "=" not in q["Signature"] and "+" not in q["Signature"] and "/" not in q["Signature"]


def test_wrong_secret_is_rejected_by_the_server_and_tolerated(lib):
    ctx = make_ctx(LIBLIB_ACCESS_KEY="ak-test", LIBLIB_SECRET_KEY="wrong", **env_for(liblib=lib))
    plan = SRC.plan(ctx, parse(f"liblib:{M2}"))  # metadata from the website API still works
    assert lib.signature_failures == ["bad signature"]
    assert plan.source_info.license is None


def test_signature_matches_reference_construction():
    params = sign("/api/model/version/get", "secret", timestamp_ms=1700000000000, nonce="abcdefghij")
    digest = hmac.new(b"secret", b"/api/model/version/get&1700000000000&abcdefghij", hashlib.sha1).digest()
    assert params["Signature"] == base64.b64encode(digest).decode().replace("+", "-").replace("/", "_").rstrip("=")
    assert params["Timestamp"] == "1700000000000"


def test_claimed_family_codes_and_names():
    assert claimed_family(1) == "sd1" and claimed_family(3) == "sdxl" and claimed_family(19) == "flux"
    assert claimed_family(1, "基础算法 XL") == "sdxl" and claimed_family(None, "基础算法 v1.5") == "sd1"
    assert claimed_family(99) is None


def test_open_api_answering_html_is_tolerated(lib):
    """A proxy's login page instead of the Open API's JSON: the website API's metadata still plans the install."""
    from tests.fake_http import FakeServer, Reply

    portal = FakeServer("portal").start()
    try:
        portal.route("POST", "/api/model/version/get")(
            lambda r: Reply(200, {"Content-Type": "text/html"}, b"<html>proxy login</html>"))
        env = {**env_for(liblib=lib), "SDHUB_LIBLIB_OPENAPI_URL": portal.url}
        ctx = make_ctx(LIBLIB_ACCESS_KEY="ak-test", LIBLIB_SECRET_KEY="sk-test", **env)
        plan = SRC.plan(ctx, parse(f"liblib:{M2}"))
        assert plan.filename == "flux.safetensors" and plan.source_info.license is None
        assert len(portal.requests("/api/model/version/get")) == 1
    finally:
        portal.stop()
