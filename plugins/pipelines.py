"""Built-in pipelines: SD1.x/SD2.x, SDXL (with optional refiner hand-off) and SD3/3.5 through diffusers.

Models come as diffusers folders or as original-layout single files (what Civitai and LiblibAI
serve). ``from_single_file`` needs the diffusers configs of the architecture; they come from
``--config-dir`` or are fetched once through the Hugging Face source (so the configured mirrors
apply) into ``$SDHUB_HOME/configs`` and reused offline afterwards. We always pass ``config=``:
diffusers' own model-type guess relies on real-size markers and would misread small or odd files.

Loaded modules are put in eval() (the single-file loader leaves T5 in train mode, with dropout),
LoRAs are merged into the weights (see :mod:`hub_plugins.lora_merge`), and the attention is
diffusers' default SDPA processor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub import hookimpl
from hub.errors import IncompatibleError, PipelineError, RuntimeMissingError, SdhubError
from hub.running.pipelines import Defaults, GenerateRequest, LoraToApply, ModelToRun, Pipeline, RunOptions, Runner

CLIP_TOKENIZER_FILES = ("merges.txt", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json")
T5_TOKENIZER_FILES = ("special_tokens_map.json", "spiece.model", "tokenizer.json", "tokenizer_config.json")

# The files from_single_file needs from each config repository (no weights).
CONFIG_REPOS: dict[str, tuple[str, ...]] = {}


def _config_files(components: dict[str, str]) -> tuple[str, ...]:
    files = ["model_index.json"]
    for component, kind in components.items():
        if kind == "config":
            files.append(f"{component}/config.json")
        elif kind == "scheduler":
            files.append(f"{component}/scheduler_config.json")
        elif kind == "clip_tokenizer":
            files += [f"{component}/{f}" for f in CLIP_TOKENIZER_FILES]
        elif kind == "t5_tokenizer":
            files += [f"{component}/{f}" for f in T5_TOKENIZER_FILES]
    return tuple(files)


_SD_COMPONENTS = {"scheduler": "scheduler", "text_encoder": "config", "tokenizer": "clip_tokenizer", "unet": "config", "vae": "config"}
_SDXL_COMPONENTS = {**_SD_COMPONENTS, "text_encoder_2": "config", "tokenizer_2": "clip_tokenizer"}
_SDXL_REFINER_COMPONENTS = {"scheduler": "scheduler", "text_encoder_2": "config", "tokenizer_2": "clip_tokenizer", "unet": "config", "vae": "config"}
_SD3_COMPONENTS = {
    "scheduler": "scheduler", "text_encoder": "config", "tokenizer": "clip_tokenizer",
    "text_encoder_2": "config", "tokenizer_2": "clip_tokenizer", "text_encoder_3": "config",
    "tokenizer_3": "t5_tokenizer", "transformer": "config", "vae": "config",
}
_FLUX_COMPONENTS = {
    "scheduler": "scheduler", "text_encoder": "config", "tokenizer": "clip_tokenizer", "text_encoder_2": "config",
    "tokenizer_2": "t5_tokenizer", "transformer": "config", "vae": "config",
}
CONFIG_REPOS.update({
    "stable-diffusion-v1-5/stable-diffusion-v1-5": _config_files(_SD_COMPONENTS),
    "stabilityai/stable-diffusion-2-1": _config_files(_SD_COMPONENTS),
    "stabilityai/stable-diffusion-2-1-base": _config_files(_SD_COMPONENTS),
    "stabilityai/stable-diffusion-xl-base-1.0": _config_files(_SDXL_COMPONENTS),
    "stabilityai/stable-diffusion-xl-refiner-1.0": _config_files(_SDXL_REFINER_COMPONENTS),
    "stabilityai/stable-diffusion-3-medium-diffusers": _config_files(_SD3_COMPONENTS),
    "stabilityai/stable-diffusion-3.5-medium": _config_files(_SD3_COMPONENTS),
    "stabilityai/stable-diffusion-3.5-large": _config_files(_SD3_COMPONENTS),
    "stabilityai/stable-diffusion-3.5-large-turbo": _config_files(_SD3_COMPONENTS),
    "black-forest-labs/FLUX.1-dev": _config_files(_FLUX_COMPONENTS),
    "black-forest-labs/FLUX.1-schnell": _config_files(_FLUX_COMPONENTS),
    # 9-channel inpainting UNets (latents + mask + masked-image latents)
    "stable-diffusion-v1-5/stable-diffusion-inpainting": _config_files(_SD_COMPONENTS),
    "stabilityai/stable-diffusion-2-inpainting": _config_files(_SD_COMPONENTS),
    "diffusers/stable-diffusion-xl-1.0-inpainting-0.1": _config_files(_SDXL_COMPONENTS),
})

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def config_repo_for(family: str, variant: str | None, details: dict[str, Any] | None = None) -> str:
    """The Hugging Face repository whose configs describe ``family``/``variant`` (``details`` from identification)."""
    v = (variant or "").lower()
    details = details or {}
    if v == "inpaint" and family in INPAINT_CONFIG_REPOS:
        return INPAINT_CONFIG_REPOS[family]
    if family == "sd1":
        return "stable-diffusion-v1-5/stable-diffusion-v1-5"
    if family == "sd2":
        # 2.x 768 models predict v, the 512 "base" models predict noise: the scheduler config differs.
        return "stabilityai/stable-diffusion-2-1-base" if details.get("prediction") == "eps" else "stabilityai/stable-diffusion-2-1"
    if family == "sdxl":
        return "stabilityai/stable-diffusion-xl-base-1.0"
    if family == "sdxl_refiner":
        return "stabilityai/stable-diffusion-xl-refiner-1.0"
    if family == "sd3":
        generation = str(details.get("generation") or ("3.5" if "3.5" in v else "3"))
        if generation == "3.5":
            if "turbo" in v:
                return "stabilityai/stable-diffusion-3.5-large-turbo"
            return "stabilityai/stable-diffusion-3.5-large" if "large" in v else "stabilityai/stable-diffusion-3.5-medium"
        return "stabilityai/stable-diffusion-3-medium-diffusers"
    if family == "flux":  # FLUX.1-dev is gated on Hugging Face: a token that accepted its licence, or --config-dir
        return "black-forest-labs/FLUX.1-schnell" if v == "schnell" else "black-forest-labs/FLUX.1-dev"
    raise PipelineError(f"no known diffusers config for a {family} model")


INPAINT_CONFIG_REPOS = {
    "sd1": "stable-diffusion-v1-5/stable-diffusion-inpainting",
    "sd2": "stabilityai/stable-diffusion-2-inpainting",
    "sdxl": "diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
}
#: The diffusers class an inpainting checkpoint of each txt2img class runs as.
INPAINT_CLASSES = {
    "StableDiffusionPipeline": "StableDiffusionInpaintPipeline",
    "StableDiffusionXLPipeline": "StableDiffusionXLInpaintPipeline",
}

#: Variants that need an input the built-in pipelines do not take (a depth map, an instruction image, an
#: image embedding); refused clearly. Inpainting checkpoints run (see DiffusersPipeline.load).
NOT_TXT2IMG = {"instruct-pix2pix", "depth", "unclip"}


def _details(model: ModelToRun) -> dict[str, Any]:
    return dict(getattr(model.identification, "details", None) or {})


def _prediction(model: ModelToRun) -> str | None:
    """"v", "eps", "flow" or None, from identification."""
    pred = _details(model).get("prediction")
    if pred is None and (model.variant or "").lower() in ("v-prediction", "v_prediction", "v"):
        pred = "v"
    return pred


# -- configs -----------------------------------------------------------------------------------------------


def _is_config_folder(path: Path) -> bool:
    return (path / "model_index.json").is_file()


def find_config_dir(config_dir: Path, family: str, repo: str) -> Path | None:
    """A config folder inside ``--config-dir``: the folder itself, ``DIR/<family>``, or ``DIR/<org>--<repo>``."""
    for candidate in (config_dir, config_dir / family, config_dir / repo.replace("/", "--"), config_dir / repo):
        if _is_config_folder(candidate):
            return candidate
    return None


def config_cache_dir(repo: str) -> Path:
    from hub.config import load_settings

    return load_settings().home / "configs" / repo.replace("/", "--")


def ensure_configs(family: str, variant: str | None, options: RunOptions, details: dict[str, Any] | None = None) -> Path:
    """The config folder for a single-file load: --config-dir, then the cache, then a fetch."""
    repo = config_repo_for(family, variant, details)
    if options.config_dir is not None:
        found = find_config_dir(Path(options.config_dir), family, repo)
        if found is None:
            raise PipelineError(
                f"--config-dir {options.config_dir} has no diffusers config for {family} (looked for model_index.json "
                f"in it, in {family}/ and in {repo.replace('/', '--')}/)"
            )
        return found
    cached = config_cache_dir(repo)
    if (cached / ".complete").is_file():
        return cached
    if options.offline:
        raise PipelineError(
            f"the {family} configs ({repo}) are not cached in {cached} and this run is offline; "
            f"run once online or pass --config-dir"
        )
    return fetch_configs(repo, cached)


# Tokenizer files a repository may or may not ship (a tokenizer needs tokenizer.json, or vocab.json +
# merges.txt, or spiece.model); a 404 on one of them is fine, checked after the fetch.
OPTIONAL_FILES = {"special_tokens_map.json", "tokenizer.json", "vocab.json", "merges.txt", "spiece.model"}


def fetch_configs(repo: str, dest: Path) -> Path:
    """Download the config files of ``repo`` through the Hugging Face source, then publish ``dest`` atomically.

    Going through the source (not huggingface_hub directly) means the configured endpoints and
    mirrors are tried in order, with the same token rules as model downloads.
    """
    from hub.errors import RemoteNotFoundError
    from hub.sources.refs import parse
    from hub.sources.protocol import SourceContext, get_source

    try:
        source = get_source("huggingface")
    except SdhubError as exc:
        raise PipelineError(f"cannot fetch the configs of {repo}: no Hugging Face source ({exc}); pass --config-dir") from exc
    ctx = SourceContext.create()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    from hub.files.regular import apply_umask_mode

    apply_umask_mode(staging, directory=True)  # mkdtemp's 0700 would become the cache folder's mode
    try:
        for name in CONFIG_REPOS[repo]:
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                plan = source.plan(ctx, parse(f"hf:{repo}/{name}"))
            except RemoteNotFoundError:
                if name.rsplit("/", 1)[-1] in OPTIONAL_FILES:
                    continue
                raise
            fetched = source.fetch(ctx, plan, target.parent)
            os.replace(fetched.part_path, target)
        _check_tokenizers(staging, repo)
        (staging / ".complete").write_text(repo + "\n", encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    except SdhubError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise PipelineError(f"cannot fetch the diffusers configs of {repo} ({exc}); pass --config-dir DIR instead") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def _check_tokenizers(folder: Path, repo: str) -> None:
    for tok in sorted(folder.glob("tokenizer*")):
        files = {p.name for p in tok.iterdir()}
        if not ("tokenizer.json" in files or {"vocab.json", "merges.txt"} <= files or "spiece.model" in files):
            raise PipelineError(f"{repo}: {tok.name}/ has no tokenizer vocabulary (tokenizer.json, vocab.json+merges.txt or spiece.model)")


# -- loading ------------------------------------------------------------------------------------------------


def _torch_dtype(dtype: str) -> Any:
    import torch

    try:
        return getattr(torch, DTYPES[dtype])
    except KeyError:
        raise PipelineError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}") from None


def _diffusers() -> Any:
    try:
        import diffusers
    except ImportError as exc:
        raise RuntimeMissingError(f"running models needs the 'run' extra: pip install 'sdhub[run]' ({exc})") from exc
    return diffusers


def _dtype_kwarg(torch_dtype: Any) -> dict[str, Any]:
    """diffusers renamed ``torch_dtype`` to ``dtype``; pass whichever this version wants."""
    try:
        from diffusers.utils import deprecation_utils

        new_name = hasattr(deprecation_utils, "_resolve_dtype")
    except ImportError:
        new_name = False
    return {"dtype": torch_dtype} if new_name else {"torch_dtype": torch_dtype}


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """diffusers/transformers print per-component progress bars and notices while loading; sdhub has its own output."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    d_level, t_level = dlog.get_verbosity(), tlog.get_verbosity()
    d_bars, t_bars = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.set_verbosity(d_level)
        tlog.set_verbosity(t_level)
        if d_bars:
            dlog.enable_progress_bar()
        if t_bars:
            tlog.enable_progress_bar()


def _eval_all(pipe: Any) -> None:
    import torch

    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
            component.requires_grad_(False)


def _ready_with_loras(pipe: Any, device: str, options: RunOptions, loras: Sequence[LoraToApply]) -> list[Any]:
    """Put a loaded pipeline in inference mode on its device and merge the LoRAs; what every family does after loading."""
    _eval_all(pipe)
    pipe.set_progress_bar_config(disable=True)
    if not options.cpu_offload:
        pipe.to(device)
    if not loras:
        return []
    from hub_plugins.lora_merge import merge_lora

    return [merge_lora(pipe, lora.path, lora.weight, lora.name or lora.path.stem) for lora in loras]


def _file_keys(path: Path) -> list[str] | None:
    if path.suffix.lower() != ".safetensors":
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return list(f.keys())


def _model_index(folder: Path) -> dict[str, Any]:
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{folder}: not a diffusers folder (model_index.json unreadable: {exc})") from exc
    if not isinstance(index, dict):
        raise PipelineError(f"{folder}: not a diffusers folder (model_index.json is not a JSON object)")
    return index


def _folder_nulls(index: dict[str, Any]) -> dict[str, None]:
    """Components a diffusers folder declares as null (e.g. SD3 without T5) must be passed as None."""
    nulls: dict[str, None] = {}
    for name, value in index.items():
        if name.startswith("_"):
            continue
        if value is None or (isinstance(value, list) and (not value or value[0] is None)):
            nulls[name] = None
    for name in ("safety_checker", "feature_extractor", "image_encoder"):
        if name in index:
            nulls[name] = None
    return nulls


#: Pipeline classes a diffusers folder's model_index.json may name, and what they hold.
FOLDER_CLASSES = {
    "StableDiffusionPipeline": "SD 1.x/2.x: --family sd1 or sd2",
    "StableDiffusionInpaintPipeline": "SD 1.x/2.x inpainting: --family sd1 or sd2",
    "StableDiffusionXLPipeline": "SDXL base: --family sdxl",
    "StableDiffusionXLImg2ImgPipeline": "an SDXL refiner: give it to --refiner",
    "StableDiffusionXLInpaintPipeline": "SDXL inpainting: --family sdxl",
    "StableDiffusion3Pipeline": "SD3/3.5: --family sd3",
    "FluxPipeline": "Flux: --family flux",
}


def _check_folder_class(folder: Path, index: dict[str, Any], family: str, pipeline_class: str) -> None:
    """A folder whose model_index.json names another known pipeline is refused before diffusers half-loads it
    (an SD1 folder "loads" as SDXL with its second text encoder missing, then fails mid-run)."""
    folder_class = index.get("_class_name")
    if folder_class in FOLDER_CLASSES and folder_class != pipeline_class:
        raise PipelineError(
            f"{folder} is a {folder_class} folder, says its model_index.json ({FOLDER_CLASSES[folder_class]}); "
            f"it cannot run as {family}, which needs a {pipeline_class} folder"
        )


def is_inpaint_model(model: ModelToRun) -> bool:
    """A 9-channel UNet (latents + mask + masked image): identification's ``inpaint`` variant, or the file's own
    conv_in / the folder's unet config when identification could not tell (tiny or unusual files)."""
    if (model.variant or "").lower() == "inpaint":
        return True
    try:
        if model.is_diffusers_folder:
            config = json.loads((model.path / "unet" / "config.json").read_text(encoding="utf-8"))
            return isinstance(config, dict) and config.get("in_channels") == 9
        if model.path.suffix.lower() == ".safetensors":
            from hub.files.safetensors_header import read_header

            shape = read_header(model.path).shape("model.diffusion_model.input_blocks.0.0.weight")
            return shape is not None and len(shape) == 4 and shape[1] == 9
    except (OSError, ValueError, SdhubError):
        return False
    return False


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


@dataclass
class DiffusersPipeline(Pipeline):
    """One diffusers txt2img pipeline class for some families."""

    pipeline_class: str = ""
    denoiser: str = "unet"
    family_defaults: dict[str, Defaults] = field(default_factory=dict)

    def defaults_for(self, family: str, variant: str | None = None) -> Defaults:
        return self.family_defaults.get(family, self.defaults)

    def load(self, model: ModelToRun, loras: list[LoraToApply], device: str, dtype: str, options: RunOptions) -> Runner:
        if (model.variant or "").lower() in NOT_TXT2IMG:
            raise PipelineError(
                f"{model.path} is a {model.family} {model.variant} model; the built-in pipelines run text-to-image, "
                f"img2img and inpainting models only (an {model.variant} model needs another kind of input)"
            )
        inpaint_model = is_inpaint_model(model)
        if inpaint_model:
            if self.pipeline_class not in INPAINT_CLASSES:
                raise PipelineError(f"{model.path} is a {model.family} inpainting model, which sdhub cannot run")
            model = dataclasses.replace(model, variant="inpaint")
        pipeline_class = INPAINT_CLASSES[self.pipeline_class] if inpaint_model else self.pipeline_class
        diffusers = _diffusers()
        torch_dtype = _torch_dtype(dtype)
        with _quiet_loading():
            # Importing the pipeline class pulls in transformers' image processors, which warn that
            # torchvision is missing; sdhub does not need it, so that notice stays quiet too.
            cls = getattr(diffusers, pipeline_class)
            pipe = self._load_pipe(cls, model, torch_dtype, options, pipeline_class)
        _match_prediction(pipe, _prediction(model))
        merged = _ready_with_loras(pipe, device, options, loras)
        refiner = None
        if options.refiner is not None:
            if inpaint_model:
                raise PipelineError("a refiner hand-off is not supported with an inpainting model; drop --refiner")
            with _quiet_loading():
                refiner = self._load_refiner(pipe, options.refiner, torch_dtype, device, options)
        _apply_memory_options(pipe, device, options)
        if refiner is not None:
            _apply_memory_options(refiner, device, options)
        if options.compile:
            _compile(pipe, self.denoiser)
        return DiffusersRunner(pipe, model.family, self.defaults_for(model.family), refiner, options.refiner_switch, merged,
                               inpaint_model=inpaint_model)

    def _load_pipe(self, cls: Any, model: ModelToRun, torch_dtype: Any, options: RunOptions, pipeline_class: str) -> Any:
        extra: dict[str, Any] = {}
        try:
            if model.is_diffusers_folder:
                index = _model_index(model.path)
                _check_folder_class(model.path, index, model.family, pipeline_class)
                extra.update(_folder_nulls(index))
                if "requires_safety_checker" in cls.__init__.__code__.co_varnames:
                    extra["requires_safety_checker"] = False
                return cls.from_pretrained(str(model.path), **_dtype_kwarg(torch_dtype), local_files_only=True, **extra)
            config = ensure_configs(model.family, model.variant, options, _details(model))
            if model.family in ("sd1", "sd2"):
                extra.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
            if model.family == "sd3":
                extra.update(self._sd3_text_encoders(model.path, config, torch_dtype))
            return cls.from_single_file(
                str(model.path), config=str(config), **_dtype_kwarg(torch_dtype), local_files_only=True, **extra
            )
        except SdhubError:
            raise
        except Exception as exc:  # diffusers/transformers raise many types (SingleFileComponentError...)
            raise PipelineError(f"{model.path}: cannot load as a {model.family} {pipeline_class}: {_brief(exc)}") from exc

    def _sd3_text_encoders(self, path: Path, config: Path, torch_dtype: Any) -> dict[str, Any]:
        """SD3 files often leave out T5 (and sometimes the CLIPs): take them from the config folder or skip T5."""
        keys = _file_keys(path)
        if keys is None:
            return {}
        import transformers

        has = {
            "text_encoder": any(k.startswith("text_encoders.clip_l.") for k in keys),
            "text_encoder_2": any(k.startswith("text_encoders.clip_g.") for k in keys),
            "text_encoder_3": any(k.startswith("text_encoders.t5xxl.") for k in keys),
        }
        classes = {"text_encoder": "CLIPTextModelWithProjection", "text_encoder_2": "CLIPTextModelWithProjection", "text_encoder_3": "T5EncoderModel"}
        extra: dict[str, Any] = {}
        for component, present in has.items():
            if present:
                continue
            folder = config / component
            if _has_weights(folder):
                extra[component] = getattr(transformers, classes[component]).from_pretrained(str(folder), torch_dtype=torch_dtype)
            elif component == "text_encoder_3":
                extra.update(text_encoder_3=None, tokenizer_3=None)  # SD3 runs without T5 (zero embeddings)
            else:
                raise PipelineError(
                    f"{path} has no {component.replace('text_encoder_2', 'CLIP-G').replace('text_encoder', 'CLIP-L')} "
                    f"weights and {folder} has none either; use a file that includes the text encoders or a "
                    f"--config-dir whose {component}/ folder has weights"
                )
        return extra

    def _load_refiner(self, base: Any, refiner: ModelToRun, torch_dtype: Any, device: str, options: RunOptions) -> Any:
        if self.pipeline_class != "StableDiffusionXLPipeline":
            raise PipelineError("a refiner hand-off is only supported for SDXL base models")
        if refiner.family not in ("sdxl_refiner", "sdxl"):
            raise IncompatibleError(f"{refiner.path} is a {refiner.family} model, not an SDXL refiner")
        cls = _diffusers().StableDiffusionXLImg2ImgPipeline
        shared = {"vae": base.vae, "text_encoder_2": base.text_encoder_2, "tokenizer_2": base.tokenizer_2}
        try:
            if refiner.is_diffusers_folder:
                extra = {k: v for k, v in _folder_nulls(_model_index(refiner.path)).items() if k not in shared}
                pipe = cls.from_pretrained(str(refiner.path), **_dtype_kwarg(torch_dtype), local_files_only=True, **shared, **extra)
            else:
                config = ensure_configs(refiner.family, refiner.variant, options, _details(refiner))  # an SDXL base refines too
                pipe = cls.from_single_file(
                    str(refiner.path), config=str(config), **_dtype_kwarg(torch_dtype), local_files_only=True, **shared
                )
        except SdhubError:
            raise
        except Exception as exc:  # as in _load_pipe
            raise PipelineError(f"{refiner.path}: cannot load as an SDXL refiner: {_brief(exc)}") from exc
        _eval_all(pipe)
        pipe.set_progress_bar_config(disable=True)
        if not options.cpu_offload:
            pipe.to(device)
        return pipe


def _brief(exc: BaseException, limit: int = 400) -> str:
    """``Type: first line`` of a library exception: torch's state-dict errors list every mismatched
    tensor on its own line, which would bury the one line sdhub prints."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    shown = 2 if len(lines) > 1 and lines[0].endswith(":") else 1  # "Error(s) in loading ...:" + the first
    text = " ".join(lines[:shown])
    if len(lines) > shown:
        text += f" (and {len(lines) - shown} more lines)"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _match_prediction(pipe: Any, prediction: str | None) -> None:
    """A v-prediction finetune of an eps family (or the reverse) needs its scheduler told; samplers inherit it."""
    wanted = {"v": "v_prediction", "eps": "epsilon"}.get(prediction or "")
    config = pipe.scheduler.config
    if wanted and "prediction_type" in config and config["prediction_type"] != wanted:
        pipe.scheduler = type(pipe.scheduler).from_config(config, prediction_type=wanted)


def _apply_memory_options(pipe: Any, device: str, options: RunOptions) -> None:
    if options.cpu_offload:
        import importlib.util

        if importlib.util.find_spec("accelerate") is None:
            raise RuntimeMissingError("CPU offload needs the accelerate package: pip install accelerate "
                                      "(or pip install 'sdhub[run]')")
        if options.cpu_offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            pipe.enable_model_cpu_offload(device=device)
    if options.vae_tiling:
        pipe.vae.enable_tiling()
    if options.vae_slicing:
        pipe.vae.enable_slicing()
    if options.attention_slicing:
        pipe.enable_attention_slicing()


def _compile(pipe: Any, denoiser: str) -> None:
    import torch

    module = getattr(pipe, denoiser)
    setattr(pipe, denoiser, torch.compile(module, fullgraph=False))


def _seeded(scheduler: Any, seeds: list[int]) -> Any:
    """Give a scheduler with its own noise source the request's seeds.

    DPMSolverSDEScheduler (DPM++ SDE) draws its Brownian-tree noise from ``noise_sampler_seed``, not
    from the pipeline's generator; left unset it seeds itself from torch's global RNG, and the same
    seed gives another image on every run. One seed per image, as k-diffusion's batched tree takes.
    """
    if hasattr(scheduler, "noise_sampler_seed"):
        scheduler.noise_sampler_seed = seeds if len(seeds) > 1 else seeds[0]
    return scheduler


class DiffusersRunner(Runner):
    """A loaded diffusers pipeline: builds the requested sampler from the model's own scheduler config."""

    def __init__(self, pipe: Any, family: str, defaults: Defaults, refiner: Any = None,
                 refiner_switch: float = 0.8, loras: list[Any] | None = None, inpaint_model: bool = False) -> None:
        self.pipe = pipe
        self.family = family
        self.inpaint_model = inpaint_model  # ``pipe`` is an inpainting pipeline: every request goes through a mask
        self.defaults = defaults
        self.refiner = refiner
        self.refiner_switch = refiner_switch
        self.loras = loras or []
        self._image_pipes: dict[str, Any] = {}  # img2img / inpaint views of ``pipe``, built on first use
        self.base_scheduler_config = dict(pipe.scheduler.config)
        self.base_scheduler_config["_class_name"] = type(pipe.scheduler).__name__
        self.refiner_scheduler_config = None
        if refiner is not None:
            self.refiner_scheduler_config = dict(refiner.scheduler.config)
            self.refiner_scheduler_config["_class_name"] = type(refiner.scheduler).__name__

    def _scheduler(self, sampler: Any, config: dict[str, Any]) -> Any:
        if sampler is None:
            import diffusers

            return getattr(diffusers, config["_class_name"]).from_config(config)
        return sampler.build(config, self.family)

    def generate(self, request: GenerateRequest) -> list[Any]:
        import torch

        seeds = [request.seed + i for i in range(request.num_images)]
        try:
            scheduler = self._scheduler(request.sampler, self.base_scheduler_config)
        except SdhubError:
            raise
        except Exception as exc:  # a plugin sampler's build() failing
            name = getattr(request.sampler, "name", "default")
            raise PipelineError(f"sampler {name!r} cannot build a scheduler for this model: {_brief(exc)}") from exc
        self.pipe.scheduler = _seeded(scheduler, seeds)
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        total = request.steps  # with a refiner, base and refiner share the steps
        if request.init_image is not None:  # img2img runs only the last ``strength`` of the schedule
            total = max(1, int(request.steps * request.strength))
        done = [0]

        def on_step(_pipe: Any, _i: int, _t: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
            done[0] += 1
            if request.on_step is not None:
                request.on_step(min(done[0], total), total)
            return callback_kwargs

        common: dict[str, Any] = dict(
            self._call_args(request),
            generator=generators if request.num_images > 1 else generators[0],
            callback_on_step_end=on_step,
        )
        try:
            if self.inpaint_model:
                return self._with_inpaint_model(request, common)
            if request.init_image is not None:
                return self._from_image(request, common)
            if self.refiner is None:
                result = self.pipe(width=request.width, height=request.height, output_type="pil", **common)
                return list(result.images)
            latents = self.pipe(width=request.width, height=request.height, denoising_end=self.refiner_switch,
                                output_type="latent", **common).images
            self.refiner.scheduler = _seeded(self._scheduler(request.sampler, self.refiner_scheduler_config or {}), seeds)
            result = self.refiner(image=latents, denoising_start=self.refiner_switch, output_type="pil", **common)
            return list(result.images)
        except SdhubError:
            raise
        except Exception as exc:  # e.g. a --family that does not fit the folder's components
            raise PipelineError(f"generation failed: {_brief(exc)}") from exc

    def _call_args(self, request: GenerateRequest) -> dict[str, Any]:
        """The prompt and guidance arguments of this pipeline's call (Flux's differ)."""
        return dict(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            num_inference_steps=request.steps,
            guidance_scale=request.cfg,
            num_images_per_prompt=request.num_images,
        )

    #: Whether the img2img pipeline takes width/height (Flux's does; SD's reads them from the image).
    img2img_takes_size = False

    def _from_image(self, request: GenerateRequest, common: dict[str, Any]) -> list[Any]:
        """img2img, or inpainting with a mask: diffusers' image pipelines over the loaded components (no reload)."""
        import diffusers

        if self.refiner is not None:
            raise PipelineError("an init image and a refiner together are not supported; drop one of them")
        inpaint = request.mask is not None
        key = "inpaint" if inpaint else "img2img"
        pipe = self._image_pipes.get(key)
        if pipe is None:
            auto = diffusers.AutoPipelineForInpainting if inpaint else diffusers.AutoPipelineForImage2Image
            pipe = auto.from_pipe(self.pipe)
            pipe.set_progress_bar_config(disable=True)
            self._image_pipes[key] = pipe
        pipe.scheduler = self.pipe.scheduler  # the request's sampler, seeded above
        extra: dict[str, Any] = {"image": request.init_image, "strength": request.strength}
        if inpaint:
            extra.update(mask_image=request.mask)
        if inpaint or self.img2img_takes_size:
            extra.update(width=request.width, height=request.height)
        return list(pipe(output_type="pil", **common, **extra).images)

    def _with_inpaint_model(self, request: GenerateRequest, common: dict[str, Any]) -> list[Any]:
        """An inpainting checkpoint: its UNet always reads a mask and the masked image.

        As in A1111, text-to-image paints everything (a white mask over a black image, strength 1) and img2img
        without a mask repaints the whole image (a white mask, the request's strength).
        """
        from PIL import Image

        size = (request.width, request.height)
        image = request.init_image if request.init_image is not None else Image.new("RGB", size, (0, 0, 0))
        mask = request.mask if request.mask is not None else Image.new("L", size, 255)
        strength = request.strength if request.init_image is not None else 1.0
        result = self.pipe(image=image, mask_image=mask, strength=strength, width=request.width,
                           height=request.height, output_type="pil", **common)
        return list(result.images)

    def close(self) -> None:
        self.pipe = None
        self.refiner = None
        self._image_pipes.clear()


SD1 = DiffusersPipeline(
    name="stable-diffusion",
    families=("sd1", "sd2"),
    aliases=("sd1", "sd15", "sd2"),
    description="SD 1.x / 2.x txt2img (diffusers StableDiffusionPipeline)",
    pipeline_class="StableDiffusionPipeline",
    defaults=Defaults(512, 512, 25, 7.0, "dpmpp_2m_karras"),
    family_defaults={"sd2": Defaults(768, 768, 25, 7.0, "dpmpp_2m_karras")},
)
SDXL = DiffusersPipeline(
    name="stable-diffusion-xl",
    families=("sdxl",),
    aliases=("sdxl",),
    description="SDXL base txt2img, optional refiner hand-off (diffusers StableDiffusionXLPipeline)",
    pipeline_class="StableDiffusionXLPipeline",
    defaults=Defaults(1024, 1024, 25, 6.0, "dpmpp_2m_karras"),
)
SD3 = DiffusersPipeline(
    name="stable-diffusion-3",
    families=("sd3",),
    aliases=("sd3", "sd35"),
    description="SD3 / SD3.5 txt2img, rectified flow (diffusers StableDiffusion3Pipeline)",
    pipeline_class="StableDiffusion3Pipeline",
    denoiser="transformer",
    defaults=Defaults(1024, 1024, 28, 5.0, "euler"),
)


@hookimpl
def register_pipelines(register: Any) -> None:
    from hub_plugins.flux import FLUX

    for pipeline in (SD1, SDXL, SD3, FLUX):
        register(pipeline)
