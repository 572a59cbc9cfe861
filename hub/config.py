"""Where things live and how sdhub talks to the world, with the origin of every value.

Precedence, highest first: environment variable, config file (``<home>/config.toml`` or
``SDHUB_CONFIG``), built-in default. ``sdhub config`` prints each setting with where it came from,
tokens masked, so a user can see why sdhub does what it does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_CIVITAI_URL = "https://civitai.com"
DEFAULT_LIBLIB_URL = "https://www.liblib.art"
DEFAULT_LIBLIB_OPENAPI_URL = "https://openapi.liblibai.cloud"
DEFAULT_HF_ENDPOINTS = ("https://huggingface.co", "https://hf-mirror.com")
DEFAULT_STORE_LAYOUT = "{kind}/{family}/{filename}"
SECRET_FIELDS = frozenset({"civitai_token", "hf_token", "liblib_access_key", "liblib_secret_key"})


def default_home(env: Mapping[str, str] = os.environ) -> Path:
    """The platform's usual data directory for an application called sdhub."""
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "sdhub"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "sdhub"
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sdhub"


@dataclass
class Settings:
    """The effective settings; ``origins`` maps each field name to where its value came from."""

    home: Path
    db_url: str
    config_file: Path
    store: Path
    store_layout: str
    hf_cache_dir: Path
    civitai_url: str
    liblib_url: str
    liblib_openapi_url: str
    hf_endpoints: list[str]
    hf_token_to_mirrors: bool
    preferred_sources: list[str]
    download_connections: int
    source_timeout: int = 120
    civitai_token: str | None = None
    hf_token: str | None = None
    liblib_access_key: str | None = None
    liblib_secret_key: str | None = None
    # Other machines' `sdhub serve` (http://server:8765), asked for a file before the internet sources.
    peers: list[str] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)

    def describe(self) -> list[dict[str, Any]]:
        """Rows for ``sdhub config``: name, value (secrets masked), origin."""
        rows = []
        for name in self.__dataclass_fields__:
            if name == "origins":
                continue
            value: Any = getattr(self, name)
            if name in SECRET_FIELDS:
                value = mask(value)
            elif isinstance(value, Path):
                value = str(value)
            rows.append({"name": name, "value": value, "origin": self.origins.get(name, "default")})
        return rows


def mask(secret: str | None) -> str | None:
    """Show that a token is set without showing it."""
    if not secret:
        return None
    return "****" if len(secret) < 12 else f"{secret[:3]}…{secret[-2:]} ({len(secret)} chars)"


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    return data


def _lookup(table: Mapping[str, Any], dotted: str) -> Any:
    node: Any = table
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _as_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [v.strip().rstrip("/") for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip().rstrip("/") for v in value if v.strip()]
    raise ConfigError(f"{what} must be a list of strings or a comma-separated string, got {value!r}")


def _as_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        return value.strip().lower() in {"1", "true", "yes", "on"}
    raise ConfigError(f"{what} must be true or false, got {value!r}")


def _as_int(value: Any, what: str, lo: int, hi: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a whole number, got {value!r}") from None
    if not lo <= n <= hi:
        raise ConfigError(f"{what} must be between {lo} and {hi}, got {n}")
    return n


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the environment and the config file into :class:`Settings`."""
    env = os.environ if env is None else env
    origins: dict[str, str] = {}

    if env.get("SDHUB_HOME"):
        home = Path(env["SDHUB_HOME"]).expanduser()
        origins["home"] = "env SDHUB_HOME"
    else:
        home = default_home(env)
        origins["home"] = "default (platform data dir)"

    if env.get("SDHUB_CONFIG"):
        config_file = Path(env["SDHUB_CONFIG"]).expanduser()
        origins["config_file"] = "env SDHUB_CONFIG"
    else:
        config_file = home / "config.toml"
        origins["config_file"] = "default (<home>/config.toml)"
    file_data = _read_config_file(config_file)

    def pick(name: str, env_names: tuple[str, ...], file_key: str | None, default: Any) -> Any:
        for var in env_names:
            if env.get(var):
                origins[name] = f"env {var}"
                return env[var]
        if file_key is not None:
            value = _lookup(file_data, file_key)
            if value is not None:
                origins[name] = f"{config_file} [{file_key}]"
                return value
        origins[name] = "default"
        return default

    db_url = str(pick("db_url", ("SDHUB_DB_URL",), "catalogue.url", f"sqlite:///{home / 'registry.db'}"))
    store = Path(str(pick("store", ("SDHUB_STORE",), "store.path", home / "models"))).expanduser()
    store_layout = str(pick("store_layout", ("SDHUB_STORE_LAYOUT",), "store.layout", DEFAULT_STORE_LAYOUT))
    for required in ("{filename}",):
        if required not in store_layout:
            raise ConfigError(f"store layout {store_layout!r} must contain {required}")
    hf_cache_dir = Path(str(pick("hf_cache_dir", ("SDHUB_HF_CACHE",), "huggingface.cache_dir", home / "hf-cache")))

    civitai_url = str(pick("civitai_url", ("SDHUB_CIVITAI_URL",), "civitai.url", DEFAULT_CIVITAI_URL)).rstrip("/")
    liblib_url = str(pick("liblib_url", ("SDHUB_LIBLIB_URL",), "liblib.url", DEFAULT_LIBLIB_URL)).rstrip("/")
    liblib_openapi_url = str(
        pick("liblib_openapi_url", ("SDHUB_LIBLIB_OPENAPI_URL",), "liblib.openapi_url", DEFAULT_LIBLIB_OPENAPI_URL)
    ).rstrip("/")

    # HF endpoints: SDHUB_HF_ENDPOINTS wins; else HF_ENDPOINT first, then the defaults.
    if env.get("SDHUB_HF_ENDPOINTS"):
        hf_endpoints = _as_list(env["SDHUB_HF_ENDPOINTS"], "SDHUB_HF_ENDPOINTS")
        origins["hf_endpoints"] = "env SDHUB_HF_ENDPOINTS"
    else:
        from_file = _lookup(file_data, "huggingface.endpoints")
        base = _as_list(from_file, "huggingface.endpoints") if from_file is not None else list(DEFAULT_HF_ENDPOINTS)
        origin = f"{config_file} [huggingface.endpoints]" if from_file is not None else "default"
        if env.get("HF_ENDPOINT"):
            first = env["HF_ENDPOINT"].strip().rstrip("/")
            base = [first] + [e for e in base if e != first]
            origin = f"env HF_ENDPOINT, then {origin}"
        hf_endpoints = base
        origins["hf_endpoints"] = origin
    if not hf_endpoints:
        raise ConfigError("no Hugging Face endpoint configured (SDHUB_HF_ENDPOINTS is empty)")
    for url in hf_endpoints + [civitai_url, liblib_url]:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"endpoint {url!r} must start with http:// or https://")

    hf_token_to_mirrors = _as_bool(
        pick("hf_token_to_mirrors", ("SDHUB_HF_TOKEN_TO_MIRRORS",), "huggingface.send_token_to_mirrors", False),
        "hf_token_to_mirrors",
    )
    preferred_sources = _as_list(
        pick("preferred_sources", ("SDHUB_SOURCES",), "sources.preferred", "civitai,hf,liblib"), "preferred_sources"
    )
    download_connections = _as_int(
        pick("download_connections", ("SDHUB_DOWNLOAD_CONNECTIONS",), "download.connections", 4),
        "download_connections",
        1,
        32,
    )

    peers = [p.rstrip("/") for p in _as_list(pick("peers", ("SDHUB_PEERS",), "sources.peers", []), "peers")]
    for url in peers:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"peer {url!r} must start with http:// or https:// (e.g. http://server:8765)")

    # Seconds a source (often a plugin's) may take to answer one search, or one lookup of 100 hashes.
    source_timeout = _as_int(
        pick("source_timeout", ("SDHUB_SOURCE_TIMEOUT",), "sources.timeout", 120), "source_timeout", 1, 86400
    )

    def secret(name: str, env_names: tuple[str, ...], file_key: str) -> str | None:
        value = pick(name, env_names, file_key, None)
        return str(value) if value else None

    return Settings(
        home=home,
        db_url=db_url,
        config_file=config_file,
        store=store,
        store_layout=store_layout,
        hf_cache_dir=hf_cache_dir,
        civitai_url=civitai_url,
        liblib_url=liblib_url,
        liblib_openapi_url=liblib_openapi_url,
        hf_endpoints=hf_endpoints,
        hf_token_to_mirrors=hf_token_to_mirrors,
        preferred_sources=preferred_sources,
        download_connections=download_connections,
        source_timeout=source_timeout,
        civitai_token=secret("civitai_token", ("CIVITAI_API_TOKEN",), "civitai.token"),
        hf_token=secret("hf_token", ("HF_TOKEN",), "huggingface.token"),
        liblib_access_key=secret("liblib_access_key", ("LIBLIB_ACCESS_KEY",), "liblib.access_key"),
        liblib_secret_key=secret("liblib_secret_key", ("LIBLIB_SECRET_KEY",), "liblib.secret_key"),
        peers=peers,
        origins=origins,
    )
