"""Merge LoRA files into a loaded diffusers pipeline: kohya-ss and diffusers/PEFT LoRAs, LyCORIS
LoCon (with or without a CP/Tucker core), LoHa and LoKr.

Why merge instead of diffusers' ``load_lora_weights``: that path needs the ``peft`` package and
adds a LoRA branch to every targeted layer for the whole run; merging ``W += weight * scale * up @
down`` once costs nothing per step, which keeps sdhub's speed equal to the bare pipeline. Module
names are matched against the *loaded* model, so any block layout works (kohya's SDXL LoRAs use the
original UNet names, which are mapped back to diffusers names from the model's own config).

Every tensor group of the file must land on a layer of the right shape; a LoRA that does not fit
raises :class:`~hub.errors.IncompatibleError` naming the file, rather than half-applying.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.errors import HeaderError, IncompatibleError

KOHYA_COMPONENTS = {
    # kohya prefix -> pipeline component, per family ("te1" is CLIP-L everywhere it exists)
    "lora_unet": "denoiser",
    "lora_transformer": "denoiser",  # OneTrainer: the denoiser's diffusers names, underscored
    "lora_te": "text_encoder",
    "lora_te1": "text_encoder",
    "lora_te2": "text_encoder_2",
    "lora_te3": "text_encoder_3",
}
PEFT_COMPONENTS = ("unet", "transformer", "text_encoder", "text_encoder_2", "text_encoder_3")


LOHA_LEAVES = frozenset({"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2"})
LOKR_LEAVES = frozenset({"lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"})
#: Contracts a Tucker core with its two factor matrices into a conv kernel (out, in, kh, kw).
TUCKER = "i j k l, j r, i p -> p r k l"


@dataclass
class LoraPart:
    """One weight update on module ``module`` of ``component``: ``delta = scale * product of the factors``.

    ``kind`` says which product: ``lora`` is ``up @ down`` (LoCon: a conv ``down``, a 1x1 ``up``, and
    optionally a CP core ``mid`` between them); ``loha`` the Hadamard product ``(w1a @ w1b) * (w2a @ w2b)``
    (Tucker cores ``t1``/``t2`` for convs); ``lokr`` the Kronecker product ``kron(w1, w2)``, each side
    stored whole or as a product of two matrices. ``scale`` is alpha over the rank, as the trainers use it.
    """

    component: str
    module: str  # a name in the file's own naming (kohya underscores or dotted diffusers names)
    down: Any = None
    up: Any = None
    alpha: float | None = None
    style: str = "dotted"  # "kohya" (underscored name) or "dotted"
    kind: str = "lora"
    factors: dict[str, Any] = field(default_factory=dict)  # the LyCORIS tensors (lora_mid, hada_*, lokr_*)
    out_slice: tuple[int, int] | None = None  # rows of the whole update that belong to ``module`` (fused qkv)
    swap_halves: bool = False  # BFL's final modulation stores (shift, scale), diffusers (scale, shift)

    @property
    def rank(self) -> int | None:
        if self.kind == "loha":
            return int(self.factors["hada_w1_b"].shape[0])
        if self.kind == "lokr":  # the inner size of a decomposed side (w2's, if both are); none if both are whole
            inner = self.factors.get("lokr_w2_b", self.factors.get("lokr_w1_b"))
            return None if inner is None else int(inner.shape[0])
        return int(self.down.shape[0])

    @property
    def scale(self) -> float:
        rank = self.rank
        return 1.0 if self.alpha is None or rank is None else float(self.alpha) / rank

    def delta_shape(self) -> tuple[int, ...] | None:
        """The shape of the whole update (before ``out_slice``), worked out from the factor shapes alone."""
        f = self.factors
        if self.kind == "loha":
            if "hada_t1" in f:
                t1 = f["hada_t1"]
                return (int(f["hada_w1_a"].shape[1]), int(f["hada_w1_b"].shape[1]), int(t1.shape[2]), int(t1.shape[3]))
            return (int(f["hada_w1_a"].shape[0]), int(f["hada_w1_b"].shape[1]))
        if self.kind == "lokr":
            w1 = tuple(f["lokr_w1"].shape) if "lokr_w1" in f else (f["lokr_w1_a"].shape[0], f["lokr_w1_b"].shape[1])
            if "lokr_w2" in f:
                w2 = tuple(f["lokr_w2"].shape)
            elif "lokr_t2" in f:
                t2 = f["lokr_t2"]
                w2 = (f["lokr_w2_a"].shape[1], f["lokr_w2_b"].shape[1], t2.shape[2], t2.shape[3])
            else:
                w2 = (f["lokr_w2_a"].shape[0], f["lokr_w2_b"].shape[1])
            if len(w1) != 2:
                return None
            return (int(w1[0] * w2[0]), int(w1[1] * w2[1]), *(int(d) for d in w2[2:]))
        down, up, mid = self.down, self.up, f.get("lora_mid")
        if down.ndim == 2 and up.ndim == 2 and (mid is None or mid.ndim == 2):
            return (int(up.shape[0]), int(down.shape[1]))
        if down.ndim == 4 and up.ndim == 4:  # LoCon: down k x k and up 1 x 1, or 1 x 1 around a k x k core
            kernel = mid.shape[2:] if mid is not None and mid.ndim == 4 else down.shape[2:]
            return (int(up.shape[0]), int(down.shape[1]), *(int(d) for d in kernel))
        return None

    def delta(self, device: Any) -> Any:
        """The unscaled update in float32, in its natural shape (the merge reshapes it onto the layer)."""
        import torch

        def t(x: Any) -> Any:
            return x.to(device=device, dtype=torch.float32)

        f = {k: t(v) for k, v in self.factors.items()}
        if self.kind == "loha":
            if "hada_t1" in f:
                one = torch.einsum(TUCKER, f["hada_t1"], f["hada_w1_b"], f["hada_w1_a"])
                two = torch.einsum(TUCKER, f["hada_t2"], f["hada_w2_b"], f["hada_w2_a"])
            else:
                one, two = f["hada_w1_a"] @ f["hada_w1_b"], f["hada_w2_a"] @ f["hada_w2_b"]
            whole = one * two
        elif self.kind == "lokr":
            w1 = f["lokr_w1"] if "lokr_w1" in f else f["lokr_w1_a"] @ f["lokr_w1_b"]
            if "lokr_w2" in f:
                w2 = f["lokr_w2"]
            elif "lokr_t2" in f:
                w2 = torch.einsum(TUCKER, f["lokr_t2"], f["lokr_w2_b"], f["lokr_w2_a"])
            else:
                w2 = f["lokr_w2_a"] @ f["lokr_w2_b"]
            if w2.ndim == 4:
                w1 = w1[:, :, None, None]
            whole = torch.kron(w1.contiguous(), w2.contiguous())
        else:
            down, up = t(self.down), t(self.up)
            mid = f.get("lora_mid")
            if mid is not None and mid.ndim == 4:
                whole = torch.einsum("i j k l, j r, p i -> p r k l", mid, down.flatten(1), up.flatten(1))
            elif mid is not None:
                whole = up.flatten(1) @ mid @ down.flatten(1)
            else:
                whole = up.flatten(1) @ down.flatten(1)
        if self.swap_halves:
            first, second = whole.chunk(2, dim=0)
            whole = torch.cat([second, first], dim=0)
        if self.out_slice is not None:
            whole = whole[self.out_slice[0]:self.out_slice[1]]
        return whole


@dataclass
class MergeReport:
    name: str
    format: str
    merged: int = 0
    components: set[str] = field(default_factory=set)


# -- reading --------------------------------------------------------------------------------------------


def read_lora(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Tensors and metadata of a LoRA file (safetensors; .pt/.ckpt through torch's weights_only loader)."""
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = dict(f.metadata() or {})
            return load_file(str(path)), metadata
        except (SafetensorError, OSError, ValueError) as exc:
            raise HeaderError(f"{path}: not a readable safetensors LoRA ({exc})") from exc
    import torch

    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise HeaderError(f"{path}: cannot read LoRA ({type(exc).__name__}: {exc})") from exc
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    return dict(data), {}


def parse_lora(tensors: dict[str, Any], metadata: dict[str, str], source: str) -> tuple[str, list[LoraPart]]:
    """Split a LoRA state dict into parts; returns (format name, parts)."""
    keys = list(tensors)
    # Merging without the magnitudes would silently give other weights than the LoRA was trained to:
    # DoRA rescales each column of the updated weight by a learned magnitude.
    if any(k.endswith(".dora_scale") or ".lora_magnitude_vector" in k for k in keys):
        raise IncompatibleError(f"{source}: DoRA networks (dora_scale / lora_magnitude_vector) are not supported "
                                "(LoRA, LoCon, LoHa and LoKr are)")
    if any(".processor." in k and re.search(r"_lora[12]\.(down|up)\.weight$", k) for k in keys):
        return "xlabs", _parse_peft(_xlabs_as_dotted(tensors, source), metadata, source)
    if any(k.startswith(("lora_unet_", "lora_transformer_", "lora_te", "lycoris_")) for k in keys):
        parts = _parse_kohya(tensors, source)
        kinds = {p.kind for p in parts} - {"lora"}
        return ("kohya" if not kinds else "lycoris_" + "+".join(sorted(kinds))), parts
    if any(".lora_A." in k or ".lora_B." in k or ".lora.down." in k or ".lora.up." in k or ".lora_down." in k for k in keys):
        return "peft", _parse_peft(tensors, metadata, source)
    if any(".hada_" in k or ".lokr_" in k for k in keys):
        raise IncompatibleError(f"{source}: LoHa/LoKr in PEFT naming is not supported (kohya/LyCORIS naming is)")
    raise IncompatibleError(f"{source}: not a LoRA in a known format (kohya-ss, LyCORIS or diffusers/PEFT)")


#: XLabs' attention-processor LoRAs on Flux double blocks -> the BFL module each adapts (1 = image, 2 = text stream).
XLABS_MODULES = {"qkv_lora1": "img_attn.qkv", "qkv_lora2": "txt_attn.qkv", "proj_lora1": "img_attn.proj",
                 "proj_lora2": "txt_attn.proj"}


def _xlabs_as_dotted(tensors: dict[str, Any], source: str) -> dict[str, Any]:
    """``double_blocks.N.processor.qkv_lora1.down.weight`` -> ``double_blocks.N.img_attn.qkv.lora_down.weight``
    (no alpha: XLabs apply up @ down unscaled, as diffusers does)."""
    out = {}
    for key, value in tensors.items():
        found = re.fullmatch(r"(?:diffusion_model\.)?(double_blocks\.\d+)\.processor\.(\w+)\.(down|up)\.weight", key)
        if found is None or found.group(2) not in XLABS_MODULES:
            raise IncompatibleError(f"{source}: {key} is not an XLabs Flux LoRA key this merge knows")
        block, module, side = found.groups()
        out[f"{block}.{XLABS_MODULES[module]}.lora_{side}.weight"] = value
    return out


def _parse_kohya(tensors: dict[str, Any], source: str) -> list[LoraPart]:
    groups: dict[str, dict[str, Any]] = {}
    for key, value in tensors.items():
        stem, _, leaf = key.partition(".")
        if not stem.startswith(("lora_", "lycoris_")):
            continue
        groups.setdefault(stem, {})[leaf] = value
    parts = []
    for stem, g in groups.items():
        if stem.startswith("lycoris_"):  # SimpleTuner: the denoiser's diffusers path, underscored
            component, body = "denoiser", stem.removeprefix("lycoris_")
        else:
            _, _, rest = stem.partition("_")  # "lora", "unet_..." / "te1_..."
            comp_key, _, body = rest.partition("_")
            found = KOHYA_COMPONENTS.get(f"lora_{comp_key}")
            if found is None:
                raise IncompatibleError(f"{source}: unknown kohya component prefix lora_{comp_key}")
            component = found
        alpha = None if g.get("alpha") is None else float(g["alpha"])
        parts.append(_kohya_part(source, stem, component, body, g, alpha))
    return parts


def _kohya_part(source: str, stem: str, component: str, body: str, g: dict[str, Any], alpha: float | None) -> LoraPart:
    """One module's tensors as a part of the kind they spell; a group missing a factor or holding a tensor
    the merge would not use is refused (applying it without that tensor would be silently wrong)."""
    leaves = set(g) - {"alpha"}
    if "lora_down.weight" in leaves or "lora_up.weight" in leaves:
        unknown = leaves - {"lora_down.weight", "lora_up.weight", "lora_mid.weight"}
        if "lora_down.weight" not in leaves or "lora_up.weight" not in leaves or unknown:
            raise IncompatibleError(f"{source}: {stem} is not a lora_down/lora_up pair"
                                    + (f" (also holds {', '.join(sorted(unknown))})" if unknown else ""))
        mid = {"lora_mid": g["lora_mid.weight"]} if "lora_mid.weight" in g else {}
        return LoraPart(component, body, g["lora_down.weight"], g["lora_up.weight"], alpha, style="kohya", factors=mid)
    for kind, known, needed in (
        ("loha", LOHA_LEAVES, [("hada_w1_a",), ("hada_w1_b",), ("hada_w2_a",), ("hada_w2_b",)]),
        ("lokr", LOKR_LEAVES, [("lokr_w1", "lokr_w1_a"), ("lokr_w2", "lokr_w2_a")]),
    ):
        if not leaves & known:
            continue
        missing = [" or ".join(options) for options in needed if not leaves & set(options)]
        pairs = [("lokr_w1_a", "lokr_w1_b"), ("lokr_w2_a", "lokr_w2_b"), ("lokr_t2", "lokr_w2_a"),
                 ("hada_t1", "hada_t2"), ("hada_t2", "hada_t1")]
        missing += [b for a, b in pairs if a in leaves and b not in leaves]
        unused = sorted(leaves - known)
        if missing or unused:
            why = f"lacks {', '.join(missing)}" if missing else f"holds {', '.join(unused)}, which the merge does not use"
            raise IncompatibleError(f"{source}: {stem} is a LyCORIS {kind} module that {why}")
        return LoraPart(component, body, alpha=alpha, style="kohya", kind=kind, factors=dict(g))
    raise IncompatibleError(f"{source}: {stem} has no lora_down/lora_up pair (nor LoHa/LoKr factors)")


def _parse_peft(tensors: dict[str, Any], metadata: dict[str, str], source: str) -> list[LoraPart]:
    adapter_meta: dict[str, Any] = {}
    if metadata.get("lora_adapter_metadata"):
        try:
            adapter_meta = json.loads(metadata["lora_adapter_metadata"])
        except ValueError:
            adapter_meta = {}
    downs: dict[str, Any] = {}
    ups: dict[str, Any] = {}
    alphas: dict[str, float] = {}
    for key, value in tensors.items():
        k = key.removeprefix("base_model.model.")
        for down_tag, up_tag in ((".lora_A.weight", ".lora_B.weight"), (".lora.down.weight", ".lora.up.weight"),
                                 (".lora_down.weight", ".lora_up.weight")):
            if k.endswith(down_tag):
                downs[k[: -len(down_tag)]] = value
                break
            if k.endswith(up_tag):
                ups[k[: -len(up_tag)]] = value
                break
        else:
            if k.endswith(".alpha"):
                alphas[k[: -len(".alpha")]] = float(value)
    parts = []
    for stem, down in downs.items():
        if stem not in ups:
            raise IncompatibleError(f"{source}: {stem} has a down/A matrix but no up/B matrix")
        component, _, module = stem.partition(".")
        if component not in PEFT_COMPONENTS:  # a bare PEFT adapter of the denoiser
            component, module = "denoiser", stem
        alpha = alphas.get(stem)
        if alpha is None:
            alpha = _peft_alpha(adapter_meta, component, module)
        parts.append(LoraPart(component, module, down, ups[stem], alpha, style="dotted"))
    return parts


def _peft_alpha(adapter_meta: dict[str, Any], component: str, module: str) -> float | None:
    """A module's alpha from diffusers' packed LoraConfig: its ``alpha_pattern`` entry, else ``lora_alpha``.

    As in PEFT, a pattern key is a regular expression matched against the end of the module's name
    at a dot boundary (``attn1.to_q`` matches ``down_blocks.0....attn1.to_q``).
    """
    pattern = adapter_meta.get(f"{component}.alpha_pattern")
    if isinstance(pattern, dict):
        for key, value in pattern.items():
            try:
                hit = re.fullmatch(rf"(?:.*\.)?(?:{key})", module) is not None
            except re.error:
                hit = module == key or module.endswith("." + key)
            if hit:
                return float(value)
    if f"{component}.lora_alpha" in adapter_meta:
        return float(adapter_meta[f"{component}.lora_alpha"])
    return None


# -- matching against the model --------------------------------------------------------------------------


def _underscored(name: str) -> str:
    return name.replace(".", "_")


class ModuleIndex:
    """Every weight-bearing module of one component, under each name a LoRA may use for it."""

    def __init__(self, module: Any, original_names: dict[str, str] | None = None) -> None:
        self.root = module
        self.by_name: dict[str, Any] = {}
        self.by_kohya: dict[str, Any] = {}
        for name, sub in module.named_modules():
            if not hasattr(sub, "weight") or sub.weight is None:
                continue
            for alias in _name_variants(name):
                self.by_name.setdefault(alias, sub)
                self.by_kohya.setdefault(_underscored(alias), sub)
            if original_names and name in original_names:
                self.by_kohya.setdefault(_underscored(original_names[name]), sub)

    def find(self, part: LoraPart) -> Any:
        if part.style == "kohya":
            return self.by_kohya.get(part.module) or self.by_kohya.get(part.module.removeprefix("text_model_"))
        return self.by_name.get(part.module) or self.by_name.get(part.module.removeprefix("text_model."))


def _name_variants(name: str) -> Iterable[str]:
    yield name
    # transformers >= 5.6 flattened CLIPTextModel (no "text_model." prefix); LoRAs still carry it.
    if name.startswith("text_model."):
        yield name.removeprefix("text_model.")
    else:
        yield "text_model." + name


def unet_original_names(unet: Any) -> dict[str, str]:
    """diffusers UNet module name -> original (LDM/SGM) module name, from the UNet's own config."""
    cfg = unet.config
    lpb = cfg["layers_per_block"]
    lpb = lpb if isinstance(lpb, int) else lpb[0]
    names: dict[str, str] = {}
    for name, _ in unet.named_modules():
        p = name.split(".")
        rest = ".".join(p[4:])
        if p[0] == "down_blocks" and len(p) >= 4:
            i, what, j = int(p[1]), p[2], int(p[3])
            if what == "resnets":
                names[name] = _join(f"input_blocks.{1 + i * (lpb + 1) + j}.0", _resnet_inner(rest))
            elif what == "attentions":
                names[name] = _join(f"input_blocks.{1 + i * (lpb + 1) + j}.1", rest)
        elif p[0] == "up_blocks" and len(p) >= 4:
            i, what, j = int(p[1]), p[2], int(p[3])
            if what == "resnets":
                names[name] = _join(f"output_blocks.{i * (lpb + 1) + j}.0", _resnet_inner(rest))
            elif what == "attentions":
                names[name] = _join(f"output_blocks.{i * (lpb + 1) + j}.1", rest)
        elif p[0] == "mid_block" and len(p) >= 3:
            what, k, rest = p[1], int(p[2]), ".".join(p[3:])
            if what == "resnets":
                names[name] = _join(f"middle_block.{0 if k == 0 else 2}", _resnet_inner(rest))
            else:
                names[name] = _join("middle_block.1", rest)
    # Up/down samplers and the stem carry no LoRA in practice; they are not mapped.
    return names


_RESNET_INNER = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
                 "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}


def _resnet_inner(rest: str) -> str:
    head, dot, tail = rest.partition(".")
    return _RESNET_INNER.get(head, head) + (dot + tail if dot else "")


def _join(a: str, b: str) -> str:
    return f"{a}.{b}" if b else a


# SD3 MMDiT original names (kohya SD3 LoRAs) -> diffusers; fused qkv split into three.
_SD3_BLOCK = {
    "x_block_attn_proj": ["attn.to_out.0"],
    "context_block_attn_proj": ["attn.to_add_out"],
    "x_block_mlp_fc1": ["ff.net.0.proj"],
    "x_block_mlp_fc2": ["ff.net.2"],
    "context_block_mlp_fc1": ["ff_context.net.0.proj"],
    "context_block_mlp_fc2": ["ff_context.net.2"],
    "x_block_attn_qkv": ["attn.to_q", "attn.to_k", "attn.to_v"],
    "context_block_attn_qkv": ["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"],
}


def _split_sd3_kohya(part: LoraPart) -> list[LoraPart] | None:
    if not part.module.startswith("joint_blocks_"):
        return None
    _, _, rest = part.module.partition("joint_blocks_")
    index, _, inner = rest.partition("_")
    targets = _SD3_BLOCK.get(inner)
    if targets is None:
        return None
    out = []
    shape = part.delta_shape()
    if shape is None:
        return None
    size = shape[0] // len(targets)
    for n, target in enumerate(targets):
        name = f"transformer_blocks.{index}.{target}"
        if part.kind == "lora" and "lora_mid" not in part.factors:
            up = part.up[n * size:(n + 1) * size] if len(targets) > 1 else part.up
            out.append(LoraPart(part.component, name, part.down, up, part.alpha, "dotted"))
        else:  # the rows of the whole update: LoHa/LoKr updates do not split factor by factor
            rows = (n * size, (n + 1) * size) if len(targets) > 1 else None
            out.append(LoraPart(part.component, name, part.down, part.up, part.alpha, "dotted", part.kind,
                                part.factors, out_slice=rows))
    return out


def _split_flux(part: LoraPart, index: ModuleIndex) -> list[LoraPart] | None:
    """A LoRA module in Black Forest Labs' naming (kohya's ``double_blocks_0_img_attn_qkv``, bare or ComfyUI's
    ``diffusion_model.double_blocks.0.img_attn.qkv``, XLabs') on the diffusers modules it spans: fused
    projections are split by the loaded layers' own sizes. None for names that are diffusers' already."""
    from hub_plugins.flux import bfl_targets

    mapped = bfl_targets(part.module)
    if mapped is None:
        return None
    targets, swapped = mapped
    layers = [index.by_name.get(t) for t in targets]
    shape = part.delta_shape()
    if any(layer is None for layer in layers) or shape is None:
        return None
    sizes = [int(layer.weight.shape[0]) for layer in layers]
    if sum(sizes) != shape[0]:
        return None  # reported as a shape mismatch by the caller
    out, start = [], 0
    for target, size in zip(targets, sizes):
        rows = (start, start + size) if len(targets) > 1 else None
        if part.kind == "lora" and "lora_mid" not in part.factors and rows is not None:
            out.append(LoraPart(part.component, target, part.down, part.up[rows[0]:rows[1]], part.alpha, "dotted"))
        else:
            out.append(LoraPart(part.component, target, part.down, part.up, part.alpha, "dotted", part.kind,
                                part.factors, out_slice=rows, swap_halves=swapped))
        start += size
    return out


# -- merging ---------------------------------------------------------------------------------------------------


def merge_lora(pipe: Any, path: Path, weight: float, name: str) -> MergeReport:
    """Merge one LoRA file into ``pipe``'s weights; all-or-nothing per file."""
    import torch

    tensors, metadata = read_lora(path)
    fmt, parts = parse_lora(tensors, metadata, str(path))
    denoiser_name = "transformer" if getattr(pipe, "transformer", None) is not None else "unet"
    flux = type(getattr(pipe, "transformer", None)).__name__ == "FluxTransformer2DModel"
    indexes: dict[str, ModuleIndex] = {}

    def index_for(component: str) -> ModuleIndex | None:
        if component not in indexes:
            module = getattr(pipe, component, None)
            if module is None:
                return None
            originals = unet_original_names(module) if component == "unet" else None
            indexes[component] = ModuleIndex(module, originals)
        return indexes[component]

    planned: list[tuple[Any, LoraPart]] = []
    problems: list[str] = []
    for part in parts:
        if part.component == "denoiser":
            part.component = denoiser_name
        if flux and part.component == "text_encoder_3":
            part.component = "text_encoder_2"  # kohya's lora_te3 is T5, which Flux's pipeline calls text_encoder_2
        pieces = [part]
        if flux and part.component == "transformer":
            index = index_for("transformer")
            pieces = (_split_flux(part, index) if index is not None else None) or [part]
        elif part.component == "transformer" and part.style == "kohya":
            pieces = _split_sd3_kohya(part) or [part]
        for piece in pieces:
            index = index_for(piece.component)
            if index is None:
                problems.append(f"{piece.component}.{piece.module} (the model has no {piece.component})")
                continue
            module = index.find(piece)
            if module is None:
                problems.append(f"{piece.component}.{piece.module} (no such layer)")
                continue
            expected = piece.delta_shape()
            if expected is not None and piece.out_slice is not None:
                expected = (piece.out_slice[1] - piece.out_slice[0], *expected[1:])
            if expected is None or not _fits(expected, tuple(module.weight.shape)):
                problems.append(
                    f"{piece.component}.{piece.module} (LoRA shape {expected}, layer {tuple(module.weight.shape)})"
                )
                continue
            planned.append((module, piece))
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise IncompatibleError(f"LoRA {path} does not fit this model: {len(problems)} of its layers do not match: {shown}")
    if not planned:
        raise IncompatibleError(f"LoRA {path} contains no layer to apply")
    report = MergeReport(name=name, format=fmt)
    with torch.no_grad():
        for module, piece in planned:
            w = module.weight
            delta = piece.delta(w.device).reshape(w.shape)
            w.copy_((w.float() + (weight * piece.scale) * delta).to(w.dtype))
            report.merged += 1
            report.components.add(piece.component)
    return report


def _fits(delta: tuple[int, ...], weight: tuple[int, ...]) -> bool:
    """Same out features and as many inputs; kernels equal where both have one. A linear update fits a
    1x1 conv (SD1 vs SDXL proj_in) and a LoHa conv update comes flattened to (out, in * kh * kw)."""
    if delta[0] != weight[0] or math.prod(delta[1:]) != math.prod(weight[1:]):
        return False
    return len(delta) != 4 or len(weight) != 4 or delta[2:] == weight[2:]
