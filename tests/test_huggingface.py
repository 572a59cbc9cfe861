"""The Hugging Face source against a fake Hub on two ports (primary + mirror), each with its own CDN."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import pytest

from hub.errors import AuthRequiredError, BadReferenceError, RemoteNotFoundError, SourceError
from hub.sources.refs import parse
from hub.sources.protocol import SearchQuery
from hub_plugins.huggingface import HuggingFaceSource, claimed_family
from tests.fake_hf import HFRepo, fake_hub, git_sha1  # noqa: F401
from tests.source_helpers import env_for, make_ctx, sdxl_lora_bytes

REPO = "acme/pixel-lora"


@pytest.fixture
def hubs(fake_hub, tmp_path):
    fake_hub.app.add(HFRepo(REPO, {
        "pixel.safetensors": sdxl_lora_bytes(tmp_path, 5),
        "README.md": b"# pixel\n",
        "sub/extra.safetensors": b"x" * 2000,
    }, commit="c" * 40, tags=["lora", "stable-diffusion-xl", "base_model:stabilityai/stable-diffusion-xl-base-1.0"],
        downloads=50))
    fake_hub.app.add(HFRepo("acme/two-weights", {"a.safetensors": b"a" * 3000, "b.safetensors": b"b" * 3000},
                            tags=["stable-diffusion"], downloads=10))
    fake_hub.app.add(HFRepo("acme/gated", {"g.safetensors": b"g" * 3000}, gated=True, tags=["flux"], downloads=5))
    return fake_hub


def ctx_for(hubs, **env):
    return make_ctx(**env_for(hf=hubs.endpoints), **env)


def trusted(hubs) -> HuggingFaceSource:
    """The primary plays huggingface.co: the only host the token may go to by default."""
    return HuggingFaceSource(trusted_hosts=[urlsplit(hubs.primary.url).netloc], metadata_timeout=2)


def test_plan_reads_hub_headers_and_tags(hubs):
    src, ctx = trusted(hubs), ctx_for(hubs)
    plan = src.plan(ctx, parse(f"hf:{REPO}/pixel.safetensors"))
    data = hubs.app.repos[REPO].files["pixel.safetensors"]
    assert plan.sha256 == hashlib.sha256(data).hexdigest()
    assert plan.size == len(data) and plan.filename == "pixel.safetensors"
    assert plan.endpoint == hubs.primary.url
    assert urlsplit(plan.url).netloc == f"127.0.0.1:{hubs.primary.cdn.port}"
    assert (plan.claimed_family, plan.claimed_kind) == ("sdxl", "lora")
    info = plan.source_info
    assert (info.model_id, info.version_id, info.file_id) == (REPO, "c" * 40, "pixel.safetensors")
    assert info.license == {"license": "openrail++"}
    head = hubs.primary.api.requests(f"/{REPO}/resolve/", "HEAD")
    assert head and head[0].header("Accept-Encoding") == "identity"


def test_fetch_from_primary_cdn(hubs, tmp_path):
    src, ctx = trusted(hubs), ctx_for(hubs)
    plan = src.plan(ctx, parse(f"https://huggingface.co/{REPO}/blob/main/pixel.safetensors"))
    got = src.fetch(ctx, plan, tmp_path / "in")
    assert got.sha256 == plan.sha256
    assert got.served_by == f"{hubs.primary.url} (file from 127.0.0.1:{hubs.primary.cdn.port})"
    assert hubs.mirror.all_requests() == []


def test_primary_down_mirror_serves(hubs, tmp_path):
    hubs.primary.go_down()
    src, ctx = trusted(hubs), ctx_for(hubs)
    plan = src.plan(ctx, parse(f"hf:{REPO}/pixel.safetensors"))
    assert plan.endpoint == hubs.mirror.url
    assert any("skipped" in w and hubs.primary.url in w for w in plan.warnings)
    got = src.fetch(ctx, plan, tmp_path / "in")
    assert got.sha256 == plan.sha256 and got.served_by.startswith(hubs.mirror.url)


def test_primary_5xx_on_metadata_falls_back(hubs):
    hubs.primary.fail_status = 502
    plan = trusted(hubs).plan(ctx_for(hubs), parse(f"hf:{REPO}/pixel.safetensors"))
    assert plan.endpoint == hubs.mirror.url


def test_redirected_file_request_fails_separately(hubs, tmp_path):
    hubs.primary.cdn_fail_status = 503  # the HEAD works, the CDN it points to does not
    src, ctx = trusted(hubs), ctx_for(hubs)
    plan = src.plan(ctx, parse(f"hf:{REPO}/pixel.safetensors"))
    assert plan.endpoint == hubs.primary.url
    got = src.fetch(ctx, plan, tmp_path / "in")
    assert got.served_by == f"{hubs.mirror.url} (file from 127.0.0.1:{hubs.mirror.cdn.port})"
    assert got.sha256 == plan.sha256
    assert hubs.primary.cdn.requests()  # it was tried first


def test_part_started_on_primary_is_resumed_from_mirror(hubs, tmp_path):
    repo = hubs.app.repos[REPO]
    repo.files["big.safetensors"] = bytes(range(256)) * 4000
    src, ctx = trusted(hubs), ctx_for(hubs)
    ctx.download_options.chunk_size = 64_000
    ctx.download_options.retry.attempts = 1
    plan = src.plan(ctx, parse(f"hf:{REPO}/big.safetensors"))
    served = hubs.primary.cdn_files[plan.sha256]
    served.drop_after, served.drop_times = 320_000, 100
    got = src.fetch(ctx, plan, tmp_path / "in")
    assert got.served_by.startswith(hubs.mirror.url)
    assert got.resumed_from == 320_000 and got.sha256 == plan.sha256
    assert hubs.mirror.cdn.requests()[0].header("Range") == "bytes=320000-"


def test_token_goes_to_trusted_endpoint_only_never_to_cdn_or_mirror(hubs, tmp_path):
    ctx = ctx_for(hubs, HF_TOKEN="hf_secret")
    src = trusted(hubs)
    src.fetch(ctx, src.plan(ctx, parse(f"hf:{REPO}/pixel.safetensors")), tmp_path / "a")
    hub_calls = [r for r in hubs.primary.api.requests() if r.path != "/api/models"]  # the liveness probe sends none
    assert hub_calls and all(r.header("Authorization") == "Bearer hf_secret" for r in hub_calls)
    assert all(r.header("Authorization") is None for r in hubs.primary.cdn.requests())
    hubs.primary.go_down()
    src.fetch(ctx, src.plan(ctx, parse(f"hf:{REPO}/sub/extra.safetensors")), tmp_path / "b")
    assert hubs.mirror.all_requests() and all(r.header("Authorization") is None for r in hubs.mirror.all_requests())


def test_token_to_mirror_when_allowed(hubs, tmp_path):
    hubs.primary.go_down()
    ctx = ctx_for(hubs, HF_TOKEN="hf_secret", SDHUB_HF_TOKEN_TO_MIRRORS="1")
    plan = trusted(hubs).plan(ctx, parse("hf:acme/gated/g.safetensors"))
    assert plan.endpoint == hubs.mirror.url
    assert hubs.mirror.api.requests()[0].header("Authorization") == "Bearer hf_secret"


def test_gated_without_token_says_what_to_do(hubs):
    with pytest.raises(AuthRequiredError, match="gated.*HF_TOKEN"):
        trusted(hubs).plan(ctx_for(hubs), parse("hf:acme/gated/g.safetensors"))


def test_missing_file_is_final_no_mirror_tried(hubs):
    with pytest.raises(RemoteNotFoundError, match="no such file"):
        trusted(hubs).plan(ctx_for(hubs), parse(f"hf:{REPO}/nope.safetensors"))
    with pytest.raises(RemoteNotFoundError, match="no such repository"):
        trusted(hubs).plan(ctx_for(hubs), parse("hf:acme/missing/x.safetensors"))
    assert hubs.mirror.all_requests() == []


def test_every_endpoint_down_lists_each_failure(hubs):
    hubs.primary.go_down()
    hubs.mirror.fail_status = 503
    with pytest.raises(SourceError, match="every Hugging Face endpoint failed.*HTTP 503"):
        trusted(hubs).plan(ctx_for(hubs), parse(f"hf:{REPO}/pixel.safetensors"))


def test_small_git_file_verified_by_blob_sha1(hubs, tmp_path):
    src, ctx = trusted(hubs), ctx_for(hubs)
    plan = src.plan(ctx, parse(f"hf:{REPO}/README.md"))
    assert plan.sha256 is None and plan.extra["git_sha1"] == git_sha1(b"# pixel\n")
    got = src.fetch(ctx, plan, tmp_path / "in")
    assert got.git_sha1 == plan.extra["git_sha1"]


def test_repo_reference_picks_the_single_weights_file(hubs):
    src, ctx = trusted(hubs), ctx_for(hubs)
    assert src.plan(ctx, parse(f"hf:{REPO}")).filename == "pixel.safetensors"
    with pytest.raises(BadReferenceError, match="hf:acme/two-weights/a.safetensors"):
        src.plan(ctx, parse("hf:acme/two-weights"))


def test_list_files_carries_lfs_sha256(hubs):
    files = {f.name: f for f in trusted(hubs).list_files(ctx_for(hubs), parse(f"hf:{REPO}"))}
    assert set(files) == {"pixel.safetensors", "README.md", "sub/extra.safetensors"}
    assert files["sub/extra.safetensors"].sha256 == hashlib.sha256(b"x" * 2000).hexdigest()
    assert files["README.md"].sha256 is None


def test_search_follows_link_pagination_and_filters(hubs):
    hubs.app.page_size = 1
    page = trusted(hubs).search(ctx_for(hubs), SearchQuery(text="acme", limit=5, sort="downloads"))
    assert [r.ref for r in page.results] == ["hf:acme/pixel-lora", "hf:acme/two-weights", "hf:acme/gated"]
    assert len([r for r in hubs.primary.api.requests("/api/models", "GET") if "search" in r.query]) == 3
    page = trusted(hubs).search(ctx_for(hubs), SearchQuery(types=["lora"], base=["sdxl"]))
    assert [r.ref for r in page.results] == ["hf:acme/pixel-lora"] and page.results[0].claimed_family == "sdxl"


def test_search_falls_back_to_mirror(hubs):
    hubs.primary.go_down()
    page = trusted(hubs).search(ctx_for(hubs), SearchQuery(text="pixel"))
    assert page.results[0].page_url.startswith(hubs.mirror.url)


def test_file_in_local_hf_cache_is_reused(hubs, tmp_path):
    from huggingface_hub import hf_hub_download

    ctx = ctx_for(hubs)
    hf_hub_download(REPO, "pixel.safetensors", endpoint=hubs.mirror.url, cache_dir=ctx.settings.hf_cache_dir,
                    token=False)
    before = len(hubs.primary.cdn.requests())
    src = trusted(hubs)
    got = src.fetch(ctx, src.plan(ctx, parse(f"hf:{REPO}/pixel.safetensors")), tmp_path / "in")
    assert got.served_by.startswith("local Hugging Face cache")
    assert len(hubs.primary.cdn.requests()) == before
    assert got.sha256 == hashlib.sha256(hubs.app.repos[REPO].files["pixel.safetensors"]).hexdigest()


def test_claimed_family_from_tags():
    assert claimed_family(["base_model:stabilityai/stable-diffusion-xl-base-1.0"]) == "sdxl"
    assert claimed_family(["flux", "lora"]) == "flux"
    assert claimed_family(["text-generation"]) is None


def test_no_free_space_is_final_no_mirror_tried(hubs, tmp_path):
    from hub.errors import LocalWriteError

    src, ctx = trusted(hubs), ctx_for(hubs)
    plan = src.plan(ctx, parse(f"hf:{REPO}/pixel.safetensors"))
    plan.size = 1 << 60  # as if the Hub announced an enormous file
    with pytest.raises(LocalWriteError, match="not enough free space"):
        src.fetch(ctx, plan, tmp_path / "in")
    assert hubs.primary.cdn.requests() == [] and hubs.mirror.all_requests() == []


def test_endpoint_answering_html_is_skipped_not_a_crash(hubs):
    """A captive portal or a proxy's page in front of the first endpoint: JSON calls fall back like a 5xx does."""
    from tests.fake_http import FakeServer, Reply

    portal = FakeServer("portal").start()
    try:
        portal.route("GET", r"/.*")(lambda r: Reply(200, {"Content-Type": "text/html"}, b"<html>log in</html>"))
        src = trusted(hubs)
        ctx = make_ctx(SDHUB_HF_ENDPOINTS=f"{portal.url},{hubs.mirror.url}")
        plan = src.plan(ctx, parse(f"hf:{REPO}"))  # lists the repository: JSON from the API
        assert plan.filename == "pixel.safetensors" and plan.endpoint == hubs.mirror.url
        assert src.search(ctx, SearchQuery(text="pixel")).results[0].ref == f"hf:{REPO}"
        with pytest.raises(SourceError, match="every Hugging Face endpoint failed.*not the Hub's JSON"):
            src.plan(make_ctx(SDHUB_HF_ENDPOINTS=portal.url), parse(f"hf:{REPO}"))
    finally:
        portal.stop()
