"""Dashboards as code, run with Superset's own interpreter by ``airlake dashboards`` and ``airlake stack up``.

``import DIR``: loads the YAML bundle in ``DIR`` (Superset's export layout: ``metadata.yaml``, ``databases/``,
``datasets/``, ``charts/``, ``dashboards/``) with Superset's asset importer, which overwrites every object by its
UUID; points the database at this stack's Trino; then grants the roles (import carries none) and creates or updates
the users. ``export DIR``: writes every dashboard with its charts, datasets and database back into ``DIR``, keeping
each object's file name when one with its UUID exists. ``screenshot SLUG FILE``: Superset's own dashboard
screenshot (Selenium on Chromium, ``WEBDRIVER_*`` in superset_config.py).

Reads ``AIRLAKE_SUPERSET_ADMIN``, ``AIRLAKE_SUPERSET_TRINO_URI`` and ``AIRLAKE_SUPERSET_USERS`` (a JSON list of
``{"username", "password", "role"}``) besides Superset's own configuration variables. Prints one JSON line (the
result) last on stdout; errors go to stderr with exit status 1.
"""

import json
import os
import sys
from pathlib import Path

import yaml

DATABASE_URI_PLACEHOLDER = "trino://airlake@127.0.0.1:8080/iceberg"
"""What the committed database YAML holds: the stack's Trino URI (its port varies) is set at import."""

EXECUTIVE = "executive"
ANALYST = "analyst"

EXECUTIVE_PERMISSIONS = [
    ("can_read", "Dashboard"),
    ("can_read", "Chart"),
    ("can_read", "DashboardFilterStateRestApi"),
    ("can_write", "DashboardFilterStateRestApi"),
    ("can_read", "DashboardPermalinkRestApi"),
    ("can_write", "DashboardPermalinkRestApi"),
    ("can_read", "CssTemplate"),
    ("can_dashboard", "Superset"),
    ("can_explore_json", "Superset"),
    ("can_log", "Superset"),
    ("can_time_range", "Api"),
    ("can_query_form_data", "Api"),
    ("can_query", "Api"),
    ("menu_access", "Dashboards"),
]
"""Read-only dashboards: what DESIGN.md measured, plus the time-range and chart-data API calls a dashboard makes.
Nothing on datasets, databases or SQL Lab."""

ANALYST_BUILTIN_ROLES = ("Gamma", "sql_lab")
"""The analyst's built-in roles: Gamma (dashboards, charts, datasets read) and sql_lab (SQL Lab, CSV export)."""

ANALYST_PERMISSIONS = [
    ("all_datasource_access", "all_datasource_access"),
    ("all_database_access", "all_database_access"),
    ("can_csv", "Superset"),
    ("can_export_csv", "SQLLab"),
]


def _result(**fields):
    print(json.dumps(fields, default=str), flush=True)


def _fail(message):
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(1)


def _contents(bundle: Path, trino_uri: str) -> dict:
    """The bundle's files by their path inside it, the database's URI set to this stack's Trino."""
    contents = {}
    for path in sorted(bundle.rglob("*.yaml")):
        rel = path.relative_to(bundle).as_posix()
        text = path.read_text(encoding="utf-8")
        if rel.startswith("databases/"):
            doc = yaml.safe_load(text)
            doc["sqlalchemy_uri"] = trino_uri
            text = yaml.safe_dump(doc, sort_keys=False)
        contents[rel] = text
    if "metadata.yaml" not in contents:
        _fail(f"{bundle} holds no metadata.yaml: not a Superset bundle")
    return contents


def _adopt_databases(contents: dict) -> None:
    """A database created by name before (the bootstrap's ``trino``) takes the UUID of the bundle's."""
    from superset import db
    from superset.models.core import Database

    for rel, text in contents.items():
        if not rel.startswith("databases/"):
            continue
        doc = yaml.safe_load(text)
        existing = db.session.query(Database).filter_by(database_name=doc["database_name"]).one_or_none()
        if existing is not None and str(existing.uuid) != str(doc["uuid"]):
            import uuid

            existing.uuid = uuid.UUID(str(doc["uuid"]))
    db.session.commit()


def _validation_messages(exc) -> list:
    """The messages of Superset's CommandInvalidError, one per file."""
    messages = []
    for error in getattr(exc, "_exceptions", None) or []:
        messages.append(str(getattr(error, "messages", error)))
    return messages or [str(exc)]


def _grant(sm, role, permissions) -> None:
    for permission, view in permissions:
        pv = sm.find_permission_view_menu(permission, view)
        if pv is None:
            pv = sm.add_permission_view_menu(permission, view)
        if pv is not None and pv not in role.permissions:
            sm.add_permission_role(role, pv)


def grant_roles(dashboard_uuids: list) -> dict:
    """Creates the executive and analyst roles, puts them on the bundle's dashboards, and adds the users."""
    from superset import db
    from superset import security_manager as sm
    from superset.models.dashboard import Dashboard

    executive = sm.find_role(EXECUTIVE) or sm.add_role(EXECUTIVE)
    analyst = sm.find_role(ANALYST) or sm.add_role(ANALYST)
    _grant(sm, executive, EXECUTIVE_PERMISSIONS)
    _grant(sm, analyst, ANALYST_PERMISSIONS)
    dashboards = db.session.query(Dashboard).filter(Dashboard.uuid.in_(dashboard_uuids)).all()
    for dashboard in dashboards:
        for role in (executive, analyst):
            if role not in dashboard.roles:
                dashboard.roles.append(role)
    db.session.commit()

    users = json.loads(os.environ.get("AIRLAKE_SUPERSET_USERS") or "[]")
    done = []
    for spec in users:
        name = spec["role"]
        roles = [sm.find_role(name)]
        if name == ANALYST:
            roles += [sm.find_role(builtin) for builtin in ANALYST_BUILTIN_ROLES]
        roles = [role for role in roles if role is not None]
        user = sm.find_user(username=spec["username"])
        if user is None:
            user = sm.add_user(
                spec["username"],
                spec["username"].title(),
                "Airlake",
                f"{spec['username']}@airlake.invalid",
                roles,
                spec["password"],
            )
            if not user:
                _fail(f"could not create the user {spec['username']}")
        else:
            user.roles = roles
            sm.update_user(user)
            sm.reset_password(user.id, spec["password"])
        done.append({"username": spec["username"], "roles": [role.name for role in roles]})
    db.session.commit()
    return {"roles": [EXECUTIVE, ANALYST], "users": done, "granted_on": [d.dashboard_title for d in dashboards]}


def do_import(bundle: Path) -> None:
    from superset import db, security_manager
    from superset.commands.exceptions import CommandInvalidError
    from superset.commands.importers.v1.assets import ImportAssetsCommand
    from superset.connectors.sqla.models import SqlaTable
    from superset.models.dashboard import Dashboard
    from superset.models.slice import Slice
    from superset.utils.core import override_user

    contents = _contents(bundle, os.environ["AIRLAKE_SUPERSET_TRINO_URI"])
    _adopt_databases(contents)
    admin = security_manager.find_user(username=os.environ["AIRLAKE_SUPERSET_ADMIN"])
    if admin is None:
        _fail(f"no Superset user {os.environ['AIRLAKE_SUPERSET_ADMIN']}: run `airlake stack up` first")
    with override_user(admin):
        try:
            ImportAssetsCommand(contents).run()
        except CommandInvalidError as exc:
            _fail("the bundle is invalid:\n  " + "\n  ".join(_validation_messages(exc)))
        except Exception as exc:  # noqa: BLE001 - ImportFailedError wraps whatever failed
            cause = exc.__cause__ or exc
            _fail(f"the import failed: {type(cause).__name__}: {cause}")
    docs = {rel: yaml.safe_load(text) for rel, text in contents.items()}
    chart_uuids = [doc["uuid"] for rel, doc in docs.items() if rel.startswith("charts/")]
    dashboard_uuids = [doc["uuid"] for rel, doc in docs.items() if rel.startswith("dashboards/")]
    granted = grant_roles(dashboard_uuids)
    charts = [
        {"id": c.id, "uuid": str(c.uuid), "name": c.slice_name, "dataset": c.datasource_name}
        for c in db.session.query(Slice).filter(Slice.uuid.in_(chart_uuids)).all()
    ]
    dashboards = [
        {"id": d.id, "uuid": str(d.uuid), "title": d.dashboard_title, "slug": d.slug}
        for d in db.session.query(Dashboard).filter(Dashboard.uuid.in_(dashboard_uuids)).all()
    ]
    datasets = db.session.query(SqlaTable).count()
    _result(charts=charts, dashboards=dashboards, datasets=datasets, **granted)


def _uuid_of(text: str):
    try:
        return str(yaml.safe_load(text).get("uuid"))
    except Exception:  # noqa: BLE001 - not ours to judge here
        return None


def _without_local_ids(rel: str, doc: dict) -> None:
    """Zeroes the ids local to one Superset (the importer sets them from the UUIDs), so exports diff cleanly."""
    if rel.startswith("charts/"):
        doc.get("params", {})["datasource"] = "0__table"
        if doc.get("query_context"):
            context = json.loads(doc["query_context"])
            context["datasource"] = {"id": 0, "type": "table"}
            context.get("form_data", {})["datasource"] = "0__table"
            context.get("form_data", {}).pop("slice_id", None)
            doc["query_context"] = json.dumps(context)
        doc.get("params", {}).pop("slice_id", None)
    elif rel.startswith("dashboards/"):
        for node in doc.get("position", {}).values():
            if isinstance(node, dict) and node.get("type") == "CHART":
                node.setdefault("meta", {})["chartId"] = 0


def do_export(bundle: Path) -> None:
    from superset import db, security_manager
    from superset.commands.dashboard.export import ExportDashboardsCommand
    from superset.models.dashboard import Dashboard
    from superset.utils.core import override_user

    known = {}
    for path in bundle.rglob("*.yaml"):
        uuid = _uuid_of(path.read_text(encoding="utf-8"))
        if uuid:
            known[uuid] = path
    admin = security_manager.find_user(username=os.environ["AIRLAKE_SUPERSET_ADMIN"])
    ids = [d.id for d in db.session.query(Dashboard).all()]
    written = []
    with override_user(admin):
        for rel, content in ExportDashboardsCommand(ids).run():
            text = content() if callable(content) else content
            if rel == "metadata.yaml" or rel.endswith("/metadata.yaml"):
                continue  # the committed metadata.yaml says "assets"; an export's says "Dashboard"
            rel = (
                rel.split("/", 1)[1]
                if rel.split("/", 1)[0] not in ("databases", "datasets", "charts", "dashboards")
                else rel
            )
            doc = yaml.safe_load(text)
            if rel.startswith("databases/"):
                doc["sqlalchemy_uri"] = DATABASE_URI_PLACEHOLDER
                doc.pop("password", None)
            _without_local_ids(rel, doc)
            uuid = str(doc.get("uuid"))
            target = known.get(uuid) or bundle / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            new = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)
            if not target.is_file() or target.read_text(encoding="utf-8") != new:
                target.write_text(new, encoding="utf-8")
                written.append(target.relative_to(bundle).as_posix())
    _result(written=sorted(written), dashboards=len(ids))


def do_screenshot(slug: str, out: Path, width: int, height: int) -> None:
    from flask import current_app
    from superset import db, security_manager
    from superset.models.dashboard import Dashboard
    from superset.utils.screenshots import DashboardScreenshot
    from superset.utils.urls import get_url_path

    dashboard = db.session.query(Dashboard).filter_by(slug=slug).one_or_none()
    if dashboard is None:
        _fail(f"no dashboard with the slug {slug!r}")
    admin = security_manager.find_user(username=os.environ["AIRLAKE_SUPERSET_ADMIN"])
    with current_app.test_request_context():
        url = get_url_path("Superset.dashboard", dashboard_id_or_slug=dashboard.id, standalone="3")
        png = DashboardScreenshot(url, dashboard.digest).get_screenshot(user=admin, window_size=(width, height))
    if not png:
        _fail(f"Superset's screenshot of {slug!r} came back empty (see the webdriver messages above)")
    out.write_bytes(png)
    _result(file=str(out), bytes=len(png), url=url)


def main() -> None:
    command, *rest = sys.argv[1:]
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        if command == "import":
            do_import(Path(rest[0]))
        elif command == "export":
            do_export(Path(rest[0]))
        elif command == "screenshot":
            do_screenshot(rest[0], Path(rest[1]), int(rest[2]), int(rest[3]))
        else:
            _fail(f"unknown command {command}")


if __name__ == "__main__":
    main()
