"""Make a folder of sample model files to try sdhub on, with no download.

Each file is a real safetensors container whose header (tensor names, shapes, dtypes, metadata) is
that of a real model, taken from the specs the test-suite uses (tests/data/headers); the tensor data
is a sparse hole of zeros, so a "2 GiB" checkpoint costs no disk space. sdhub identifies them
exactly as it would the real files.

    python examples/make_sample_models.py sample-models
    sdhub scan sample-models && sdhub list
"""

from __future__ import annotations

import gzip
import json
import struct
import sys
from pathlib import Path

SPECS = Path(__file__).resolve().parent.parent / "tests" / "data" / "headers"
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}

# (spec, where it goes in an A1111-style models folder)
SAMPLES = [
    ("sd15", "Stable-diffusion/v1-5-pruned-emaonly-fp16.safetensors"),
    ("lora_sd15_locon", "Lora/add_detail_locon.safetensors"),
    ("lora_sdxl_kohya", "Lora/pixel-art-xl.safetensors"),
    ("lora_flux_kohya", "Lora/flux-realism-lora.safetensors"),
]


def write_sparse(spec_name: str, target: Path) -> int:
    spec = json.loads(gzip.decompress((SPECS / f"{spec_name}.json.gz").read_bytes()))
    header: dict[str, object] = {}
    offset = 0
    for name, (dtype, shape) in spec["tensors"].items():
        n = DTYPE_BYTES[dtype]
        for dim in shape:
            n *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    if spec.get("metadata"):
        header["__metadata__"] = spec["metadata"]
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        fh.truncate(8 + len(raw) + offset)
    return 8 + len(raw) + offset


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python examples/make_sample_models.py FOLDER")
    root = Path(sys.argv[1])
    for spec_name, rel in SAMPLES:
        size = write_sparse(spec_name, root / rel)
        print(f"{root / rel}  ({size / 2**20:,.0f} MiB apparent, sparse)")


if __name__ == "__main__":
    main()
