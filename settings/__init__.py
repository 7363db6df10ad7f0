"""One place where airlake's configuration resolves (``airlake.settings``, the bottom layer: it imports nothing of
airlake's, so every other package may use it; docs/architecture.md).

Every setting has a key path such as ``sources.recentchange.url``. A value is taken, first found wins, from:

1. an explicit override passed by the caller (command-line flags end up here);
2. the environment, as the key path upper-cased with ``__`` between parts and the ``AIRLAKE__`` prefix
   (``AIRLAKE__SOURCES__RECENTCHANGE__URL``), the convention dlt uses for its config and secrets;
3. a ``.env`` file in the working directory (same names, for secrets that must not be committed);
4. the TOML settings file (``airlake.toml`` in the working directory, or the file named by ``AIRLAKE_CONFIG``);
5. the defaults in :data:`DEFAULTS`.

Values inside a profile's catalog properties may use ``{state_dir}``, replaced by the resolved state directory,
and ``{key.path}`` placeholders of other settings (``{stack.postgres.port}``), so that the ``local`` and ``compose``
profiles follow the stack's ports and the credentials that ``airlake stack up`` generates into ``.env``.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "AIRLAKE__"
CONFIG_FILE_ENV = "AIRLAKE_CONFIG"
DEFAULT_CONFIG_FILE = "airlake.toml"
DOTENV_FILE = ".env"

CATALOG_NAME = "airlake"
"""The pyiceberg catalog name; Trino's ``iceberg.jdbc-catalog.catalog-name`` must equal it."""

WIKIMEDIA_URL = "https://stream.wikimedia.org/v2/stream/recentchange"
USER_AGENT = "airlake/0.1 (Here Comes The Airplane data platform; data-platform@herecomestheairplane.example)"


def _source_defaults(url: str) -> dict[str, Any]:
    """The defaults of one firehose source (``sources.<name>``): where it is and how to read it."""
    return {
        "url": url,
        "user_agent": USER_AGENT,
        "read_timeout": 60.0,
        "connect_timeout": 10.0,
        "backoff_initial": 0.5,
        "backoff_max": 30.0,
        "max_line_bytes": 1 << 20,  # a longer SSE line makes its event a dead letter
        "max_event_bytes": 4 << 20,  # and so does a larger event
    }


DEFAULTS: dict[str, Any] = {
    "profile": "embedded",
    "state_dir": ".airlake",
    "sources": {
        "recentchange": _source_defaults(WIKIMEDIA_URL),
        "orders": _source_defaults("http://127.0.0.1:8091/v2/stream/orders"),
    },
    "firehose": {
        "host": "127.0.0.1",
        "recentchange_port": 8090,
        "orders_port": 8091,
        "source": "",  # empty: the recordings in ../shared/data/wikimedia/
        "orders_per_edit": 0.5,
        "seed": 42,
    },
    "markets": {
        "default": "springfield",
        "wikis": {
            "enwiki": "new-york",
            "wikidatawiki": "london",
            "commonswiki": "london",
            "dewiki": "berlin",
            "frwiki": "paris",
            "eswiki": "madrid",
            "itwiki": "rome",
            "jawiki": "tokyo",
            "ptwiki": "sao-paulo",
        },
    },
    "pipeline": {
        "commit_interval": 2.0,
        "max_batch_events": 20_000,
        "dedupe_cache_size": 2_000_000,
        "allowed_lateness_minutes": 60,
        "max_event_ahead_seconds": 300.0,
        "expire_snapshots_every": 50,
        "keep_snapshots": 20,
        "lease_ttl_seconds": 30.0,
        "reader_queue_bytes": 64 << 20,
    },
    "stack": {
        # Downloads and builds, shared by checkouts; runtime state lives in {state_dir}/stack.
        "cache_dir": "~/.cache/airlake",
        "host": "127.0.0.1",
        "up_timeout": 300.0,
        "postgres": {
            "port": 15432,
            "user": "airlake",
            "password": "",  # secret: generated into .env by `airlake stack up`
            "catalog_db": "iceberg_catalog",
            "superset_user": "superset",
            "superset_password": "",  # secret
            "superset_db": "superset",
        },
        "s3": {
            "region": "us-east-1",
            "bucket": "airlake",
            "access_key": "",  # secret
            "secret_key": "",  # secret
        },
        "seaweedfs": {
            "version": "4.48",
            "s3_port": 8333,
            "master_port": 19333,
            "volume_port": 19340,
            "filer_port": 18888,
            "admin_port": 23646,
        },
        "ferretdb": {"version": "1.24.0", "port": 27017},
        "trino": {"version": "476", "port": 8080, "heap": "2G", "java_home": ""},
        "dbt": {"version": "1.11.16", "trino_adapter_version": "1.11.0", "threads": 2},
        "superset": {
            "version": "6.1.0",
            "port": 8088,
            "workers": 2,
            "admin_user": "admin",
            "admin_password": "",  # secret
            "secret_key": "",  # secret
        },
    },
    "profiles": {
        "embedded": {
            "catalog": {
                "type": "sql",
                "uri": "sqlite:///{state_dir}/catalog.db",
                "warehouse": "file://{state_dir}/warehouse",
            },
        },
        "local": {
            "catalog": {
                "type": "sql",
                "uri": "postgresql+psycopg2://{stack.postgres.user}:{stack.postgres.password}"
                "@{stack.host}:{stack.postgres.port}/{stack.postgres.catalog_db}",
                "warehouse": "s3://{stack.s3.bucket}/warehouse",
                "s3.endpoint": "http://{stack.host}:{stack.seaweedfs.s3_port}",
                "s3.region": "{stack.s3.region}",
                "s3.access-key-id": "{stack.s3.access_key}",
                "s3.secret-access-key": "{stack.s3.secret_key}",
            },
        },
        "compose": {
            "catalog": {
                "type": "sql",
                "uri": "postgresql+psycopg2://{stack.postgres.user}:{stack.postgres.password}"
                "@postgres:5432/{stack.postgres.catalog_db}",
                "warehouse": "s3://{stack.s3.bucket}/warehouse",
                "s3.endpoint": "http://seaweedfs:8333",
                "s3.region": "{stack.s3.region}",
                "s3.access-key-id": "{stack.s3.access_key}",
                "s3.secret-access-key": "{stack.s3.secret_key}",
            },
        },
    },
}

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*)\}")


class ConfigError(ValueError):
    """A setting is missing or has a value airlake cannot use."""


def env_name(path: str) -> str:
    """The environment variable of a setting: ``stack.s3.access_key`` is ``AIRLAKE__STACK__S3__ACCESS_KEY``."""
    return ENV_PREFIX + path.replace(".", "__").upper()


FREE_FORM = ("markets.wikis.", "profiles.")
"""Sections whose keys are the user's own (a wiki per market, a profile's catalog properties): any key is valid."""


def _paths(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every section and setting of ``tree`` by dotted path, with its value."""
    found: dict[str, Any] = {}
    for key, value in tree.items():
        path = prefix + key
        found[path] = value
        if isinstance(value, Mapping):
            found.update(_paths(value, path + "."))
    return found


_KNOWN = _paths(DEFAULTS)


def _nearest(path: str, env: bool = False) -> str:
    """`` (did you mean X?)`` with the known setting nearest to ``path``, or nothing when none is near."""
    import difflib

    candidates = [p for p in _KNOWN if not isinstance(_KNOWN[p], Mapping)]
    match = difflib.get_close_matches(path, candidates, n=1, cutoff=0.6)
    if not match:
        return ""
    return f" (did you mean {env_name(match[0]) if env else match[0]}?)"


def _free(path: str) -> bool:
    return any(path.startswith(prefix) for prefix in FREE_FORM)


def _type_error(path: str, value: Any, like: Any) -> str | None:
    """Why ``value`` can't stand where the default is ``like`` (None when it can)."""
    if like is None or isinstance(like, Mapping) != isinstance(value, Mapping):
        return None if like is None else f"{'a section' if isinstance(like, Mapping) else 'a value'} is expected"
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
    for path, value in _paths(tree).items():
        if _free(path):
            continue
        if path not in _KNOWN:
            raise ConfigError(f"unknown setting {path} in {source}{_nearest(path)}")
        problem = _type_error(path, value, _KNOWN[path])
        if problem:
            raise ConfigError(f"setting {path} in {source} is {value!r}: {problem}")


def check_variable(name: str, path: str) -> None:
    """Rejects an ``AIRLAKE__`` variable that names no setting, naming the nearest valid variable."""
    if _free(path):
        return
    if path not in _KNOWN or isinstance(_KNOWN[path], Mapping):
        raise ConfigError(f"unknown variable {name}: there is no setting {path}{_nearest(path, env=True)}")


def _read_dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _coerce(raw: str, like: Any, path: str) -> Any:
    """Turns an environment string into the type of the default it replaces."""
    if isinstance(like, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{env_name(path)}={raw!r} is not a boolean")
    try:
        if isinstance(like, int):
            return int(raw)
        if isinstance(like, float):
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{env_name(path)}={raw!r} is not a {type(like).__name__}") from exc
    return raw


@dataclass
class Settings:
    """Resolved settings: a nested mapping plus the helpers that interpret it."""

    data: dict[str, Any]
    sources_of_values: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, default: Any = None) -> Any:
        """The value at ``path``; ``default`` when the setting is unset.

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
        """The pyiceberg catalog properties of a profile, with ``{state_dir}`` filled in."""
        name = profile or self.profile
        props = self.get(f"profiles.{name}.catalog")
        if not isinstance(props, Mapping):
            known = ", ".join(sorted(self.get("profiles", {}))) or "none"
            raise ConfigError(f"unknown profile {name!r} (known profiles: {known})")
        state = str(self.state_dir)

        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "state_dir":
                return state
            value = self.get(key)
            if value is None or isinstance(value, Mapping):
                raise ConfigError(f"profile {name!r} refers to {{{key}}}, which is not a setting")
            if value == "":
                raise ConfigError(
                    f"setting {key} is not set (set it as {env_name(key)}; `airlake stack up` generates it)"
                )
            return str(value)

        return {k: _PLACEHOLDER.sub(fill, str(v)) for k, v in props.items()}


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
        ConfigError: a named config file is missing or invalid, or a value has the wrong type.
    """
    env = dict(os.environ if environ is None else environ)
    base = Path(cwd) if cwd is not None else Path.cwd()
    data = copy.deepcopy(DEFAULTS)
    origin: dict[str, str] = {}

    named = config_file or env.get(CONFIG_FILE_ENV)
    path = Path(named) if named else base / DEFAULT_CONFIG_FILE
    if named and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    if path.is_file():
        try:
            tree = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        check_file_settings(tree, str(path))
        _merge(data, tree)
        origin.update({key: path.name for key, value in _paths(tree).items() if not isinstance(value, Mapping)})

    dotenv = _read_dotenv(base / DOTENV_FILE)
    layered = {**dotenv, **{k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}}
    for name, raw in layered.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        dotted = ".".join(parts)
        check_variable(name, dotted)
        settings_probe = Settings(data)
        value = _coerce(raw, settings_probe.get(dotted), dotted)
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name} addresses inside {part!r}, which is not a section")
        node[parts[-1]] = value
        origin[dotted] = "env" if name in env else ".env"

    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        parts = dotted.split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        origin[dotted] = "argument"

    settings = Settings(data, origin)
    state = Path(str(settings.require("state_dir"))).expanduser()
    if not state.is_absolute():
        data["state_dir"] = str((base / state).resolve())
    return settings
