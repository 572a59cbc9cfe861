"""Placing a UNet LoRA (SD1, SD2, SDXL, SDXL refiner) by every adapted layer, not just cross-attention.

A LoRA that adapts no cross-attention K/V (``attn2.to_k``) still shows where it sits: each adapted
module has a block location in its name and a channel width in its shapes. The UNets differ in both:

==============  =========================================  =============================================
location        SD1 / SD2 (4 levels, 1 block each)         SDXL (3 levels, 2 / 10 blocks)   refiner
==============  =========================================  =============================================
input 1, 2      attention 320                              resnet only (320)                resnet 384
input 4, 5      attention 640                              attention 640, 2 blocks          768, 4 blocks
input 7, 8      attention 1280                             attention 1280, 10 blocks        1536, 4
input 10, 11    resnet 1280                                (none)                           resnet 1536
middle          attention 1280                             attention 1280, 10 blocks        1536, 4
output 0-2      resnet 1280                                attention 1280, 10 blocks        resnet 1536
output 3-5      attention 1280                             attention 640, 2 blocks          1536, 4
output 6-8      attention 640                              resnet 320                       768, 4
output 9-11     attention 320                              (none)                           resnet 384
==============  =========================================  =============================================

(``input_blocks.N`` / ``output_blocks.N`` in the LDM/SGM names kohya's SDXL, ComfyUI and OneTrainer
write; diffusers ``down_blocks.B.attentions.A`` is input ``3B + A + 1``, ``up_blocks.B.attentions.A``
output ``3B + A``, as in diffusers' own ``_maybe_map_sgm_blocks_to_diffusers``.) SD1's ``proj_in`` /
``proj_out`` are 1x1 convolutions, SD2's and SDXL's linear layers (``use_linear_projection``). The text
encoders add: kohya's ``lora_te_`` (one encoder) is SD1/SD2 by width 768/1024; a second encoder
(``lora_te2_`` / ``text_encoder_2``) is CLIP-G, which SD1/SD2 do not have, but SDXL, its refiner and
SD3 all do, so a CLIP-G-only LoRA stays unknown unless metadata names one.

Every observation is checked against every UNet family; a family is chosen only when it fits all of
them and some observation rules each other family out, and that observation is the evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hub.identify import LoraModule, LoraView


@dataclass(frozen=True)
class UNetGeometry:
    """Channel widths per block location (None: the location has no such layer)."""

    name: str
    attn_in: dict[int, int]
    attn_mid: int
    attn_out: dict[int, int]
    depth_in: dict[int, int]
    depth_mid: int
    depth_out: dict[int, int]
    res_in: dict[int, int]
    res_mid: int
    res_out: dict[int, int]
    conv_proj: bool  # proj_in/proj_out are 1x1 convolutions (SD1) rather than linear layers
    te_single: int | None  # kohya lora_te_ width (single text encoder), None when it has two
    has_te2: bool


def _same(keys: range | tuple[int, ...], value: int) -> dict[int, int]:
    return dict.fromkeys(keys, value)


SD_GEOMETRY = dict(
    attn_in={**_same((1, 2), 320), **_same((4, 5), 640), **_same((7, 8), 1280)}, attn_mid=1280,
    attn_out={**_same((3, 4, 5), 1280), **_same((6, 7, 8), 640), **_same((9, 10, 11), 320)},
    depth_in=_same((1, 2, 4, 5, 7, 8), 1), depth_mid=1, depth_out=_same(range(3, 12), 1),
    res_in={**_same((1, 2), 320), **_same((4, 5), 640), **_same((7, 8, 10, 11), 1280)}, res_mid=1280,
    res_out={**_same(range(0, 6), 1280), **_same((6, 7, 8), 640), **_same((9, 10, 11), 320)},
)
GEOMETRIES: dict[str, UNetGeometry] = {
    "sd1": UNetGeometry("sd1", **SD_GEOMETRY, conv_proj=True, te_single=768, has_te2=False),  # type: ignore[arg-type]
    "sd2": UNetGeometry("sd2", **SD_GEOMETRY, conv_proj=False, te_single=1024, has_te2=False),  # type: ignore[arg-type]
    "sdxl": UNetGeometry(
        "sdxl", attn_in={**_same((4, 5), 640), **_same((7, 8), 1280)}, attn_mid=1280,
        attn_out={**_same((0, 1, 2), 1280), **_same((3, 4, 5), 640)},
        depth_in={4: 2, 5: 2, 7: 10, 8: 10}, depth_mid=10, depth_out={**_same((0, 1, 2), 10), **_same((3, 4, 5), 2)},
        res_in={**_same((1, 2), 320), **_same((4, 5), 640), **_same((7, 8), 1280)}, res_mid=1280,
        res_out={**_same((0, 1, 2), 1280), **_same((3, 4, 5), 640), **_same((6, 7, 8), 320)},
        conv_proj=False, te_single=None, has_te2=True),
    "sdxl_refiner": UNetGeometry(
        "sdxl_refiner", attn_in={**_same((4, 5), 768), **_same((7, 8), 1536)}, attn_mid=1536,
        attn_out={**_same((3, 4, 5), 1536), **_same((6, 7, 8), 768)},
        depth_in=_same((4, 5, 7, 8), 4), depth_mid=4, depth_out=_same(range(3, 9), 4),
        res_in={**_same((1, 2), 384), **_same((4, 5), 768), **_same((7, 8, 10, 11), 1536)}, res_mid=1536,
        res_out={**_same(range(0, 6), 1536), **_same((6, 7, 8), 768), **_same((9, 10, 11), 384)},
        conv_proj=False, te_single=None, has_te2=True),
}

_SEP = r"[._]"
# A module's name after its scheme prefix, in LDM/SGM or diffusers block naming (kohya's "_" or ".").
_LDM = re.compile(rf"(input|output)_blocks{_SEP}(\d+){_SEP}([012]){_SEP}(.+)|middle_block{_SEP}([012]){_SEP}(.+)")
_DIFF = re.compile(rf"(down|up)_blocks{_SEP}(\d+){_SEP}(attentions|resnets){_SEP}(\d+){_SEP}(.+)"
                   rf"|mid_block{_SEP}(attentions|resnets){_SEP}(\d+){_SEP}(.+)")
_ATTN_LAYER = re.compile(
    rf"transformer_blocks{_SEP}(\d+){_SEP}(attn1{_SEP}to_[qkv]|attn1{_SEP}to_out{_SEP}0|attn2{_SEP}to_q|attn2{_SEP}to_[kv]"
    rf"|attn2{_SEP}to_out{_SEP}0|ff{_SEP}net{_SEP}0{_SEP}proj|ff{_SEP}net{_SEP}2)$|(proj_in|proj_out)$")
_RES_LAYER = re.compile(rf"(in_layers{_SEP}2|out_layers{_SEP}3|emb_layers{_SEP}1|skip_connection|conv1|conv2"
                        rf"|time_emb_proj|conv_shortcut)$")
_UNET_PREFIXES = ("lora_unet_", "lycoris_", "unet.", "unet.base_model.model.", "lora_unet.", "diffusion_model.",
                  "base_model.model.", "")


@dataclass(frozen=True)
class Seen:
    """One adapted UNet layer: where it is, how wide, and the module that said so."""

    where: str  # "in" | "mid" | "out"
    index: int  # LDM block index (input/output), or 1 for the middle attention, 0/2 its resnets
    kind: str  # "attn" | "res"
    block: int | None  # transformer block index within an attention
    layer: str  # normalised layer name ("attn1.to_q", "proj_in", "in_layers.2"...)
    width: int  # the block's channel count
    module: LoraModule

    def text(self) -> str:
        loc = {"in": f"input block {self.index}", "out": f"output block {self.index}", "mid": "middle block"}[self.where]
        tb = f" transformer block {self.block}" if self.block is not None else ""
        how = f" ({self.module.how})" if self.module.how else ""
        return f"{self.module.key}{how}: {self.layer} of {loc}{tb}, {self.width} channels"


def _width(layer: str, module: LoraModule) -> int | None:
    """The block's channel count from one adapted layer (out-features are the safest: a LoHa/LoKr conv
    folds its kernel into the in-features)."""
    out, inp = module.out_features, module.in_features
    if module.scale_width is not None:  # IA3 scales in- or out-features: only layers where both are C tell
        return module.scale_width if layer in _SAME_IO else None
    if layer == "ff.net.0.proj":  # GEGLU: out = 2 x 4C
        return out // 8 if out and out % 8 == 0 else (inp if module.conv is not None or module.algo == "lora" else None)
    if out:
        return out
    if layer in ("attn2.to_k", "attn2.to_v"):
        return None  # in-features are the text context, not the channels
    if layer == "ff.net.2":
        return inp // 4 if inp and inp % 4 == 0 else None
    return inp if layer not in _RES_NAMES else None


_SAME_IO = {"attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_out.0", "proj_in",
            "proj_out", "out_layers.3"}
_RES_NAMES = {"in_layers.2", "out_layers.3", "emb_layers.1", "skip_connection", "conv1", "conv2", "time_emb_proj",
              "conv_shortcut"}
_DIFF_RES = {"conv1": "in_layers.2", "conv2": "out_layers.3", "time_emb_proj": "emb_layers.1",
             "conv_shortcut": "skip_connection"}


def _norm(text: str) -> str:
    return text.replace("_", ".").replace("to.out", "to_out").replace("to.q", "to_q").replace("to.k", "to_k") \
        .replace("to.v", "to_v").replace("proj.in", "proj_in").replace("proj.out", "proj_out") \
        .replace("in.layers", "in_layers").replace("out.layers", "out_layers").replace("emb.layers", "emb_layers") \
        .replace("skip.connection", "skip_connection").replace("time.emb.proj", "time_emb_proj") \
        .replace("conv.shortcut", "conv_shortcut")


def _locate(rest: str) -> tuple[str, int, str, int | None, str] | None:
    """(where, LDM index, kind, transformer block, layer) of a module path, or None."""
    m = _LDM.match(rest)
    if m:
        if m.group(1):
            where, index, sub, tail = ("in" if m.group(1) == "input" else "out"), int(m.group(2)), m.group(3), m.group(4)
        else:
            where, index, sub, tail = "mid", int(m.group(5)), m.group(5), m.group(6)
        kind = "attn" if sub == "1" else "res"
        if where == "mid":
            index = int(sub)
    else:
        d = _DIFF.match(rest)
        if not d:
            return None
        if d.group(1):
            b, what, i, tail = int(d.group(2)), d.group(3), int(d.group(4)), d.group(5)
            index = 3 * b + i + 1 if d.group(1) == "down" else 3 * b + i
            where = "in" if d.group(1) == "down" else "out"
        else:
            what, i, tail = d.group(6), int(d.group(7)), d.group(8)
            where, index = "mid", (1 if what == "attentions" else (0 if i == 0 else 2))
        kind = "attn" if what == "attentions" else "res"
    if kind == "attn":
        a = _ATTN_LAYER.match(tail)
        if not a:
            return None
        if a.group(3):
            return where, index, kind, None, a.group(3)
        return where, index, kind, int(a.group(1)), _norm(a.group(2))
    r = _RES_LAYER.match(tail)
    if not r:
        return None
    layer = _norm(r.group(1))
    return where, index, kind, None, _DIFF_RES.get(layer, layer)


# Top-level module names a UNet has (LDM/SGM and diffusers); any other name under the unet part is another
# architecture's layer (joint_blocks, double_blocks, transformer_blocks...).
_UNET_TOP = ("input_blocks", "output_blocks", "middle_block", "time_embed", "label_emb", "out", "down_blocks",
             "up_blocks", "mid_block", "conv_in", "conv_out", "conv_norm_out", "time_embedding", "add_embedding")


def _locations() -> list[tuple[str, str, int, str]]:
    """(module path prefix, where, LDM index, attn|res) of every UNet block location, in both namings."""
    out: list[tuple[str, str, int, str]] = []
    for i in range(12):
        out += [(f"input_blocks.{i}.1.", "in", i, "attn"), (f"input_blocks.{i}.0.", "in", i, "res"),
                (f"output_blocks.{i}.1.", "out", i, "attn"), (f"output_blocks.{i}.0.", "out", i, "res")]
    out += [("middle_block.1.", "mid", 1, "attn"), ("middle_block.0.", "mid", 0, "res"),
            ("middle_block.2.", "mid", 2, "res"), ("mid_block.attentions.0.", "mid", 1, "attn"),
            ("mid_block.resnets.0.", "mid", 0, "res"), ("mid_block.resnets.1.", "mid", 2, "res")]
    for b in range(4):
        for j in range(3):
            if j < 2:
                out += [(f"down_blocks.{b}.attentions.{j}.", "in", 3 * b + j + 1, "attn"),
                        (f"down_blocks.{b}.resnets.{j}.", "in", 3 * b + j + 1, "res")]
            out += [(f"up_blocks.{b}.attentions.{j}.", "out", 3 * b + j, "attn"),
                    (f"up_blocks.{b}.resnets.{j}.", "out", 3 * b + j, "res")]
    return out


LOCATIONS = _locations()
_LDM_LOCATIONS = [loc for loc in LOCATIONS if loc[0].startswith(("input_blocks", "output_blocks", "middle_block"))]
_DIFFUSERS_LOCATIONS = [loc for loc in LOCATIONS if loc not in _LDM_LOCATIONS]


@dataclass
class Observed:
    seen: list[Seen] = field(default_factory=list)
    foreign: str | None = None  # the first unet-part key that is no UNet layer


def _foreign_key(lv: LoraView, prefix: str, style: str) -> str | None:
    """A key under the unet-part ``prefix`` outside every UNet top-level module, found by prefix counts."""
    view = lv.view
    sep = "_" if style == "kohya" else "."
    total = view.count(prefix) if prefix else lv.bare
    if prefix:
        for other, n in lv.prefix_counts.items():  # unet. also counts unet.base_model.model.
            if other != prefix and other.startswith(prefix) and n:
                total -= view.count(other)
    known = sum(view.count(prefix + top + sep) for top in _UNET_TOP)
    if known >= total:
        return None
    names = view.keys(prefix) if prefix else view.sorted_names
    for name in names:
        rest = name[len(prefix):]
        if not rest.startswith(tuple(t + sep for t in _UNET_TOP)) and (prefix or _bare(lv, name)):
            return name
    return None


def _bare(lv: LoraView, name: str) -> bool:
    from hub.identify.lora import LORA_PREFIXES

    return not name.startswith(tuple(LORA_PREFIXES))


def _first_module(lv: LoraView, name_prefix: str, limit: int = 6) -> tuple[str, LoraModule] | None:
    from hub.identify.lora import _module_name

    for key in lv.view.first_keys(name_prefix, limit):
        base = _module_name(key)
        module = lv.module(base) if base is not None else None
        if module is not None and base is not None:
            return base, module
    return None


_SPELLED: dict[tuple[str, str, bool], list[tuple[str, tuple[str, ...], str, str, int, str]]] = {}


def _spelled(prefix: str, style: str, ldm: bool) -> list[tuple[str, tuple[str, ...], str, str, int, str]]:
    """The block locations as key prefixes in one naming scheme (name, deeper-block names, proj_in name,
    where, index, kind), built once per scheme: every file of that naming asks for the same strings."""
    key = (prefix, style, ldm)
    if key not in _SPELLED:
        def spell(path: str) -> str:
            return prefix + (path.replace(".", "_") if style == "kohya" else path)

        _SPELLED[key] = [(spell(path), tuple(spell(f"{path}transformer_blocks.{t}.") for t in (4, 2, 1)),
                          spell(path + "proj_in"), where, index, kind)
                         for path, where, index, kind in (_LDM_LOCATIONS if ldm else _DIFFUSERS_LOCATIONS)]
    return _SPELLED[key]


def observations(lv: LoraView) -> Observed:
    """Adapted UNet layers with their location and width, probed per block location (a few bisects each,
    never a pass over every name): the first layer there, the deepest transformer block among 1, 2, 4
    (SD1/SD2 have 1 per attention, SDXL 2 or 10, the refiner 4), and proj_in (conv or linear) where adapted."""
    cache = lv.__dict__.setdefault("_family_memo", {})
    if "unet_seen" in cache:
        return cache["unet_seen"]
    result = Observed()
    cache["unet_seen"] = result
    schemes = lv.schemes.get("unet", ())
    for prefix, style in schemes:
        result.foreign = _foreign_key(lv, prefix, style)
        if result.foreign is not None:
            return result
    for prefix, style in schemes:
        sep = "_" if style == "kohya" else "."
        ldm = any(lv.view.has_prefix(prefix + top + sep) for top in ("input_blocks", "middle_block", "output_blocks"))
        diffusers = any(lv.view.has_prefix(prefix + top + sep) for top in ("down_blocks", "mid_block", "up_blocks"))
        locations = (_spelled(prefix, style, True) if ldm else []) + (_spelled(prefix, style, False) if diffusers else [])
        has = lv.view.has_prefix
        for name, deeps, proj, where, index, kind in locations:
            if not has(name):
                continue
            probes = [name]
            if kind == "attn":
                deep = next((n for n in deeps if has(n)), None)
                probes += [deep] if deep else []
                if has(proj) and not lv.view.first_keys(name, 1)[0].startswith(proj):  # proj_in usually sorts first
                    probes.append(proj)
            for probe in probes:
                found = _first_module(lv, probe)
                if found is None:
                    continue
                base, module = found
                loc = _locate(base[len(prefix):])
                if loc is None:
                    continue
                width = _width(loc[4], module)
                if width is not None:
                    result.seen.append(Seen(where, index, kind, loc[3], loc[4], width, module))
    return result


def misfit(g: UNetGeometry, s: Seen) -> str | None:
    """Why ``s`` cannot be a layer of ``g``'s UNet, or None when it fits."""
    if s.kind == "attn":
        table = {"in": g.attn_in, "out": g.attn_out}.get(s.where)
        width = g.attn_mid if s.where == "mid" else (table or {}).get(s.index)
        depth = g.depth_mid if s.where == "mid" else {"in": g.depth_in, "out": g.depth_out}[s.where].get(s.index, 0)
        if width is None:
            return f"{g.name} has no attention there"
        if s.block is not None and s.block >= depth:
            return f"{g.name} has {depth} transformer block{'s' if depth != 1 else ''} there"
        if s.layer in ("proj_in", "proj_out") and s.module.conv is not None and s.module.conv != g.conv_proj:
            return f"{g.name}'s {s.layer} is a {'1x1 convolution' if g.conv_proj else 'linear layer'}"
    else:
        width = g.res_mid if s.where == "mid" else {"in": g.res_in, "out": g.res_out}[s.where].get(s.index)
        if width is None:
            return f"{g.name} has no resnet there"
    if s.width != width:
        return f"{g.name} has {width} channels there"
    return None


@dataclass
class Placement:
    """Which UNet families the adapted layers fit, and why the others are out."""

    fits: list[str] = field(default_factory=list)
    ruled_out: dict[str, str] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    unet_layers: int = 0  # UNet layers observed (placement decides only from these, never from text encoders alone)


def placement(lv: LoraView) -> Placement:
    """Check every observation (UNet layers, text-encoder naming and widths) against each UNet family."""
    cache = lv.__dict__.setdefault("_family_memo", {})
    if "unet_placement" in cache:
        return cache["unet_placement"]
    observed = observations(lv)
    obs = observed.seen
    parts = lv.parts()
    result = Placement()
    te: list[tuple[str, str, int | None]] = []  # (part, key, width)
    if "te1" in parts or "te2" in parts:
        te = _text_encoder_widths(lv)
    for name, g in GEOMETRIES.items():
        why: str | None = None
        if observed.foreign is not None:
            why = f"{observed.foreign}: not a UNet layer"
        for s in obs if why is None else ():
            bad = misfit(g, s)
            if bad:
                why = f"{s.text()}; {bad}"
                break
        if why is None and "t5" in parts:
            why = "it adapts a T5 text encoder, which UNet families do not have"
        if why is None:
            for part, key, width in te:
                if part == "te2" and not g.has_te2:
                    why = f"{key}: a second text encoder, which {name} does not have"
                elif part == "te_single" and g.te_single is None:
                    why = f"{key}: kohya's lora_te_ names are written for single-text-encoder models; {name} has two"
                elif part == "te_single" and width is not None and width != g.te_single:
                    why = f"{key} width {width}; {name}'s text encoder is {g.te_single} wide"
                elif part in ("te1", "te1_of_two") and name == "sdxl_refiner":
                    why = f"{key}: a CLIP-L text encoder; the SDXL refiner has only CLIP-G"
                elif part == "te1_of_two" and g.te_single is not None:
                    why = f"{key}: kohya's lora_te1_ names the first of two text encoders; {name} has one"
                elif part in ("te1", "te1_of_two") and width is not None and g.te_single is None and width != 768:
                    why = f"{key} width {width}; {name}'s first text encoder is CLIP-L (768)"
                elif part == "te2" and width is not None and width != 1280:
                    why = f"{key} width {width}; {name}'s second text encoder is CLIP-G (1280)"
                if why:
                    break
        if why:
            result.ruled_out[name] = why
        else:
            result.fits.append(name)
    result.unet_layers = len(obs)
    result.seen = [s.text() for s in obs[:3]] + [f"{key} ({part}, width {width})" for part, key, width in te[:2]]
    cache["unet_placement"] = result
    return result


def _te_width(module: LoraModule) -> int | None:
    """A CLIP text encoder's width from one adapted layer (mlp.fc1 in = width, fc2 out = width)."""
    if "fc1" in module.key:
        return module.in_features
    return module.out_features or (module.in_features if "fc2" not in module.key else None)


_TE_PATHS = ("text_model.encoder.layers.0.self_attn.q_proj", "text_model.encoder.layers.0.self_attn.k_proj",
             "text_model.encoder.layers.0.mlp.fc1", "text_model.encoder.layers.0.mlp.fc2")


def _text_encoder_widths(lv: LoraView) -> list[tuple[str, str, int | None]]:
    """(part label, key, width) for each text-encoder part; the label is "te_single" for kohya's lora_te_
    and "te1_of_two" for lora_te1_ (kohya writes it only for models with two or more encoders)."""
    out: list[tuple[str, str, int | None]] = []
    for part in ("te1", "te2"):
        for prefix, style in lv.schemes.get(part, ()):
            module = next((m for p in _TE_PATHS if (m := lv.module(lv.name_of(p, prefix, style))) is not None), None)
            if module is None:
                module = lv.find(*(f"{prefix}text_model.encoder.layers.{i}.mlp.fc1" for i in range(32)))
            label = {"lora_te_": "te_single", "lora_te1_": "te1_of_two"}.get(prefix, part)
            out.append((label, module.key if module is not None else prefix + "*",
                        _te_width(module) if module is not None else None))
            break
    return out
