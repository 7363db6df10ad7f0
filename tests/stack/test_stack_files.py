"""Files that hold secrets are private from the moment they exist; secrets stay out of argv (no servers needed)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from airlake.settings import load_settings
from airlake.stack import bootstrap, services, supervisor
from airlake.stack.credentials import GENERATED, ensure_credentials, write_private
from airlake.stack.layout import Layout


@pytest.fixture
def no_chmod(monkeypatch):
    """Any chmod fails, and the umask lets everything through: a file is private only if it was created so."""
    old = os.umask(0)

    def refuse(*args, **kwargs):
        raise AssertionError(f"chmod after the fact: {args}")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(os, "fchmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def layout(tmp_path, monkeypatch) -> Layout:
    ensure_credentials(tmp_path, environ={})
    settings = load_settings({"state_dir": str(tmp_path / "state")}, environ={}, cwd=tmp_path)
    monkeypatch.setattr(services, "find_java_home", lambda _settings: tmp_path / "jdk")
    monkeypatch.setattr(services, "find_postgres_bindir", lambda: tmp_path / "pg" / "bin")
    monkeypatch.setattr(bootstrap, "find_postgres_bindir", lambda: tmp_path / "pg" / "bin")
    return Layout.from_settings(settings)


def _secret_values(layout: Layout) -> list[str]:
    return [str(layout.settings.require(key)) for key in GENERATED]


def test_a_new_dotenv_is_created_private(tmp_path, no_chmod):
    assert ensure_credentials(tmp_path, environ={})
    assert _mode(tmp_path / ".env") == 0o600


def test_an_existing_dotenv_open_to_others_is_tightened(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("AIRLAKE__PROFILE=local\n", encoding="utf-8")
    dotenv.chmod(0o644)
    ensure_credentials(tmp_path, environ={})
    assert _mode(dotenv) == 0o600
    assert dotenv.read_text(encoding="utf-8").startswith("AIRLAKE__PROFILE=local\n")
    # Complete already (nothing to append): tightened all the same.
    dotenv.chmod(0o664)
    assert ensure_credentials(tmp_path, environ={}) == []
    assert _mode(dotenv) == 0o600


def test_write_private_replaces_a_file_with_a_private_one(tmp_path, no_chmod):
    path = tmp_path / "secret.conf"
    path.write_text("old")
    write_private(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.conf"]  # no temporary file left


def test_supervisord_conf_and_s3_identities_are_created_private(layout, no_chmod):
    layout.data("seaweedfs").mkdir(parents=True)
    assert supervisor.write_conf(layout, services.programs(layout))
    bootstrap.write_s3_identities(layout)
    for path in (layout.supervisord_conf, layout.data("seaweedfs") / "s3.json"):
        assert _mode(path) == 0o600, path
    # Services log settings that hold secrets (Trino its S3 access key): logs and data files are private too.
    assert _mode(layout.logs) == 0o700
    assert "umask = 077" in layout.supervisord_conf.read_text()
    assert layout.settings.require("stack.s3.secret_key") in (layout.data("seaweedfs") / "s3.json").read_text()


def test_postgres_passwords_go_through_stdin_as_scram_verifiers(layout, monkeypatch):
    calls: list[tuple[list[str], str | None]] = []

    def fake_run(cmd, *, input=None, **kwargs):  # noqa: A002 - subprocess.run's name
        calls.append((list(cmd), input))
        return subprocess.CompletedProcess(cmd, 0, stdout="", stderr="")

    monkeypatch.setattr(bootstrap.subprocess, "run", fake_run)
    bootstrap.setup_postgres(layout)
    sql = "\n".join(stdin or "" for _cmd, stdin in calls)
    assert "CREATE ROLE airlake WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:" in sql
    for secret in _secret_values(layout):
        assert not any(secret in arg for cmd, _stdin in calls for arg in cmd)
        assert secret not in sql


def test_scram_verifier_has_postgresqls_format():
    # RFC 7677's example password and salt; StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
    # ServerKey = HMAC(SaltedPassword, "Server Key") (RFC 5802). That PostgreSQL accepts it is shown by the stack:
    # its health check logs in with the generated password over scram-sha-256.
    import base64

    verifier = bootstrap.scram_sha_256("pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    assert verifier == (
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
    )


def test_superset_runs_with_gunicorns_default_request_limits(layout):
    [superset] = [p for p in services.programs(layout) if p.name == "superset"]
    assert not [arg for arg in superset.command if arg.startswith("--limit-request")]
