"""Writing safetensors files in tests: real containers, header-only (sparse) when shapes are real-size."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def write_safetensors(path: Path, tensors: Mapping[str, tuple[str, Sequence[int]]],
                      metadata: Mapping[str, str] | None = None, *, fill: bytes | None = None) -> Path:
    """A valid safetensors file: header with contiguous offsets; data sparse (zeros) unless ``fill`` repeats."""
    header: dict[str, object] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    if metadata:
        header["__metadata__"] = dict(metadata)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        if fill:
            remaining = offset
            while remaining > 0:
                chunk = (fill * (1 + min(remaining, 1 << 20) // len(fill)))[: min(remaining, 1 << 20)]
                fh.write(chunk)
                remaining -= len(chunk)
        else:
            fh.truncate(8 + len(raw) + offset)
    return path


# A handful of real SD1.5 key names at real shapes: a valid container that the classifier rightly calls
# "unknown" (too few of the decisive tensors). For family-specific files use tests/headers.py specs.
SD15_UNET_MARKERS = {
    "model.diffusion_model.input_blocks.0.0.weight": ("F16", [320, 4, 3, 3]),
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [320, 768]),
    "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [320, 768]),
    "model.diffusion_model.input_blocks.1.1.proj_in.weight": ("F16", [320, 320, 1, 1]),
    "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [320, 768]),
    "first_stage_model.decoder.conv_in.weight": ("F16", [512, 4, 3, 3]),
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": ("F16", [49408, 768]),
}

SDXL_LORA_KOHYA = {
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": ("F16", [8, 2048]),
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight": ("F16", [640, 8]),
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.alpha": ("F16", []),
    "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": ("F16", [8, 768]),
    "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": ("F16", [768, 8]),
    "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": ("F16", [8, 1280]),
    "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": ("F16", [1280, 8]),
}
