"""LoRA layouts for the placement tests, derived from real names and shapes, never invented.

Two sources, both from ``tests/data/headers`` (``tests/make_headers.py`` builds them from the real model
classes): the trainers' LoRA fixtures, filtered to the layers a partial LoRA adapts (``subset``), and the
full-size checkpoints, whose Linear/Conv weights give every layer's true name and [out, in, k, k] shape
for the namings the fixtures do not cover (``from_model``: OneTrainer's dotted ``unet.`` SGM names with
DoRA scales, ComfyUI's ``diffusion_model.``, LyCORIS LoHa with Tucker cores).
"""

from __future__ import annotations

from collections.abc import Callable

from tests.headers import Tensors, load_spec


def subset(fixture: str, keep: Callable[[str], bool]) -> Tensors:
    """The fixture's tensors whose module name (before the LoRA suffix) passes ``keep``."""
    out: Tensors = {}
    for name, (dtype, shape) in load_spec(fixture)["tensors"].items():
        if keep(name):
            out[name] = (dtype, list(shape))
    return out


def from_model(spec: str, strip: str, prefix: str, keep: Callable[[str], bool], *, algo: str = "lora",
               rank: int = 8, kohya: bool = False, dora: bool = False, dtype: str = "F16") -> Tensors:
    """A LoRA over ``spec``'s Linear/Conv weights under ``strip`` whose module path passes ``keep``.

    ``algo``: ``lora`` (lora_down [r, in, k, k] / lora_up [out, r, 1, 1] / alpha, as kohya and
    OneTrainer write them), ``loha_tucker`` (LyCORIS LoHa with Tucker cores: hada_w1_a [r, out],
    hada_w1_b [r, in], hada_t1 [r, r, k, k], for convs with a kernel > 1; linear layers as plain LoHa).
    ``dora`` adds OneTrainer/LyCORIS ``dora_scale`` [1, in].
    """
    out: Tensors = {}
    for key, (_dtype, shape) in load_spec(spec)["tensors"].items():
        if not key.startswith(strip) or not key.endswith(".weight") or len(shape) not in (2, 4):
            continue
        path = key[len(strip):-len(".weight")]
        if not keep(path):
            continue
        name = prefix + (path.replace(".", "_") if kohya else path)
        o, i = shape[0], shape[1]
        conv = len(shape) == 4
        if algo == "lora":
            out[f"{name}.lora_down.weight"] = (dtype, [rank, i, *shape[2:]] if conv else [rank, i])
            out[f"{name}.lora_up.weight"] = (dtype, [o, rank, 1, 1] if conv else [o, rank])
        elif algo == "loha_tucker":
            if conv and shape[2] > 1:
                for n in ("1", "2"):
                    out[f"{name}.hada_w{n}_a"] = (dtype, [rank, o])
                    out[f"{name}.hada_w{n}_b"] = (dtype, [rank, i])
                    out[f"{name}.hada_t{n}"] = (dtype, [rank, rank, *shape[2:]])
            else:
                k = shape[2] * shape[3] if conv else 1
                for n in ("1", "2"):
                    out[f"{name}.hada_w{n}_a"] = (dtype, [o, rank])
                    out[f"{name}.hada_w{n}_b"] = (dtype, [rank, i * k])
        else:
            raise ValueError(algo)
        out[f"{name}.alpha"] = ("F32", [])
        if dora:
            out[f"{name}.dora_scale"] = (dtype, [1, i, 1, 1] if conv else [1, i])
    return out


def lycoris_from(fixture: str, keep: Callable[[str], bool], algo: str, dtype: str = "F16") -> Tensors:
    """The fixture's adapted modules (from its lora_down [r, in(, k, k)] / lora_up [out, r] pairs) in another
    LyCORIS algorithm's tensors, with the shapes LyCORIS' modules give them (lycoris/modules/*.py):

    - ``ia3``: ``weight`` [out] (a conv's [1, out, 1, 1]; train_on_input off) and the 0-d ``on_input`` buffer;
    - ``glora``: ``a1`` [in, r], ``a2`` [r, in], ``b1`` [out, r], ``b2`` [r, in] (convs: 1x1 kernels, b2 k x k);
    - ``oft``: diag-OFT ``oft_blocks`` [blocks, out/blocks, out/blocks]; ``boft``: [boft_m, blocks, size, size]
      with ``rescale`` [out, 1]; ``full``: ``diff`` [out, in(, k, k)] and ``diff_b`` [out].
    """
    spec = load_spec(fixture)["tensors"]
    out: Tensors = {}
    for key, (_dtype, down) in spec.items():
        if not key.endswith(".lora_down.weight") or not keep(key):
            continue
        name = key[: -len(".lora_down.weight")]
        o, i, r = spec[name + ".lora_up.weight"][1][0], down[1], down[0]
        k = list(down[2:])
        one = [1, 1] if k else []
        if algo == "ia3":
            out[f"{name}.weight"] = (dtype, [1, o, 1, 1] if k else [o])
            out[f"{name}.on_input"] = ("I64", [])
        elif algo == "glora":
            out[f"{name}.a1.weight"] = (dtype, [i, r, *one])
            out[f"{name}.a2.weight"] = (dtype, [r, i, *one])
            out[f"{name}.b1.weight"] = (dtype, [o, r, *one])
            out[f"{name}.b2.weight"] = (dtype, [r, i, *k])
            out[f"{name}.alpha"] = ("F32", [])
        elif algo in ("oft", "boft"):
            blocks = next(n for n in (4, 2, 1) if o % n == 0)
            if algo == "oft":
                out[f"{name}.oft_blocks"] = (dtype, [blocks, o // blocks, o // blocks])
            else:
                out[f"{name}.oft_blocks"] = (dtype, [2, blocks, o // blocks, o // blocks])
                out[f"{name}.rescale"] = (dtype, [o, 1, *one])
            out[f"{name}.alpha"] = ("F32", [])
        elif algo == "full":
            out[f"{name}.diff"] = (dtype, [o, i, *k])
            out[f"{name}.diff_b"] = (dtype, [o])
        else:
            raise ValueError(algo)
    return out
