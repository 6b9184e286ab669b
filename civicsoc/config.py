"""Configuration: defaults, then a YAML file, then environment variables, validated by pydantic.

The loader remembers where every value came from, so a bad value is reported as
``store.retention_days (from env CIVICSOC_STORE__RETENTION_DAYS): Input should be ...`` rather than
as a bare validation error. Unknown keys are errors too: a typo must not silently fall back to a
default.

Environment variables:

- ``CIVICSOC_CONFIG``: path of the YAML file (default: ``civicsoc.yaml`` in the working directory,
  if present).
- ``CIVICSOC_STORE``: the store URL (short for ``CIVICSOC_STORE__URL``).
- ``CIVICSOC_DATA_DIR``: where the embedded store and other state live.
- ``CIVICSOC_<SECTION>__<KEY>``: any other key, e.g. ``CIVICSOC_STORE__PASSWORD``,
  ``CIVICSOC_API__PORT``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from civicsoc.errors import ConfigError

DEFAULT_CONFIG_FILE = "civicsoc.yaml"
ENV_PREFIX = "CIVICSOC_"
# Short names for the keys people set most; everything else uses CIVICSOC_SECTION__KEY.
ENV_ALIASES = {
    "CIVICSOC_STORE": ("store", "url"),
    "CIVICSOC_DATA_DIR": ("data_dir",),
    "CIVICSOC_TENANT": ("default_tenant",),
}
ENV_IGNORED = {"CIVICSOC_CONFIG", "CIVICSOC_SERVE_WORKER"}  # the latter: see api.serving
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "civicsoc"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSettings(_Section):
    url: str = Field(
        default="",
        description="sqlite:///relative/path.db, sqlite:////absolute/path.db or http(s)://host:9200 "
        "(Elasticsearch). Empty means <data_dir>/civicsoc.db.",
    )
    username: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None
    ca_file: Path | None = Field(default=None, description="CA bundle to verify the Elasticsearch TLS certificate")
    verify_certs: bool = True
    index_prefix: str = Field(
        default="civicsoc",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$",
        description="Elasticsearch index names start with this (lowercase letters, digits, _ and -)",
    )
    retention_days: int = Field(default=90, ge=1, description="events older than this many days are deleted")
    request_timeout: float = Field(default=30.0, gt=0)
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        default="FULL",
        description="FULL survives power loss; NORMAL survives a crashed process only but writes faster",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value and not re.match(r"^(sqlite|https?)://", value):
            raise ValueError("expected a URL starting with sqlite://, http:// or https://")
        return value


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class RulesSettings(_Section):
    paths: list[Path] = Field(
        default_factory=list, description="Sigma rule files or folders (e.g. a SigmaHQ checkout) besides civicsoc's own"
    )
    builtin: bool = Field(default=True, description="Also load civicsoc's own rules (rules/ in the install)")
    placeholders: dict[str, list[str | int]] = Field(
        default_factory=dict, description="Values of %placeholders% for |expand rules, e.g. Admins_Workstations")


class Settings(_Section):
    """Everything civicsoc reads from its configuration."""

    data_dir: Path = Field(default_factory=default_data_dir)
    default_tenant: str = Field(default="default", pattern=TENANT_PATTERN)
    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    rules: RulesSettings = RulesSettings()

    @property
    def store_url(self) -> str:
        """The configured store URL, or the embedded store under ``data_dir``."""
        return self.store.url or f"sqlite:///{(self.data_dir / 'civicsoc.db').as_posix()}"


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the YAML file and the environment, apply ``overrides`` (from CLI flags) and validate.

    ``overrides`` maps dotted keys (``"store.url"``) to values.
    """
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}

    path = Path(config_file) if config_file else _config_file_from(environ)
    if path is not None:
        _merge(data, origins, _read_yaml(path), f"file {path}")
    for key, value in environ.items():
        target = _env_key(key)
        if target is not None:
            _set(data, origins, target, value, f"env {key}")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(data, origins, tuple(dotted.split(".")), value, "command line")

    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_describe(error, origins) for error in exc.errors()]) from None


def _config_file_from(environ: Mapping[str, str]) -> Path | None:
    if environ.get("CIVICSOC_CONFIG"):
        return Path(environ["CIVICSOC_CONFIG"])
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"config file {path}: cannot be read ({exc.strerror})"]) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"config file {where}: not valid YAML ({problem})"]) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError([f"config file {path}: expected a mapping of keys at the top, got {type(loaded).__name__}"])
    return loaded


def _env_key(name: str) -> tuple[str, ...] | None:
    if name in ENV_ALIASES:
        return ENV_ALIASES[name]
    if not name.startswith(ENV_PREFIX) or name in ENV_IGNORED:
        return None
    rest = name[len(ENV_PREFIX):]
    if "__" not in rest:
        # CIVICSOC_X without a section is not ours to judge (CIVICSOC_TEST_ES_URL, CIVICSOC_WORK ...).
        return None
    return tuple(part.lower() for part in rest.split("__"))


def _merge(data: dict[str, Any], origins: dict[tuple[str, ...], str], tree: Mapping[str, Any], origin: str,
           prefix: tuple[str, ...] = ()) -> None:
    for key, value in tree.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping):
            _merge(data, origins, value, origin, path)
        else:
            _set(data, origins, path, value, origin)


def _set(data: dict[str, Any], origins: dict[tuple[str, ...], str], path: tuple[str, ...], value: Any,
         origin: str) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value
    origins[path] = origin


def _describe(error: Mapping[str, Any], origins: Mapping[tuple[str, ...], str]) -> str:
    path = tuple(str(part) for part in error["loc"])
    key = ".".join(path)
    origin = origins.get(path)
    where = f" (from {origin})" if origin else ""
    if error["type"] == "extra_forbidden":
        return f"{key}{where}: unknown key"
    message = error["msg"]
    secret = path[-1] in {"password", "api_key"}
    shown = "" if secret or "input" not in error or isinstance(error["input"], dict) else f", got {error['input']!r}"
    return f"{key}{where}: {message}{shown}"
