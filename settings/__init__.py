"""One place where airlake's configuration resolves (``airlake.settings``, the bottom layer: it imports nothing of
airlake's, so every other package may use it; docs/architecture.md).

Every setting has a key path such as ``sources.recentchange.url``. A value is taken, first found wins, from:

1. an explicit override passed by the caller (command-line flags end up here);
2. the environment, as the key path upper-cased with ``__`` between parts and the ``AIRLAKE__`` prefix
   (``AIRLAKE__SOURCES__RECENTCHANGE__URL``), the convention dlt uses for its config and secrets;
3. a ``.env`` file in the working directory (same names, for secrets that must not be committed);
4. the TOML settings file (``airlake.toml`` in the working directory, or the file named by ``AIRLAKE_CONFIG``);
5. the defaults, written once in the typed models of :mod:`airlake.settings.models` (:data:`DEFAULTS` is their
   dump).

Values inside a profile's catalog properties may use ``{state_dir}``, replaced by the resolved state directory,
and ``{key.path}`` placeholders of other settings (``{stack.postgres.port}``), so that the ``local`` and ``compose``
profiles follow the stack's ports and the credentials that ``airlake stack up`` generates into ``.env``.
"""

from __future__ import annotations

import contextvars
import difflib
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from airlake.settings.models import (
    USER_AGENT,
    WIKIMEDIA_URL,
    AirlakeModel,
    BatchSettings,
    FirehoseSettings,
    ImagesSettings,
    MaintenanceSettings,
    MarketsSettings,
    PipelineSettings,
    SourcesSettings,
    StackSettings,
)

__all__ = [
    "CATALOG_NAME",
    "DEFAULTS",
    "USER_AGENT",
    "WIKIMEDIA_URL",
    "AirlakeSettings",
    "ConfigError",
    "Settings",
    "env_name",
    "load_settings",
]

ENV_PREFIX = "AIRLAKE__"
CONFIG_FILE_ENV = "AIRLAKE_CONFIG"
DEFAULT_CONFIG_FILE = "airlake.toml"
DOTENV_FILE = ".env"

CATALOG_NAME = "airlake"
"""The pyiceberg catalog name; Trino's ``iceberg.jdbc-catalog.catalog-name`` must equal it."""

FREE_FORM = ("markets.wikis.", "profiles.")
"""Sections whose keys are the user's own (a wiki per market, a profile's catalog properties): any key is valid."""

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*)\}")


class ConfigError(ValueError):
    """A setting is missing or has a value airlake cannot use."""


def plain(value: Any) -> Any:
    """``value`` with models turned into dicts and secrets into their strings (what code and placeholders use)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {name: plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    return value


DEFAULTS: dict[str, Any] = plain(AirlakeModel())
"""Every default, as a nested dict (a dump of :mod:`airlake.settings.models`, where they are written)."""


def env_name(path: str) -> str:
    """The environment variable of a setting: ``stack.s3.access_key`` is ``AIRLAKE__STACK__S3__ACCESS_KEY``."""
    return ENV_PREFIX + path.replace(".", "__").upper()


def _paths(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every section and setting of ``tree`` by dotted path, with its value."""
    for key, value in tree.items():
        path = prefix + key
        yield path, value
        if isinstance(value, Mapping):
            yield from _paths(value, path + ".")


_KNOWN = dict(_paths(DEFAULTS))
_SECRETS = {path for path, value in _paths(AirlakeModel().model_dump()) if isinstance(value, SecretStr)}


def _free(path: str) -> bool:
    return any(path.startswith(prefix) for prefix in FREE_FORM)


def _nearest(path: str, env: bool = False) -> str:
    """`` (did you mean X?)`` with the known setting nearest to ``path``, or nothing when none is near."""
    candidates = [p for p, v in _KNOWN.items() if not isinstance(v, Mapping)]
    match = difflib.get_close_matches(path, candidates, n=1, cutoff=0.6)
    if not match:
        return ""
    return f" (did you mean {env_name(match[0]) if env else match[0]}?)"


def _type_error(value: Any, like: Any) -> str | None:
    """Why a TOML ``value`` can't stand where the default is ``like`` (None when it can).

    TOML has types, so a file is held to them (``"5"`` where a number belongs is a mistake); environment values are
    strings and are converted by the models.
    """
    if isinstance(like, Mapping) != isinstance(value, Mapping):
        return f"{'a section' if isinstance(like, Mapping) else 'a value'} is expected"
    if isinstance(like, bool):
        return None if isinstance(value, bool) else "a boolean is expected"
    if isinstance(like, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer is expected"
    if isinstance(like, float):
        return None if isinstance(value, int | float) and not isinstance(value, bool) else "a number is expected"
    if isinstance(like, str):
        return None if isinstance(value, str) else "a string is expected"
    return None


def check_file_settings(tree: Mapping[str, Any], source: str) -> None:
    """Rejects unknown keys and values of the wrong type in a settings file, naming the nearest valid key.

    Raises:
        ConfigError: the first problem found.
    """
    for path, value in _paths(tree):
        if _free(path):
            continue
        if path not in _KNOWN:
            raise ConfigError(f"unknown setting {path} in {source}{_nearest(path)}")
        problem = _type_error(value, _KNOWN[path])
        if problem:
            raise ConfigError(f"setting {path} in {source} is {value!r}: {problem}")


def _variables_tree(variables: Mapping[str, str]) -> dict[str, Any]:
    """``AIRLAKE__A__B=v`` variables as the nested ``{"a": {"b": "v"}}`` a settings source returns.

    Raises:
        ConfigError: a variable names no setting (with the nearest valid variable), or addresses inside a value.
    """
    tree: dict[str, Any] = {}
    for name, raw in variables.items():
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        path = ".".join(parts)
        if not _free(path) and (path not in _KNOWN or isinstance(_KNOWN[path], Mapping)):
            raise ConfigError(f"unknown variable {name}: there is no setting {path}{_nearest(path, env=True)}")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name} addresses inside {part!r}, which is not a section")
        node[parts[-1]] = raw
    return tree


def _overrides_tree(overrides: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in overrides.items():
        if value is None:
            continue
        if not _free(path) and path not in _KNOWN:
            raise ConfigError(f"the code overrides {path}, which is not a setting{_nearest(path)}")
        parts = path.split(".")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


class _Layer(PydanticBaseSettingsSource):
    """One resolved source (arguments, environment, ``.env``, the TOML file) as a settings source."""

    def __init__(self, settings_cls: type[BaseSettings], tree: dict[str, Any]):
        super().__init__(settings_cls)
        self.tree = tree

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.tree.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.tree


_LAYERS: contextvars.ContextVar[tuple[dict[str, Any], ...]] = contextvars.ContextVar("airlake_settings_layers")


class AirlakeSettings(AirlakeModel, BaseSettings):
    """The root settings model: :class:`~airlake.settings.models.AirlakeModel`'s sections, filled from the sources
    of :func:`load_settings` in its order of precedence."""

    # Variables are read by load_settings (AIRLAKE__ + the path joined by "__", as pydantic-settings' nested
    # delimiter would), not by pydantic-settings' own environment source, so that an unknown one is an error that
    # names the nearest valid variable, and so that callers (tests) can pass the environment they mean.
    model_config = SettingsConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: arguments, the environment, .env, the TOML file, the defaults.
        return tuple(_Layer(settings_cls, tree) for tree in _LAYERS.get(()))


class Settings:
    """Resolved settings: the typed sections as attributes (``settings.pipeline.commit_interval``), where each
    value came from, and the helpers that interpret them."""

    def __init__(self, model: AirlakeSettings, sources_of_values: dict[str, str] | None = None):
        self.model = model
        self.sources_of_values = sources_of_values or {}
        self.data: dict[str, Any] = plain(model)
        """Every setting as a nested dict, secrets in clear (for code that walks them; never print it)."""

    sources: SourcesSettings
    firehose: FirehoseSettings
    markets: MarketsSettings
    pipeline: PipelineSettings
    maintenance: MaintenanceSettings
    batch: BatchSettings
    images: ImagesSettings
    stack: StackSettings

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("model", "data", "sources_of_values"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def get(self, path: str, default: Any = None) -> Any:
        """The value at a dotted ``path`` (for paths built at run time, such as ``sources.<name>.url``); secrets
        come as plain strings. ``default`` when a free-form key is absent.

        Raises:
            ConfigError: ``path`` names no setting (a typo in the code), with the nearest one.
        """
        if path not in _KNOWN and not _free(path):
            raise ConfigError(f"the code asked for {path}, which is not a setting{_nearest(path)}")
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def require(self, path: str) -> Any:
        """The value at ``path``, which must be set (not empty)."""
        value = self.get(path)
        if value is None or value == "":
            raise ConfigError(f"setting {path} is not set (set it in airlake.toml or as {env_name(path)})")
        return value

    @property
    def profile(self) -> str:
        return str(self.require("profile"))

    @property
    def state_dir(self) -> Path:
        return Path(str(self.require("state_dir"))).expanduser().resolve()

    def catalog_properties(self, profile: str | None = None) -> dict[str, str]:
        """The pyiceberg catalog properties of a profile, with its placeholders filled in."""
        name = profile or self.profile
        chosen = self.model.profiles.get(name)
        if chosen is None:
            known = ", ".join(sorted(self.model.profiles)) or "none"
            raise ConfigError(f"unknown profile {name!r} (known profiles: {known})")
        state = str(self.state_dir)

        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "state_dir":
                return state
            value = self.get(key) if key in _KNOWN else None
            if value is None or isinstance(value, Mapping):
                raise ConfigError(f"profile {name!r} refers to {{{key}}}, which is not a setting")
            if value == "":
                raise ConfigError(
                    f"setting {key} is not set (set it as {env_name(key)}; `airlake stack up` generates it)"
                )
            return str(value)

        return {k: _PLACEHOLDER.sub(fill, str(v)) for k, v in chosen.catalog.items()}


def is_secret(path: str) -> bool:
    """Whether the setting at ``path`` holds a secret (typed :class:`~pydantic.SecretStr` in the models)."""
    return path in _SECRETS


_KINDS = {"float": "a float", "int": "an integer", "bool": "a boolean", "string": "a string"}


def _validation_error(exc: ValidationError, layers: list[tuple[str, dict[str, Any]]]) -> ConfigError:
    """The first problem of ``exc``, said with the setting's name and the source its value came from."""
    error = exc.errors()[0]
    path = ".".join(str(part) for part in error["loc"])
    for origin, tree in layers:
        node: Any = tree
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            continue
        if origin in ("env", ".env"):
            kind = next((k for prefix, k in _KINDS.items() if error["type"].startswith(prefix)), "a valid value")
            return ConfigError(f"{env_name(path)}={node!r} is not {kind} ({origin}: {error['msg']})")
        return ConfigError(f"setting {path} from {origin} is {node!r}: {error['msg']}")
    return ConfigError(f"setting {path}: {error['msg']}")


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Settings:
    """Resolves settings from overrides, environment, ``.env``, the TOML file and defaults.

    Args:
        overrides: dotted key paths (``{"pipeline.commit_interval": 1.0}``) that win over everything.
        config_file: the TOML file; defaults to ``$AIRLAKE_CONFIG`` or ``./airlake.toml`` when present.
        environ: the environment to read (``os.environ`` by default).
        cwd: where ``.env`` and ``airlake.toml`` are looked for.

    Returns:
        The resolved :class:`Settings`.

    Raises:
        ConfigError: a named config file is missing or invalid, a key or variable names no setting, or a value has
            the wrong type.
    """
    from dotenv import dotenv_values

    env = dict(os.environ if environ is None else environ)
    base = Path(cwd) if cwd is not None else Path.cwd()

    named = config_file or env.get(CONFIG_FILE_ENV)
    path = Path(named) if named else base / DEFAULT_CONFIG_FILE
    if named and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    toml: dict[str, Any] = {}
    if path.is_file():
        try:
            toml = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        check_file_settings(toml, str(path))

    dotenv_path = base / DOTENV_FILE
    dotenv = dotenv_values(dotenv_path) if dotenv_path.is_file() else {}
    layers = [
        ("argument", _overrides_tree(overrides or {})),
        ("env", _variables_tree({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})),
        (".env", _variables_tree({k: v for k, v in dotenv.items() if k.startswith(ENV_PREFIX) and v is not None})),
        (path.name, toml),
    ]
    # The defaults come last as a source of their own, so that a file or variable that adds one wiki or one
    # profile property is merged into the default mapping (pydantic-settings deep-merges its sources) instead of
    # replacing it.
    token = _LAYERS.set((*(tree for _, tree in layers), DEFAULTS))
    try:
        model = AirlakeSettings()
    except ValidationError as exc:
        raise _validation_error(exc, layers) from None
    finally:
        _LAYERS.reset(token)

    origin: dict[str, str] = {}
    for name, tree in reversed(layers):
        origin.update({p: name for p, v in _paths(tree) if not isinstance(v, Mapping)})

    state = Path(model.state_dir).expanduser()
    if not state.is_absolute():
        model.state_dir = str((base / state).resolve())
    return Settings(model, origin)
