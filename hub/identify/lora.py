"""LoRA / LyCORIS files: format, rank, parts, and a view that family matchers query by module path.

Trainers name the same layer differently: kohya writes
``lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight``, diffusers/PEFT
``unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight``, SimpleTuner's
LyCORIS ``lycoris_transformer_blocks_0_attn_to_q.lokr_w1``. :class:`LoraView` hides that: a family
matcher asks for ``dims("input_blocks.4.1.transformer_blocks.0.attn2.to_k")`` and gets the adapted
layer's in/out features and rank whatever the naming and algorithm (LoRA, LoHa, LoKr, full diff),
with the exact key that answered, for the evidence.

Format and rank come from a sample of the names (LoRA files are homogeneous: every module uses
the same algorithm), the module count from one C-level pass, parts from prefix counts.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from typing import Any

from .model import LoraInfo
from .view import HeaderView

# prefix in the file -> (part, naming style). "kohya" style replaces the dots of a module path with _.
LORA_PREFIXES: dict[str, tuple[str, str]] = {
    "lora_unet_": ("unet", "kohya"),
    "lora_transformer_": ("unet", "kohya"),  # OneTrainer
    "lycoris_": ("unet", "kohya"),  # SimpleTuner LyCORIS
    "lora_te_": ("te1", "kohya"),
    "lora_te1_": ("te1", "kohya"),
    "lora_te2_": ("te2", "kohya"),
    "lora_te3_": ("t5", "kohya"),
    "unet.": ("unet", "dotted"),
    "unet.base_model.model.": ("unet", "dotted"),
    "transformer.": ("unet", "dotted"),
    "transformer.base_model.model.": ("unet", "dotted"),
    "base_model.model.": ("unet", "dotted"),
    "diffusion_model.": ("unet", "dotted"),
    "lora_unet.": ("unet", "dotted"),
    "text_encoder.": ("te1", "dotted"),
    "text_encoder_2.": ("te2", "dotted"),
    "text_encoder_3.": ("t5", "dotted"),
    "text_encoders.clip_l.transformer.": ("te1", "dotted"),
    "text_encoders.clip_g.transformer.": ("te2", "dotted"),
    "text_encoders.t5xxl.transformer.": ("t5", "dotted"),
}

# Last name segment(s) -> role. ".weight" is stripped first.
ROLES: dict[str, str] = {
    "lora_down": "lora", "lora_up": "lora", "lora_mid": "lora_mid",
    "lora_A": "peft", "lora_B": "peft", "lora_magnitude_vector": "dora",
    "hada_w1_a": "loha", "hada_w1_b": "loha", "hada_w2_a": "loha", "hada_w2_b": "loha",
    "hada_t1": "loha", "hada_t2": "loha",
    "lokr_w1": "lokr", "lokr_w1_a": "lokr", "lokr_w1_b": "lokr", "lokr_w2": "lokr", "lokr_w2_a": "lokr",
    "lokr_w2_b": "lokr", "lokr_t2": "lokr",
    "oft_blocks": "oft", "oft_diag": "oft", "rescale": "oft", "on_input": "ia3",
    "a1": "glora", "a2": "glora", "b1": "glora", "b2": "glora",
    "diff": "full", "diff_b": "full",
    "alpha": "alpha", "dora_scale": "dora", "scale": "norm", "w_norm": "norm", "b_norm": "norm",
}
# One key per adapted module (for counting modules).
PRIMARY_SUFFIXES = (".lora_down.weight", ".lora_A.weight", ".lora_A.default.weight", ".hada_w1_a",
                    ".lokr_w1", ".lokr_w1_a", ".oft_blocks", ".a1.weight", ".down.weight", ".on_input", ".diff")
_SAMPLE = 128
# the key every adapted module has exactly once, per algorithm (alternatives counted together)
_PRIMARY_BY_ALGO = {"lora": (".lora_down.weight",), "peft": (".lora_A.weight",), "loha": (".hada_w1_a",),
                    "lokr": (".lokr_w1",), "attnproc": (".down.weight",), "oft": (".oft_blocks",),
                    "glora": (".a1.weight",), "full": (".diff",), "ia3": (".on_input",)}
_PRIMARY_BY_ALGO_GROUP = {".lora_down.weight": (".lora_down.weight",),
                          ".lora_A.weight": (".lora_A.weight", ".lora_A.default.weight"),
                          ".hada_w1_a": (".hada_w1_a",), ".lokr_w1": (".lokr_w1", ".lokr_w1_a"),
                          ".down.weight": (".down.weight",), ".oft_blocks": (".oft_blocks",),
                          ".a1.weight": (".a1.weight",), ".diff": (".diff",), ".on_input": (".on_input",)}


@dataclass(frozen=True)
class LoraModule:
    """One adapted layer: its key in the file, algorithm, and the base layer's in/out features."""

    key: str
    algo: str
    in_features: int | None
    out_features: int | None
    rank: int | None
    #: True when the stored factor is a conv kernel (LoRA ``lora_down`` [r, in, k, k]), False for a
    #: linear layer's 2-D factor, None when the algorithm's factors do not tell (LoHa/LoKr reshape).
    conv: bool | None = None
    #: How the widths were derived when no single factor holds them (LoKr's Kronecker product).
    how: str = ""
    #: IA3's scale vector width: the layer's in- or out-features (which one is tensor data, not shape).
    scale_width: int | None = None

    def describe(self, which: str = "in") -> str:
        return f"{self.key} ({self.algo}) {which}_features={self.in_features if which == 'in' else self.out_features}"


# kohya-style module names (no dots) whose only tensor is ``<name>.weight``: LyCORIS IA3 scales
_KOHYA_HEADS = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_", "lora_te3_", "lycoris_", "lora_transformer_")


def role_of(name: str) -> str | None:
    head, _, last = name.rpartition(".")
    if last == "weight" and "." not in head and head.startswith(_KOHYA_HEADS):
        return "ia3"  # LyCORIS IA3: <module>.weight [train_dim] beside <module>.on_input
    if last == "weight" or last == "bias":
        head, _, last = head.rpartition(".")
        if last == "default":  # PEFT "lora_A.default.weight"
            _, _, last = head.rpartition(".")
    if last in ROLES:
        return ROLES[last]
    if last in ("down", "up") and (head.endswith(("_lora", ".lora")) or "_lora1" in head
                                   or "_lora2" in head):
        return "attnproc"
    return None


def sample_names(names: list[str], k: int) -> list[str]:
    """A deterministic pseudo-random sample: a fixed stride would alias with the period of the
    names (kohya stores alpha/lora_down/lora_up per module, so every 3rd name is an alpha)."""
    if len(names) <= k:
        return names
    return random.Random(len(names)).sample(names, k)


_WEAK_ROLES = {"norm", None}


def looks_like_lora(view: HeaderView) -> bool:
    """True when most names carry LoRA/LyCORIS suffixes (a checkpoint with a few merged LoRA keys is not)."""
    names = view.sorted_names
    if not names:
        return False
    sample = sample_names(names, 64)
    hits = sum(1 for n in sample if role_of(n) not in _WEAK_ROLES)
    return hits * 2 > len(sample)


class LoraView:
    """Module-path queries over a LoRA header, whatever the trainer's naming."""

    def __init__(self, view: HeaderView) -> None:
        self.view = view
        self.metadata = view.metadata
        self.raw = view.raw
        self.prefix_counts = {p: view.count(p) for p in LORA_PREFIXES}
        # The longer prefix wins where two overlap (unet. vs unet.base_model.model.).
        for p, n in list(self.prefix_counts.items()):
            for q in LORA_PREFIXES:
                if q != p and q.startswith(p) and self.prefix_counts.get(q):
                    self.prefix_counts[p] = n - self.prefix_counts[q]
        covered = sum(self.prefix_counts.values())
        self.schemes: dict[str, list[tuple[str, str]]] = {}
        for p, n in self.prefix_counts.items():
            if n > 0:
                part, style = LORA_PREFIXES[p]
                self.schemes.setdefault(part, []).append((p, style))
        # bare keys (XLabs / BFL-style Flux LoRAs: "double_blocks.0.img_attn.qkv.lora_A.weight")
        self.bare = len(view) - covered
        if self.bare > 0:
            self.schemes.setdefault("unet", []).append(("", "dotted"))

    # -- parts ------------------------------------------------------------------------------
    def parts(self) -> list[str]:
        found = set(self.schemes)
        te2 = self.schemes.get("te2", [])
        # kohya Flux (OneTrainer/InvokeAI naming) keeps T5 in lora_te2_encoder_block_*, diffusers Flux
        # in text_encoder_2.encoder.block.*: that is T5, not CLIP-G.
        if te2 and all(self._t5_named(p, s) for p, s in te2):
            found.discard("te2")
            found.add("t5")
        return [p for p in ("unet", "te1", "te2", "t5") if p in found]

    def _t5_named(self, prefix: str, style: str) -> bool:
        marker = "encoder_block_" if style == "kohya" else "encoder.block."
        return self.view.has_prefix(prefix + marker)

    def has_part(self, part: str) -> bool:
        return part in self.parts()

    # -- module queries -----------------------------------------------------------------------
    def name_of(self, path: str, prefix: str, style: str) -> str:
        return prefix + (path.replace(".", "_") if style == "kohya" else path)

    def dims(self, path: str, part: str = "unet") -> LoraModule | None:
        """The adapted layer at ``path`` (dotted module path) in any naming this file uses."""
        for prefix, style in self.schemes.get(part, ()):
            module = self.module(self.name_of(path, prefix, style))
            if module is not None:
                return module
        return None

    def first(self, paths: list[str] | tuple[str, ...], part: str = "unet") -> LoraModule | None:
        for path in paths:
            module = self.dims(path, part)
            if module is not None:
                return module
        return None

    @cached_property
    def _blob(self) -> str:
        return "\n" + "\n".join(self.view.sorted_names) + "\n"

    def find(self, *fragments: str) -> LoraModule | None:
        """The first adapted module whose name contains one of ``fragments`` (dotted module-path
        pieces such as ``"attn2.to_k"``; kohya's underscore spelling is tried too).

        One C-speed substring search over the joined names per spelling, so matchers can ask for
        "any cross-attention K projection" without enumerating every block path.
        """
        blob = self._blob
        for fragment in fragments:
            for spelling in dict.fromkeys((fragment, fragment.replace(".", "_"))):
                start = 0
                while True:
                    i = blob.find(spelling, start)
                    if i < 0:
                        break
                    line_start = blob.rfind("\n", 0, i) + 1
                    line_end = blob.find("\n", i)
                    base = _module_name(blob[line_start:line_end])
                    module = self.module(base) if base is not None else None
                    if module is not None:
                        return module
                    start = line_end
        return None

    def has_path_prefix(self, path_prefix: str, part: str = "unet") -> str | None:
        """The file prefix of the first key under ``path_prefix`` in any naming, or None."""
        for prefix, style in self.schemes.get(part, ()):
            name = self.name_of(path_prefix, prefix, style)
            if self.view.has_prefix(name):
                return name
        return None

    def block_count(self, path_prefix: str, part: str = "unet") -> int:
        """Highest block index + 1 among ``<path_prefix><i>.`` modules (gaps allowed)."""
        best = 0
        misses = 0
        i = 0
        while misses < 8:  # LoRAs often skip blocks; stop after a run of absent indices
            if self.has_path_prefix(f"{path_prefix}{i}.", part):
                best = i + 1
                misses = 0
            else:
                misses += 1
            i += 1
        return best

    def module(self, name: str) -> LoraModule | None:
        """Decode the module stored under ``name`` (any LoRA/LyCORIS algorithm)."""
        raw = self.raw
        shape = _shape
        down = shape(raw, name + ".lora_down.weight")
        if down is not None:
            up = shape(raw, name + ".lora_up.weight")
            return LoraModule(name + ".lora_down.weight", "lora", down[1] if len(down) > 1 else None,
                              up[0] if up else None, down[0], len(down) == 4)
        a = shape(raw, name + ".lora_A.weight") or shape(raw, name + ".lora_A.default.weight")
        if a is not None:
            b = shape(raw, name + ".lora_B.weight") or shape(raw, name + ".lora_B.default.weight")
            key = name + (".lora_A.weight" if name + ".lora_A.weight" in raw else ".lora_A.default.weight")
            return LoraModule(key, "peft", a[1] if len(a) > 1 else None, b[0] if b else None, a[0], len(a) == 4)
        w1b = shape(raw, name + ".hada_w1_b")
        if w1b is not None:
            w1a = shape(raw, name + ".hada_w1_a")
            if name + ".hada_t1" in raw:  # Tucker: w1_a [r, out], w1_b [r, in], core t1 [r, r, k, k]
                return LoraModule(name + ".hada_w1_b", "loha", w1b[1] if len(w1b) > 1 else None,
                                  w1a[1] if w1a and len(w1a) > 1 else None, w1b[0], True)
            # w1_a [out, r], w1_b [r, in x k x k] (a conv's kernel is folded into in: not a width then)
            return LoraModule(name + ".hada_w1_b", "loha", w1b[1] if len(w1b) > 1 else None,
                              w1a[0] if w1a else None, w1b[0])
        lokr = self._lokr(name)
        if lokr is not None:
            return lokr
        xdown = shape(raw, name + ".down.weight")  # XLabs / attention-processor LoRAs
        if xdown is not None and len(xdown) == 2:
            xup = shape(raw, name + ".up.weight")
            return LoraModule(name + ".down.weight", "lora", xdown[1], xup[0] if xup else None, xdown[0])
        diff = shape(raw, name + ".diff")
        if diff is not None and len(diff) >= 2:
            return LoraModule(name + ".diff", "full", diff[1], diff[0], None, len(diff) == 4)
        return self._lycoris_other(name)

    def _lycoris_other(self, name: str) -> LoraModule | None:
        """GLoRA (a1/a2/b1/b2), diag-OFT/BOFT (oft_blocks) and IA3 (weight + on_input) modules."""
        raw = self.raw
        b2, b1 = _shape(raw, name + ".b2.weight"), _shape(raw, name + ".b1.weight")
        if b2 is not None and b1 is not None and len(b2) >= 2:  # b2 [r, in(, k, k)], b1 [out, r(, 1, 1)]
            return LoraModule(name + ".b2.weight", "glora", b2[1], b1[0], b2[0], len(b2) == 4)
        blocks = _shape(raw, name + ".oft_blocks")
        if blocks is not None and len(blocks) in (3, 4):  # [(boft_m,) n_blocks, size, size]: out = n x size
            out = blocks[-3] * blocks[-1]
            return LoraModule(name + ".oft_blocks", "oft", None, out, None,
                              how=f"oft_blocks {list(blocks)}: {blocks[-3]} blocks of {blocks[-1]} = {out} out-features")
        scale = _shape(raw, name + ".weight")
        if scale is not None and name + ".on_input" in raw and 1 <= len(scale):
            width = max(scale) if len(scale) > 1 else scale[0]  # [d] (linear) or [1, d, 1, 1] (conv)
            return LoraModule(name + ".weight", "ia3", None, None, None, len(scale) == 4,
                              how=f"IA3 scale over {width} features", scale_width=width)
        return None

    def _lokr(self, name: str) -> LoraModule | None:
        raw = self.raw
        w1 = _shape(raw, name + ".lokr_w1")
        if w1 is None:
            w1a, w1b = _shape(raw, name + ".lokr_w1_a"), _shape(raw, name + ".lokr_w1_b")
            if w1a is None or w1b is None:
                return None
            w1 = (w1a[0], w1b[1])
        w2 = _shape(raw, name + ".lokr_w2")
        rank = None
        conv = None
        if w2 is None:
            w2a, w2b = _shape(raw, name + ".lokr_w2_a"), _shape(raw, name + ".lokr_w2_b")
            if w2a is None or w2b is None or len(w2a) < 2 or len(w2b) < 2:
                return None
            if name + ".lokr_t2" in raw:  # Tucker: w2_a [r, out], w2_b [r, in], core t2 [r, r, k, k]
                w2, rank, conv = (w2a[1], w2b[1]), w2a[0], True
            else:  # w2_a [out, r] @ w2_b [r, in (x k x k for a conv)]
                w2, rank = (w2a[0], w2b[1]), w2a[1]
        elif len(w2) == 4:
            conv = True
        if len(w1) < 2 or len(w2) < 2:
            return None
        # W = kron(w1, w2): out = w1.out * w2.out, in = w1.in * w2.in
        return LoraModule(name + ".lokr_w1", "lokr", w1[1] * w2[1], w1[0] * w2[0], rank, conv,
                          f"kron(w1 {list(w1[:2])}, w2 {list(w2[:2])}): [{w1[0] * w2[0]}, {w1[1] * w2[1]}]")

    # -- whole-file facts ------------------------------------------------------------------------
    def algorithms(self) -> Counter[str]:
        return Counter(r for r in map(role_of, sample_names(self.view.sorted_names, _SAMPLE)) if r is not None)

    def module_count(self, algos: Counter[str] | None = None) -> int:
        """Adapted modules: one count of the main algorithm's per-module key over the joined names."""
        algos = algos if algos is not None else self.algorithms()
        suffixes = [s for algo, _ in algos.most_common() for s in _PRIMARY_BY_ALGO.get(algo, ())]
        blob = self._blob
        for suffix in suffixes:
            n = sum(blob.count(f"{s}\n") for s in _PRIMARY_BY_ALGO_GROUP[suffix])
            if n:
                return n
        return sum(map(str.endswith, self.view.sorted_names, repeat(PRIMARY_SUFFIXES)))

    def ranks(self) -> Counter[int]:
        """Ranks of a sample of modules (LoRA files are homogeneous; rank is the mode)."""
        counts: Counter[int] = Counter()
        for name in sample_names(self.view.sorted_names, _SAMPLE // 2):
            base = _module_name(name)
            if base is None:
                continue
            module = self.module(base)
            if module is not None and module.rank is not None and module.algo != "full":
                counts[module.rank] += 1
        return counts


def _shape(raw: dict[str, dict[str, Any]], key: str) -> tuple[int, ...] | None:
    entry = raw.get(key)
    return None if entry is None else tuple(entry["shape"])


def _module_name(key: str) -> str | None:
    head, _, last = key.rpartition(".")
    if last == "weight":
        head, _, last = head.rpartition(".")
        if last == "default":
            head, _, last = head.rpartition(".")
    return head if last in ROLES or last in ("down", "up") else None


def lora_format(lv: LoraView, algos: Counter[str], metadata: dict[str, str]) -> tuple[str, str]:
    """(format, why) from the algorithms seen, the naming and kohya/LyCORIS metadata."""
    module = metadata.get("ss_network_module", "")
    main = [a for a, _ in algos.most_common() if a not in ("alpha", "dora", "norm", "lora_mid")]
    top = main[0] if main else None
    if top == "loha":
        return "lycoris_loha", "hada_w1_a/hada_w1_b/hada_w2_a/hada_w2_b keys (LyCORIS LoHa)"
    if top == "lokr":
        return "lycoris_lokr", "lokr_w1/lokr_w2 keys (LyCORIS LoKr)"
    if top == "attnproc":
        if any(lv.view.has_prefix(p) for p in ("double_blocks.", "single_blocks.")):
            return "xlabs", "processor.*_lora*.down/up keys on double/single blocks (XLabs Flux LoRA)"
        return "diffusers", "attention-processor keys (*_lora.down/up.weight, old diffusers)"
    if top == "peft":
        return "diffusers", "lora_A/lora_B keys (diffusers/PEFT)"
    if top == "lora":
        if module.startswith("lycoris") or lv.prefix_counts.get("lycoris_") or "lora_mid" in algos:
            why = (f"lora_down/lora_up keys with ss_network_module={module}" if module.startswith("lycoris")
                   else "lora_down/lora_up keys with LyCORIS naming or lora_mid (CP) keys")
            return "lycoris_locon", why
        if lv.prefix_counts.get("lora_transformer_"):
            return "onetrainer", "lora_transformer_* names (OneTrainer)"
        if any(lv.prefix_counts.get(p) for p in ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_", "lora_te3_")):
            return "kohya", "lora_unet_/lora_te*_ names with lora_down/lora_up keys (kohya sd-scripts)"
        if lv.prefix_counts.get("diffusion_model."):
            return "comfyui", "diffusion_model.* names with lora_down/lora_up keys (ComfyUI)"
        if lv.view.has_prefix("unet.input_blocks.") or lv.view.has_prefix("unet.output_blocks."):
            return "onetrainer", "unet.<SGM block names> with lora_down/lora_up keys (OneTrainer's own format)"
        return "diffusers", "dotted module names with lora_down/lora_up keys"
    names = {"ia3": "<module>.weight + .on_input (LyCORIS IA3)", "oft": "oft_blocks keys (LyCORIS diag-OFT/BOFT, "
             "or kohya OFT)", "glora": "a1/a2/b1/b2 keys (LyCORIS GLoRA)", "full": ".diff/.diff_b keys (LyCORIS full "
             "weight differences)"}
    if top == "oft" and module.startswith("networks.oft"):
        return "kohya_oft", "oft_blocks keys with ss_network_module=networks.oft (kohya OFT)"
    if top is not None:
        return f"lycoris_{top}", names.get(top, f"{top} keys (LyCORIS)")
    return "unknown", "no known LoRA key suffix"


def network_alpha(metadata: dict[str, str]) -> float | None:
    value = metadata.get("ss_network_alpha")
    try:
        return float(value) if value not in (None, "", "None") else None
    except ValueError:
        return None


def analyse(view: HeaderView) -> tuple[LoraInfo, LoraView, list[Any]]:
    """Format, rank, parts of the LoRA in ``view`` (target family is decided by the families)."""
    from .model import Evidence

    lv = LoraView(view)
    algos = lv.algorithms()
    fmt, why = lora_format(lv, algos, view.metadata)
    ranks = lv.ranks()
    rank = ranks.most_common(1)[0][0] if ranks else None
    meta_dim = view.metadata.get("ss_network_dim")
    parts = lv.parts()
    evidence = [Evidence("kind", "lora", why), Evidence("lora.format", fmt, why),
                Evidence("lora.parts", parts, "key prefixes: " + ", ".join(
                    sorted(p or "(none)" for p, n in lv.prefix_counts.items() if n) or ["bare names"]))]
    if rank is not None:
        evidence.append(Evidence("lora.rank", rank, f"most common rank of sampled modules (ranks seen: "
                                                    f"{sorted(ranks)})" + (f"; ss_network_dim={meta_dim}"
                                                                            if meta_dim else "")))
    info = LoraInfo(format=fmt, rank=rank, parts=parts, modules=lv.module_count(algos), ranks=sorted(ranks),
                    alpha=network_alpha(view.metadata), network_module=view.metadata.get("ss_network_module"),
                    dora="dora" in algos)
    return info, lv, evidence


def describe(lv: LoraView, per_part: int = 2) -> str:
    """What an unplaced LoRA adapts, for the "unknown" answer: per part, its prefix, module count and
    the first modules with their in/out features (so a person can see why nothing matched)."""
    out = []
    names = lv.view.sorted_names
    for part in ("unet", "te1", "te2", "t5"):
        for prefix, _style in lv.schemes.get(part, ()):
            keys = lv.view.first_keys(prefix, 256) if prefix else names[:256]
            shown: list[str] = []
            bases: set[str] = set()
            for name in keys:
                base = _module_name(name)
                module = lv.module(base) if base is not None and base not in bases else None
                if module is not None and base is not None:
                    bases.add(base)
                    shown.append(f"{module.key} ({module.in_features}->{module.out_features})")
                    if len(shown) >= per_part:
                        break
            count = lv.view.count(prefix) if prefix else lv.bare
            label = prefix or "bare names"
            out.append(f"{label}: {count} keys" + (", e.g. " + ", ".join(shown) if shown else ""))
    return "; ".join(out) or "no adapted modules"
