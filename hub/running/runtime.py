"""Run a model: ``hub.pipeline(ref, sampler=..., loras=[...], device=...)`` and ``.generate(prompt, ...)``.

The steps, in order, each with a clear error when it fails:
1. resolve ``ref`` (a path, or a catalogue/source reference through ``Hub.resolve``, which installs
   a missing model first);
2. identify it (family, kind) unless ``family=`` overrides, and pick the registered pipeline for
   that family: the file name plays no part;
3. resolve and identify each LoRA and check it against the model with ``check_compatible``;
4. choose device and dtype (cuda: bf16 where supported else fp16; mps: fp16; cpu: fp32);
5. load through the pipeline plugin, then generate with the chosen sampler and a seeded CPU
   generator, so a seed gives the same image on any machine for a given device kind.

Images carry A1111-style infotext in the PNG "parameters" chunk (Model hash = AutoV2, Lora hashes
= AutoV3 short), which Civitai and the UIs read to recognise the resources.
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import (
    BadReferenceError,
    FileAccessError,
    IncompatibleError,
    PipelineError,
    SdhubError,
)
from .pipelines import (
    Defaults,
    GenerateRequest,
    LoraToApply,
    ModelToRun,
    Pipeline,
    RunOptions,
    Runner,
    StepCallback,
    pipeline_for,
)

FAMILY_CHOICES = ("sd1", "sd2", "sdxl", "sd3", "flux")
DTYPE_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32",
    "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "bf16": "bf16", "bfloat16": "bf16",
}


# -- device and dtype ------------------------------------------------------------------------------------


def pick_device(requested: str | None = None) -> str:
    """``requested`` if usable, else cuda > mps > cpu."""
    import torch

    want = (requested or "auto").lower()
    if want == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind, _, index = want.partition(":")
    if kind not in ("cuda", "mps", "cpu", "xpu"):
        raise PipelineError(f"unknown device {requested!r}; use auto, cuda, cuda:N, mps or cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise PipelineError(f"device {requested!r} requested but CUDA is not available (torch {torch.__version__})")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise PipelineError(f"device {requested!r} requested but MPS is not available")
    xpu = getattr(torch, "xpu", None)
    if kind == "xpu" and not (xpu is not None and xpu.is_available()):
        raise PipelineError(f"device {requested!r} requested but no Intel XPU is available (torch {torch.__version__})")
    if index and kind in ("cuda", "xpu"):
        count = torch.cuda.device_count() if kind == "cuda" else xpu.device_count()  # type: ignore[union-attr]
        if not index.isdigit() or int(index) >= count:
            raise PipelineError(f"device {requested!r} does not exist ({count} {kind} device(s))")
    return want


def pick_dtype(device: str, requested: str | None = None) -> str:
    """fp16/bf16 on accelerators, fp32 on the CPU (half precision there is slow or unsupported)."""
    if requested and requested.lower() != "auto":
        dtype = DTYPE_ALIASES.get(requested.lower())
        if dtype is None:
            raise PipelineError(f"unknown dtype {requested!r}; use auto, fp32, fp16 or bf16")
        if dtype == "fp16" and device.startswith("cpu"):
            raise PipelineError("fp16 is not supported on the CPU; use fp32 (default) or bf16")
        return dtype
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.startswith("mps"):
        return "fp16"
    return "fp32"


# -- references -----------------------------------------------------------------------------------------


@dataclass
class Resolved:
    """A local model file and what the catalogue already knows about it."""

    path: Path
    sha256: str | None = None
    autov3: str | None = None
    identification: Any = None
    name: str = ""


def resolve_ref(ref: str | os.PathLike[str]) -> Resolved:
    """A path as it is; anything else through ``Hub.resolve`` (catalogue first, install on a miss)."""
    path = Path(os.fspath(ref)).expanduser()
    if path.exists():
        from ..files.regular import check_not_special

        check_not_special(path)  # a FIFO given as a model must not block the loader
        return _with_catalogue_facts(Resolved(path=path.resolve(), name=path.name))
    text = os.fspath(ref)
    from ..api import MODEL_SUFFIXES, Hub

    looks_like_path = os.sep in text or Path(text).suffix.lower() in MODEL_SUFFIXES

    hub = Hub()
    try:
        if looks_like_path and not _is_reference(text):
            # Not a file here: maybe a catalogued file's name ("model.safetensors"), else a missing path.
            from ..errors import NotInCatalogueError

            try:
                return _from_resolved(hub.get(text), text)
            except NotInCatalogueError:
                raise FileAccessError(f"{text}: no such file or folder (and no catalogued file has that name)") from None
        result = hub.resolve(text)
    except ImportError as exc:  # the sources area is an optional part of a checkout
        raise BadReferenceError(f"{text!r} is not a local file, and resolving references is unavailable: {exc}") from exc
    finally:
        hub.close()
    return _from_resolved(result, text)


def _is_reference(text: str) -> bool:
    try:
        from ..sources.refs import parse

        parse(text)
    except (ImportError, BadReferenceError):
        return False
    return True


def _from_resolved(result: Any, ref: str) -> Resolved:
    if isinstance(result, (str, os.PathLike)):
        p = Path(os.fspath(result))
        return _with_catalogue_facts(Resolved(path=p, name=p.name))
    record = getattr(result, "record", None) or result
    raw_path = getattr(record, "path", None) or getattr(result, "path", None)
    if raw_path is None:
        raise PipelineError(f"{ref!r} did not resolve to a local file (got {type(result).__name__})")
    ident = getattr(record, "identification", None)
    if isinstance(ident, dict):
        ident = _identification_from_dict(ident)
    p = Path(os.fspath(raw_path))
    return Resolved(
        path=p,
        sha256=getattr(record, "sha256", None),
        autov3=getattr(record, "autov3", None),
        identification=ident,
        name=getattr(record, "name", None) or p.name,
    )


def _with_catalogue_facts(res: Resolved) -> Resolved:
    """Reuse the catalogue's hashes for a path when the file is unchanged since it was catalogued."""
    if res.path.is_dir():
        return res
    try:
        from ..api import Hub

        hub = Hub()
        try:
            record = hub.catalogue.by_path(str(res.path))
        finally:
            hub.close()
    except Exception:  # no catalogue yet, or an older schema: hashing the file later is the fallback
        return res
    if record is None:
        return res
    st = res.path.stat()
    if getattr(record, "size", None) == st.st_size and getattr(record, "mtime_ns", None) == st.st_mtime_ns:
        res.sha256 = record.sha256
        res.autov3 = record.autov3
        ident = record.identification
        res.identification = _identification_from_dict(ident) if isinstance(ident, dict) else None
    return res


def _identification_from_dict(data: dict[str, Any]) -> Any:
    try:
        from ..identify import Identification

        return Identification.from_dict(data)
    except (ImportError, AttributeError, KeyError, TypeError, ValueError):
        return None


# -- identification ----------------------------------------------------------------------------------------


def _identify(path: Path) -> Any:
    """hub.identify's answer, or None while that area is not installed."""
    try:
        from ..identify import identify_path
        from ..plugins import registered_families
    except ImportError:
        return None
    return identify_path(path, families=registered_families())


def model_to_run(res: Resolved, family: str | None = None, default_family: str | None = None) -> ModelToRun:
    """What the pipeline needs to know about the model; ``family`` overrides identification.

    ``default_family`` is used only when identification cannot place the file (a --refiner is a refiner).
    """
    from ..files.pickle_scan import is_pickle_name

    ident = res.identification or _identify(res.path)
    is_dir = res.path.is_dir()
    fmt = "diffusers" if is_dir else ("ckpt" if is_pickle_name(res.path) else "safetensors")
    identified_family = getattr(ident, "family", None)
    identified_kind = getattr(ident, "kind", None)
    chosen_family = family or identified_family
    if (not chosen_family or chosen_family == "unknown") and default_family:
        chosen_family = default_family
    if not chosen_family or chosen_family == "unknown":
        raise PipelineError(
            f"{res.path}: cannot tell which model family this is"
            + (f" (identification: {identified_family}/{identified_kind})" if ident is not None else "")
            + f"; pass --family ({'|'.join(FAMILY_CHOICES)})"
        )
    # --family places a model identification could not; it does not make a LoRA or a VAE a model.
    kind = identified_kind if identified_kind not in (None, "unknown") else "checkpoint"
    if kind == "lora":
        raise PipelineError(f"{res.path} is a LoRA, not a model: pass it with --lora / loras=[...]")
    if kind == "diffusion_model" and _some_pipeline_runs(chosen_family, kind):
        pass  # e.g. a Flux transformer file: its text encoders and VAE come from files of their own
    elif kind not in ("checkpoint",):
        raise PipelineError(
            f"{res.path} is a {identified_family} {kind}, not a full checkpoint; sdhub runs checkpoints and diffusers folders"
        )
    return ModelToRun(
        path=res.path,
        family=chosen_family,
        kind=kind,
        variant=getattr(ident, "variant", None),
        format=fmt,
        name=res.name or res.path.name,
        identification=_with_family(ident, chosen_family, kind) if ident is not None else None,
        sha256=res.sha256,
    )


def _some_pipeline_runs(family: str, kind: str) -> bool:
    from .pipelines import all_pipelines

    return any(p.runs(family, kind) for p in all_pipelines())


def _with_family(ident: Any, family: str, kind: str = "checkpoint") -> Any:
    """The identification as --family placed it (a file identification could not size is run as a model)."""
    if getattr(ident, "family", None) == family and getattr(ident, "kind", None) not in (None, "unknown"):
        return ident
    if dataclasses.is_dataclass(ident):
        fixed_kind = ident.kind if getattr(ident, "kind", None) not in (None, "unknown") else kind
        return dataclasses.replace(ident, family=family, kind=fixed_kind)
    return ident


def parse_lora_arg(text: str) -> tuple[str, float]:
    """``REF[:WEIGHT]`` -> (ref, weight); the weight is the part after the last colon if it is a number.

    Civitai, Hugging Face, LiblibAI and hash references have colons and numbers of their own
    (``civitai:12345``, ``autov2:0123456789``): when the whole text is one of those and the part
    before its last colon is no reference (a bare ``civitai``), that colon is the reference's.
    """
    ref, sep, weight = text.rpartition(":")
    if sep and ref:
        try:
            value = float(weight)
        except ValueError:
            return text, 1.0
        if _is_builtin_reference(text) and not _is_reference(ref):
            return text, 1.0
        return ref, value
    return text, 1.0


def _is_builtin_reference(text: str) -> bool:
    try:
        from ..sources.refs import parse

        return parse(text).scheme in ("civitai", "hf", "liblib", "hash")
    except (ImportError, BadReferenceError):
        return False


def prepare_lora(spec: Any, model: ModelToRun, warnings: list[str] | None = None) -> LoraToApply:
    """Resolve one LoRA (``"ref"``, ``"ref:0.7"``, ``(ref, weight)`` or a LoraToApply) and check it fits."""
    if isinstance(spec, LoraToApply):
        ref, weight = spec.path, spec.weight
    elif isinstance(spec, (tuple, list)):
        ref, weight = spec[0], float(spec[1])
    else:
        text = os.fspath(spec)
        ref, weight = (text, 1.0) if Path(text).expanduser().exists() else parse_lora_arg(text)
    res = resolve_ref(ref)
    if res.path.is_dir():
        raise IncompatibleError(f"{res.path} is a folder, not a LoRA file")
    ident = res.identification or _identify(res.path)
    if ident is not None:
        if getattr(ident, "kind", None) not in ("lora", None):
            raise IncompatibleError(f"{res.path} is a {ident.family} {ident.kind}, not a LoRA")
        if model.identification is not None:
            from ..identify import check_compatible

            verdict = check_compatible(model.identification, ident)
            if not verdict.ok and getattr(verdict, "certain", True):
                raise IncompatibleError(f"LoRA {res.path.name} cannot be used with {model.name}: {verdict.reason}")
            if not verdict.ok and warnings is not None:
                # One side's family is unknown (tiny or unusual files): the merge still refuses a
                # LoRA any of whose layers does not match the model, so go on and say so.
                warnings.append(f"LoRA {res.path.name}: compatibility not certain ({verdict.reason}); "
                                f"applied because every layer matches the model")
    return LoraToApply(path=res.path, weight=weight, name=res.path.stem, identification=ident, autov3=res.autov3)


def check_size(width: int | None, height: int | None) -> None:
    """Image sizes the latent grid can hold (None = the family's default); checked before a model loads."""
    for value in (width, height):
        if value is not None and (value <= 0 or value % 8):
            shown = "x".join("default" if v is None else str(v) for v in (width, height))
            raise PipelineError(f"width and height must be positive multiples of 8 (got {shown})")


# -- infotext ---------------------------------------------------------------------------------------------


def _quote(value: str) -> str:
    """A1111 quotes values that contain its separators."""
    if any(c in value for c in ',:\n"'):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return value


def format_infotext(
    prompt: str,
    negative_prompt: str,
    params: dict[str, Any],
) -> str:
    """The A1111 "parameters" text: prompt line, ``Negative prompt:`` line, then ``Key: value, ...``."""
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    lines.append(", ".join(f"{k}: {_quote(str(v))}" for k, v in params.items() if v is not None and v != ""))
    return "\n".join(lines)


def _fmt_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def write_png(image: Any, path: Path, infotext: str) -> Path:
    """Save ``image`` with the infotext chunk; written to a temporary name then renamed (never half-written)."""
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    info.add_text("parameters", infotext)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        from ..files.regular import apply_umask_mode

        apply_umask_mode(fd)  # the user's PNG gets the umask's mode (0644 under 022), not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG", pnginfo=info)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


# -- the API -----------------------------------------------------------------------------------------------


@dataclass
class Generation:
    """The images of one ``generate`` call, their seeds and infotexts."""

    images: list[Any]
    seeds: list[int]
    infotexts: list[str]
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def image(self) -> Any:
        return self.images[0]

    @property
    def seed(self) -> int:
        return self.seeds[0]

    @property
    def infotext(self) -> str:
        return self.infotexts[0]

    def save(self, path: str | os.PathLike[str], index: int = 0) -> Path:
        return write_png(self.images[index], Path(path), self.infotexts[index])


class RuntimePipeline:
    """A loaded model with its LoRAs and default sampler; call :meth:`generate` any number of times."""

    def __init__(
        self,
        runner: Runner,
        pipeline: Pipeline,
        model: ModelToRun,
        loras: list[LoraToApply],
        sampler: Any,
        device: str,
        dtype: str,
        defaults: Defaults,
    ) -> None:
        self.runner = runner
        self.pipeline = pipeline
        self.model = model
        self.loras = loras
        self.sampler = sampler
        self.device = device
        self.dtype = dtype
        self.defaults = defaults
        self._model_hash: str | None = model.sha256[:10] if model.sha256 else None
        self.warnings: list[str] = []  # things the user should know (e.g. an uncertain LoRA check)
        self.parts: list[Any] = []  # separately loaded parts (hub.running.parts.Part): what was picked, from where
        self.options = RunOptions()  # the memory and speed options it was loaded with

    @property
    def family(self) -> str:
        return self.model.family

    def model_hash(self) -> str | None:
        """AutoV2 (first 10 hex of the SHA-256) of a single-file model; None for diffusers folders."""
        if self._model_hash is None and not self.model.is_diffusers_folder:
            self._model_hash = _fingerprint(self.model.path).sha256[:10]
        return self._model_hash

    def lora_hashes(self) -> list[tuple[str, str]]:
        out = []
        for lora in self.loras:
            if lora.autov3 is None:
                lora.autov3 = _fingerprint(lora.path).autov3
            if lora.autov3:
                out.append((lora.name, lora.autov3[:12]))
        return out

    def generate(
        self,
        prompt: str,
        *,
        negative_prompt: str = "",
        steps: int | None = None,
        cfg: float | None = None,
        width: int | None = None,
        height: int | None = None,
        seed: int | None = None,
        sampler: Any = None,
        num_images: int = 1,
        on_step: StepCallback | None = None,
        infotext: bool = True,
        init_image: Any = None,
        strength: float = 0.75,
        mask: Any = None,
        guidance: float | None = None,
    ) -> Generation:
        """Text to image, or img2img from ``init_image`` (a path or PIL image) and inpainting with a ``mask`` too.

        Unset options take the family's defaults; ``seed=None`` draws one (it is reported). Without ``width`` and
        ``height`` an init image keeps its own size (rounded down to a multiple of 8).
        """
        from .samplers import Sampler, get_sampler, require_serves

        chosen = sampler if sampler is not None else self.sampler
        if chosen is not None and not isinstance(chosen, Sampler):
            chosen = get_sampler(str(chosen), self.family)
        elif chosen is not None:
            require_serves(chosen, self.family)
        init, mask_image = _images_for(init_image, mask, strength)
        if init is not None and not (width and height):
            width = width or max(8, init.width // 8 * 8)
            height = height or max(8, init.height // 8 * 8)
        width = width or self.defaults.width
        height = height or self.defaults.height
        check_size(width, height)
        if init is not None:
            init = _fit(init, width, height, "RGB")
            mask_image = _fit(mask_image, width, height, "L") if mask_image is not None else None
        steps = steps or self.defaults.steps
        if steps < 1:
            raise PipelineError(f"steps must be at least 1 (got {steps})")
        cfg = self.defaults.cfg if cfg is None else cfg
        if guidance is not None and self.defaults.guidance is None:
            raise PipelineError(f"--guidance is the distilled guidance of Flux dev; this {self.family} model has none "
                                f"(use --cfg for classifier-free guidance)")
        guidance = self.defaults.guidance if guidance is None else guidance
        if num_images < 1:
            raise PipelineError("num_images must be at least 1")
        if seed is None or seed < 0:
            seed = random.randrange(0, 2**32 - num_images)
        request = GenerateRequest(
            prompt=prompt, negative_prompt=negative_prompt, steps=steps, cfg=cfg, width=width, height=height,
            seed=seed, num_images=num_images, sampler=chosen, on_step=on_step,
            init_image=init, strength=strength, mask=mask_image, guidance=guidance,
        )
        try:
            images = self.runner.generate(request)
        except Exception as exc:
            if _is_out_of_memory(exc):
                raise _out_of_memory("generating", self.device, self.options, exc) from exc
            raise
        seeds = [seed + i for i in range(len(images))]
        params: dict[str, Any] = {
            "prompt": prompt, "negative_prompt": negative_prompt, "steps": steps, "cfg": cfg, "width": width,
            "height": height, "seed": seed, "guidance": guidance, "sampler": chosen.name if chosen else None,
            "sampler_label": chosen.display_name if chosen else None,
            "family": self.family, "device": self.device, "dtype": self.dtype,
            "loras": [{"name": lora.name, "weight": lora.weight} for lora in self.loras],
        }
        if init is not None:
            params.update(mode="inpaint" if mask_image is not None else "img2img", strength=strength)
        texts = [self.infotext_for(request, s) if infotext else "" for s in seeds]
        return Generation(images=images, seeds=seeds, infotexts=texts, parameters=params)

    def infotext_for(self, request: GenerateRequest, seed: int) -> str:
        params: dict[str, Any] = {
            "Steps": request.steps,
            "Sampler": request.sampler.display_name if request.sampler is not None else "Default",
            "CFG scale": _fmt_number(request.cfg),
            # Forge's name for Flux dev's distilled guidance, which Civitai reads back
            "Distilled CFG Scale": _fmt_number(request.guidance) if request.guidance is not None else None,
            "Seed": seed,
            "Size": f"{request.width}x{request.height}",
            # A1111 writes these two for img2img and inpainting; the mask itself is not kept, as there.
            "Denoising strength": _fmt_number(request.strength) if request.init_image is not None else None,
            "Mask blur": 0 if request.mask is not None else None,
            "Model hash": self.model_hash(),
            "Model": Path(self.model.name).stem if self.model.name else None,
        }
        hashes = self.lora_hashes()
        if hashes:
            params["Lora hashes"] = ", ".join(f"{name}: {h}" for name, h in hashes)
            params["Lora weights"] = ", ".join(f"{lora.name}: {_fmt_number(lora.weight)}" for lora in self.loras)
        params["Version"] = f"sdhub {_version()}"
        return format_infotext(request.prompt, request.negative_prompt, params)

    def close(self) -> None:
        self.runner.close()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("sdhub")
    except Exception:
        return "dev"


def _fingerprint(path: Path) -> Any:
    from ..files.fingerprint import fingerprint_file

    return fingerprint_file(path)


OFFLOAD_MODES = ("model", "sequential")


def _offload_mode(value: bool | str | None) -> str | None:
    """``True`` means diffusers' model offload (the fast one); a string names the mode."""
    if value is None or value is False:
        return None
    if value is True:
        return "model"
    if value not in OFFLOAD_MODES:
        raise PipelineError(f"unknown cpu_offload mode {value!r}; use one of {', '.join(OFFLOAD_MODES)}")
    return value


def pipeline(
    ref: str | os.PathLike[str],
    *,
    sampler: Any = None,
    loras: Sequence[Any] = (),
    device: str | None = None,
    dtype: str | None = None,
    family: str | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    cpu_offload: bool | str | None = None,
    vae_tiling: bool = False,
    vae_slicing: bool = False,
    attention_slicing: bool = False,
    compile: bool = False,
    refiner: str | os.PathLike[str] | None = None,
    refiner_switch: float = 0.8,
    offline: bool = False,
    text_encoders: Sequence[str | os.PathLike[str]] = (),
    vae: str | os.PathLike[str] | None = None,
) -> RuntimePipeline:
    """Load ``ref`` (path or reference) ready to generate; see the module docstring for the steps."""
    if family is not None and family not in FAMILY_CHOICES:
        raise PipelineError(f"unknown family {family!r}; use one of {', '.join(FAMILY_CHOICES)}")
    offload = _offload_mode(cpu_offload)
    if not 0.0 < refiner_switch < 1.0:  # before resolving anything (a reference may download)
        raise PipelineError(f"refiner_switch must be between 0 and 1 (got {refiner_switch})")
    if isinstance(sampler, str):  # a typo must fail in milliseconds, not after a download or a model load
        from .samplers import get_sampler

        get_sampler(sampler, family)
    try:
        chosen_device = pick_device(device)
        chosen_dtype = pick_dtype(chosen_device, dtype)
    except ImportError as exc:
        raise _missing_run_extra(exc) from exc
    model = model_to_run(resolve_ref(ref), family)
    pipe_plugin = pipeline_for(model.family, model.kind)
    parts = _parts_for(pipe_plugin, model, text_encoders, vae)
    from .samplers import get_sampler

    defaults = _defaults_for(pipe_plugin, model.family, model.variant)
    chosen_sampler = sampler
    if chosen_sampler is None:
        chosen_sampler = get_sampler(defaults.sampler, model.family)
    elif isinstance(chosen_sampler, str):
        chosen_sampler = get_sampler(chosen_sampler, model.family)
    else:
        chosen_sampler = _checked_sampler(chosen_sampler, model.family)
    warnings: list[str] = []
    if offload == "sequential" and chosen_device == "cpu":
        # accelerate's layer-by-layer offload targets an accelerator; on the CPU the weights already live in RAM.
        warnings.append("--cpu-offload sequential does nothing on the CPU; running without it")
        offload = None
    prepared = [prepare_lora(spec, model, warnings) for spec in _as_list(loras)]
    options = RunOptions(
        config_dir=Path(config_dir) if config_dir is not None else None,
        cpu_offload=offload,
        vae_tiling=vae_tiling,
        vae_slicing=vae_slicing,
        attention_slicing=attention_slicing,
        compile=compile,
        refiner=model_to_run(resolve_ref(refiner), None, "sdxl_refiner") if refiner is not None else None,
        refiner_switch=refiner_switch,
        offline=offline,
        parts={role: part.path for role, part in parts.items()},
    )
    try:
        runner = pipe_plugin.load(model, prepared, chosen_device, chosen_dtype, options)
    except SdhubError:
        raise
    except ImportError as exc:
        raise _missing_run_extra(exc) from exc
    except Exception as exc:
        if _is_out_of_memory(exc):
            raise _out_of_memory("loading the model", chosen_device, options, exc) from exc
        raise
    if isinstance(vars(runner).get("defaults"), Defaults):
        defaults = runner.defaults  # what the loaded model turned out to be (e.g. Flux schnell vs dev)
    runtime = RuntimePipeline(runner, pipe_plugin, model, prepared, chosen_sampler, chosen_device, chosen_dtype, defaults)
    runtime.warnings = warnings
    runtime.parts = list(parts.values())
    runtime.options = options
    return runtime


def _images_for(init_image: Any, mask: Any, strength: float) -> tuple[Any, Any]:
    """Open and check the img2img/inpaint inputs before anything runs: one clear error per bad input."""
    if init_image is None:
        if mask is not None:
            raise PipelineError("a mask needs an init image to paint into (--init-image)")
        return None, None
    if not 0.0 < strength <= 1.0:
        raise PipelineError(f"strength must be above 0 and at most 1 (got {strength})")
    return _open_image(init_image, "init image"), (_open_image(mask, "mask") if mask is not None else None)


def _open_image(value: Any, what: str) -> Any:
    if hasattr(value, "size") and hasattr(value, "convert"):
        return value  # already a PIL image
    from PIL import Image, UnidentifiedImageError

    path = Path(value)
    if not path.is_file():
        raise PipelineError(f"{what} {path} is not a file")
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise PipelineError(f"{what} {path} is not an image Pillow can read ({exc})") from exc


def _fit(image: Any, width: int, height: int, mode: str) -> Any:
    image = image.convert(mode)
    return image if image.size == (width, height) else image.resize((width, height))


def _is_out_of_memory(exc: BaseException) -> BaseException | None:
    """torch's OutOfMemoryError (CUDA, MPS and XPU alike) behind ``exc``, found without importing torch here."""
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ == "OutOfMemoryError":
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _out_of_memory(stage: str, device: str, options: RunOptions, exc: BaseException) -> SdhubError:
    """Name, in the CLI's own option names, what would make it fit, strongest first and only what is not on yet."""
    from ..errors import OutOfMemoryError

    hints = []
    if options.cpu_offload != "sequential":
        hints.append("--cpu-offload" if not options.cpu_offload else "--cpu-offload sequential")
    if not options.vae_tiling:
        hints.append("--vae-tiling")
    if not options.attention_slicing:
        hints.append("--attention-slicing")
    hints.append("--dtype fp16 (or bf16)")
    hints.append("a smaller --width/--height or --num-images")
    text = str(_is_out_of_memory(exc) or exc).strip()
    first_line = text.splitlines()[0] if text else type(exc).__name__
    return OutOfMemoryError(f"out of memory on {device} while {stage}: try {', '.join(hints)} ({first_line})")


def _missing_run_extra(exc: ImportError) -> SdhubError:
    from ..errors import RuntimeMissingError

    return RuntimeMissingError(f"running models needs the 'run' extra: pip install 'sdhub[run]' ({exc})")


def _defaults_for(pipe_plugin: Pipeline, family: str, variant: str | None = None) -> Defaults:
    getter = getattr(pipe_plugin, "defaults_for", None)
    if not callable(getter):
        return pipe_plugin.defaults
    try:
        return getter(family, variant)
    except TypeError:  # a plugin written before defaults_for took the variant
        return getter(family)


def _parts_for(pipe_plugin: Pipeline, model: ModelToRun, text_encoders: Sequence[Any], vae: Any) -> dict[str, Any]:
    """The parts the model file leaves out: the user's (placed by what they are), else the catalogue's.

    A part the model's own identification lists (an all-in-one file) is not looked up; one still missing
    after this is the pipeline's to find (its config folder) or to name in a clear error.
    """
    from .parts import assign_given, from_catalogue

    wanted = tuple(getattr(pipe_plugin, "parts", ()) or ())
    given_te = [_part_file(ref, "--text-encoders") for ref in _as_list(text_encoders)]
    given_vae = _part_file(vae, "--vae") if vae is not None else None
    if not wanted:
        if given_te or given_vae:
            raise PipelineError(f"--text-encoders and --vae are for models shipped in parts (Flux); this {model.family} "
                                f"model loads its own")
        return {}
    parts = assign_given(given_te, given_vae, wanted)
    inside = set(getattr(model.identification, "components", None) or [])
    missing = [role for role in wanted if role not in parts and role not in inside]
    if missing and not model.is_diffusers_folder:
        parts.update(from_catalogue(missing, model.family))
    return parts


def _part_file(ref: Any, option: str) -> tuple[Path, Any]:
    res = resolve_ref(ref)
    if res.path.is_dir():
        raise PipelineError(f"{option} {res.path} is a folder; give the part's .safetensors file")
    return res.path, res.identification or _identify(res.path)


def _checked_sampler(sampler: Any, family: str) -> Any:
    from .samplers import Sampler, require_serves

    if not isinstance(sampler, Sampler):
        raise PipelineError(f"sampler must be a name or a hub.samplers.Sampler, not {type(sampler).__name__}")
    require_serves(sampler, family)
    return sampler


def _as_list(loras: Any) -> list[Any]:
    if loras is None:
        return []
    if isinstance(loras, (str, os.PathLike)):
        return [loras]
    return list(loras) if isinstance(loras, Iterable) else [loras]


__all__ = [
    "FAMILY_CHOICES",
    "Generation",
    "RuntimePipeline",
    "check_size",
    "format_infotext",
    "parse_lora_arg",
    "pick_device",
    "pick_dtype",
    "pipeline",
    "resolve_ref",
    "write_png",
]
