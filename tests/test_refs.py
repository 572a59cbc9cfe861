"""Every accepted reference form parses to the same Ref; bad ones get one line saying why."""

from __future__ import annotations

import pytest

from hub.errors import BadReferenceError
from hub.sources.refs import Ref, parse

U1, U2 = "0123456789abcdef0123456789ABCDEF", "fedcba9876543210fedcba9876543210"


ACCEPTED = [
        ("civitai:4201", Ref("civitai", model_id="4201")),
        ("civitai:4201@130072", Ref("civitai", model_id="4201", version_id="130072")),
        ("  civitai:4201@130072  ", Ref("civitai", model_id="4201", version_id="130072")),
        ("civitai:4201@130072/model.fp16.safetensors",
         Ref("civitai", model_id="4201", version_id="130072", file="model.fp16.safetensors")),
        ("civitai:4201@130072/998877", Ref("civitai", model_id="4201", version_id="130072", file="998877")),
        ("civitai:@130072", Ref("civitai", version_id="130072")),
        ("CIVITAI:4201", Ref("civitai", model_id="4201")),
        ("urn:air:sdxl:lora:civitai:328553@368189",
         Ref("civitai", model_id="328553", version_id="368189", air_ecosystem="sdxl", air_type="lora")),
        ("urn:air:sd1:checkpoint:civitai:4201@130072.safetensors",
         Ref("civitai", model_id="4201", version_id="130072", air_ecosystem="sd1", air_type="checkpoint")),
        # Civitai's AIR guide (civitai/civitai-developer-docs): a file id after '+', and "urn:" / "urn:air:" optional
        ("urn:air:sdxl:checkpoint:civitai:827184@2514310+2402203",
         Ref("civitai", model_id="827184", version_id="2514310", file="2402203", air_ecosystem="sdxl",
             air_type="checkpoint")),
        ("air:sdxl:lora:civitai:328553@368189",
         Ref("civitai", model_id="328553", version_id="368189", air_ecosystem="sdxl", air_type="lora")),
        ("sdxl:lora:civitai:328553@368189",
         Ref("civitai", model_id="328553", version_id="368189", air_ecosystem="sdxl", air_type="lora")),
        ("URN:AIR:SDXL:LoRA:Civitai:328553@368189",
         Ref("civitai", model_id="328553", version_id="368189", air_ecosystem="sdxl", air_type="lora")),
        ("https://civitai.com/models/4201/realistic-vision?modelVersionId=130072",
         Ref("civitai", model_id="4201", version_id="130072")),
        ("https://civitai.com/models/4201", Ref("civitai", model_id="4201")),
        ("https://civitai.red/models/4201", Ref("civitai", model_id="4201")),
        ("https://civitai.com/api/download/models/130072", Ref("civitai", version_id="130072")),
        ("https://civitai.com/api/download/models/130072?type=VAE&format=SafeTensor",
         Ref("civitai", version_id="130072", selectors=(("type", "VAE"), ("format", "SafeTensor")))),
        ("https://civitai.com/api/v1/model-versions/130072", Ref("civitai", version_id="130072")),
        ("https://civitai.com/model-versions/130072", Ref("civitai", version_id="130072")),
        ("hf:stabilityai/sdxl-vae/sdxl_vae.safetensors",
         Ref("hf", model_id="stabilityai/sdxl-vae", file="sdxl_vae.safetensors")),
        ("hf:stabilityai/sdxl-vae/sdxl_vae.safetensors@refs-pr-1",
         Ref("hf", model_id="stabilityai/sdxl-vae", file="sdxl_vae.safetensors", version_id="refs-pr-1")),
        ("hf:org/repo/unet/diffusion_pytorch_model.safetensors",
         Ref("hf", model_id="org/repo", file="unet/diffusion_pytorch_model.safetensors")),
        ("hf:org/repo", Ref("hf", model_id="org/repo")),
        ("huggingface:org/repo@v1.0", Ref("hf", model_id="org/repo", version_id="v1.0")),
        ("https://huggingface.co/org/repo/blob/main/a%20b.safetensors", Ref("hf", model_id="org/repo", file="a b.safetensors")),
        ("https://huggingface.co/org/repo/resolve/abc123/sub/x.ckpt?download=true",
         Ref("hf", model_id="org/repo", file="sub/x.ckpt", version_id="abc123")),
        ("https://hf-mirror.com/org/repo/resolve/main/x.safetensors", Ref("hf", model_id="org/repo", file="x.safetensors")),
        ("https://huggingface.co/org/repo", Ref("hf", model_id="org/repo")),
        ("https://huggingface.co/org/repo/tree/dev", Ref("hf", model_id="org/repo", version_id="dev")),
        (f"liblib:{U1}", Ref("liblib", model_id=U1.lower())),
        (f"liblib:{U1}@{U2}", Ref("liblib", model_id=U1.lower(), version_id=U2)),
        (f"https://www.liblib.art/modelinfo/{U1}?versionUuid={U2}", Ref("liblib", model_id=U1.lower(), version_id=U2)),
        (f"https://www.liblibai.com/modelinfo/{U1}", Ref("liblib", model_id=U1.lower())),
        ("sha256:" + "AB" * 32, Ref("hash", hash_kind="sha256", hash_value="ab" * 32)),
        ("sha256:abcdef12", Ref("hash", hash_kind="sha256", hash_value="abcdef12")),
        ("autov2:A5F58EB1C3", Ref("hash", hash_kind="autov2", hash_value="a5f58eb1c3")),
        ("autov3:22D8CB95B807", Ref("hash", hash_kind="autov3", hash_value="22d8cb95b807")),
        ("crc32:DAEE95B7", Ref("hash", hash_kind="crc32", hash_value="daee95b7")),
        ("blake3:" + "c" * 64, Ref("hash", hash_kind="blake3", hash_value="c" * 64)),
        ("A5F58EB1C3", Ref("hash", hash_value="a5f58eb1c3")),
        ("4748a7f6", Ref("hash", hash_value="4748a7f6")),
        ("e" * 64, Ref("hash", hash_value="e" * 64)),
        # legacy Hugging Face root repos (no organisation): gpt2, bert-base-uncased
        ("hf:gpt2/README.md", Ref("hf", model_id="gpt2", file="README.md")),
        ("hf:gpt2", Ref("hf", model_id="gpt2")),
        ("hf:gpt2/model.safetensors@refs/pr/1", Ref("hf", model_id="gpt2", file="model.safetensors", version_id="refs/pr/1")),
        ("https://huggingface.co/gpt2/resolve/main/config.json", Ref("hf", model_id="gpt2", file="config.json")),
        ("https://huggingface.co/gpt2/blob/abc123/onnx/decoder_model.onnx",
         Ref("hf", model_id="gpt2", file="onnx/decoder_model.onnx", version_id="abc123")),
        ("https://huggingface.co/gpt2", Ref("hf", model_id="gpt2")),
        ("hf:Qwen/Qwen2.5-7B", Ref("hf", model_id="Qwen/Qwen2.5-7B")),  # a dot in a repo name is not a file
        # LiblibAI uuids are case-insensitive
        (f"liblib:{U1.upper()}@{U2.upper()}", Ref("liblib", model_id=U1.lower(), version_id=U2.lower())),
        ("civitai:@130072?type=VAE&format=SafeTensor",
         Ref("civitai", version_id="130072", selectors=(("type", "VAE"), ("format", "SafeTensor")))),
]


@pytest.mark.parametrize("text, expected", ACCEPTED)
def test_accepted_forms(text, expected):
    assert parse(text) == expected


def _generated_refs() -> list[Ref]:
    """Refs built field by field (seeded), including the awkward values: spaces, '%', '?', '@' in names."""
    import random

    rnd = random.Random(12)
    names = ["model.safetensors", "a b.safetensors", "100%.safetensors", "why?.ckpt", "x@y.pt", "sub/dir/x.bin",
             "[v2] (fp16).safetensors", "README.md", "LICENSE"]
    refs = []
    for _ in range(300):
        civ_file = rnd.choice([None, str(rnd.randint(1, 10**7)), rnd.choice(names).replace("/", "_")])
        selectors = tuple(rnd.sample([("type", rnd.choice(["VAE", "Pruned Model", "Model"])),
                                      ("format", rnd.choice(["SafeTensor", "PickleTensor"])), ("size", "pruned"),
                                      ("fp", "fp16"), ("fileId", str(rnd.randint(1, 999)))], rnd.randint(0, 3)))
        order = {k: i for i, k in enumerate(("type", "format", "size", "fp", "quantType", "fileId"))}
        selectors = tuple(sorted(selectors, key=lambda kv: order[kv[0]]))
        model = rnd.choice([None, str(rnd.randint(1, 10**6))])
        version = str(rnd.randint(1, 10**7)) if model is None or rnd.random() < 0.7 else None
        refs.append(Ref("civitai", model_id=model, version_id=version, file=civ_file, selectors=selectors))
        repo = rnd.choice(["org/repo", "Qwen/Qwen2.5-7B", "gpt2", "bert-base-uncased", "a.b/c_d-e"])
        refs.append(Ref("hf", model_id=repo, file=rnd.choice([None, *[n for n in names if "?" not in n and "@" not in n]]),
                        version_id=rnd.choice([None, "dev", "refs/pr/1", "a" * 40])))
        refs.append(Ref("liblib", model_id=U1.lower(), version_id=rnd.choice([None, U2])))
        kind = rnd.choice([None, "sha256", "autov2", "crc32"])
        width = {None: 64, "sha256": 64, "autov2": 10, "crc32": 8}[kind]
        refs.append(Ref("hash", hash_kind=kind, hash_value="".join(rnd.choice("0123456789abcdef") for _ in range(width))))
        if model and version:
            refs.append(Ref("civitai", model_id=model, version_id=version, file=rnd.choice([None, str(rnd.randint(1, 99))]),
                            air_ecosystem=rnd.choice(["sdxl", "sd1", "flux1", "zimage"]),
                            air_type=rnd.choice(["lora", "checkpoint", "styleblock"])))
    return refs


def test_canonical_parses_back_to_an_equal_ref_for_every_form():
    for text, expected in ACCEPTED:
        ref = parse(text)
        assert parse(ref.canonical()) == ref == expected, (text, ref.canonical())
    for ref in _generated_refs():
        text = ref.canonical()
        assert parse(text) == ref, (ref, text)
        assert parse(text).canonical() == text


def test_configured_hosts_are_recognised():
    ref = parse("http://127.0.0.1:8123/models/7?modelVersionId=8", hosts={"127.0.0.1:8123": "civitai"})
    assert ref == Ref("civitai", model_id="7", version_id="8")
    ref = parse("http://mirror.local:9000/org/repo/blob/main/x.safetensors", hosts={"mirror.local:9000": "hf"})
    assert ref == Ref("hf", model_id="org/repo", file="x.safetensors")


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "it is empty"),
        ("civitai:", "needs a model id"),
        ("civitai:abc", "Civitai model ids are numbers"),
        ("civitai:12@", "nothing after '@'"),
        ("civitai:12@x1", "version ids are numbers"),
        ("hf:", "hf: needs a repository"),
        ("hf:bad name", "is not a valid Hugging Face name"),
        ("civitai:@1?colour=red", "unknown file selector 'colour'"),
        ("hf:org/repo/../../etc/passwd", "cannot contain '.' or '..'"),
        ("liblib:short", "32 letters/digits"),
        (f"liblib:{U1}@nope", "versionUuid"),
        ("sha256:xyz", "hexadecimal"),
        ("sha256:abc", "at least 8 hex digits"),
        ("autov2:" + "a" * 12, "at most 10 hex digits"),
        ("abcdef123", "8, 10, 12 or 64 hex digits"),
        ("https://example.com/model.safetensors", "not a known source host"),
        ("https://[::1/models/1", "not a valid URL"),
        ("https://civitai.com/images/123", "not a Civitai model page"),
        ("https://huggingface.co/datasets/org/ds", "datasets and spaces"),
        ("urn:air:sdxl:lora:tensorart:1@2", "AIR source 'tensorart'"),
        ("urn:air:sdxl:lora:civitai", "of its 4 parts"),
        ("urn:air::lora:civitai:1@2", "the AIR ecosystem is empty"),
        ("urn:air:sdxl::civitai:1@2", "the AIR type is empty"),
        ("urn:air:sd xl:lora:civitai:1@2", "the AIR ecosystem 'sd xl' is not a name"),
        ("urn:air:sdxl:lora:civitai:abc@2", "the AIR id 'abc' is not a Civitai model id"),
        ("urn:air:sdxl:lora:civitai:1@v2", "the AIR version 'v2' is not a Civitai version id"),
        ("urn:air:sdxl:lora:civitai:1@2+x9", "the AIR file id 'x9' (after '+')"),
        ("urn:air:sdxl:lora:civitai:1+9", "needs a version"),
        ("air:sdxl:lora:civitai:@2", "the AIR id (model id) is empty"),
        ("9gag:1", "unknown scheme"),
        ("C:\\models\\x.safetensors", "looks like a file path"),
        ("just some words", "no scheme"),
    ],
)
def test_bad_references_explain_in_one_line_with_a_hint(text, why):
    with pytest.raises(BadReferenceError) as info:
        parse(text)
    message = str(info.value)
    assert why in message
    assert "\n" not in message and "sdhub install --help" in message  # the list of forms is behind --help


def test_hf_ref_properties():
    ref = parse("hf:org/repo/x.safetensors@dev")
    assert (ref.repo_id, ref.path_in_repo, ref.revision) == ("org/repo", "x.safetensors", "dev")
    assert parse("civitai:1").repo_id is None


def test_plugin_schemes_parse_generically() -> None:
    ref = parse("shelf:abc@v2/style.safetensors")
    assert (ref.scheme, ref.model_id, ref.version_id, ref.file) == ("shelf", "abc", "v2", "style.safetensors")
    with pytest.raises(BadReferenceError, match="shelf: needs a model id"):
        parse("shelf:")


def test_unowned_scheme_is_refused_when_used(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("install", "--dry-run", "civitia:4201")
    assert result.exit_code == 1
    assert "no registered source handles 'civitia:4201'" in result.stderr
    assert "did you mean civitai:?" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_air_ecosystem_or_type_is_kept_with_a_warning() -> None:
    ref = parse("urn:air:zimage:styleblock:civitai:1@2")
    assert (ref.model_id, ref.version_id, ref.air_ecosystem, ref.air_type) == ("1", "2", "zimage", "styleblock")
    assert ref.warnings == ("AIR ecosystem 'zimage' is not one sdhub knows; using the reference anyway",
                            "AIR type 'styleblock' is not one sdhub knows; using the reference anyway")
    assert parse("urn:air:sdxl:lora:civitai:1@2").warnings == ()


def test_malformed_air_is_one_error_line_naming_the_part(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("install", "--dry-run", "urn:air:sdxl:lora:civitai:1@2+x9")
    assert result.exit_code != 0 and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "the AIR file id 'x9' (after '+')" in errors[0]
