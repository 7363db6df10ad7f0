"""The stack's settings: profiles, generated credentials, supervisord configuration (no servers needed)."""

from __future__ import annotations

import configparser
import shlex

import pytest

from airlake.settings import ConfigError, load_settings
from airlake.stack.credentials import GENERATED, ensure_credentials, env_name
from airlake.stack.layout import Layout
from airlake.stack.supervisor import render_conf


def test_credentials_are_generated_once_into_dotenv(tmp_path):
    written = ensure_credentials(tmp_path, environ={})
    assert sorted(written) == sorted(env_name(key) for key in GENERATED)
    text = (tmp_path / ".env").read_text(encoding="utf-8")
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    assert ensure_credentials(tmp_path, environ={}) == []
    assert (tmp_path / ".env").read_text(encoding="utf-8") == text
    settings = load_settings(environ={}, cwd=tmp_path)
    password = settings.require("stack.postgres.password")
    assert len(password) == 32 and password.isalnum()
    assert settings.require("stack.s3.secret_key") != settings.require("stack.s3.access_key")


def test_a_secret_set_in_the_environment_is_not_generated(tmp_path):
    written = ensure_credentials(tmp_path, environ={"AIRLAKE__STACK__S3__SECRET_KEY": "given"})
    assert "AIRLAKE__STACK__S3__SECRET_KEY" not in written


def test_local_profile_needs_the_generated_secrets(tmp_path):
    with pytest.raises(ConfigError, match="AIRLAKE__STACK__POSTGRES__PASSWORD"):
        load_settings(environ={}, cwd=tmp_path).catalog_properties("local")
    ensure_credentials(tmp_path, environ={})
    env = {"AIRLAKE__STACK__POSTGRES__PORT": "25432", "AIRLAKE__STACK__SEAWEEDFS__S3_PORT": "28333"}
    settings = load_settings(environ=env, cwd=tmp_path)
    props = settings.catalog_properties("local")
    user, password = settings.require("stack.postgres.user"), settings.require("stack.postgres.password")
    assert props["uri"] == f"postgresql+psycopg2://{user}:{password}@127.0.0.1:25432/iceberg_catalog"
    assert props["s3.endpoint"] == "http://127.0.0.1:28333"
    assert props["warehouse"] == "s3://airlake/warehouse"
    assert props["s3.access-key-id"] == settings.require("stack.s3.access_key")
    assert props["s3.region"]


def test_supervisord_conf_runs_everything_on_loopback(tmp_path, monkeypatch):
    from airlake.stack import services

    ensure_credentials(tmp_path, environ={})
    settings = load_settings({"state_dir": str(tmp_path / "state")}, environ={}, cwd=tmp_path)
    layout = Layout.from_settings(settings)
    monkeypatch.setattr(services, "find_java_home", lambda _settings: tmp_path / "jdk")
    monkeypatch.setattr(services, "find_postgres_bindir", lambda: tmp_path / "pg" / "bin")
    conf = configparser.RawConfigParser()
    conf.read_string(render_conf(layout, services.programs(layout)))
    names = [s.removeprefix("program:") for s in conf.sections() if s.startswith("program:")]
    assert names == ["postgres", "seaweedfs", "ferretdb", "trino", "superset"]
    assert conf["unix_http_server"]["file"].startswith(str(layout.state))
    pg = shlex.split(conf["program:postgres"]["command"])
    assert "listen_addresses=127.0.0.1" in pg
    weed = shlex.split(conf["program:seaweedfs"]["command"])
    assert "-ip.bind=127.0.0.1" in weed and "-master.telemetry=false" in weed
    assert "-listen-addr=127.0.0.1:27017" in shlex.split(conf["program:ferretdb"]["command"])
    assert "--bind" in conf["program:superset"]["command"] and "127.0.0.1:8088" in conf["program:superset"]["command"]
    for section in names:
        assert conf[f"program:{section}"]["autorestart"] == "true"


def _fake_jdk(root, name: str, version: str):
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\n")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_trino_gets_the_newest_jdk_24_or_newer(tmp_path):
    from airlake.stack.layout import find_java_home

    settings = load_settings(environ={}, cwd=tmp_path)
    _fake_jdk(tmp_path, "java-17-openjdk-amd64", "17.0.15")
    with pytest.raises(ConfigError, match="JDK 24 or newer.*install one.*temurin-25-jdk"):
        find_java_home(settings, root=tmp_path)
    _fake_jdk(tmp_path, "temurin-24-jdk-amd64", "24.0.2")
    newest = _fake_jdk(tmp_path, "temurin-25-jdk-amd64", "25.0.3")
    assert find_java_home(settings, root=tmp_path) == newest
    old = load_settings(environ={"AIRLAKE__STACK__TRINO__JAVA_HOME": str(tmp_path / "java-17-openjdk-amd64")})
    with pytest.raises(ConfigError, match="not a JDK 24 or newer"):
        find_java_home(old, root=tmp_path)
