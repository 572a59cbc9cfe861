"""Writing safetensors files in tests: real containers, header-only (sparse) when shapes are real-size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from headers import header_bytes


def write_safetensors(path: Path, tensors: Mapping[str, tuple[str, Sequence[int]]],
                      metadata: Mapping[str, str] | None = None, *, fill: bytes | None = None) -> Path:
    """A valid safetensors file: data sparse (zeros, no disk) unless ``fill`` gives a byte pattern to repeat."""
    head, data_size = header_bytes({k: (d, list(s)) for k, (d, s) in tensors.items()},
                                   dict(metadata) if metadata else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(head)
        if fill:
            remaining = data_size
            while remaining > 0:
                n = min(remaining, 1 << 20)
                fh.write((fill * (n // len(fill) + 1))[:n])
                remaining -= n
        else:
            fh.truncate(len(head) + data_size)
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
