"""docker-compose.yml can't run here (no Docker engine): check that it parses and agrees with the native stack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from airlake.settings import DEFAULTS, load_settings
from airlake.stack.layout import TRINO_CATALOG_DIR
from airlake.stack.services import TRINO_ENV_VARS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"

# compose service -> (stack setting of the host port, port inside the container)
PUBLISHED = {
    "postgres": ("stack.postgres.port", 5432),
    "seaweedfs": ("stack.seaweedfs.s3_port", 8333),
    "mongo": ("stack.ferretdb.port", 27017),
    "trino": ("stack.trino.port", 8080),
    "superset": ("stack.superset.port", 8088),
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def defaults():
    return load_settings(environ={}, cwd=ROOT / "stack")  # no .env, no airlake.toml: the committed defaults


def test_every_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no health check"


def test_images_are_pinned(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        tag = image.rpartition(":")[2]
        assert ":" in image and tag not in ("latest", ""), f"{name}: {image} is not pinned"
    images = {service["image"] for service in compose["services"].values()}
    assert "trinodb/trino:476" in images
    assert any(image.startswith("chrislusf/seaweedfs:") for image in images)
    assert any(image.startswith("mongo:") for image in images)
    superset = (ROOT / compose["services"]["superset-init"]["build"]["dockerfile"]).read_text(encoding="utf-8")
    assert "FROM apache/superset:6.1.0" in superset


def test_depends_on_uses_conditions(compose):
    services = compose["services"]
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert spec["condition"] in ("service_healthy", "service_completed_successfully"), (name, dep)
    assert services["superset"]["depends_on"]["superset-init"]["condition"] == "service_completed_successfully"


def test_ports_are_loopback_and_agree_with_the_config(compose, defaults):
    for name, (setting, inner) in PUBLISHED.items():
        ports = compose["services"][name]["ports"]
        assert ports == [f"127.0.0.1:{defaults.require(setting)}:{inner}"], (name, ports)
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_trino_mounts_the_native_catalog_files(compose):
    volumes = compose["services"]["trino"]["volumes"]
    sources = {v.split(":")[0]: v.split(":")[1] for v in volumes}
    assert "/etc/trino/catalog" in sources.values()
    mounted = next(src for src, dst in sources.items() if dst == "/etc/trino/catalog")
    assert (ROOT / mounted).resolve() == TRINO_CATALOG_DIR
    assert {p.name for p in TRINO_CATALOG_DIR.glob("*.properties")} == {
        "iceberg.properties",
        "mongodb.properties",
        "memory.properties",
        "tpch.properties",
    }


def test_catalog_env_vars_are_set_by_both_sides(compose):
    used = set()
    for path in TRINO_CATALOG_DIR.glob("*.properties"):
        used |= set(re.findall(r"\$\{ENV:([A-Z0-9_]+)\}", path.read_text(encoding="utf-8")))
    assert used == set(TRINO_ENV_VARS)
    assert used <= set(compose["services"]["trino"]["environment"])


def test_iceberg_catalog_name_is_the_pyiceberg_one():
    text = (TRINO_CATALOG_DIR / "iceberg.properties").read_text(encoding="utf-8")
    assert "iceberg.jdbc-catalog.catalog-name=airlake\n" in text
    assert "s3.path-style-access=true" in text and "fs.native-s3.enabled=true" in text


def test_compose_profile_matches_the_compose_services(compose, defaults):
    env = {
        "AIRLAKE__STACK__POSTGRES__PASSWORD": "p" * 8,
        "AIRLAKE__STACK__S3__ACCESS_KEY": "a" * 8,
        "AIRLAKE__STACK__S3__SECRET_KEY": "s" * 8,
    }
    props = load_settings(environ=env, cwd=ROOT / "stack").catalog_properties("compose")
    pg = compose["services"]["postgres"]["environment"]
    assert props["uri"] == f"postgresql+psycopg2://{pg['POSTGRES_USER']}:pppppppp@postgres:5432/{pg['POSTGRES_DB']}"
    trino = compose["services"]["trino"]["environment"]
    assert props["s3.endpoint"] == trino["TRINO_S3_ENDPOINT"]
    assert props["warehouse"] == trino["TRINO_ICEBERG_WAREHOUSE"]
    assert trino["TRINO_ICEBERG_JDBC_URL"] == f"jdbc:postgresql://postgres:5432/{pg['POSTGRES_DB']}"
    assert props["s3.region"] == trino["TRINO_S3_REGION"]
    assert DEFAULTS["stack"]["s3"]["bucket"] in compose["services"]["seaweedfs"]["entrypoint"][-1]
    pipeline = compose["services"]["pipeline"]["environment"]
    assert pipeline["AIRLAKE__PROFILE"] == "compose"
    for key in env:
        assert key in pipeline


def test_secrets_come_from_the_environment_only(compose):
    text = COMPOSE.read_text(encoding="utf-8")
    for match in re.finditer(r"(PASSWORD|SECRET_KEY|ACCESS_KEY)[A-Z_]*: (.+)", text):
        value = match.group(2)
        assert value.startswith("${AIRLAKE__") or value.startswith("*"), match.group(0)
