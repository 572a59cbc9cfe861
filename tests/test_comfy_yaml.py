"""`sdhub link --comfyui-extra-paths FILE`: sdhub's own section, in the format ComfyUI's loader reads; others untouched."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

EXISTING = """# my own comment, keep me
a111:
    base_path: /opt/stable-diffusion-webui/
    checkpoints: models/Stable-diffusion
    loras: |
         models/Lora
         models/LyCORIS

other_ui:   # trailing comment
    base_path: ~/other
    vae: vae
"""


def comfy_folders(path: Path) -> dict[str, dict[str, list[str]]]:
    """What ComfyUI's utils/extra_config.py makes of the file (base_path joined, values split on newlines)."""
    out: dict[str, dict[str, list[str]]] = {}
    for name, conf in yaml.safe_load(path.read_text()).items():
        conf = dict(conf)
        base = os.path.expandvars(os.path.expanduser(conf.pop("base_path", "")))
        conf.pop("is_default", None)
        out[name] = {k: [os.path.normpath(os.path.join(base, y)) for y in str(v).split("\n") if y]
                     for k, v in conf.items()}
    return out


def test_writes_its_own_section_and_leaves_others(run_cli, tmp_path: Path, sdhub_home: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "ComfyUI" / "extra_model_paths.yaml"
    f.parent.mkdir()
    f.write_text(EXISTING)
    result = run_cli("link", "--comfyui-extra-paths", str(f))
    assert result.exit_code == 0, result.output
    assert "written section sdhub:" in result.stdout
    text = f.read_text()
    assert text.startswith(EXISTING)  # byte for byte, comments included
    folders = comfy_folders(f)
    store = str(sdhub_home / "models")
    assert folders["sdhub"]["loras"] == [os.path.join(store, "lora")]
    assert folders["sdhub"]["checkpoints"] == [os.path.join(store, "checkpoint")]
    assert folders["sdhub"]["clip"] == [os.path.join(store, "text_encoder")]
    assert folders["a111"]["loras"] == ["/opt/stable-diffusion-webui/models/Lora", "/opt/stable-diffusion-webui/models/LyCORIS"]
    # Again: unchanged. A changed store path: only sdhub's section changes, in place.
    assert "unchanged" in run_cli("link", "--comfyui-extra-paths", str(f)).stdout
    f.write_text(text.replace("a111:", "first:\n    vae: x\n\na111:", 1) + "\nlast:\n    vae: y\n")
    before = f.read_text()
    os.environ["SDHUB_STORE"] = str(tmp_path / "elsewhere")
    try:
        out = json.loads(run_cli("link", "--comfyui-extra-paths", str(f), "--json").stdout)
    finally:
        del os.environ["SDHUB_STORE"]
    assert out["status"] == "updated"
    after = f.read_text()
    assert after.replace(str(tmp_path / "elsewhere"), store) == before
    assert list(yaml.safe_load(after)) == ["first", "a111", "other_ui", "sdhub", "last"]


def test_a_broken_yaml_is_left_alone(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "extra_model_paths.yaml"
    f.write_text("a111: [unclosed\n")
    result = run_cli("link", "--comfyui-extra-paths", str(f))
    assert result.exit_code == 1 and "is not valid YAML" in result.stderr
    assert f.read_text() == "a111: [unclosed\n"
    dry = run_cli("link", "--comfyui-extra-paths", str(tmp_path / "new.yaml"), "--dry-run")
    assert "sdhub:\n    base_path:" in dry.stdout and not (tmp_path / "new.yaml").exists()
