"""Configuration resolves explicit > environment > .env > airlake.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlake.settings import WIKIMEDIA_URL, ConfigError, load_settings


def test_defaults_point_at_the_live_wikimedia_stream(tmp_path: Path):
    s = load_settings(environ={}, cwd=tmp_path)
    assert s.get("sources.recentchange.url") == WIKIMEDIA_URL
    assert s.profile == "embedded"
    assert s.state_dir == (tmp_path / ".airlake").resolve()
    assert s.catalog_properties()["uri"] == f"sqlite:///{s.state_dir}/catalog.db"


def test_precedence_and_types(tmp_path: Path):
    (tmp_path / "airlake.toml").write_text(
        '[pipeline]\ncommit_interval = 5.0\nmax_batch_events = 10\n[sources.orders]\nurl = "http://toml"\n'
    )
    (tmp_path / ".env").write_text(
        "AIRLAKE__PIPELINE__COMMIT_INTERVAL=4\nAIRLAKE__SOURCES__ORDERS__URL='http://dotenv'\n"
    )
    env = {"AIRLAKE__PIPELINE__COMMIT_INTERVAL": "3.5"}
    s = load_settings(environ=env, cwd=tmp_path)
    assert s.get("pipeline.commit_interval") == 3.5  # environment over .env over file
    assert s.get("sources.orders.url") == "http://dotenv"  # .env over file
    assert s.get("pipeline.max_batch_events") == 10  # file over defaults
    s = load_settings({"pipeline.commit_interval": 1.0}, environ=env, cwd=tmp_path)
    assert s.get("pipeline.commit_interval") == 1.0  # explicit over everything


def test_bad_values_and_files_are_clear_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="AIRLAKE__PIPELINE__COMMIT_INTERVAL='fast' is not a float"):
        load_settings(environ={"AIRLAKE__PIPELINE__COMMIT_INTERVAL": "fast"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "missing.toml", environ={}, cwd=tmp_path)
    (tmp_path / "airlake.toml").write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(environ={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        load_settings({"profile": "nope"}, environ={}, cwd=tmp_path / "elsewhere").catalog_properties()


def test_an_unknown_key_in_the_file_is_an_error_naming_the_nearest(tmp_path: Path):
    (tmp_path / "airlake.toml").write_text("[pipeline]\ncommit_intervall = 5.0\n")
    with pytest.raises(
        ConfigError, match=r"unknown setting pipeline\.commit_intervall .*did you mean pipeline\.commit_interval\?"
    ):
        load_settings(environ={}, cwd=tmp_path)
    (tmp_path / "airlake.toml").write_text('[pipeline]\ncommit_interval = "fast"\n')
    with pytest.raises(ConfigError, match=r"pipeline\.commit_interval .* is 'fast': a number is expected"):
        load_settings(environ={}, cwd=tmp_path)
    (tmp_path / "airlake.toml").write_text(
        '[markets.wikis]\nnlwiki = "amsterdam"\n[profiles.mine.catalog]\nuri = "x"\n'
    )
    s = load_settings(environ={}, cwd=tmp_path)  # the user's own wikis and profiles are free-form
    assert s.get("markets.wikis.nlwiki") == "amsterdam" and s.get("profiles.mine.catalog.uri") == "x"
    assert s.markets.wikis["enwiki"] == "new-york" and "local" in s.model.profiles  # added to, not replaced


def test_an_unknown_variable_is_an_error_naming_the_nearest(tmp_path: Path):
    with pytest.raises(
        ConfigError, match="unknown variable AIRLAKE__PIPELINE__COMIT_INTERVAL.*AIRLAKE__PIPELINE__COMMIT_INTERVAL"
    ):
        load_settings(environ={"AIRLAKE__PIPELINE__COMIT_INTERVAL": "3"}, cwd=tmp_path)
    (tmp_path / ".env").write_text("AIRLAKE__STACK__POSTGRES__PASWORD=x\n")
    with pytest.raises(ConfigError, match="unknown variable AIRLAKE__STACK__POSTGRES__PASWORD"):
        load_settings(environ={}, cwd=tmp_path)
    assert (
        load_settings(environ={"AIRLAKE__MARKETS__WIKIS__NLWIKI": "amsterdam"}, cwd=tmp_path / "x").get(
            "markets.wikis.nlwiki"
        )
        == "amsterdam"
    )
    s = load_settings(environ={"AIRLAKE__PROFILES__LOCAL__CATALOG__WAREHOUSE": "s3://other/wh"}, cwd=tmp_path / "x")
    assert s.model.profiles["local"].catalog["warehouse"] == "s3://other/wh"
    assert s.model.profiles["local"].catalog["type"] == "sql"  # the profile's other properties stay


def test_config_show_names_each_source_and_masks_secrets(tmp_path: Path):
    import json
    import subprocess
    import sys

    from airlake.processes import clean_env

    (tmp_path / "airlake.toml").write_text("[pipeline]\ncommit_interval = 5.0\n")
    (tmp_path / ".env").write_text("AIRLAKE__STACK__S3__SECRET_KEY=from-dotenv-secret\n")
    env = clean_env(AIRLAKE__STACK__POSTGRES__PASSWORD="from-env-secret", AIRLAKE__FIREHOSE__SEED="7")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-m", "airlake", "config", "show", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    shown = {row["key"]: row for row in json.loads(out)}
    assert "from-env-secret" not in out and "from-dotenv-secret" not in out
    assert (shown["stack.postgres.password"]["value"], shown["stack.postgres.password"]["source"]) == ("****", "env")
    assert (shown["stack.s3.secret_key"]["value"], shown["stack.s3.secret_key"]["source"]) == ("****", ".env")
    assert (shown["pipeline.commit_interval"]["value"], shown["pipeline.commit_interval"]["source"]) == (
        5.0,
        "airlake.toml",
    )
    assert (shown["firehose.seed"]["value"], shown["firehose.seed"]["source"]) == (7, "env")
    assert shown["pipeline.max_batch_events"]["source"] == "default"
    assert shown["stack.superset.admin_password"]["value"] == ""  # unset secrets show as unset


def test_code_that_asks_for_a_setting_that_does_not_exist_fails_loudly(tmp_path: Path):
    s = load_settings(environ={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"firehose\.hots, which is not a setting \(did you mean firehose\.host\?\)"):
        s.get("firehose.hots")
    assert s.get("markets.wikis.nosuchwiki", "fallback") == "fallback"  # free-form sections may lack a key


def test_sections_are_typed_attributes_and_secrets_stay_hidden(tmp_path: Path):
    env = {"AIRLAKE__PIPELINE__MAX_BATCH_EVENTS": "7", "AIRLAKE__STACK__POSTGRES__PASSWORD": "hunter2"}
    s = load_settings(environ=env, cwd=tmp_path)
    assert s.pipeline.max_batch_events == 7 and isinstance(s.pipeline.max_batch_events, int)
    assert s.pipeline.commit_interval == 2.0 and isinstance(s.pipeline.commit_interval, float)
    assert s.sources.recentchange.url == WIKIMEDIA_URL
    assert s.stack.postgres.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s.stack) and "hunter2" not in str(s.stack.postgres)
    assert s.get("stack.postgres.password") == "hunter2"  # a dotted path gives the clear value (placeholders use it)
    with pytest.raises(AttributeError):
        s.pipeline.commit_intervall  # noqa: B018 - a typo in code fails, it is not None


def test_every_default_is_written_once_in_the_models(tmp_path: Path):
    from airlake.settings import DEFAULTS
    from airlake.settings.models import AirlakeModel

    s = load_settings(environ={}, cwd=tmp_path / "empty")
    assert {**s.data, "state_dir": DEFAULTS["state_dir"]} == DEFAULTS
    assert DEFAULTS["pipeline"]["commit_interval"] == AirlakeModel().pipeline.commit_interval
    assert set(s.sources_of_values.values()) <= {"default"} and not s.sources_of_values


def test_a_value_of_the_wrong_type_anywhere_names_the_setting_and_its_source(tmp_path: Path):
    (tmp_path / ".env").write_text("AIRLAKE__FIREHOSE__ORDERS_PORT=eighty\n")
    with pytest.raises(ConfigError, match=r"AIRLAKE__FIREHOSE__ORDERS_PORT='eighty' is not an integer \(\.env"):
        load_settings(environ={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"setting pipeline\.keep_snapshots from argument is 'many'"):
        load_settings({"pipeline.keep_snapshots": "many"}, environ={}, cwd=tmp_path / "x")
    with pytest.raises(ConfigError, match=r"the code overrides pipeline\.keep_snapshot, which is not a setting"):
        load_settings({"pipeline.keep_snapshot": 3}, environ={}, cwd=tmp_path / "x")
