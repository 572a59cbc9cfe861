"""A fake LiblibAI on 127.0.0.1: website API (``/api/www``), signed Open API, and a CDN host.

Follows sources.md §3 and §6: answers are HTTP 200 ``{"code", "msg", "data"}``; a hash miss is
``{"code":0,"msg":"hash值无法找到模型","data":null}``; the Open API checks the HMAC-SHA1/base64url
signature and that the millisecond timestamp is recent, and answers 404 with a Chinese message for
unknown versions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fake_http import FakeServer, Reply, Request, ServedFile, json_reply


@dataclass
class LVersion:
    uuid: str
    name: str
    data: bytes | None  # None = VIP/exclusive: no modelSource
    base_type: int = 3
    base_type_name: str | None = "基础算法 XL"
    filename: str = "model.safetensors"
    trigger: Any = "word1, word2"
    vip: bool = False
    publish_hash: bool = True
    id: int = 456


@dataclass
class LModel:
    uuid: str
    name: str
    model_type: int = 5
    versions: list[LVersion] = field(default_factory=list)


class FakeLiblib:
    def __init__(self, access_key: str = "ak-test", secret_key: str = "sk-test") -> None:
        self.site = FakeServer("liblib-site")
        self.openapi = FakeServer("liblib-openapi")
        self.cdn = FakeServer("liblib-cdn")
        self.access_key, self.secret_key = access_key, secret_key
        self.models: dict[str, LModel] = {}
        self.files: dict[str, ServedFile] = {}
        self.signature_failures: list[str] = []
        self._routes()

    def add(self, model: LModel) -> LModel:
        self.models[model.uuid] = model
        for v in model.versions:
            if v.data is not None:
                self.files[hashlib.sha256(v.data).hexdigest()] = ServedFile(v.data)
        return model

    def _version_json(self, v: LVersion) -> dict[str, Any]:
        # The getByUuid skeleton of sources.md §3.1 (the union of the fields kaiery/liblib_helper, lilei105/LiblibDownload
        # and sethgggg/…LiblibAI-Helper read); versions come newest first there. No public capture records the
        # format of createTime, so a date is served and the plugin shows it as given.
        attachment: dict[str, Any] = {"modelSource": None, "modelSourceName": v.filename}
        if v.data is not None:
            sha = hashlib.sha256(v.data).hexdigest()
            attachment = {
                "modelSource": f"{self.cdn.url}/web/model/{v.uuid}/{sha}.safetensors",
                "modelSourceName": v.filename,
                "modelSourceSize": len(v.data),
                "modelSourceHash": sha if v.publish_hash else None,
            }
        return {
            "id": v.id, "uuid": v.uuid, "name": v.name, "baseType": v.base_type, "baseTypeName": v.base_type_name,
            "triggerWord": v.trigger, "versionDesc": "", "createTime": "2025-01-01", "downloadCount": 84,
            "runCount": 0, "vipUsed": 1 if v.vip else 0, "exclusive": False, "attachment": attachment,
            "imageGroup": {"coverUrl": f"{self.cdn.url}/img/cover.png", "images": []},
        }

    def _model_json(self, m: LModel) -> dict[str, Any]:
        return {"id": 123, "uuid": m.uuid, "name": m.name, "modelType": m.model_type, "nickname": "作者",
                "tagsV2": {"modelContent": [{"id": 100033, "name": "插画"}]},
                "versions": [self._version_json(v) for v in m.versions]}

    def _routes(self) -> None:
        site = self.site

        @site.route("POST", r"/api/www/model/getByUuid/([A-Za-z0-9]+)")
        def by_uuid(req: Request) -> Reply:
            uuid = req.path.rsplit("/", 1)[1]
            if "timestamp" not in req.query:
                return json_reply({"code": 400, "msg": "missing timestamp", "data": None})
            m = next((m for u, m in self.models.items() if u.lower() == uuid.lower()), None)  # uuids are case-insensitive
            if m is None:
                return json_reply({"code": 500, "msg": "模型不存在", "data": None})
            return json_reply({"code": 0, "msg": "", "data": self._model_json(m)})

        @site.route("GET", r"/api/www/model-version/hash/([0-9a-fA-F]+)")
        def by_hash(req: Request) -> Reply:
            sha = req.path.rsplit("/", 1)[1].lower()
            for m in self.models.values():
                for v in m.versions:
                    if v.data is not None and hashlib.sha256(v.data).hexdigest() == sha:
                        # A hit's shape is undocumented (sources.md §3.3): these are the keys tools read defensively.
                        return json_reply({"code": 0, "msg": "", "data": {
                            "modelUuid": m.uuid, "versionUuid": v.uuid, "name": v.name,
                            "baseTypeName": v.base_type_name, "triggerWord": v.trigger}})
            return json_reply({"code": 0, "msg": "hash值无法找到模型", "data": None})

        @site.route("POST", r"/api/www/model/search")
        def search(req: Request) -> Reply:
            body = json.loads(req.body or b"{}")
            page, size = int(body.get("page", 1)), int(body.get("pageSize", 50))
            keyword = str(body.get("keyword") or "").lower()
            items = [
                m for m in self.models.values()
                if (not body.get("models") or m.model_type in body["models"])
                and (not body.get("types") or any(v.base_type in body["types"] for v in m.versions))
                and (not keyword or keyword in m.name.lower())
            ]
            chunk = items[(page - 1) * size : page * size]
            data = [{"uuid": m.uuid, "name": m.name, "nickname": "作者", "modelType": m.model_type,
                     "modelTypeName": "LORA", "baseType": [m.versions[0].base_type] if m.versions else [],
                     "tagsV2": {"modelContent": [{"id": 100033}]}} for m in chunk]
            return json_reply({"code": 0, "msg": "", "data": {"total": len(items), "data": data}})

        @self.openapi.route("POST", r"/api/model/version/get")
        def openapi_version(req: Request) -> Reply:
            q = {k: v[0] for k, v in req.query.items()}
            problem = self._check_signature(req.path, q)
            if problem:
                self.signature_failures.append(problem)
                return json_reply({"code": 100, "msg": problem}, 401)
            uuid = json.loads(req.body or b"{}").get("versionUuid", "")
            for m in self.models.values():
                for v in m.versions:
                    if v.uuid == uuid:
                        return json_reply({"code": 0, "msg": "", "data": {
                            "versionUuid": v.uuid, "modelName": m.name, "versionName": v.name,
                            "baseAlgo": v.base_type, "baseAlgoName": v.base_type_name, "showType": 1,
                            "commercialUse": "1", "modelUrl": f"{self.site.url}/modelinfo/{m.uuid}?versionUuid={v.uuid}"}})
            return json_reply({"message": f"未找到与{uuid}对应的模型，请检查version_uuid是否正确，或所选模型是否为Checkpoint或LoRA"}, 404)

        @self.cdn.route("GET", r"/web/model/[A-Za-z0-9]+/([0-9a-f]{64})\.safetensors")
        def cdn(req: Request) -> Reply:
            sha = req.path.rsplit("/", 1)[1].split(".")[0]
            f = self.files.get(sha)
            return f.reply(req) if f else Reply(404, {"Content-Type": "text/plain"}, b"Not Found")

    def _check_signature(self, path: str, q: dict[str, str]) -> str | None:
        for key in ("AccessKey", "Signature", "Timestamp", "SignatureNonce"):
            if not q.get(key):
                return f"missing {key}"
        if q["AccessKey"] != self.access_key:
            return "unknown AccessKey"
        ts = int(q["Timestamp"])
        if abs(time.time() * 1000 - ts) > 5 * 60 * 1000:
            return "timestamp is not in milliseconds or too old"
        content = f"{path}&{q['Timestamp']}&{q['SignatureNonce']}"
        expected = base64.urlsafe_b64encode(
            hmac.new(self.secret_key.encode(), content.encode(), hashlib.sha1).digest()
        ).decode().rstrip("=")
        if not hmac.compare_digest(expected, q["Signature"]):
            return "bad signature"
        return None

    def start(self) -> FakeLiblib:
        for s in (self.site, self.openapi, self.cdn):
            s.start()
        return self

    def stop(self) -> None:
        for s in (self.site, self.openapi, self.cdn):
            s.stop()


@pytest.fixture
def fake_liblib():
    fake = FakeLiblib().start()
    yield fake
    fake.stop()
