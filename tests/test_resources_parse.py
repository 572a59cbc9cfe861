"""hub.resources parsing: images and workflows made as the UIs make them, read into resource records."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

pytest.importorskip("PIL")  # the tests build images with Pillow, as the UIs do

from hub.resources import MAX_TEXT_BYTES, ResourceError, read_resources  # noqa: E402
from hub.running.runtime import format_infotext  # noqa: E402
from tests.resource_files import A1111_INFOTEXT, comfy_api, comfy_ui, exif_image, png, write_json  # noqa: E402

MODEL_HASH = "31e35c80fc"
LORA_HASH = "a1b2c3d4e5f6"


def by_name(resources):
    return {r.name: r for r in resources}


def test_a1111_png_parameters(tmp_path: Path) -> None:
    text = A1111_INFOTEXT.format(model_hash=MODEL_HASH, lora_hash=LORA_HASH)
    res = read_resources(png(tmp_path / "a.png", parameters=text))
    names = by_name(res)
    ckpt = names["sd_xl_base_1.0"]
    assert (ckpt.kind, ckpt.hash, ckpt.hash_kind, ckpt.folder) == ("checkpoint", MODEL_HASH, "autov2", "checkpoints")
    vae = names["sdxl_vae.safetensors"]
    assert (vae.kind, vae.hash, vae.folder) == ("vae", "235745af8d", "vae")
    lora = names["pixel-art-xl"]  # the <lora:…:0.8> tag and the Lora hashes entry are one resource
    assert (lora.kind, lora.hash, lora.weight, lora.folder) == ("lora", LORA_HASH, 0.8, "loras")
    assert any("Lora hashes" in w for w in lora.found_in) and any("tag" in w for w in lora.found_in)
    ti = names["easynegative"]
    assert (ti.kind, ti.hash, ti.folder) == ("embedding", "c74b4e810b03", "embeddings")
    assert len(res) == 4


def test_civitai_hashes_and_resources_json(tmp_path: Path) -> None:
    hashes = {"model": MODEL_HASH, "lora:detail": "0123456789ab", "embed:neg": "ffeeddccbbaa", "vae": "235745af8d"}
    resources = [
        {"type": "checkpoint", "modelVersionId": 128078, "modelName": "SDXL", "modelVersionName": "v1.0"},
        {"type": "lora", "weight": 0.6, "modelVersionId": 222, "modelName": "Detail",
         "air": "urn:air:sdxl:lora:civitai:111@222"},
    ]
    text = (f"a photo <lora:detail:0.6>\nSteps: 20, Sampler: Euler a, Seed: 5, Hashes: {json.dumps(hashes)}, "
            f"Civitai resources: {json.dumps(resources)}, Civitai metadata: {{\"remixOfId\": 1}}")
    path = tmp_path / "x.txt"
    path.write_text(text)
    res = read_resources(path)
    refs = {r.ref: r for r in res if r.ref}
    assert refs["civitai:@128078"].kind == "checkpoint"
    assert refs["urn:air:sdxl:lora:civitai:111@222"].weight == 0.6
    hashed = {r.hash: r for r in res if r.hash}
    assert hashed[MODEL_HASH].kind == "checkpoint"
    assert (hashed["0123456789ab"].kind, hashed["0123456789ab"].name, hashed["0123456789ab"].weight) == ("lora", "detail", 0.6)
    assert hashed["ffeeddccbbaa"].kind == "embedding"
    assert hashed["235745af8d"].kind == "vae"


def test_sdhub_own_infotext(tmp_path: Path) -> None:
    text = format_infotext("a cat", "", {"Steps": 20, "Seed": 1, "Model hash": MODEL_HASH, "Model": "base",
                                         "Lora hashes": f"style: {LORA_HASH}", "Lora weights": "style: 0.7",
                                         "Version": "sdhub 0.1"})
    res = by_name(read_resources(png(tmp_path / "s.png", parameters=text)))
    assert res["base"].hash == MODEL_HASH
    assert (res["style"].hash, res["style"].weight) == (LORA_HASH, 0.7)


@pytest.mark.parametrize("fmt,suffix", [("JPEG", ".jpg"), ("WEBP", ".webp")])
def test_exif_user_comment(tmp_path: Path, fmt: str, suffix: str) -> None:
    text = A1111_INFOTEXT.format(model_hash=MODEL_HASH, lora_hash=LORA_HASH)
    res = by_name(read_resources(exif_image(tmp_path / f"a{suffix}", text, fmt)))
    assert res["sd_xl_base_1.0"].hash == MODEL_HASH
    assert res["pixel-art-xl"].hash == LORA_HASH


def test_comfyui_png_prompt_and_workflow_merge(tmp_path: Path) -> None:
    models = [{"name": "sd_xl_base_1.0.safetensors", "directory": "checkpoints",
               "url": "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors",
               "hash": "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b", "hash_type": "SHA256"}]
    path = png(tmp_path / "c.png", prompt=json.dumps(comfy_api()), workflow=json.dumps(comfy_ui(models)))
    res = by_name(read_resources(path))
    ckpt = res["sd_xl_base_1.0.safetensors"]
    assert ckpt.kind == "checkpoint" and ckpt.ref.startswith("https://huggingface.co/")
    assert ckpt.hash.startswith("31e35c80") and ckpt.hash_kind == "sha256"
    assert any("prompt: node 4" in w for w in ckpt.found_in) and any("workflow: node 4" in w for w in ckpt.found_in)
    assert (res["pixel-art-xl.safetensors"].kind, res["pixel-art-xl.safetensors"].weight) == ("lora", 0.75)
    assert res["t5xxl_fp16.safetensors"].folder == "text_encoders"
    assert res["clip_l.safetensors"].kind == "text_encoder"
    assert res["flux1-dev.safetensors"].folder == "diffusion_models"
    assert res["canny.safetensors"].folder == "controlnet"
    assert res["4x-UltraSharp.pth"].folder == "upscale_models"
    assert "see model.safetensors" not in res  # a Note's text is not a loader input
    assert len(res) == 8


def test_workflow_json_top_level_models_and_api_file(tmp_path: Path) -> None:
    top = [{"name": "ae.safetensors", "url": "https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/ae.safetensors",
            "directory": "vae"},
           {"name": "t5/t5xxl_fp8.safetensors", "url": "https://example.org/t5.safetensors", "directory": "text_encoders"}]
    res = by_name(read_resources(write_json(tmp_path / "wf.json", comfy_ui(top_models=top))))
    assert res["ae.safetensors"].kind == "vae" and res["ae.safetensors"].folder == "vae"
    assert res["t5/t5xxl_fp8.safetensors"].kind == "text_encoder"
    api = by_name(read_resources(write_json(tmp_path / "api.json", comfy_api())))
    assert api["sd_xl_base_1.0.safetensors"].kind == "checkpoint"


def test_bad_inputs_each_one_clear_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    from PIL import Image
    Image.new("RGB", (4, 4)).save(plain)
    with pytest.raises(ResourceError, match="no metadata"):
        read_resources(plain)
    good = png(tmp_path / "g.png", parameters="x\nSteps: 1, Model hash: 0123456789")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ResourceError, match="corrupt PNG"):
        read_resources(corrupt)
    flipped = bytearray(good.read_bytes())
    at = flipped.index(b"tEXt") + 10
    flipped[at] ^= 0xFF
    (tmp_path / "crc.png").write_bytes(bytes(flipped))
    with pytest.raises(ResourceError, match="CRC"):
        read_resources(tmp_path / "crc.png")
    (tmp_path / "w.json").write_text("{nodes: [")
    with pytest.raises(ResourceError, match="not JSON"):
        read_resources(tmp_path / "w.json")
    with pytest.raises(ResourceError, match="prompt chunk is not JSON"):
        read_resources(png(tmp_path / "badprompt.png", prompt="{not json"))


def test_huge_text_chunk_is_refused_unread(tmp_path: Path) -> None:
    """A 100 MB tEXt chunk (a sparse file: cheap to make) is refused from its length alone."""
    path = tmp_path / "huge.png"
    size = 100 * 1024 * 1024
    with path.open("wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
        fh.write(struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))
        fh.write(struct.pack(">I", size) + b"tEXt" + b"parameters\0")
        fh.seek(size - len(b"parameters\0"), 1)
        fh.write(b"\0\0\0\0" + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))
    assert size > MAX_TEXT_BYTES
    with pytest.raises(ResourceError, match="100 MB is over the 16 MB metadata cap"):
        read_resources(path)
