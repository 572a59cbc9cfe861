"""The Civitai source against a fake Civitai speaking the real REST v1 contract."""

from __future__ import annotations

import hashlib
import time

import pytest

from hub.errors import (
    AccessDeniedError,
    DownloadError,
    AuthRequiredError,
    BadReferenceError,
    RateLimitedError,
    RemoteNotFoundError,
)
from hub.sources.refs import parse
from hub.sources.protocol import SearchQuery
from hub_plugins.civitai import CivitaiSource, claimed_family, early_access_until
from tests.fake_civitai import CFile, CModel, CVersion, civitai_hashes, fake_civitai  # noqa: F401
from tests.source_helpers import env_for, make_ctx, sdxl_lora_bytes


@pytest.fixture
def civ(fake_civitai, tmp_path):
    lora = sdxl_lora_bytes(tmp_path, seed=1)
    fake_civitai.add(CModel(1001, "Pixel Art XL", "LORA", tags=["pixel art"], versions=[
        CVersion(2002, "v1.1", "SDXL 1.0", trained_words=["pixel art"], files=[CFile(3003, "pixel-art-xl.safetensors", lora)]),
        CVersion(2001, "v1.0", "SDXL 1.0", files=[CFile(3001, "pixel-art-xl-v10.safetensors", sdxl_lora_bytes(tmp_path, 2))]),
    ]))
    fake_civitai.add(CModel(1002, "Gated Model", "Checkpoint", versions=[
        CVersion(2010, "v1", "SD 1.5", require_auth=True, files=[CFile(3010, "gated.safetensors", b"gated" * 100)]),
    ]))
    fake_civitai.add(CModel(1003, "Fresh Model", "Checkpoint", versions=[
        CVersion(2020, "v2", "Pony", early_access_deadline="2099-01-02T03:04:05.000Z",
                 files=[CFile(3020, "fresh.safetensors", b"fresh" * 100)]),
    ]))
    fake_civitai.add(CModel(1004, "Old Model", "Checkpoint", versions=[CVersion(2030, "v1", "SD 1.5", archived=True)]))
    fake_civitai.add(CModel(1005, "Locked", "Checkpoint", versions=[
        CVersion(2040, "v1", "SD 1.5", downloads_disabled=True, files=[CFile(3040, "locked.safetensors", b"x" * 10)]),
    ]))
    fake_civitai.add(CModel(1006, "Multi File", "Checkpoint", versions=[
        CVersion(2050, "v1", "SD 1.5", files=[
            CFile(3050, "multi.safetensors", b"m" * 5000),
            CFile(3051, "multi-vae.safetensors", b"v" * 3000, type="VAE", primary=False),
        ]),
    ]))
    return fake_civitai


@pytest.fixture
def ctx(civ):
    return make_ctx(**env_for(civitai=civ))


@pytest.fixture
def token_ctx(civ):
    return make_ctx(CIVITAI_API_TOKEN="good-token", **env_for(civitai=civ))


SRC = CivitaiSource()


def test_search_filters_and_maps_kinds(ctx, civ):
    page = SRC.search(ctx, SearchQuery(text="pixel", types=["lora"], base=["sdxl"], limit=10))
    assert [r.ref for r in page.results] == ["civitai:1001@2002"]
    r = page.results[0]
    assert (r.kind, r.base_model, r.claimed_family, r.creator) == ("lora", "SDXL 1.0", "sdxl", "tester")
    req = civ.api.requests("/api/v1/models")[-1]
    assert req.query["types"] == ["LORA", "LoCon", "DoRA"]
    assert "SDXL 1.0" in req.query["baseModels"] and "Pony" in req.query["baseModels"]
    assert "page" not in req.query  # query search must use cursors


@pytest.mark.parametrize("typed, sent", [
    ("lycoris", ["LoCon"]), ("LyCORIS", ["LoCon"]), ("locon", ["LoCon"]), ("dora", ["LoCon", "DoRA"][1:]),
    ("embedding", ["TextualInversion"]), ("textualinversion", ["TextualInversion"]), ("hypernetwork", ["Hypernetwork"]),
    ("aestheticgradient", ["AestheticGradient"]), ("controlnet", ["Controlnet"]), ("upscaler", ["Upscaler"]),
    ("motionmodule", ["MotionModule"]), ("vae", ["VAE"]), ("poses", ["Poses"]), ("wildcards", ["Wildcards"]),
    ("workflows", ["Workflows"]), ("detection", ["Detection"]), ("other", ["Other"]), ("checkpoint", ["Checkpoint"]),
])
def test_every_model_type_goes_out_as_civitais_enum_value(ctx, civ, typed, sent):
    page = SRC.search(ctx, SearchQuery(types=[typed], limit=5))  # the fake answers 400 to a value off the enum
    assert civ.api.requests("/api/v1/models")[-1].query["types"] == sent
    assert page.warnings == []


@pytest.mark.parametrize("typed, sent", [
    ("pony", ["Pony"]), ("Illustrious", ["Illustrious"]), ("illustrious", ["Illustrious"]), ("sdxl 1.0", ["SDXL 1.0"]),
    ("sd 1.5", ["SD 1.5"]), ("sd15", ["SD 1.5"]), ("SD1.5", ["SD 1.5"]), ("flux.1 d", ["Flux.1 D"]),
    ("flux1-dev", ["Flux.1 D"]), ("noobai", ["NoobAI"]), ("pony v7", ["Pony V7"]), ("hunyuan video", ["Hunyuan Video"]),
])
def test_base_models_go_out_as_civitais_enum_values(ctx, civ, typed, sent):
    page = SRC.search(ctx, SearchQuery(base=[typed], limit=5))
    assert civ.api.requests("/api/v1/models")[-1].query["baseModels"] == sent
    assert page.warnings == []
    if typed == "pony":
        assert [r.ref for r in page.results] == ["civitai:1003@2020"]


def test_sort_and_period_are_mapped_case_insensitively(ctx, civ):
    SRC.search(ctx, SearchQuery(sort="most downloaded", period="week", limit=5))
    q = civ.api.requests("/api/v1/models")[-1].query
    assert (q["sort"], q["period"]) == (["Most Downloaded"], ["Week"])


def test_unknown_filter_values_pass_through_with_a_warning_and_civitais_400_names_them(ctx, civ):
    from hub.errors import SourceError

    with pytest.raises(SourceError, match="Invalid enum value.*received 'Gizmo'"):
        SRC.search(ctx, SearchQuery(types=["Gizmo"], limit=5))
    assert civ.api.requests("/api/v1/models")[-1].query["types"] == ["Gizmo"]
    assert SRC.search(ctx, SearchQuery(types=["lora"], limit=5)).warnings == []
    from hub_plugins.civitai import civitai_base_models, civitai_types

    assert civitai_types("Gizmo") == (["Gizmo"], civitai_types("Gizmo")[1]) and "no model type 'Gizmo'" in civitai_types("Gizmo")[1]
    assert civitai_base_models("Zeta 9")[0] == ["Zeta 9"] and "no base model 'Zeta 9'" in civitai_base_models("Zeta 9")[1]


def test_search_cli_warns_about_an_unknown_value(civ, run_cli, monkeypatch):
    for k, v in env_for(civitai=civ).items():
        monkeypatch.setenv(k, v)
    result = run_cli("search", "--source", "civitai", "--type", "lycoris", "--base", "pony")
    assert result.exit_code == 0, result.output
    q = civ.api.requests("/api/v1/models")[-1].query
    assert (q["types"], q["baseModels"]) == (["LoCon"], ["Pony"])
    result = run_cli("search", "--source", "civitai", "--type", "gizmo")
    assert result.exit_code == 1 and "Traceback" not in result.output
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "Invalid enum value" in error and "received 'gizmo'" in error and "no model type 'gizmo'" in error


def test_page_mode_paging_follows_next_page(ctx, civ):
    civ.page_mode = True
    seen, cursor = [], None
    for _ in range(10):
        page = SRC.search(ctx, SearchQuery(limit=4, cursor=cursor))
        seen += [r.ref.split("@")[0] for r in page.results]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"civitai:{i}" for i in range(1001, 1007)]
    assert civ.api.requests("/api/v1/models")[-1].query["page"] == ["2"]


@pytest.mark.parametrize("numeric", [False, True])
def test_cursor_paging_with_string_and_numeric_cursors(ctx, civ, numeric):
    civ.numeric_cursor = numeric
    seen, cursor = [], None
    for _ in range(10):
        page = SRC.search(ctx, SearchQuery(limit=2, cursor=cursor))
        seen += [r.ref.split("@")[0] for r in page.results]
        cursor = page.next_cursor
        if cursor is None:
            break
    # 1005/1006 and 1004 (archived) included; nothing twice, nothing missing
    assert seen == [f"civitai:{i}" for i in range(1001, 1007)]


def test_plan_latest_version_primary_file_with_hashes(ctx, civ):
    plan = SRC.plan(ctx, parse("civitai:1001"))
    assert plan.ref == "civitai:1001@2002"
    assert plan.filename == "pixel-art-xl.safetensors"
    expected = civitai_hashes(civ.served[3003].data)
    assert plan.sha256 == expected["SHA256"].lower()
    assert plan.published_hashes["autov3"] == expected["AutoV3"].lower() and len(plan.published_hashes["autov3"]) == 12
    assert plan.claimed_family == "sdxl" and plan.claimed_kind == "lora"
    info = plan.source_info
    assert (info.model_id, info.version_id, info.file_id) == ("1001", "2002", "3003")
    assert info.trained_words == ["pixel art"] and info.tags == ["pixel art"]
    assert info.page_url.endswith("/models/1001?modelVersionId=2002")
    assert plan.url.startswith(civ.api.url + "/api/download/models/2002")  # rebased onto the configured endpoint


def test_plan_forms_agree(ctx, civ):
    by_version = SRC.plan(ctx, parse("civitai:@2001"))
    by_air = SRC.plan(ctx, parse("urn:air:sdxl:lora:civitai:1001@2001"))
    by_page = SRC.plan(ctx, parse("https://civitai.com/models/1001/pixel?modelVersionId=2001"))
    by_dl = SRC.plan(ctx, parse("https://civitai.com/api/download/models/2001"))
    assert {p.sha256 for p in (by_version, by_air, by_page, by_dl)} == {by_version.sha256}
    assert by_version.filename == "pixel-art-xl-v10.safetensors"


def test_file_selection_by_name_id_and_download_url_selectors(ctx):
    assert SRC.plan(ctx, parse("civitai:1006@2050/multi-vae.safetensors")).filename == "multi-vae.safetensors"
    assert SRC.plan(ctx, parse("civitai:1006@2050/3051")).filename == "multi-vae.safetensors"
    assert SRC.plan(ctx, parse("https://civitai.com/api/download/models/2050?type=VAE&format=SafeTensor")).filename \
        == "multi-vae.safetensors"
    assert SRC.plan(ctx, parse("civitai:1006")).filename == "multi.safetensors"
    with pytest.raises(BadReferenceError, match="its files are: 3050=multi.safetensors"):
        SRC.plan(ctx, parse("civitai:1006@2050/nope.bin"))
    files = SRC.list_files(ctx, parse("civitai:1006@2050"))
    assert [(f.name, f.primary, f.kind) for f in files] == [("multi.safetensors", True, "Model"),
                                                            ("multi-vae.safetensors", False, "VAE")]


def test_fetch_sends_token_to_civitai_only(token_ctx, civ, tmp_path):
    plan = SRC.plan(token_ctx, parse("civitai:1002"))
    got = SRC.fetch(token_ctx, plan, tmp_path)
    assert got.sha256 == hashlib.sha256(b"gated" * 100).hexdigest()
    assert got.served_by == f"127.0.0.1:{civ.storage.port}"
    api_dl = civ.api.requests("/api/download/models/2010")
    assert api_dl and all(r.header("Authorization") == "Bearer good-token" for r in api_dl)
    storage = civ.storage.requests("/files/")
    assert storage and all(r.header("Authorization") is None and "token" not in r.query for r in storage)
    assert "token" not in str(api_dl[0].query)  # token in a header, never in the URL


def test_token_not_sent_to_a_download_url_on_another_host(token_ctx, civ, tmp_path):
    data = b"elsewhere" * 100
    civ.add(CModel(1090, "Elsewhere", "LORA", versions=[CVersion(2090, "v1", files=[
        CFile(3090, "elsewhere.safetensors", data, download_url=f"{civ.storage.url}/files/3090/elsewhere.safetensors")])]))
    plan = SRC.plan(token_ctx, parse("civitai:1090"))
    assert plan.url.startswith(civ.storage.url) and plan.auth_headers == {} and not plan.to_dict()["sends_token"]
    got = SRC.fetch(token_ctx, plan, tmp_path)
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    assert all(r.header("Authorization") is None for r in civ.storage.requests())
    assert SRC.plan(token_ctx, parse("civitai:1002")).auth_headers == {"Authorization": "Bearer good-token"}


def test_login_required_message_names_the_token_variable(ctx, tmp_path):
    plan = SRC.plan(ctx, parse("civitai:1002"))
    with pytest.raises(AuthRequiredError, match="requires a login.*CIVITAI_API_TOKEN"):
        SRC.fetch(ctx, plan, tmp_path)
    assert list(tmp_path.iterdir()) == []  # no 1 KB JSON saved as a "model"


def test_bad_token_is_reported_as_refused(civ, tmp_path):
    ctx = make_ctx(CIVITAI_API_TOKEN="wrong", **env_for(civitai=civ))
    with pytest.raises(AuthRequiredError, match="refused the API token"):
        SRC.fetch(ctx, SRC.plan(ctx, parse("civitai:1002")), tmp_path)


def test_expired_storage_link_is_not_blamed_on_the_token(token_ctx, civ, tmp_path):
    civ.storage_link_expired = True
    expected = r"storage host refused the signed download link \(AccessDenied: Request has expired\)"
    with pytest.raises(AccessDeniedError, match=expected) as err:
        SRC.fetch(token_ctx, SRC.plan(token_ctx, parse("civitai:1002")), tmp_path)
    assert "CIVITAI_API_TOKEN" not in str(err.value) and f"127.0.0.1:{civ.storage.port}" in str(err.value)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


def test_early_access_shows_deadline_at_plan_and_download(ctx, tmp_path):
    plan = SRC.plan(ctx, parse("civitai:1003"))
    assert plan.early_access_until == "2099-01-02T03:04:05Z"
    assert any("Early Access until 2099-01-02 03:04 UTC" in w for w in plan.warnings)
    with pytest.raises(AccessDeniedError, match="Early Access until 2099-01-02 03:04 UTC"):
        SRC.fetch(ctx, plan, tmp_path)


def test_early_access_detection_forms():
    assert early_access_until({"earlyAccessDeadline": "2000-01-01T00:00:00Z"}) is None
    assert early_access_until({"availability": "EarlyAccess"}) == "unknown"
    assert early_access_until({"paidAccess": {"permanent": False, "endsAt": "2099-05-01T00:00:00Z"}}) \
        == "2099-05-01T00:00:00Z"
    # The current shape (site/reference/model-versions.md): earlyAccessEndsAt beside availability.
    assert early_access_until({"availability": "EarlyAccess", "earlyAccessEndsAt": "2099-06-01T10:20:30.000Z",
                               "earlyAccessConfig": {"timeframe": 7}}) == "2099-06-01T10:20:30Z"
    assert early_access_until({"availability": "EarlyAccess", "earlyAccessEndsAt": "2001-06-01T00:00:00.000Z"}) is None
    assert early_access_until({"availability": "Public", "earlyAccessEndsAt": None, "earlyAccessConfig": None}) is None
    assert early_access_until({"earlyAccessTimeFrame": 3, "publishedAt": "2099-01-01T00:00:00Z"}) \
        == "2099-01-04T00:00:00Z"
    assert early_access_until({"paidAccess": {"permanent": True, "endsAt": None}}) is None  # paid, not early access


@pytest.mark.parametrize("shape", ["current", "list-2026-08"])
def test_early_access_marked_in_search_and_plan_for_each_live_shape(ctx, civ, shape):
    civ.models[1003].versions[0].early_access_shape = shape
    [row] = SRC.search(ctx, SearchQuery(text="fresh")).results
    assert (row.early_access_until, row.paid) == ("2099-01-02T03:04:05Z", True)
    plan = SRC.plan(ctx, parse("civitai:1003@2020"))
    assert plan.early_access_until == "2099-01-02T03:04:05Z" == plan.to_dict()["early_access_until"]
    assert plan.source_info.extra["early_access_until"] == "2099-01-02T03:04:05Z"
    # Straight from the version endpoint (no model fetched) too.
    assert SRC.plan(ctx, parse("civitai:@2020")).early_access_until == "2099-01-02T03:04:05Z"


def test_early_access_bought_downloads(civ, tmp_path):
    civ.early_access_buyers.add("buyer-token")
    ctx = make_ctx(CIVITAI_API_TOKEN="buyer-token", **env_for(civitai=civ))
    plan = SRC.plan(ctx, parse("civitai:1003"))
    assert plan.early_access_until  # still marked: the plan cannot know what the account bought
    got = SRC.fetch(ctx, plan, tmp_path)
    assert got.sha256 == hashlib.sha256(b"fresh" * 100).hexdigest()


def test_early_access_refusal_without_a_date_uses_the_plans(ctx, civ, tmp_path):
    civ.early_access_body_deadline = False
    plan = SRC.plan(ctx, parse("civitai:1003"))
    with pytest.raises(AccessDeniedError, match="Early Access until 2099-01-02 03:04 UTC.*set CIVITAI_API_TOKEN"):
        SRC.fetch(ctx, plan, tmp_path)
    civ.models[1003].versions[0].early_access_shape = "no-date"
    plan = SRC.plan(ctx, parse("civitai:1003"))
    assert plan.early_access_until == "unknown"
    with pytest.raises(AccessDeniedError, match=r"Early Access \(Civitai gives no end date\)"):
        SRC.fetch(ctx, plan, tmp_path)


def test_disabled_downloads_is_access_denied(ctx, tmp_path):
    with pytest.raises(AccessDeniedError, match="disabled downloads"):
        SRC.fetch(ctx, SRC.plan(ctx, parse("civitai:1005")), tmp_path)


def test_archived_and_missing(ctx, civ, tmp_path):
    with pytest.raises(RemoteNotFoundError, match="archived"):
        SRC.plan(ctx, parse("civitai:1004"))
    with pytest.raises(RemoteNotFoundError, match="No model with id 999"):
        SRC.plan(ctx, parse("civitai:999"))
    with pytest.raises(RemoteNotFoundError, match="no published version 42"):
        SRC.plan(ctx, parse("civitai:1001@42"))
    # a version archived after we planned it: the download answers 410
    plan = SRC.plan(ctx, parse("civitai:1001@2001"))
    civ.models[1001].versions[1].archived = True
    with pytest.raises(RemoteNotFoundError, match="archived and no longer downloadable"):
        SRC.fetch(ctx, plan, tmp_path)


def test_download_limiter_429_backs_off_then_succeeds(ctx, civ, tmp_path):
    civ.download_limit_429 = 2
    civ.retry_after = "1"
    t0 = time.monotonic()
    got = SRC.fetch(ctx, SRC.plan(ctx, parse("civitai:1001")), tmp_path)
    assert got.size == len(civ.served[3003].data)
    assert time.monotonic() - t0 >= 0.1  # two capped waits (0.05 s each) were really taken
    assert len(civ.api.requests("/api/download/models/2002")) == 3


def test_download_limiter_429_forever_is_rate_limited(ctx, civ, tmp_path):
    civ.download_limit_429 = 10
    civ.retry_after = None
    with pytest.raises(RateLimitedError, match="rate limiting"):
        SRC.fetch(ctx, SRC.plan(ctx, parse("civitai:1001")), tmp_path)


def test_lookup_by_any_hash_kind(ctx, civ):
    hashes = civitai_hashes(civ.served[3003].data)
    for value in (hashes["SHA256"].lower(), hashes["AutoV2"], hashes["AutoV3"], hashes["BLAKE3"]):
        plan = SRC.plan_for_hash(ctx, value)
        assert plan is not None and plan.source_info.file_id == "3003", value
    assert SRC.plan_for_hash(ctx, "0" * 64) is None


def test_batch_lookup_splits_into_posts_of_100(ctx, civ):
    real = [civitai_hashes(civ.served[f].data)["SHA256"].lower() for f in (3003, 3050, 3051)]
    unknown = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(150)]
    found = SRC.lookup_hashes(ctx, unknown[:120] + real + unknown[120:])
    assert set(found) == set(real)
    assert found[real[2]].file_id == "3051" and found[real[2]].original_filename == "multi-vae.safetensors"
    posts = civ.api.requests("/api/v1/model-versions/by-hash", "POST")
    assert [len(__import__("json").loads(p.body)) for p in posts] == [100, 53]


def test_claimed_family_table():
    assert claimed_family("SDXL 1.0") == "sdxl" and claimed_family("Illustrious") == "sdxl"
    assert claimed_family("SD 1.5") == "sd1" and claimed_family("Flux.1 D") == "flux"
    assert claimed_family("SD 3.5 Large") == "sd3" and claimed_family("Other") is None


def test_free_space_checked_from_published_size_before_download(ctx, civ, tmp_path):
    plan = SRC.plan(ctx, parse("civitai:1001"))
    plan.size = 1 << 60  # as if Civitai listed an enormous file
    with pytest.raises(DownloadError, match="not enough free space"):
        SRC.fetch(ctx, plan, tmp_path)
    assert civ.api.requests("/api/download") == [] and civ.storage.requests() == []


def test_tag_objects_from_older_answers_become_strings(ctx, civ, tmp_path):
    """Older Civitai answers carry ``"tags": [{"name": "punk"}]``; they must not be stored as a Python repr."""
    civ.add(CModel(1090, "Punk", "LORA", tags=[{"name": "punk"}, {"name": "style"}, "punk"], versions=[
        CVersion(2090, "v1", "SDXL 1.0", files=[CFile(3090, "punk.safetensors", sdxl_lora_bytes(tmp_path, seed=90))]),
    ]))
    assert SRC.plan(ctx, parse("civitai:1090")).source_info.tags == ["punk", "style"]
    [row] = [r for r in SRC.search(ctx, SearchQuery(text="punk", limit=5)).results]
    assert row.tags == ["punk", "style"]


def test_tag_names_reads_every_shape() -> None:
    from hub.catalogue.records import SourceInfo, tag_names

    assert tag_names([{"name": "punk"}, "anime", {"id": 3, "name": "插画"}, {"id": 4}, None, "  ", "anime"]) == [
        "punk", "anime", "插画"]
    assert tag_names(["{'name': 'punk'}"]) == ["punk"]  # what catalogues written before the fix hold
    assert tag_names(None) == [] and tag_names("solo") == ["solo"]
    assert SourceInfo("civitai", "1", tags=[{"name": "punk"}]).tags == ["punk"]  # type: ignore[list-item]
