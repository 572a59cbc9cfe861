"""GGUF files (ComfyUI-GGUF diffusion models, llama.cpp text encoders): family, kind and quant type.

ComfyUI-GGUF's converter keeps each tensor's original name (``double_blocks.0.img_attn.qkv.weight``,
``input_blocks.1.1.proj_in.weight``) and, where it reshaped one, the original shape in metadata, so the
tensor list is a header like a safetensors one and the same family matchers decide. Its
``general.architecture`` (``flux``, ``sdxl``, ``sd3``...) is supporting evidence, and names the family
only when the shapes cannot. Precision is the ggml type holding most weight elements (``Q4_K``,
``Q8_0``... as llama.cpp and ComfyUI name them; ``fp16``/``bf16``/``fp32`` for unquantised files).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .family import Family
from .model import UNKNOWN, Evidence, Identification
from .view import HeaderView

#: ComfyUI-GGUF's architecture names (its convert.py model detection) -> sdhub family.
ARCH_FAMILY = {"flux": "flux", "sd1": "sd1", "sdxl": "sdxl", "sd3": "sd3", "aura": "auraflow", "ltxv": "ltxv",
               "hyvid": "hunyuan_video", "wan": "wan", "cosmos": "cosmos", "lumina2": "lumina2", "hidream": "hidream",
               "qwen_image": "qwen_image", "chroma": "chroma", "flux2": "flux2", "pig": UNKNOWN}
#: llama.cpp architectures of text encoders diffusion models use.
T5_ARCHS = ("t5", "t5encoder")
FLOAT_NAMES = {"F32": "fp32", "F16": "fp16", "BF16": "bf16", "F64": "fp64"}
KEEP_METADATA = ("general.architecture", "general.name", "general.file_type", "general.quantization_version",
                 "general.type")


def identify_gguf(path: Path, fams: Sequence[Family]) -> Identification:
    from ..files.gguf_header import read_gguf_header
    from .classify import identify_view

    header = read_gguf_header(path)
    raw: dict[str, dict[str, Any]] = {t.name: {"dtype": t.type, "shape": t.shape} for t in header.tensors}
    arch = header.architecture
    ident = identify_view(HeaderView(raw, {}), fams, fmt="gguf")
    ident.metadata = {f"gguf.{k}": str(header.metadata[k]) for k in KEEP_METADATA if k in header.metadata}
    ident.details["header_bytes"] = header.header_size
    ident.details["gguf_version"] = header.version
    _precision(ident, raw)
    if arch:
        _architecture(ident, arch, header.metadata, fams)
    return ident


def _precision(ident: Identification, raw: dict[str, dict[str, Any]]) -> None:
    """The ggml type of most weight elements (2-D and larger tensors: norms and biases stay F32)."""
    elements: Counter[str] = Counter()
    tensors: Counter[str] = Counter()
    for entry in raw.values():
        tensors[entry["dtype"]] += 1
        if len(entry["shape"]) >= 2:
            n = 1
            for d in entry["shape"]:
                n *= d
            elements[entry["dtype"]] += n
    ident.details["gguf_types"] = dict(sorted(tensors.items()))
    ident.evidence = [e for e in ident.evidence if e.what != "precision"]
    if not elements:
        ident.precision = None
        return
    total = sum(elements.values())
    top = elements.most_common(1)[0][0]
    ident.precision = FLOAT_NAMES.get(top, top)
    if top not in FLOAT_NAMES:
        ident.details["quantization"] = f"gguf_{top}"
    shares = ", ".join(f"{t} {n / total:.0%}" for t, n in elements.most_common())
    ident.evidence.append(Evidence("precision", ident.precision, f"GGUF weight elements by ggml type: {shares} "
                                                                 f"(tensors by type: {ident.details['gguf_types']})"))


def _architecture(ident: Identification, arch: str, metadata: dict[str, Any], fams: Sequence[Family]) -> None:
    because = f"general.architecture={arch}"
    family = ARCH_FAMILY.get(arch)
    if arch in T5_ARCHS and ident.kind in (UNKNOWN, "text_encoder"):
        width = metadata.get(f"{arch}.embedding_length")
        ident.kind = "text_encoder"
        ident.components = ["t5"] if width in (None, 4096) else ["t5xl" if width == 2048 else "text_encoder"]
        ident.candidates = [f.name for f in fams if "t5" in f.text_encoders] if ident.components == ["t5"] else []
        ident.evidence = [e for e in ident.evidence if e.what not in ("kind", "family")]
        ident.evidence.append(Evidence("kind", "text_encoder", f"{because} (llama.cpp T5 encoder)"
                                       + (f", {arch}.embedding_length={width}" if width else "")))
        if ident.candidates:
            ident.evidence.append(Evidence("family", UNKNOWN, f"T5-XXL is used by several families: fits "
                                                              f"{', '.join(ident.candidates)}"))
        return
    if family is None:
        if ident.family == UNKNOWN and ident.kind == UNKNOWN:
            ident.evidence.append(Evidence("kind", UNKNOWN, f"{because}: a llama.cpp model of that architecture, "
                                                            "not a diffusion model layout sdhub identifies"))
        return
    if family == UNKNOWN:
        return
    if ident.family == family:
        ident.evidence.append(Evidence("family.metadata", family, f"{because} agrees"))
    elif ident.family != UNKNOWN:
        ident.warnings.append(f"GGUF metadata says {family} ({because}) but the tensor shapes say {ident.family}; "
                              "trusting the shapes")
        ident.evidence.append(Evidence("conflict", family, f"{because} disagrees with the shapes"))
    elif ident.kind in (UNKNOWN, "diffusion_model") and any(f.name == family for f in fams):
        ident.family = family
        ident.kind = "diffusion_model"
        ident.candidates = [family]
        ident.evidence.append(Evidence("family", family, f"{because} (GGUF metadata only: the tensor layout did "
                                                         "not tell)"))
        from .classify import set_runnable

        set_runnable(ident, fams)
